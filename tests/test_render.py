"""Diagrams: shapes, colours, labels, clusters, escaping, determinism, collapsing, formats.

Graphs are built by hand following the contract of ``store.graph()`` (node and edge
attributes), and from real stores recorded with ``@lineage.step``. The DOT we write is
checked by Graphviz itself (``dot -Tjson`` for attributes, ``-Tsvg`` for the text shown).
"""

from __future__ import annotations

import json
import random
import shutil
import subprocess
import sys
import xml.etree.ElementTree as ET
from collections.abc import Callable
from pathlib import Path
from typing import Any

import graphviz
import networkx as nx
import pytest

import lineage
import lineage.render
from lineage.render import to_dot, to_svg

SVG = "{http://www.w3.org/2000/svg}"
HOSTILE = [
    'x"]; evil -> y; <script>',
    "<script>alert(1)</script>",
    "a\\Nb \\G \\\\ end\\",
    "curly {braces} [brackets]; a -> b",
    "line one\nline two\r\ttab",
    "<b>bold</b> &amp; <i>it</i> &lt;",
    "donn\u00e9es \u2013 \u30c7\u30fc\u30bf \u2013 \u0434\u0430\u043d\u043d\u044b\u0435",
    "quote ' and \" and `tick`",
]


# --- helpers ----------------------------------------------------------------------------


def _art(g: nx.MultiDiGraph, i: int, type_name: str, base: str | None, name: str | None,
         version: int | None = 1, fp: str | None = "sha256:0123456789abcdef", **props: Any) -> str:
    key = f"artifact:{i}"
    g.add_node(key, kind="artifact", id=i, type_name=type_name, base_type=base, name=name,
               uri=f"/data/{i}", version=version, state="LIVE", fingerprint=fp,
               properties=props, create_time=1000 + i)
    return key


def _exe(g: nx.MultiDiGraph, i: int, name: str, state: str = "COMPLETE",
         params: dict[str, Any] | None = None, runs: list[str] | None = None,
         error: str | None = None) -> str:
    key = f"execution:{i}"
    g.add_node(key, kind="execution", id=i, type_name=name, base_type="PROCESS", name=name,
               uri=None, version=None, state=state, fingerprint=None, properties={},
               create_time=1000 + i, params=params or {}, error=error, runs=runs or [])
    return key


def _edge(g: nx.MultiDiGraph, u: str, v: str, event: str, path: str) -> None:
    g.add_edge(u, v, key=f"{event}:{path}", event_type=event, path=path)


def _pipeline_graph() -> nx.MultiDiGraph:
    g = nx.MultiDiGraph()
    raw = _art(g, 1, "Dataset", "DATASET", "iris", 2)
    cfg = _art(g, 2, "Config", None, "params.yaml")
    stats = _art(g, 3, "ExampleStatistics", "STATISTICS", "stats")
    prep = _exe(g, 4, "prep", params={"seed": 7}, runs=["baseline"])
    train = _art(g, 5, "Dataset", "DATASET", "train")
    fit = _exe(g, 6, "train", params={"lr": 0.05, "epochs": 10}, runs=["baseline"])
    bad = _exe(g, 7, "train", "FAILED", {"lr": 5.0}, ["baseline"], "ValueError: diverged")
    model = _art(g, 8, "Model", "MODEL", "clf", 3)
    ev = _exe(g, 9, "evaluate", "CACHED", runs=["baseline"])
    metrics = _art(g, 10, "Metrics", "METRICS", "eval", acc=0.93, f1=0.91)
    deploy = _exe(g, 11, "deploy", "RUNNING")
    other = _art(g, 12, "Endpoint", None, "endpoint", fp=None)
    cancel = _exe(g, 13, "export", "CANCELED")
    for u, v, e, p in [
        (raw, prep, "INPUT", "raw"), (cfg, prep, "INPUT", "cfg"), (prep, stats, "OUTPUT", "stats"),
        (prep, train, "OUTPUT", "train"), (train, fit, "INPUT", "data"), (train, bad, "INPUT", "data"),
        (fit, model, "OUTPUT", "model"), (model, ev, "INPUT", "model"),
        (ev, metrics, "OUTPUT", "metrics"), (model, deploy, "INPUT", "model"),
        (deploy, other, "DECLARED_OUTPUT", "endpoint"), (model, cancel, "INPUT", "model"),
    ]:
        _edge(g, u, v, e, p)
    return g


def _layout(dot_source: str) -> dict[str, Any]:
    """Graphviz's own reading of our DOT (fails the test if Graphviz cannot parse it)."""
    done = subprocess.run(["dot", "-Tjson"], input=dot_source.encode("ascii"),
                          capture_output=True, timeout=60, check=False)
    assert done.returncode == 0, done.stderr.decode()
    assert not done.stderr.strip(), done.stderr.decode()  # no syntax warnings either
    data: dict[str, Any] = json.loads(done.stdout)
    return data


def _nodes(layout: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {o["name"]: o for o in layout.get("objects", []) if "nodes" not in o}


def _clusters(layout: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {o["name"]: o for o in layout.get("objects", []) if "nodes" in o}


def _svg_texts(svg: str) -> list[str]:
    root = ET.fromstring(svg)
    return ["".join(t.itertext()) for t in root.iter(f"{SVG}text")]


def _all_text(svg: str) -> str:
    """Every text of the SVG, whitespace normalised."""
    return " ".join(" ".join(_svg_texts(svg)).split())


def _svg_node_texts(svg: str, dot_id: str) -> str:
    root = ET.fromstring(svg)
    for group in root.iter(f"{SVG}g"):
        title = group.find(f"{SVG}title")
        if group.get("class") == "node" and title is not None and title.text == dot_id:
            text = " ".join("".join(t.itertext()) for t in group.iter(f"{SVG}text"))
            return " ".join(text.split())
    raise AssertionError(f"no node {dot_id} in the SVG")


def _record_pipeline(store: lineage.Store, folder: Path, *, lr: float = 0.1,
                     run: str = "baseline", rows: str = "1,2\n3,4\n") -> lineage.Model:
    """prep → train, recorded with @lineage.step in a run; returns the model."""
    folder.mkdir(parents=True, exist_ok=True)
    data = folder / "iris.csv"
    data.write_text("a,b\n" + rows)

    @lineage.step(store=store)
    def prep(raw: lineage.Dataset, seed: int = 7) -> lineage.Dataset:
        out = folder / "train.csv"
        out.write_text(raw.path.read_text() if raw.path else "")
        return lineage.Dataset(out, name="train")

    @lineage.step(store=store, kind="train")
    def train(data: lineage.Dataset, lr: float = 0.1, epochs: int = 10) -> lineage.Model:
        out = folder / "model.bin"
        out.write_text(f"lr={lr} " + (data.path.read_text() if data.path else ""))
        return lineage.Model(out, name="clf")

    with lineage.run(run, experiment="iris", store=store):
        model: lineage.Model = train(prep(lineage.Dataset(data, name="iris")), lr=lr)
    return model


# --- visual language ---------------------------------------------------------------------


def test_each_kind_of_artifact_has_its_own_shape() -> None:
    nodes = _nodes(_layout(to_dot(_pipeline_graph())))
    shapes = {n: nodes[n]["shape"] for n in ("a1", "a2", "a3", "a8", "a10", "a12")}
    assert shapes == {"a1": "cylinder", "a2": "tab", "a3": "folder", "a8": "box3d",
                      "a10": "note", "a12": "ellipse"}
    assert {nodes[n]["shape"] for n in ("e4", "e6", "e7", "e9", "e11", "e13")} == {"box"}


def test_executions_are_coloured_by_state() -> None:
    nodes = _nodes(_layout(to_dot(_pipeline_graph())))
    fill = {n: nodes[n]["fillcolor"] for n in ("e6", "e7", "e9", "e11", "e13")}
    assert fill["e7"] == "#fecaca"  # failed: red
    assert fill["e9"] == "#e5e7eb"  # cached: grey
    assert fill["e11"] == "#fde68a"  # running: amber
    assert fill["e6"] == "#dcfce7"  # complete: green
    assert len(set(fill.values())) == 5
    assert "dashed" in nodes["e9"]["style"] and "dotted" in nodes["e13"]["style"]
    assert float(nodes["e7"]["penwidth"]) > float(nodes["e6"]["penwidth"])


def test_labels_show_name_version_fingerprint_params_and_error() -> None:
    svg = to_svg(_pipeline_graph())
    assert "iris v2" in _svg_node_texts(svg, "a1")
    assert "sha256:0123456789" in _svg_node_texts(svg, "a1")
    assert "0123456789a" not in _svg_node_texts(svg, "a1")  # short fingerprint only
    fit = _svg_node_texts(svg, "e6")
    assert "train" in fit and "lr = 0.05" in fit and "epochs = 10" in fit
    assert "ValueError: diverged" in _svg_node_texts(svg, "e7")
    assert "acc = 0.93" in _svg_node_texts(svg, "a10")


def test_only_the_first_params_are_shown_with_a_count_of_the_rest() -> None:
    g = nx.MultiDiGraph()
    _exe(g, 1, "many", params={f"p{i:02d}": i for i in range(9)})
    text = _svg_node_texts(to_svg(g, params=3), "e1")
    assert "p00 = 0" in text and "p02 = 2" in text and "p03" not in text and "+6 more" in text


def test_declared_and_internal_events_are_drawn_differently() -> None:
    layout = _layout(to_dot(_pipeline_graph()))
    names = {o["_gvid"]: o["name"] for o in layout["objects"]}
    styles = {(names[e["tail"]], names[e["head"]]): e.get("style") for e in layout["edges"]}
    assert styles[("e11", "a12")] == "dashed"
    assert styles[("a1", "e4")] is None


def test_runs_are_drawn_as_clusters() -> None:
    layout = _layout(to_dot(_pipeline_graph()))
    clusters = _clusters(layout)
    assert len(clusters) == 1
    [cluster] = clusters.values()
    names = {o["_gvid"]: o["name"] for o in layout["objects"]}
    members = {names[i] for i in cluster["nodes"]}
    # the run's executions and what they produced; inputs from outside stay outside
    assert {"e4", "e6", "e7", "e9", "a5", "a8", "a10"} <= members
    assert not {"a1", "a2", "e11", "e13", "a12"} & members
    assert "run: baseline" in " ".join(_svg_texts(to_svg(_pipeline_graph())))
    assert not _clusters(_layout(to_dot(_pipeline_graph(), clusters=False)))


def test_cache_key_contexts_are_not_clusters() -> None:
    g = nx.MultiDiGraph()
    _exe(g, 1, "prep", runs=["lineage:" + "ab" * 32, "nightly"])
    _exe(g, 2, "prep", runs=["lineage:" + "ab" * 32, "nightly"])
    texts = " ".join(_svg_texts(to_svg(g)))
    assert "run: nightly" in texts and "abab" not in texts


def test_provenance_target_is_highlighted(sqlite_store: lineage.Store, tmp_path: Path) -> None:
    model = _record_pipeline(sqlite_store, tmp_path)
    prov = sqlite_store.provenance(model)
    nodes = _nodes(_layout(to_dot(prov)))
    target = nodes[f"a{model.id}"]
    assert target["color"] == "#1d4ed8" and float(target["penwidth"]) >= 3
    others = [n for k, n in nodes.items() if k != f"a{model.id}"]
    assert others and all(n["color"] != "#1d4ed8" for n in others)
    svg = to_svg(prov)
    assert "target" in _svg_node_texts(svg, f"a{model.id}")
    assert "Provenance of clf v1" in _all_text(svg)
    assert "run: baseline" in _all_text(svg)


def test_impact_source_is_highlighted(sqlite_store: lineage.Store, tmp_path: Path) -> None:
    _record_pipeline(sqlite_store, tmp_path)
    raw = sqlite_store.get("iris")
    svg = to_svg(sqlite_store.impact(raw))
    assert "source" in _svg_node_texts(svg, f"a{raw.id}")
    assert "clf v1" in _all_text(svg)


def test_diff_marks_what_changed_on_both_sides(sqlite_store: lineage.Store, tmp_path: Path) -> None:
    a = _record_pipeline(sqlite_store, tmp_path / "a", lr=0.1)
    b = _record_pipeline(sqlite_store, tmp_path / "b", lr=0.5, run="tuned", rows="5,6\n")
    d = sqlite_store.diff(a, b)
    svg = to_svg(d)
    changed_a = [n for n, data in d.graph.nodes(data=True)
                 if data.get("diff") == "changed" and n in d.a.graph]
    changed_b = [n for n, data in d.graph.nodes(data=True)
                 if data.get("diff") == "changed" and n in d.b.graph]
    assert changed_a and changed_b
    for node in changed_a:
        kind, num = node.split(":")
        assert "changed (A)" in _svg_node_texts(svg, f"{kind[0]}{num}")
    for node in changed_b:
        kind, num = node.split(":")
        assert "changed (B)" in _svg_node_texts(svg, f"{kind[0]}{num}")
    nodes = _nodes(_layout(to_dot(d)))
    assert nodes[f"a{a.id}"]["color"] == nodes[f"a{b.id}"]["color"] == "#1d4ed8"
    assert "target A" in _svg_node_texts(svg, f"a{a.id}")
    assert "target B" in _svg_node_texts(svg, f"a{b.id}")


def test_diff_only_in_one_side_is_marked() -> None:
    class _Side:
        def __init__(self, graph: nx.MultiDiGraph, target: int) -> None:
            self.graph, self.target = graph, target

    class LineageDiff:
        def __init__(self) -> None:
            ga, gb = nx.MultiDiGraph(), nx.MultiDiGraph()
            _art(ga, 1, "Dataset", "DATASET", "extra")
            _art(ga, 2, "Model", "MODEL", "m")
            _art(gb, 2, "Model", "MODEL", "m")
            _art(gb, 3, "Dataset", "DATASET", "new")
            self.a, self.b = _Side(ga, 2), _Side(gb, 2)
            self.graph = nx.compose(ga, gb)
            for node, diff in (("artifact:1", "only_a"), ("artifact:2", "same"),
                               ("artifact:3", "only_b")):
                self.graph.nodes[node]["diff"] = diff

    svg = to_svg(LineageDiff())
    assert "only in A" in _svg_node_texts(svg, "a1")
    assert "only in B" in _svg_node_texts(svg, "a3")
    assert "target A+B" in _svg_node_texts(svg, "a2")


# --- escaping ------------------------------------------------------------------------------


@pytest.mark.parametrize("name", HOSTILE)
def test_hostile_names_are_shown_as_text_never_interpreted(name: str) -> None:
    g = nx.MultiDiGraph()
    a = _art(g, 1, name, None, name, fp=f"{name}:{name}", **{name: name})
    e = _exe(g, 2, name, params={name: name}, runs=[name], error=name)
    _edge(g, a, e, "INPUT", name)
    dot = to_dot(g, title=name)
    assert dot.isascii()
    layout = _layout(dot)
    assert set(_nodes(layout)) == {"a1", "e2"}  # nothing injected: no node "evil", "y", …
    assert len(layout["edges"]) == 1
    svg = to_svg(g, title=name)
    root = ET.fromstring(svg)
    assert not [el for el in root.iter() if el.tag.lower().endswith(("script", "foreignobject"))]
    assert not [k for el in root.iter() for k in el.attrib if k.lower().startswith("on")]
    shown = " ".join(name.replace("\r", " ").replace("\n", " ").replace("\t", " ").split())
    texts = _all_text(svg)
    assert shown in texts  # as text, verbatim (backslashes and all)


def test_backslash_escapes_are_not_expanded() -> None:
    g = nx.MultiDiGraph()
    _art(g, 1, "Dataset", "DATASET", "\\N\\G\\E\\T\\H\\L")
    text = _svg_node_texts(to_svg(g), "a1")
    assert "\\N\\G\\E\\T\\H\\L" in text
    assert "a1" not in text and "lineage" not in text  # \N and \G were not expanded


def test_long_names_are_shortened_and_control_characters_replaced() -> None:
    g = nx.MultiDiGraph()
    _art(g, 1, "Dataset", "DATASET", "start-" + "x" * 500 + "-end")
    _art(g, 2, "Dataset", "DATASET", "nul\x00bell\x07del\x7f")
    svg = to_svg(g)
    first = _svg_node_texts(svg, "a1")
    assert "start-" in first and "-end" in first and "\u2026" in first
    assert max(len(t) for t in _svg_texts(svg)) < 60
    second = _svg_node_texts(svg, "a2")
    assert "nul" in second and "\x00" not in second and "\ufffd" in second


def test_hostile_names_from_a_real_store(sqlite_store: lineage.Store) -> None:
    for i, name in enumerate(HOSTILE):
        sqlite_store.put(lineage.Dataset(content=f"row {i}", name=name))
    svg = to_svg(sqlite_store.graph())
    texts = _all_text(svg)
    for name in HOSTILE:
        assert " ".join(name.replace("\r", " ").replace("\n", " ").split()) in texts
    assert "<script" not in svg


# --- determinism ---------------------------------------------------------------------------


def test_same_store_gives_byte_identical_dot(sqlite_uri: str, tmp_path: Path) -> None:
    store = lineage.connect(sqlite_uri)
    model = _record_pipeline(store, tmp_path / "a")
    _record_pipeline(store, tmp_path / "b", lr=0.3, run="second", rows="9,9\n")
    first = (to_dot(store.graph()), to_dot(store.provenance(model)),
             to_dot(store.impact("iris@1")))
    store.close()
    again = lineage.connect(sqlite_uri, read_only=True)
    second = (to_dot(again.graph()), to_dot(again.provenance(model.id)),
              to_dot(again.impact("iris@1")))
    assert first == second
    assert to_svg(again.graph()) == to_svg(again.graph())


def test_dot_does_not_depend_on_insertion_order() -> None:
    g = _pipeline_graph()
    shuffled = nx.MultiDiGraph()
    shuffled.add_nodes_from(sorted(g.nodes(data=True), key=lambda n: str(n[0]), reverse=True))
    shuffled.add_edges_from(sorted(g.edges(keys=True, data=True), key=str, reverse=True))
    assert to_dot(shuffled) == to_dot(g)


# --- big graphs ----------------------------------------------------------------------------


def _fan_in(n: int) -> nx.MultiDiGraph:
    """n raw shards → n identical preprocessing executions → n clean shards → merge."""
    g = nx.MultiDiGraph()
    merge = _exe(g, 1, "merge")
    for i in range(n):
        raw = _art(g, 10 + 3 * i, "Dataset", "DATASET", f"raw-{i:03d}")
        pre = _exe(g, 11 + 3 * i, "preprocess", params={"shard": i, "norm": "z"})
        clean = _art(g, 12 + 3 * i, "Dataset", "DATASET", f"clean-{i:03d}")
        _edge(g, raw, pre, "INPUT", "raw")
        _edge(g, pre, clean, "OUTPUT", "clean")
        _edge(g, clean, merge, "INPUT", f"shards[{i}]")
    out = _art(g, 5000, "Dataset", "DATASET", "merged")
    _edge(g, merge, out, "OUTPUT", "out")
    return g


def test_max_nodes_collapses_repeated_structure_into_counted_nodes() -> None:
    g = _fan_in(500)
    layout = _layout(to_dot(g, max_nodes=20))
    nodes = _nodes(layout)
    assert len(nodes) == 5  # raw, preprocess and clean shards (one each), merge, merged
    assert len(layout["edges"]) == 4
    svg = to_svg(g, max_nodes=20)
    texts = " ".join(_svg_texts(svg))
    assert texts.count("\u00d7500") >= 3
    pre = next(n for n in nodes if n.startswith("g_e"))
    assert "preprocess" in _svg_node_texts(svg, pre)
    assert "norm = z" in _svg_node_texts(svg, pre)  # the params all copies share
    assert "shard: 500 values" in _svg_node_texts(svg, pre)


def test_graphs_without_repeated_structure_still_end_under_max_nodes() -> None:
    rng = random.Random(5)
    g = nx.MultiDiGraph()
    for i in range(400):
        _art(g, i, rng.choice(["Dataset", "Model", "Blob"]), None, f"n{i}")
    for j in range(1000, 1200):
        e = _exe(g, j, rng.choice(["a", "b"]), rng.choice(["COMPLETE", "FAILED"]))
        _edge(g, f"artifact:{rng.randrange(400)}", e, "INPUT", "in")
        _edge(g, e, f"artifact:{rng.randrange(400)}", "OUTPUT", "out")
    nodes = _nodes(_layout(to_dot(g, max_nodes=50)))
    assert 1 < len(nodes) <= 50
    assert sum(n.startswith("g_") for n in nodes) >= 2


def test_max_nodes_none_draws_every_node() -> None:
    g = _fan_in(30)
    assert len(_nodes(_layout(to_dot(g, max_nodes=None)))) == g.number_of_nodes()
    assert len(_nodes(_layout(to_dot(g)))) == g.number_of_nodes()  # under the default


def test_collapsing_never_hides_the_target() -> None:
    class Provenance:
        def __init__(self) -> None:
            self.graph = _fan_in(50)
            self.target = 12  # clean-000: one of the repeated shards

    nodes = _nodes(_layout(to_dot(Provenance(), max_nodes=10)))
    assert "a12" in nodes
    assert any(n.startswith("g_") for n in nodes)


def test_collapsing_keeps_different_states_apart() -> None:
    g = _fan_in(40)
    g.nodes["execution:11"]["state"] = "FAILED"
    nodes = _nodes(_layout(to_dot(g, max_nodes=10)))
    assert "e11" in nodes  # the failed copy stays visible on its own


# --- formats and errors ----------------------------------------------------------------------


@pytest.mark.parametrize(("suffix", "magic"), [
    ("svg", b"<?xml"), ("png", b"\x89PNG"), ("pdf", b"%PDF"), ("dot", b"// lineage diagram"),
])
def test_render_writes_the_format_of_the_suffix(tmp_path: Path, suffix: str, magic: bytes) -> None:
    out = lineage.render(_pipeline_graph(), tmp_path / "sub" / f"lineage.{suffix}")
    assert out == tmp_path / "sub" / f"lineage.{suffix}"
    assert out.read_bytes().startswith(magic)


def test_format_argument_overrides_the_suffix(tmp_path: Path) -> None:
    out = lineage.render(_pipeline_graph(), tmp_path / "diagram.out", format="png")
    assert out.read_bytes().startswith(b"\x89PNG")


def test_render_without_path_returns_the_graphviz_object() -> None:
    src = lineage.render(_pipeline_graph())
    assert isinstance(src, graphviz.Source)
    assert src.source == to_dot(_pipeline_graph())
    assert "<svg" in src._repr_image_svg_xml()


def test_unknown_format_is_a_render_error(tmp_path: Path) -> None:
    with pytest.raises(lineage.RenderError, match=r"\.svg, \.png, \.pdf or \.dot"):
        lineage.render(_pipeline_graph(), tmp_path / "diagram.docx")
    with pytest.raises(lineage.RenderError, match="unknown diagram format"):
        lineage.render(_pipeline_graph(), tmp_path / "no-suffix")
    assert not list(tmp_path.iterdir())


def test_unknown_objects_and_options_are_render_errors() -> None:
    with pytest.raises(lineage.RenderError, match="cannot draw a str"):
        to_dot("artifact:1")
    with pytest.raises(lineage.RenderError, match="unknown option"):
        lineage.render(_pipeline_graph(), max_node=3)
    with pytest.raises(lineage.RenderError, match="rankdir"):
        to_dot(_pipeline_graph(), rankdir="sideways")


def test_missing_dot_binary_says_how_to_install_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert shutil.which("dot")
    monkeypatch.setenv("PATH", str(tmp_path / "empty-bin"))
    assert shutil.which("dot") is None
    with pytest.raises(lineage.RenderError, match="apt-get install graphviz"):
        lineage.render(_pipeline_graph(), tmp_path / "x.svg")
    with pytest.raises(lineage.RenderError, match="apt-get install graphviz"):
        to_svg(_pipeline_graph())
    assert not (tmp_path / "x.svg").exists()
    # DOT needs no Graphviz
    assert lineage.render(_pipeline_graph(), tmp_path / "x.dot").read_text().startswith("//")


def test_query_results_display_as_svg_in_jupyter(sqlite_store: lineage.Store,
                                                  tmp_path: Path) -> None:
    model = _record_pipeline(sqlite_store, tmp_path)
    for result in (sqlite_store.provenance(model), sqlite_store.impact("iris"),
                   sqlite_store.diff(model, model)):
        svg = result._repr_svg_()
        assert ET.fromstring(svg).tag == f"{SVG}svg"


def test_module_functions_are_reachable_from_the_exported_function() -> None:
    to_svg_fn: Callable[..., str] = lineage.render.to_svg  # type: ignore[attr-defined]
    assert to_svg_fn is to_svg
    assert lineage.render.render is lineage.render  # type: ignore[attr-defined]


def test_legend_shows_every_shape_and_state() -> None:
    nodes = _nodes(_layout(to_dot(nx.MultiDiGraph(), legend=True)))
    assert {n["shape"] for k, n in nodes.items() if k.startswith("legend_a_")} == {
        "cylinder", "box3d", "note", "folder", "tab", "ellipse"}
    fills = {k: n["fillcolor"] for k, n in nodes.items() if k.startswith("legend_e_")}
    assert fills["legend_e_failed"] == "#fecaca" and fills["legend_e_cached"] == "#e5e7eb"


def test_docs_pictures_script_draws_the_three_pictures(tmp_path: Path) -> None:
    script = Path(__file__).resolve().parent.parent / "scripts" / "make_docs_pictures.py"
    done = subprocess.run([sys.executable, str(script), str(tmp_path)], capture_output=True,
                          timeout=300, check=False)
    assert done.returncode == 0, done.stderr.decode()[-3000:]
    for name, title in (("provenance", "Provenance of iris-clf v2"),
                        ("impact", "Impact of iris v1"), ("diff", "Diff: A = iris-clf v1")):
        svg = (tmp_path / f"{name}.svg").read_text()
        assert title in _all_text(svg)
        assert (tmp_path / f"{name}.png").read_bytes().startswith(b"\x89PNG")
    assert "changed (A)" in _all_text((tmp_path / "diff.svg").read_text())
    # the cache hit of the third run is folded into the call it reused
    assert "\u00d72 \u00b7 runs tuned, rerun" in _all_text((tmp_path / "provenance.svg").read_text())
    before, after = ((tmp_path / f"fold-{n}.svg").read_text() for n in ("before", "after"))
    assert "Provenance of digits-serving" in _all_text(before)
    assert before.count('class="node"') > 2 * after.count('class="node"')
    assert "executions drawn as" in _all_text(after)


def test_unnamed_foreign_artifacts_are_labelled_by_their_uri() -> None:
    g = nx.MultiDiGraph()
    g.add_node("artifact:1", kind="artifact", id=1, type_name="Examples", base_type="DATASET",
               name=None, uri="gs://bucket/CsvExampleGen/examples/7", version=None)
    g.add_node("artifact:2", kind="artifact", id=2, type_name="Schema", name=None,
               uri="/pipelines/SchemaGen/schema.pbtxt")
    g.add_node("artifact:3", kind="artifact", id=3, type_name="Thing")
    svg = to_svg(g)
    assert _svg_node_texts(svg, "a1").startswith("examples/7 Examples")
    assert _svg_node_texts(svg, "a2").startswith("schema.pbtxt Schema")
    assert _svg_node_texts(svg, "a3").startswith("Thing 3")


def test_dpi_scales_png_output(tmp_path: Path) -> None:
    import struct

    def width(path: Path) -> int:
        return int(struct.unpack(">I", path.read_bytes()[16:20])[0])

    plain = lineage.render(_pipeline_graph(), tmp_path / "a.png")
    sharp = lineage.render(_pipeline_graph(), tmp_path / "b.png", dpi=192)
    assert 1.8 < width(sharp) / width(plain) < 2.2
    with pytest.raises(lineage.RenderError, match="dpi"):
        to_dot(_pipeline_graph(), dpi=0)
