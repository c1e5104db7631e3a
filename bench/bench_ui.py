"""The web UI at 1k and 200k nodes: the home page, a run page and a model page.

The stores are those of ``bench_graph.py`` (pipelines of 25 steps, one ``Run`` context
each: 13 pipelines = 1,001 nodes, 2,600 pipelines = 200,200 nodes), with what our runs
carry added to every run context (run name, experiment, status, start and end, final
metrics) and a 50-point metric series on the last run, so its page draws curves.

Measured in one process through Starlette's test client (routing, the store reads, Jinja2
rendering, Graphviz for the diagram, matplotlib for the curves; no socket), best of
several requests after one warm-up, on the same server object:

- ``/``: the newest 50 runs with their params (run and step params) and final metrics (the
  small store has 13 runs: the big store's page shows 4x as many, so it reads 4x as much);
- ``/?n=10``: the newest 10 runs, the same amount of content on both stores;
- ``/runs/context:N``: the last run: params, 25 steps, 52 artifacts, the curves image;
- ``/runs/context:N/curves.svg``: the curves themselves (matplotlib);
- ``/artifacts/N``: the last output of the last pipeline (the "model"): properties, its
  51-node provenance as a linked diagram, impact, versions.

Goal (issue 13): at most 2x slower on the 200k-node store than on the 1k-node one.

Usage: ``python bench/run.py ui`` (or ``python bench/bench_ui.py [--quick]``); writes the
"Web UI" section of ``bench/RESULTS.md``.
"""

from __future__ import annotations

import datetime
import gc
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from _results import write_section  # bench/ is on sys.path when run as a script
from bench_graph import NODES_PER_PIPELINE, Builder
from ml_metadata.proto import metadata_store_pb2 as pb

import lineage
from lineage import _convert
from lineage._schema import EXPERIMENT_PROPERTIES, EXPERIMENT_TYPE, RUN_TYPE

PAGES = ("home", "home10", "run", "curves", "model")


def _as_our_runs(store: lineage.Store) -> int:
    """Give every run context the properties ``lineage.run`` records; return the last id."""
    mlmd = store.mlmd
    et = pb.ContextType(name=EXPERIMENT_TYPE)
    for k, v in EXPERIMENT_PROPERTIES.items():
        et.properties[k] = v
    exp_type = mlmd.put_context_type(et)
    [exp] = mlmd.put_contexts([pb.Context(type_id=exp_type, name="bench")])
    runs = sorted(mlmd.get_contexts_by_type(RUN_TYPE), key=lambda c: c.id)
    now = time.time()
    for i, ctx in enumerate(runs):
        ctx.properties["run_name"].string_value = ctx.name
        ctx.properties["experiment"].string_value = "bench"
        ctx.properties["status"].string_value = "COMPLETE"
        ctx.properties["start_time"].double_value = now - 1000 + i
        ctx.properties["end_time"].double_value = now - 990 + i
        ctx.properties["metrics"].CopyFrom(
            _convert.to_value({"f1": 0.5 + (i % 50) / 100, "loss": 1 / (i + 1)}))
        ctx.custom_properties["seed"].int_value = i % 7
    last = runs[-1]
    last.properties["metric_series"].CopyFrom(_convert.to_value(
        {"loss": [[s, 1 / (s + 1)] for s in range(50)],
         "acc": [[s, 0.5 + s / 100] for s in range(50)]}, packed=True))
    for start in range(0, len(runs), 1000):
        mlmd.put_contexts(runs[start:start + 1000])
    mlmd.put_parent_contexts([pb.ParentContext(child_id=c.id, parent_id=exp) for c in runs])
    return int(last.id)


def _best(client: Any, url: str, repeat: int) -> float:
    answer = client.get(url)  # warm-up (type caches, templates, fonts)
    assert answer.status_code == 200, (url, answer.status_code, answer.text[:300])
    times = []
    for _ in range(repeat):
        gc.collect()
        t = time.perf_counter()
        answer = client.get(url)
        times.append(time.perf_counter() - t)
        assert answer.status_code == 200
    return min(times)


def measure(pipelines: int, folder: Path, repeat: int) -> dict[str, Any]:
    from starlette.testclient import TestClient

    from lineage.ui import create_app

    uri = folder / f"p{pipelines}" / "metadata.sqlite"
    writer = lineage.connect(uri)
    builder = Builder(writer)
    t = time.perf_counter()
    builder.add(pipelines)
    last_run = _as_our_runs(writer)
    build = time.perf_counter() - t
    model = builder.last_outputs[-1]
    writer.close()
    store = lineage.connect(uri, read_only=True)
    client = TestClient(create_app(store))
    urls = {"home": "/", "home10": "/?n=10", "run": f"/runs/context:{last_run}",
            "curves": f"/runs/context:{last_run}/curves.svg", "model": f"/artifacts/{model}"}
    out: dict[str, Any] = {"pipelines": pipelines, "nodes": pipelines * NODES_PER_PIPELINE,
                           "build": build}
    for name in PAGES:
        out[name] = _best(client, urls[name], repeat)
    store.close()
    return out


def main(argv: list[str] | None = None) -> dict[str, Any]:
    argv = sys.argv[1:] if argv is None else argv
    quick = "--quick" in argv
    sizes = [13, 260] if quick else [13, 2600]
    repeat = 3 if quick else 7
    rounds = 1 if quick else 3
    results: list[list[dict[str, Any]]] = []
    with tempfile.TemporaryDirectory(prefix="bench-ui-") as tmp:
        for r in range(rounds):  # small and big measured alternately, several rounds
            row = []
            for pipelines in sizes:
                got = measure(pipelines, Path(tmp) / f"r{r}", repeat)
                print(" ".join(f"{k}={v * 1000:.1f}ms" if isinstance(v, float) and k != "build"
                               else f"{k}={v}" for k, v in got.items()), flush=True)
                row.append(got)
            results.append(row)
    text = _markdown(results, quick)
    print(text)
    if not quick:
        write_section("Web UI", "<!-- ui-notes -->", text)
    return {"results": results}


def _markdown(results: list[list[dict[str, Any]]], quick: bool) -> str:
    today = datetime.date.today().isoformat()
    small, big = results[0]
    lines = [
        "## Web UI",
        "",
        f"Run on {today} (`python bench/run.py ui`{' --quick' if quick else ''}), "
        f"{platform.machine()}, Python {platform.python_version()}, SQLite in WAL mode, "
        "through Starlette's test client (no socket). The stores of `bench_graph.py` with "
        "our run properties on every run; best of several requests, "
        f"{len(results)} rounds (small and big store alternately); the ratio is the median "
        "over the rounds of big / small.",
        "",
        f"| page | {small['nodes']:,} nodes | {big['nodes']:,} nodes | ratio |",
        "| --- | ---: | ---: | ---: |",
    ]
    label = {"home": "`/` (newest 50 runs; 13 on the small store)",
             "home10": "`/?n=10` (newest 10 runs)", "run": "`/runs/{run}` (25 steps)",
             "curves": "`/runs/{run}/curves.svg`", "model": "`/artifacts/{id}` (51-node provenance)"}
    for name in PAGES:
        ratios = [b[name] / s[name] for s, b in results]
        lines.append(
            f"| {label[name]} | {statistics.median(s[name] for s, _ in results) * 1000:.1f} ms | "
            f"{statistics.median(b[name] for _, b in results) * 1000:.1f} ms | "
            f"**{statistics.median(ratios):.2f}x** |")
    lines.append("")
    lines.append("Goal: at most 2x on the big store.")
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    main()
