"""Graph load and provenance at 1k / 10k / 100k+ nodes, as ratios against raw ml_metadata.

The stores are SQLite in WAL mode (``lineage.connect`` makes new files WAL), built with
batched ``put_artifacts`` / ``put_executions`` / ``put_events`` / ``put_attributions_and_associations``
calls. A store is a set of pipelines; each pipeline is one ``Run`` context with a chain of
25 steps (executions carry ``run_context``, the run's id, as our steps record it): step i reads the previous step's output and the pipeline's dataset and writes
the next output and a side artifact (2 inputs, 2 outputs: 4 events per execution, 2
artifacts per execution, as the issue's 100k artifacts / 50k executions / 200k events).
The last output of a pipeline has a 51-node upstream lineage (plus itself).

Measured (best of several runs, same process, same store, caches warm; the previous
result is freed, and the graph cache dropped, outside the timed region):

- raw read: ``get_artifacts()``, ``get_executions()``, ``get_events_by_execution_ids`` in
  batches of 1,000 — the rows ``store.graph()`` reads;
- ``store.graph()`` on a fresh cache (also reads run membership, one call per context),
  its ratio to the raw read, peak Python memory (tracemalloc, separate run), and a second
  ``graph()`` after one more pipeline was added (the incremental path);
- ``store.provenance(last output of a pipeline)``, against the same frontier-by-frontier
  walk written with raw ml_metadata calls, and against one call per node.

Usage: ``python bench/run.py graph`` (or ``python bench/bench_graph.py [--quick]``);
writes the "Graph and provenance" section of ``bench/RESULTS.md``.
"""

from __future__ import annotations

import datetime
import gc
import platform
import statistics
import sys
import tempfile
import time
import tracemalloc
from collections.abc import Callable
from pathlib import Path
from typing import Any

from _results import write_section  # bench/ is on sys.path when run as a script
from ml_metadata.proto import metadata_store_pb2 as pb

import lineage
from lineage import queries
from lineage._schema import RUN_PROPERTIES, RUN_TYPE, STEP_PROPERTIES

HERE = Path(__file__).resolve().parent
STEPS = 25  # per pipeline
NODES_PER_PIPELINE = 2 * STEPS + 2 + STEPS  # artifacts + executions
_BATCH = 1000


class Builder:
    """Adds pipelines to a store with batched raw calls."""

    def __init__(self, store: lineage.Store) -> None:
        self.store = store
        mlmd = store.mlmd
        self.dataset_type = mlmd.put_artifact_type(
            pb.ArtifactType(name="Dataset", base_type=pb.ArtifactType.DATASET))
        self.thing_type = mlmd.put_artifact_type(pb.ArtifactType(name="Intermediate"))
        et = pb.ExecutionType(name="step", base_type=pb.ExecutionType.PROCESS)
        for k, v in STEP_PROPERTIES.items():
            et.properties[k] = v
        self.exec_type = mlmd.put_execution_type(et)
        ct = pb.ContextType(name=RUN_TYPE)
        for k, v in RUN_PROPERTIES.items():
            ct.properties[k] = v
        self.run_type = mlmd.put_context_type(ct)
        self.pipelines = 0
        self.last_outputs: list[int] = []

    def add(self, n: int) -> None:
        """Add ``n`` pipelines, in batches."""
        for start in range(0, n, 200):
            self._add_batch(min(200, n - start))

    def _add_batch(self, n: int) -> None:
        mlmd = self.store.mlmd
        arts: list[pb.Artifact] = []
        for p in range(n):
            k = self.pipelines + p
            arts.append(pb.Artifact(type_id=self.dataset_type, uri=f"/data/p{k}/raw.csv",
                                    name=f"raw-{k}", state=pb.Artifact.LIVE))
            arts.append(pb.Artifact(type_id=self.thing_type, uri=f"/data/p{k}/cfg.yaml",
                                    state=pb.Artifact.LIVE))
            for i in range(STEPS):
                for kind in ("out", "side"):
                    a = pb.Artifact(type_id=self.thing_type, uri=f"/data/p{k}/{kind}{i}",
                                    state=pb.Artifact.LIVE)
                    a.custom_properties["rows"].int_value = i
                    arts.append(a)
        art_ids = _put(mlmd.put_artifacts, arts)
        ctx_ids = _put(mlmd.put_contexts, [
            pb.Context(type_id=self.run_type, name=f"run-{self.pipelines + p}") for p in range(n)])
        execs = []
        for p in range(n):
            for i in range(STEPS):
                e = pb.Execution(type_id=self.exec_type, last_known_state=pb.Execution.COMPLETE)
                e.properties["recorded_by"].string_value = "bench"
                e.properties["source_hash"].string_value = "sha256:abc"
                # as our steps record it: the run's context id (queries read the run here)
                e.properties["run_context"].int_value = ctx_ids[p]
                e.custom_properties["lr"].double_value = 0.1
                e.custom_properties["step"].int_value = i
                execs.append(e)
        exec_ids = _put(mlmd.put_executions, execs)
        events: list[pb.Event] = []
        attributions: list[pb.Attribution] = []
        associations: list[pb.Association] = []
        per = 2 + 2 * STEPS
        for p in range(n):
            a = art_ids[p * per:(p + 1) * per]
            raw, cfg, outs = a[0], a[1], a[2:]
            e = exec_ids[p * STEPS:(p + 1) * STEPS]
            prev = cfg
            for i in range(STEPS):
                events += [
                    _event(raw, e[i], pb.Event.INPUT, "data"),
                    _event(prev, e[i], pb.Event.INPUT, "previous"),
                    _event(outs[2 * i], e[i], pb.Event.OUTPUT, "out"),
                    _event(outs[2 * i + 1], e[i], pb.Event.OUTPUT, "side"),
                ]
                prev = outs[2 * i]
                associations.append(pb.Association(context_id=ctx_ids[p], execution_id=e[i]))
            attributions += [pb.Attribution(context_id=ctx_ids[p], artifact_id=x) for x in a]
            self.last_outputs.append(prev)
        for start in range(0, len(events), 10 * _BATCH):
            mlmd.put_events(events[start:start + 10 * _BATCH])
        for start in range(0, len(associations), 10 * _BATCH):
            mlmd.put_attributions_and_associations([], associations[start:start + 10 * _BATCH])
        for start in range(0, len(attributions), 10 * _BATCH):
            mlmd.put_attributions_and_associations(attributions[start:start + 10 * _BATCH], [])
        self.pipelines += n


def _put(method: Callable[[list[Any]], list[int]], rows: list[Any]) -> list[int]:
    ids: list[int] = []
    for start in range(0, len(rows), 10 * _BATCH):
        ids.extend(method(rows[start:start + 10 * _BATCH]))
    return ids


def _event(artifact: int, execution: int, kind: int, key: str) -> pb.Event:
    ev = pb.Event(artifact_id=artifact, execution_id=execution, type=kind)
    ev.path.steps.add().key = key
    return ev


# --- measurements ---------------------------------------------------------------------------


def _best(fn: Callable[[], Any], repeat: int,
          reset: Callable[[], None] | None = None) -> float:
    """Best time of ``fn()``; ``reset()`` and freeing the previous result happen outside
    the timed region (freeing a 150k-node graph or cache takes ~0.1 s: a cost of dropping
    it, not of reading it), for the raw reads and for ``graph()`` alike."""
    times = []
    for _ in range(repeat):
        if reset is not None:
            reset()
        gc.collect()
        t = time.perf_counter()
        result = fn()
        times.append(time.perf_counter() - t)
        del result
    return min(times)


def raw_read(store: lineage.Store) -> list[list[Any]]:
    """The rows ``store.graph()`` reads: artifacts, executions, their events."""
    mlmd = store.mlmd
    arts = mlmd.get_artifacts()
    execs = mlmd.get_executions()
    ids = [e.id for e in execs]
    events = []
    for start in range(0, len(ids), _BATCH):
        events.extend(mlmd.get_events_by_execution_ids(ids[start:start + _BATCH]))
    return [arts, execs, events]


def raw_read_with_runs(store: lineage.Store) -> list[list[Any]]:
    """The raw read plus each context's executions: what graph() read to name runs before
    executions carried ``run_context`` (it still does for foreign stores)."""
    rows = raw_read(store)
    for ctx in store.mlmd.get_contexts():
        rows.append(store.mlmd.get_executions_by_context(ctx.id))
    return rows


def forget_graph(store: lineage.Store) -> None:
    """Drop the graph cache, so that the next ``graph()`` reads the whole store."""
    store._graph_cache = None


def fresh_graph(store: lineage.Store) -> Any:
    forget_graph(store)
    return store.graph()


def raw_walk(store: lineage.Store, target: int) -> int:
    """The same frontier-by-frontier upstream walk, with raw ml_metadata calls."""
    mlmd = store.mlmd
    seen_a, seen_e, frontier = {target}, set(), [target]
    while frontier:
        evs = mlmd.get_events_by_artifact_ids(frontier)
        producers = sorted({e.execution_id for e in evs if e.type == pb.Event.OUTPUT} - seen_e)
        if not producers:
            break
        seen_e.update(producers)
        evs = mlmd.get_events_by_execution_ids(producers)
        frontier = sorted({e.artifact_id for e in evs if e.type == pb.Event.INPUT} - seen_a)
        seen_a.update(frontier)
    mlmd.get_artifacts_by_id(sorted(seen_a))
    mlmd.get_executions_by_id(sorted(seen_e))
    return len(seen_a) + len(seen_e)


def per_node_walk(store: lineage.Store, target: int) -> int:
    """Upstream walk with one events call per node (what batching avoids)."""
    mlmd = store.mlmd
    seen_a, seen_e, stack = {target}, set(), [target]
    while stack:
        a = stack.pop()
        for ev in mlmd.get_events_by_artifact_ids([a]):
            if ev.type == pb.Event.OUTPUT and ev.execution_id not in seen_e:
                seen_e.add(ev.execution_id)
                for ev2 in mlmd.get_events_by_execution_ids([ev.execution_id]):
                    if ev2.type == pb.Event.INPUT and ev2.artifact_id not in seen_a:
                        seen_a.add(ev2.artifact_id)
                        stack.append(ev2.artifact_id)
    return len(seen_a) + len(seen_e)


def measure(store: lineage.Store, builder: Builder, *, quick: bool) -> dict[str, Any]:
    nodes = builder.pipelines * NODES_PER_PIPELINE
    big = nodes > 50_000
    repeat = 3 if big else 5
    raw_n = sum(map(len, raw_read(store)))
    raw_t = _best(lambda: raw_read(store), repeat)
    raw_runs_t = _best(lambda: raw_read_with_runs(store), repeat)
    g_t = _best(store.graph, repeat, reset=lambda: forget_graph(store))
    g = fresh_graph(store)
    assert g.number_of_nodes() == nodes, (g.number_of_nodes(), nodes)
    tracemalloc.start()
    fresh_graph(store)
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    # Incremental: one more pipeline, then graph() on the warm cache.
    builder.add(1)
    t = time.perf_counter()
    g2 = store.graph()
    incr_t = time.perf_counter() - t
    assert g2.number_of_nodes() == nodes + NODES_PER_PIPELINE
    target = builder.last_outputs[len(builder.last_outputs) // 2]
    p = store.provenance(target)
    assert len(p.artifacts) + len(p.steps) == 2 * STEPS + 1, (len(p.artifacts), len(p.steps))
    prov_t = statistics.median(
        [_best(lambda: store.provenance(target), 1) for _ in range(7 if not quick else 3)])
    walk_t = statistics.median(
        [_best(lambda: queries._walk(store, target, up=True), 1) for _ in range(7)])
    raw_walk_t = statistics.median([_best(lambda: raw_walk(store, target), 1) for _ in range(7)])
    per_node_t = statistics.median([_best(lambda: per_node_walk(store, target), 1) for _ in range(3)])
    return {
        "nodes": nodes, "rows": raw_n, "raw": raw_t, "raw_runs": raw_runs_t, "graph": g_t,
        "peak": peak, "walk": walk_t,
        "incremental": incr_t, "provenance": prov_t, "raw_walk": raw_walk_t,
        "per_node": per_node_t, "edges": g.number_of_edges(),
        "artifacts": sum(1 for _, k in g.nodes(data="kind") if k == "artifact"),
        "executions": sum(1 for _, k in g.nodes(data="kind") if k == "execution"),
    }


def main(argv: list[str] | None = None) -> dict[str, Any]:
    argv = sys.argv[1:] if argv is None else argv
    quick = "--quick" in argv
    # pipelines for ~1k, ~10k, ~150k (100k artifacts, 50k executions, 200k events), ~200k nodes
    targets = [13, 130, 650] if quick else [13, 130, 1923, 2600]
    results = []
    with tempfile.TemporaryDirectory(prefix="bench-graph-") as tmp:
        for i, pipelines in enumerate(targets):
            store = lineage.connect(Path(tmp) / f"s{i}" / "metadata.sqlite")
            builder = Builder(store)
            t = time.perf_counter()
            builder.add(pipelines)
            build_t = time.perf_counter() - t
            r = measure(store, builder, quick=quick)
            r["build"] = build_t
            results.append(r)
            print(_row(r), flush=True)
            store.close()
            del store, builder
            gc.collect()
    text = _markdown(results, quick)
    print(text)
    if not quick:
        write_section("Graph and provenance", "<!-- graph-notes -->", text)
    return {"results": results}


def _row(r: dict[str, Any]) -> str:
    return (f"{r['nodes']:>8,} nodes: build {r['build']:.1f}s raw {r['raw'] * 1000:.0f}ms "
            f"raw+runs {r['raw_runs'] * 1000:.0f}ms graph {r['graph'] * 1000:.0f}ms "
            f"({r['graph'] / r['raw']:.2f}x) walk {r['walk'] * 1000:.1f}ms "
            f"peak {r['peak'] / 2**20:.0f}MiB incr {r['incremental'] * 1000:.1f}ms "
            f"prov {r['provenance'] * 1000:.1f}ms raw-walk {r['raw_walk'] * 1000:.1f}ms "
            f"per-node {r['per_node'] * 1000:.1f}ms")


def _markdown(results: list[dict[str, Any]], quick: bool) -> str:
    today = datetime.date.today().isoformat()
    lines = [
        "## Graph and provenance",
        "",
        f"Run on {today} (`python bench/run.py graph`{' --quick' if quick else ''}), "
        f"{platform.machine()}, Python {platform.python_version()}, SQLite in WAL mode. "
        f"Each store is made of pipelines of {STEPS} steps (one `Run` context each; per step "
        "2 inputs, 2 outputs), so artifacts : executions : events = 2 : 1 : 4. Times are the "
        "best (graph) or median (provenance) of several runs in one process.",
        "",
        "| nodes | artifacts | executions | events | raw read (A) | A + per-context membership reads (B) | "
        "`store.graph()` | ratio to A | ratio to B | peak memory | second `graph()` after "
        "+1 pipeline | build |",
        "| ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for r in results:
        lines.append(
            f"| {r['nodes']:,} | {r['artifacts']:,} | {r['executions']:,} | {r['edges']:,} | "
            f"{r['raw'] * 1000:,.0f} ms | {r['raw_runs'] * 1000:,.0f} ms | "
            f"{r['graph'] * 1000:,.0f} ms | **{r['graph'] / r['raw']:.2f}x** | "
            f"**{r['graph'] / r['raw_runs']:.2f}x** | {r['peak'] / 2**20:,.0f} MiB | "
            f"{r['incremental'] * 1000:,.1f} ms | {r['build']:.1f} s |")
    lines += [
        "",
        f"Provenance of the last output of one pipeline ({2 * STEPS + 1} upstream nodes):",
        "",
        "| nodes in store | `store.provenance()` | vs smallest store | its walk (events, rows) "
        "| walk vs smallest | raw batched walk | raw walk, one call per node |",
        "| ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    base, base_walk = results[0]["provenance"], results[0]["walk"]
    for r in results:
        lines.append(
            f"| {r['nodes']:,} | {r['provenance'] * 1000:.1f} ms | "
            f"**{r['provenance'] / base:.2f}x** | {r['walk'] * 1000:.1f} ms | "
            f"**{r['walk'] / base_walk:.2f}x** | {r['raw_walk'] * 1000:.1f} ms | "
            f"{r['per_node'] * 1000:.1f} ms |")
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    main()
