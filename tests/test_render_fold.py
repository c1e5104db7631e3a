"""Pictures that stay readable after many runs: folding, fan-out, focus, layout, displays.

Stores are recorded with ``@lineage.step`` (the 7-step digits pipeline of
``examples/digits/pipeline.py``, run five times with cache hits, and small pipelines
written here); what is drawn is read back from Graphviz's own output (``dot -Tjson`` for
nodes, clusters and edge routes, ``-Tsvg`` for texts and tooltips). Expected counts are
computed from the query results' ``to_dict()``, not from the code under test.
"""

from __future__ import annotations

import contextlib
import importlib.util
import json
import os
import random
import re
import subprocess
import sys
import xml.etree.ElementTree as ET
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

import networkx as nx
import pytest

import lineage
from lineage.cli import main
from lineage.render import to_dot, to_svg

ROOT = Path(__file__).resolve().parent.parent
SVG = "{http://www.w3.org/2000/svg}"
XLINK = "{http://www.w3.org/1999/xlink}"


# --- reading what Graphviz drew ------------------------------------------------------------


def _layout(dot_source: str) -> dict[str, Any]:
    done = subprocess.run(["dot", "-Tjson"], input=dot_source.encode("ascii"),
                          capture_output=True, timeout=120, check=False)
    assert done.returncode == 0, done.stderr.decode()
    assert not done.stderr.strip(), done.stderr.decode()
    data: dict[str, Any] = json.loads(done.stdout)
    return data


def _nodes(layout: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {o["name"]: o for o in layout.get("objects", []) if "nodes" not in o}


def _clusters(layout: dict[str, Any]) -> dict[str, set[str]]:
    """Cluster label text → the names of its nodes."""
    names = {o["_gvid"]: o["name"] for o in layout.get("objects", [])}
    out = {}
    for o in layout.get("objects", []):
        if "nodes" in o and str(o["name"]).startswith("cluster"):
            label = " ".join(t.get("text", "") for op in o.get("_ldraw_", [])
                             for t in [op] if op.get("op") == "T")
            out[label] = {names[i] for i in o["nodes"]}
    return out


def _svg_nodes(svg: str) -> dict[str, tuple[str, str]]:
    """Node id → (its texts, its tooltip) in the SVG."""
    root = ET.fromstring(svg)
    out = {}
    for group in root.iter(f"{SVG}g"):
        title = group.find(f"{SVG}title")
        if group.get("class") == "node" and title is not None and title.text:
            text = " ".join(" ".join("".join(t.itertext()) for t in group.iter(f"{SVG}text"))
                            .split())
            tips = [a.get(f"{XLINK}title", "") for a in group.iter(f"{SVG}a")]
            out[title.text] = (text, tips[0] if tips else "")
    return out


def _svg_edges(svg: str) -> list[str]:
    root = ET.fromstring(svg)
    return [str(g.findtext(f"{SVG}title")) for g in root.iter(f"{SVG}g") if g.get("class") == "edge"]


def _all_text(svg: str) -> str:
    root = ET.fromstring(svg)
    return " ".join(" ".join("".join(t.itertext()) for t in root.iter(f"{SVG}text")).split())


def _boxes(svg: str) -> dict[str, str]:
    """Execution boxes (ids e…, f_e…, g_e…) → their text."""
    return {k: v[0] for k, v in _svg_nodes(svg).items() if k.lstrip("fg_").startswith("e")}


def _artifact_nodes(svg: str) -> dict[str, str]:
    return {k: v[0] for k, v in _svg_nodes(svg).items() if k.lstrip("fg_").startswith("a")}


def _bezier_points(edge: dict[str, Any]) -> Iterator[tuple[float, float]]:
    for op in edge.get("_draw_", []):
        if op.get("op") not in ("b", "B"):
            continue
        pts = op["points"]
        for i in range(0, len(pts) - 3, 3):
            p0, p1, p2, p3 = pts[i:i + 4]
            for k in range(21):
                t = k / 20
                yield tuple(  # type: ignore[misc]
                    (1 - t) ** 3 * p0[d] + 3 * (1 - t) ** 2 * t * p1[d]
                    + 3 * (1 - t) * t ** 2 * p2[d] + t ** 3 * p3[d] for d in (0, 1))


def _foreign_crossings(dot_source: str) -> list[tuple[str, str, str]]:
    """Edges whose route passes through a run cluster that holds neither of its ends."""
    layout = _layout(dot_source)
    names = {o["_gvid"]: o["name"] for o in layout.get("objects", [])}
    clusters = [o for o in layout.get("objects", [])
                if "nodes" in o and str(o["name"]).startswith("cluster")]
    out = []
    for edge in layout.get("edges", []):
        points = list(_bezier_points(edge))
        for c in clusters:
            if edge["tail"] in c["nodes"] or edge["head"] in c["nodes"]:
                continue
            x0, y0, x1, y1 = map(float, c["bb"].split(","))
            if any(x0 + 1 < x < x1 - 1 and y0 + 1 < y < y1 - 1 for x, y in points):
                out.append((names[edge["tail"]], names[edge["head"]], c["name"]))
    return out


# --- stores ------------------------------------------------------------------------------


def _digits() -> ModuleType:
    spec = importlib.util.spec_from_file_location(
        "digits_pipeline", ROOT / "examples" / "digits" / "pipeline.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def digits(tmp_path_factory: pytest.TempPathFactory) -> tuple[str, int]:
    """The 7-step digits pipeline run five times with cache hits: (store uri, id of the
    last deployed model)."""
    folder = tmp_path_factory.mktemp("digits")
    module = _digits()
    module.OUT = folder / "out"
    uri = str(folder / "meta.sqlite")
    store = lineage.connect(uri)
    deployed = module.main(store)
    hits = store.executions(state="CACHED")
    assert len(hits) >= 20  # the later runs reuse earlier calls
    store.close()
    return uri, int(deployed.id)


def _calls(steps: list[dict[str, Any]]) -> dict[tuple[Any, ...], list[dict[str, Any]]]:
    """Steps grouped by call: same step, params, inputs and outputs."""
    out: dict[tuple[Any, ...], list[dict[str, Any]]] = {}
    for s in steps:
        key = (s["name"], json.dumps(s["params"], sort_keys=True), tuple(sorted(s["inputs"])),
               tuple(sorted(s["outputs"])))
        out.setdefault(key, []).append(s)
    return out


def _cached_pipeline(store: lineage.Store, folder: Path) -> dict[str, Any]:
    """prep (cached) → train, in three runs:

    - ``first``: prep runs, train(lr=0.1)
    - ``second``: prep is a cache hit of first's, nothing else
    - ``third``: prep is a cache hit again, train(lr=0.5) runs
    """
    folder.mkdir(parents=True, exist_ok=True)
    raw = folder / "raw.csv"
    raw.write_text("a,b\n1,2\n3,4\n")

    @lineage.step(store=store, cache=True)
    def prep(data: lineage.Dataset, seed: int = 7) -> dict[str, lineage.Dataset]:
        (folder / "train.csv").write_text("train\n")
        (folder / "test.csv").write_text("test\n")
        return {"train": lineage.Dataset(folder / "train.csv", name="train"),
                "test": lineage.Dataset(folder / "test.csv", name="test")}

    @lineage.step(store=store, kind="train", cache=True)
    def train(data: lineage.Dataset, lr: float = 0.1) -> lineage.Model:
        out = folder / f"model-{lr}.bin"
        out.write_text(f"lr={lr}\n")
        return lineage.Model(out, name="clf")

    models = {}
    for run, lr in (("first", 0.1), ("second", None), ("third", 0.5)):
        with lineage.run(run, experiment="demo", store=store):
            parts = prep(lineage.Dataset(raw, name="raw"))
            if lr is not None:
                models[run] = train(parts["train"], lr=lr)
    return models


# --- folding -----------------------------------------------------------------------------


def _art(g: nx.MultiDiGraph, i: int, name: str, type_name: str = "Dataset") -> str:
    key = f"artifact:{i}"
    g.add_node(key, kind="artifact", id=i, type_name=type_name,
               base_type="DATASET" if type_name == "Dataset" else None, name=name, version=1,
               uri=f"/d/{i}", state="LIVE", fingerprint=f"sha256:{i:064x}", properties={})
    return key


def _exe(g: nx.MultiDiGraph, i: int, name: str, state: str = "COMPLETE",
         params: dict[str, Any] | None = None, run: str | None = None,
         cached_from: int | None = None) -> str:
    key = f"execution:{i}"
    g.add_node(key, kind="execution", id=i, type_name=name, name=name, state=state,
               params=params or {}, runs=[run] if run else [], create_time=1000 + i,
               properties={"cached_from": cached_from} if cached_from else {}, error=None)
    return key


def _edge(g: nx.MultiDiGraph, u: str, v: str, path: str) -> None:
    event = "INPUT" if u.startswith("artifact") else "OUTPUT"
    g.add_edge(u, v, key=f"{event}:{path}", event_type=event, path=path)


def _repeats() -> nx.MultiDiGraph:
    """ingest (baseline) and two cache hits of it (tuned, tuned-2) → raw → train."""
    g = nx.MultiDiGraph()
    raw = _art(g, 1, "raw")
    for i, state, run in ((2, "COMPLETE", "baseline"), (3, "CACHED", "tuned"),
                          (4, "CACHED", "tuned-2")):
        _edge(g, _exe(g, i, "ingest", state, run=run, cached_from=2 if i > 2 else None),
              raw, "out")
    train = _exe(g, 5, "train", params={"lr": 0.1}, run="baseline")
    _edge(g, raw, train, "data")
    _edge(g, train, _art(g, 6, "clf", "Model"), "model")
    return g


def test_repeats_of_a_call_are_one_box_with_a_count_and_the_runs() -> None:
    svg = to_svg(_repeats())
    boxes = _boxes(svg)
    assert sorted(boxes) == ["e2", "e5"]
    assert "\u00d73 \u00b7 runs baseline, tuned, tuned-2" in boxes["e2"]
    tip = _svg_nodes(svg)["e2"][1]
    for line in ("execution:2 COMPLETE \u00b7 run baseline",
                 "execution:3 CACHED \u00b7 run tuned \u00b7 cached from execution:2",
                 "execution:4 CACHED \u00b7 run tuned-2 \u00b7 cached from execution:2"):
        assert line in tip.splitlines()
    assert "3 executions drawn as 1 box" not in _all_text(svg)
    assert "4 executions drawn as 2 boxes" in _all_text(svg)
    # fold=False draws every execution, as before
    unfolded = to_svg(_repeats(), fold=False)
    assert sorted(_boxes(unfolded)) == ["e2", "e3", "e4", "e5"]
    assert "\u00d73" not in _all_text(unfolded)
    assert len(_svg_edges(svg)) == 3 and len(_svg_edges(unfolded)) == 5


def test_long_run_lists_are_shortened_in_the_box_and_complete_in_the_tooltip() -> None:
    g = nx.MultiDiGraph()
    raw = _art(g, 1, "raw")
    for i in range(2, 10):
        _edge(g, _exe(g, i, "ingest", "COMPLETE" if i == 2 else "CACHED", run=f"run-{i}",
                      cached_from=None if i == 2 else 2), raw, "out")
    svg = to_svg(g)
    text, tip = _svg_nodes(svg)["e2"]
    assert "\u00d78 \u00b7 runs run-2, run-3, run-4 +5" in text
    assert all(f"run run-{i}" in tip for i in range(2, 10))


def test_a_cache_hit_is_folded_into_the_call_it_reused_even_with_other_input_records() -> None:
    g = nx.MultiDiGraph()
    first, copy = _art(g, 1, "raw"), _art(g, 2, "raw-copy")  # same content, two records
    out = _art(g, 3, "clean")
    done = _exe(g, 4, "prep", run="a")
    hit = _exe(g, 5, "prep", "CACHED", run="b", cached_from=4)
    _edge(g, first, done, "data")
    _edge(g, copy, hit, "data")
    _edge(g, done, out, "out")
    _edge(g, hit, out, "out")
    boxes = _boxes(to_svg(g))
    assert list(boxes) == ["e4"] and "\u00d72" in boxes["e4"]
    # without cached_from (not a cache hit of it) the two calls read different records
    g.nodes[hit]["properties"] = {}
    g.nodes[hit]["state"] = "COMPLETE"
    assert sorted(_boxes(to_svg(g))) == ["e4", "e5"]


def test_other_params_or_another_outcome_are_another_call() -> None:
    g = nx.MultiDiGraph()
    raw = _art(g, 1, "raw")
    for i, lr in ((2, 0.1), (3, 0.5)):
        _edge(g, raw, _exe(g, i, "train", params={"lr": lr}, run="r"), "data")
    for i, state in ((4, "FAILED"), (5, "RUNNING"), (6, "FAILED")):
        _edge(g, raw, _exe(g, i, "fit", state, run="r"), "data")
    boxes = _boxes(to_svg(g))
    assert sorted(boxes) == ["e2", "e3", "e4", "e5"]  # the two FAILED fits are one call
    assert "\u00d72" in boxes["e4"] and "FAILED" in boxes["e4"]


def test_the_text_tree_and_the_picture_share_the_notion_of_a_call(digits: tuple[str, int]) -> None:
    store = lineage.connect(digits[0], read_only=True)
    prov = store.provenance(digits[1])
    repeats = {ref for line in str(prov).splitlines()
               if "also produced by the same call" in line
               for ref in re.findall(r"execution:\d+", line)}
    drawn = len(_boxes(to_svg(prov)))
    assert repeats
    assert drawn == len(prov.steps) - len(repeats)


def test_fold_applies_to_impact_diff_store_graph_and_the_audit_report(
    sqlite_store: lineage.Store, tmp_path: Path,
) -> None:
    models = _cached_pipeline(sqlite_store, tmp_path)
    results = {
        "impact": sqlite_store.impact("raw"),
        "diff": sqlite_store.diff(models["first"], models["third"]),
        "graph": sqlite_store.graph(),
    }
    for name, result in results.items():
        graph = result if name == "graph" else result.graph
        executions = [n for n, d in graph.nodes(data=True) if d.get("kind") == "execution"]
        folded, unfolded = to_svg(result), to_svg(result, fold=False)
        assert len(_boxes(unfolded)) == len(executions), name
        assert len(_boxes(folded)) == len(executions) - 2, name  # prep three times: one box
        assert "\u00d73 \u00b7 runs first, second, third" in _all_text(folded), name
    report = sqlite_store.audit(models["third"], tmp_path / "audit.html")
    html = Path(str(report)).read_text()
    svg = html[html.index("<svg"):html.index("</svg>") + 6]
    assert len(_boxes(svg)) == 2  # prep (three executions) and train
    assert "<a " not in svg and "prep: one call, 3 executions" in svg  # tooltip as <title>
    assert len(sqlite_store.provenance(models["third"]).steps) == 4
    plain = Path(str(lineage.report.audit(sqlite_store, models["third"], tmp_path / "all.html",
                                          fold=False))).read_text()
    assert plain.count('class="node"') > html.count('class="node"')


# --- fan-out -----------------------------------------------------------------------------


def _folds(store: lineage.Store, folder: Path, runs: dict[str, int], *,
           fail: int | None = None) -> lineage.Model:
    """take_fold(k) → fit(k) for k in range(n) per run, then pick: cross-validation."""
    folder.mkdir(parents=True, exist_ok=True)
    raw = folder / "raw.csv"
    raw.write_text("x\n1\n")

    @lineage.step(store=store)
    def take_fold(data: lineage.Dataset, k: int, folds: int = 10) -> lineage.Dataset:
        path = folder / f"fold-{k}.csv"
        path.write_text(f"fold {k}\n")
        return lineage.Dataset(path, name=f"fold-{k}")

    @lineage.step(store=store, kind="train")
    def fit(data: lineage.Dataset, k: int, lr: float = 0.1) -> lineage.Model:
        if k == fail:
            raise ValueError("diverged")
        path = folder / f"model-{k}.bin"
        path.write_text(f"model {k}\n")
        return lineage.Model(path, name=f"cv-model-{k}")

    @lineage.step(store=store)
    def pick(models: list[lineage.Model]) -> lineage.Model:
        path = folder / "best.bin"
        path.write_text("best " + " ".join(str(m.id) for m in models) + "\n")
        return lineage.Model(path, name="best")

    best = None
    for run, n in runs.items():
        with lineage.run(run, store=store):
            data = lineage.Dataset(raw, name="raw")
            models = []
            for k in range(n):
                with contextlib.suppress(ValueError):
                    models.append(fit(take_fold(data, k), k))
            best = pick(models)
    assert best is not None
    return best


def test_a_step_called_many_times_in_one_run_is_one_box_with_the_range_of_its_params(
    sqlite_store: lineage.Store, tmp_path: Path,
) -> None:
    best = _folds(sqlite_store, tmp_path, {"cv": 10})
    prov = sqlite_store.provenance(best)
    svg = to_svg(prov)
    boxes = _boxes(svg)
    assert len(boxes) == 3  # take_fold, fit, pick
    fan = {k: v for k, v in boxes.items() if k.startswith("f_e")}
    assert len(fan) == 2
    fit_box = next(k for k, v in fan.items() if " fit " in f" {v} ")
    assert "\u00d710" in fan[fit_box] and "k = 0\u20269" in fan[fit_box]
    assert "lr = 0.1" in fan[fit_box]  # what every call shares
    tip = _svg_nodes(svg)[fit_box][1].splitlines()
    assert tip[0] == "fit: 10 calls in run cv"
    fits = [s for s in prov.steps if s.name == "fit"]
    for s in fits:
        assert f"k={s.params['k']} lr=0.1: execution:{s.id}" in tip
    # the folds and the models only the fan-outs read and write: one node each
    arts = _artifact_nodes(svg)
    assert len(arts) == 4  # raw, the folds, the models, best
    assert any("\u00d710 fold-0 \u2026 fold-9" in t for t in arts.values())
    assert "fan-out: the calls of fit, take_fold in one run drawn as one box" in _all_text(svg)


def test_the_fan_out_threshold_is_an_option(sqlite_store: lineage.Store, tmp_path: Path) -> None:
    prov = sqlite_store.provenance(_folds(sqlite_store, tmp_path, {"cv": 6}))
    assert len(_boxes(to_svg(prov))) == 3  # 6 calls: over the default of 5
    assert len(_boxes(to_svg(prov, fan_out=7))) == 13
    assert len(_boxes(to_svg(prov, fan_out=None))) == 13
    assert len(_boxes(to_svg(prov, fan_out=0))) == 13
    assert lineage.render.DEFAULT_FAN_OUT == 5  # type: ignore[attr-defined]
    with pytest.raises(lineage.RenderError, match="fan_out"):
        to_dot(prov, fan_out=-1)


def test_fan_out_counts_calls_per_run_and_keeps_failed_calls_apart(
    sqlite_store: lineage.Store, tmp_path: Path,
) -> None:
    # four calls in each of two runs: under the threshold in each run
    _folds(sqlite_store, tmp_path / "a", {"one": 4, "two": 4})
    svg = to_svg(sqlite_store.impact("raw"))
    assert not [k for k in _boxes(svg) if k.startswith("f_")]
    best = _folds(sqlite_store, tmp_path / "b", {"three": 8}, fail=3)
    prov = sqlite_store.provenance(best)
    boxes = _boxes(to_svg(prov))
    assert [k for k in boxes if k.startswith("f_")]
    failed = sqlite_store.executions(state="FAILED")
    assert failed and all(f"e{s.id}" not in boxes for s in failed)  # not upstream of best
    impact_boxes = _boxes(to_svg(sqlite_store.impact(failed[0].inputs[0])))
    assert f"e{failed[0].id}" in impact_boxes and "FAILED" in impact_boxes[f"e{failed[0].id}"]


# --- focus -------------------------------------------------------------------------------


def test_focus_draws_the_runs_that_made_the_target(sqlite_store: lineage.Store,
                                                   tmp_path: Path) -> None:
    models = _cached_pipeline(sqlite_store, tmp_path)
    prov = sqlite_store.provenance(models["third"])
    dot = to_dot(prov)
    clusters = _clusters(_layout(dot))
    assert list(clusters) == ["run: third"]
    svg = to_svg(prov)
    text = _all_text(svg)
    assert "cache hits reuse run first (1 call)" in text
    prep = [s for s in prov.steps if s.name == "prep"]
    hit = next(s for s in prep if "third" in prov.step_dict(s)["runs"])
    assert hit.state == "CACHED"
    box = _boxes(svg)[f"e{hit.id}"]  # drawn as the cache hit of the target's run
    assert "CACHED" in box and "cached \u2190 run first" in box
    assert f"e{hit.id}" in clusters["run: third"]
    # the second run re-emitted the same outputs before: named in the box only
    assert "second" in box and "run: second" not in text
    # without focus: each call in the run that did the work
    unfocused = _clusters(_layout(to_dot(prov, focus=False)))
    assert sorted(unfocused) == ["run: first", "run: third"]
    original = next(s for s in prep if s.state == "COMPLETE")
    assert f"e{original.id}" in unfocused["run: first"]


def test_a_run_the_target_reads_from_is_drawn_in_full(sqlite_store: lineage.Store,
                                                      tmp_path: Path) -> None:
    models = _cached_pipeline(sqlite_store, tmp_path)

    @lineage.step(store=sqlite_store, kind="deploy")
    def deploy(model: lineage.Model) -> lineage.Model:
        out = tmp_path / "serving.bin"
        out.write_text(Path(str(model.uri)).read_text())
        return lineage.Model(out, name="serving")

    with lineage.run("deploy", store=sqlite_store):
        served = deploy(models["first"])
    clusters = _clusters(_layout(to_dot(sqlite_store.provenance(served))))
    assert list(clusters) == ["run: first", "run: deploy"]  # ordered by time
    assert "cache hits reuse" not in _all_text(to_svg(sqlite_store.provenance(served)))


# --- layout ------------------------------------------------------------------------------


def test_edge_labels_only_where_they_tell_the_ends_apart(sqlite_store: lineage.Store,
                                                         tmp_path: Path) -> None:
    _cached_pipeline(sqlite_store, tmp_path)
    graph = sqlite_store.graph()

    def labels(**options: Any) -> set[str]:
        layout = _layout(to_dot(graph, **options))
        return {t.get("text", "") for e in layout.get("edges", [])
                for op in e.get("_ldraw_", []) for t in [op] if op.get("op") == "T"}

    # prep writes two Datasets (train, test): named; the one input of each step is not
    assert labels() == {"train", "test"}
    assert labels(edge_labels=True) == {"train", "test", "data", "[0]"}  # [0]: the one output
    assert labels(edge_labels=False) == set()
    with pytest.raises(lineage.RenderError, match="edge_labels"):
        to_dot(graph, edge_labels="sometimes")


def test_run_clusters_are_ordered_by_time_not_by_name(sqlite_store: lineage.Store,
                                                      tmp_path: Path) -> None:
    raw = tmp_path / "raw.csv"
    raw.write_text("1\n")

    @lineage.step(store=sqlite_store)
    def prep(data: lineage.Dataset, tag: str) -> lineage.Dataset:
        out = tmp_path / f"{tag}.csv"
        out.write_text(tag)
        return lineage.Dataset(out, name=tag)

    for run in ("zeta", "alpha", "mid"):
        with lineage.run(run, store=sqlite_store):
            prep(lineage.Dataset(raw, name="raw"), run)
    assert list(_clusters(_layout(to_dot(sqlite_store.graph())))) == [
        "run: zeta", "run: alpha", "run: mid"]


def test_edges_do_not_cross_clusters_they_do_not_belong_to(digits: tuple[str, int]) -> None:
    store = lineage.connect(digits[0], read_only=True)
    prov = store.provenance(digits[1])
    for name, dot in (("store", to_dot(store.graph())), ("provenance", to_dot(prov)),
                      ("unfocused", to_dot(prov, focus=False)),
                      ("impact", to_dot(store.impact("digits")))):
        assert len(_clusters(_layout(dot))) >= (1 if name == "provenance" else 3), name
        assert _foreign_crossings(dot) == [], name
    assert _foreign_crossings(to_dot(prov, fold=False))  # what folding removed


# --- determinism -------------------------------------------------------------------------


def test_folded_pictures_are_byte_identical_for_the_same_store(digits: tuple[str, int]) -> None:
    first = lineage.connect(digits[0], read_only=True)
    again = lineage.connect(digits[0], read_only=True)
    for a, b in ((first.provenance(digits[1]), again.provenance(digits[1])),
                 (first.graph(), again.graph()), (first.impact("digits"), again.impact("digits"))):
        assert to_dot(a) == to_dot(b)
        assert to_svg(a) == to_svg(b)
    assert to_dot(first.verify(digits[1])) == to_dot(again.verify(digits[1]))


def test_folding_does_not_depend_on_insertion_order(digits: tuple[str, int]) -> None:
    graph = lineage.connect(digits[0], read_only=True).graph()
    nodes = list(graph.nodes(data=True))
    edges = list(graph.edges(keys=True, data=True))
    rng = random.Random(3)
    rng.shuffle(nodes)
    rng.shuffle(edges)
    shuffled = nx.MultiDiGraph()
    shuffled.add_nodes_from(nodes)
    shuffled.add_edges_from(edges)
    assert to_dot(shuffled) == to_dot(graph)


# --- measured: the digits pipeline, five runs ----------------------------------------------


def test_provenance_of_the_last_deployed_model_draws_one_box_per_distinct_call(
    digits: tuple[str, int],
) -> None:
    store = lineage.connect(digits[0], read_only=True)
    prov = store.provenance(digits[1])
    shape = prov.to_dict()
    calls = _calls(shape["steps"])
    arts = {a["id"] for a in shape["artifacts"]} | {shape["target"]["id"]}
    # every call's events, once: artifact → call, call → artifact
    edges = {(a, key) for key in calls for a in key[2] if a in arts}
    edges |= {(key, a) for key in calls for a in key[3] if a in arts}

    svg = to_svg(prov)
    boxes, drawn_arts = _boxes(svg), _artifact_nodes(svg)
    assert len(boxes) == len(calls)
    assert len(drawn_arts) == len(arts)
    assert len(_svg_edges(svg)) == len(edges)
    # the pipeline: one box per step, apply_scaler once per split
    names = sorted(t.split()[0] for t in boxes.values())
    assert names == ["apply_scaler"] * 3 + ["deploy", "evaluate", "featurize", "fit_scaler",
                                            "ingest", "split", "train"]
    assert len(shape["steps"]) >= 3 * len(calls)  # what the picture drew before
    unfolded = to_svg(prov, fold=False)
    assert len(_boxes(unfolded)) == len(shape["steps"])
    assert len(_artifact_nodes(unfolded)) == len(arts)
    assert f"{len(shape['steps'])} executions drawn as {len(calls)} boxes" in _all_text(svg)
    # one cluster: the run that deployed it; the runs it reused are named
    assert list(_clusters(_layout(to_dot(prov)))) == ["run: final"]
    assert "cache hits reuse run baseline" in _all_text(svg)


# --- every answer can be drawn and displayed -----------------------------------------------


def test_verification_has_a_graph_and_a_picture_coloured_by_status(
    sqlite_store: lineage.Store, tmp_path: Path,
) -> None:
    models = _cached_pipeline(sqlite_store, tmp_path)
    (tmp_path / "train.csv").write_text("changed\n")
    (tmp_path / "raw.csv").unlink()
    check = sqlite_store.verify(models["first"])
    assert not check.ok and check.target is not None and check.target.id == models["first"].id
    status = {r.artifact.id: r.status for r in check.results}
    for _node, data in check.graph.nodes(data=True):
        if data["kind"] == "artifact":
            assert data["verify"] == status[data["id"]]
    svg = check._repr_svg_()
    assert check._repr_html_() == svg
    nodes = _svg_nodes(svg)
    train = sqlite_store.get("train")
    raw = sqlite_store.get("raw")
    assert "\u2260 changed" in nodes[f"a{train.id}"][0]
    assert "\u2717 missing" in nodes[f"a{raw.id}"][0]
    assert "\u2713 ok" in nodes[f"a{models['first'].id}"][0]
    assert "verified: changed" in nodes[f"a{train.id}"][1]
    layout = _nodes(_layout(to_dot(check)))
    assert layout[f"a{train.id}"]["color"] == layout[f"a{raw.id}"]["color"] == "#dc2626"
    counts = ", ".join(f"{n} {s}" for s, n in check.counts.items())
    assert check.counts == {"changed": 1, "missing": 1, "ok": 1}
    assert f"Verification of clf v1 (Model): FAILED ({counts})" in _all_text(svg)
    # every artifact: the whole store, read when the graph is first asked for
    everything = sqlite_store.verify()
    graph = everything.graph
    assert {d.get("verify") for _, d in graph.nodes(data=True) if d["kind"] == "artifact"} == {
        "ok", "changed", "missing"}
    assert "Verification of every recorded artifact: FAILED" in _all_text(to_svg(everything))


def test_comparison_displays_as_an_html_table(sqlite_store: lineage.Store, tmp_path: Path) -> None:
    data = tmp_path / "d.csv"
    data.write_text("1\n")

    @lineage.step(store=sqlite_store)
    def train(data: lineage.Dataset, note: str = "") -> lineage.Model:
        out = tmp_path / f"m{len(note)}.bin"
        out.write_text(note)
        return lineage.Model(out, name="m")

    for run, note in (("base", "plain"), ("<b>x</b> & 'y'", "<script>alert(1)</script>")):
        with lineage.run(run, store=sqlite_store):
            train(lineage.Dataset(data, name="d"), note=note)
    runs = ["base", "<b>x</b> & 'y'"]
    c = sqlite_store.compare(runs)
    html = c._repr_html_()
    table = ET.fromstring(html)  # well-formed: every value escaped
    assert table.tag == "table"
    head = [th.text or "" for th in table.find("thead/tr").findall("th")]  # type: ignore[union-attr]
    assert head == ["", *runs]
    rows = table.find("tbody").findall("tr")  # type: ignore[union-attr]
    assert len(rows) == len(c.columns)
    first = rows[0]
    assert first.get("style") and (first.find("th").text or "").startswith("* ")  # type: ignore[union-attr]
    cells = [[td.text or "" for td in row.findall("td")] for row in rows]
    assert ["plain", "<script>alert(1)</script>"] in cells
    assert "<script>" not in html


def test_a_lineage_graph_says_what_it_holds(sqlite_store: lineage.Store, tmp_path: Path) -> None:
    _cached_pipeline(sqlite_store, tmp_path)
    g = sqlite_store.graph()
    arts = sum(1 for _, d in g.nodes(data=True) if d["kind"] == "artifact")
    execs = sum(1 for _, d in g.nodes(data=True) if d["kind"] == "execution")
    assert repr(g) == f"<LineageGraph: {arts} artifacts, {execs} executions, 3 runs>"
    assert "object at 0x" not in repr(sqlite_store.graph(contexts=True))
    assert "context node" in repr(sqlite_store.graph(contexts=True))


# --- tooltips and the command line ---------------------------------------------------------


@pytest.mark.parametrize("name", [
    'x"]; evil -> y; <script>', "a\\Nb \\G \\\\ end\\", "<b>bold</b> &amp;",
    "donn\u00e9es \u2013 \u30c7\u30fc\u30bf", "line one\nline two",
])
def test_tooltips_show_hostile_names_as_text(name: str) -> None:
    g = nx.MultiDiGraph()
    raw = _art(g, 1, name)
    for i, state in ((2, "COMPLETE"), (3, "CACHED")):
        _edge(g, _exe(g, i, name, state, params={name: name}, run=name,
                      cached_from=2 if i == 3 else None), raw, name)
    dot = to_dot(g)
    assert dot.isascii()
    layout = _layout(dot)
    assert set(_nodes(layout)) == {"a1", "e2"}
    svg = to_svg(g)
    assert "<script" not in svg
    shown = " ".join(name.replace("\\", "\u29f5").split())
    tips = {k: " ".join(v[1].split()) for k, v in _svg_nodes(svg).items()}
    assert shown in tips["a1"] and shown in tips["e2"]
    assert "execution:3 CACHED" in tips["e2"]


def test_graph_and_audit_commands_fold_unless_told_not_to(
    sqlite_uri: str, tmp_path: Path, capsys: pytest.CaptureFixture[str],
) -> None:
    store = lineage.connect(sqlite_uri)
    models = _cached_pipeline(store, tmp_path / "files")
    store.close()
    ref = f"artifact:{models['third'].id}"

    def drawn(*argv: str) -> int:
        out = tmp_path / f"g{len(argv)}.dot"
        assert main(["--store", sqlite_uri, "graph", *argv, "-o", str(out)]) == 0
        capsys.readouterr()
        return len([n for n in _nodes(_layout(out.read_text())) if n.lstrip("fg_")[0] == "e"])

    assert drawn(ref) == 2 and drawn(ref, "--no-fold") == 4
    assert drawn() == 3 and drawn("--no-fold") == 5
    assert drawn("--fan-out", "0") == 3
    report, plain = tmp_path / "a.html", tmp_path / "b.html"
    assert main(["--store", sqlite_uri, "audit", ref, "-o", str(report)]) == 0
    assert main(["--store", sqlite_uri, "audit", ref, "-o", str(plain), "--no-fold"]) == 0
    assert plain.read_text().count('class="node"') > report.read_text().count('class="node"')


@pytest.mark.slow
def test_digits_example_runs_as_a_script(tmp_path: Path) -> None:
    env = {**os.environ, "LINEAGE_EXAMPLE_OUT": str(tmp_path / "out"), "LINEAGE_URI": ""}
    done = subprocess.run([sys.executable, str(ROOT / "examples" / "digits" / "pipeline.py")],
                          cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300,
                          check=False)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    store = lineage.connect(tmp_path / ".lineage" / "metadata.sqlite", read_only=True)
    prov = store.provenance("digits-serving")
    steps = prov.to_dict()["steps"]
    assert f"provenance of digits-serving v{prov.target.version}: {len(steps)} executions" in (
        done.stdout)
    folded, unfolded = (_boxes((tmp_path / "out" / name).read_text())
                        for name in ("provenance.svg", "provenance-unfolded.svg"))
    assert len(folded) == len(_calls(steps)) < len(unfolded) == len(steps)
