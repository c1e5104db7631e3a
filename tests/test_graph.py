"""The lineage graph: nodes, edges, run restriction, batching and incremental loads.

Stores are built with ``store.put`` and with the raw ml_metadata API following
``lineage/_schema.py``; :class:`RawWriter` is reused by the query and foreign-store tests.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator, Sequence
from typing import Any

import networkx as nx
import pytest
from ml_metadata.proto import metadata_store_pb2 as pb

import lineage
from lineage import _convert
from lineage._schema import EXPERIMENT_TYPE, RUN_TYPE, STEP_PROPERTIES
from lineage.graph import downstream, load_graph, upstream

IO = Sequence[tuple[int, Any]]


class RawWriter:
    """Writes executions with the raw ml_metadata API (one put_execution each)."""

    def __init__(self, store: lineage.Store) -> None:
        self.mlmd = store.mlmd
        self.types: dict[tuple[str, str], int] = {}

    def artifact_type(self, name: str, base: int | None = None, props: dict[str, int] | None = None) -> int:
        key = ("artifact", name)
        if key not in self.types:
            t = pb.ArtifactType(name=name)
            if base is not None:
                t.base_type = base
            for k, v in (props or {}).items():
                t.properties[k] = v
            self.types[key] = self.mlmd.put_artifact_type(t, can_add_fields=True, can_omit_fields=True)
        return self.types[key]

    def execution_type(self, name: str, *, ours: bool = False, props: dict[str, int] | None = None) -> int:
        key = ("execution", name)
        if key not in self.types:
            t = pb.ExecutionType(name=name)
            for k, v in {**(STEP_PROPERTIES if ours else {}), **(props or {})}.items():
                t.properties[k] = v
            self.types[key] = self.mlmd.put_execution_type(t, can_add_fields=True, can_omit_fields=True)
        return self.types[key]

    def context_type(self, name: str) -> int:
        key = ("context", name)
        if key not in self.types:
            self.types[key] = self.mlmd.put_context_type(pb.ContextType(name=name))
        return self.types[key]

    def context(self, type_name: str, name: str, parent: int | None = None) -> int:
        [cid] = self.mlmd.put_contexts([pb.Context(type_id=self.context_type(type_name), name=name)])
        if parent is not None:
            self.mlmd.put_parent_contexts([pb.ParentContext(child_id=cid, parent_id=parent)])
        return int(cid)

    def artifact(self, type_name: str, name: str | None = None, uri: str = "",
                 base: int | None = None, version: int | None = None, **custom: Any) -> int:
        """An artifact; ``version`` makes it look like ours (MLMD name ``name@version``)."""
        props = {"version": pb.INT} if version is not None else None
        a = pb.Artifact(type_id=self.artifact_type(type_name, base, props), uri=uri,
                        state=pb.Artifact.LIVE)
        if name:
            a.name = f"{name}@{version}" if version is not None else name
        if version is not None:
            a.properties["version"].int_value = version
        _convert.set_props(a.custom_properties, custom)
        [aid] = self.mlmd.put_artifacts([a])
        return int(aid)

    def execution(
        self, type_name: str, inputs: IO = (), outputs: IO = (), *,
        state: int = pb.Execution.COMPLETE, ours: bool = False, params: dict[str, Any] | None = None,
        props: dict[str, Any] | None = None, contexts: Sequence[int] = (),
        input_type: int = pb.Event.INPUT, output_type: int = pb.Event.OUTPUT,
        name: str | None = None,
    ) -> int:
        """``inputs``/``outputs`` are (artifact id, path) with path a key, an index, or a
        list of keys and indices."""
        ex = pb.Execution(type_id=self.execution_type(type_name, ours=ours), last_known_state=state)
        if name:
            ex.name = name
        if ours:
            ex.properties["recorded_by"].string_value = "lineage-test"
        _convert.set_props(ex.properties, props or {})
        _convert.set_props(ex.custom_properties, params or {})
        pairs = []
        for group, etype in ((inputs, input_type), (outputs, output_type)):
            for aid, path in group:
                art = self.mlmd.get_artifacts_by_id([aid])[0]
                ev = pb.Event(type=etype)
                _convert.make_event_path(ev, path if isinstance(path, list) else [path])
                pairs.append((art, ev))
        ctxs = self.mlmd.get_contexts_by_id(list(contexts)) if contexts else []
        eid, _, _ = self.mlmd.put_execution(ex, pairs, ctxs)
        return int(eid)

    def update_state(self, execution_id: int, state: int, outputs: IO = ()) -> None:
        ex = self.mlmd.get_executions_by_id([execution_id])[0]
        ex.last_known_state = state
        pairs = []
        for aid, path in outputs:
            ev = pb.Event(type=pb.Event.OUTPUT)
            _convert.make_event_path(ev, [path])
            pairs.append((self.mlmd.get_artifacts_by_id([aid])[0], ev))
        self.mlmd.put_execution(ex, pairs, [])


class CallCounter:
    """Counts the MLMD calls a Store makes and the rows they return (no behaviour change)."""

    def __init__(self, store: lineage.Store) -> None:
        self.calls: Counter[str] = Counter()
        self.rows: Counter[str] = Counter()
        self._store = store
        self._orig = store._call

    def __enter__(self) -> CallCounter:
        def counting(method: str, *args: Any, **kwargs: Any) -> Any:
            out = self._orig(method, *args, **kwargs)
            self.calls[method] += 1
            if isinstance(out, list):
                self.rows[method] += len(out)
            return out

        self._store._call = counting  # type: ignore[method-assign]
        return self

    def __exit__(self, *exc: object) -> None:
        del self._store._call


def edges_of(g: nx.MultiDiGraph) -> set[tuple[str, str, str]]:
    return {(u, v, k) for u, v, k in g.edges(keys=True)}


def same_graph(a: nx.MultiDiGraph, b: nx.MultiDiGraph) -> bool:
    return dict(a.nodes(data=True)) == dict(b.nodes(data=True)) and sorted(
        a.edges(keys=True, data=True)) == sorted(b.edges(keys=True, data=True))


@pytest.fixture
def pipeline(store: lineage.Store) -> Iterator[tuple[lineage.Store, dict[str, int]]]:
    """raw → prep → clean → train(lr) → model, all our-style records, in run 'r1'."""
    w = RawWriter(store)
    raw = store.put(lineage.Dataset(content=b"a,b\n1,2\n", name="raw"))
    assert raw.id is not None
    exp = w.context(EXPERIMENT_TYPE, "iris")
    run = w.context(RUN_TYPE, "r1", parent=exp)
    clean = w.artifact("Dataset", "clean", uri="/tmp/clean.csv", version=1)
    prep = w.execution("prep", [(raw.id, "data")], [(clean, "out")], ours=True,
                       params={"drop_na": True}, contexts=[run])
    model = w.artifact("Model", "clf", uri="/tmp/m.pkl", version=1)
    train = w.execution("train", [(clean, "data")], [(model, "return")], ours=True,
                        params={"lr": 0.05}, props={"git_commit": "abc"}, contexts=[run])
    yield store, {"raw": raw.id, "clean": clean, "prep": prep, "model": model, "train": train,
                  "run": run, "exp": exp}


def test_graph_nodes_and_edges_of_a_pipeline(pipeline: tuple[lineage.Store, dict[str, int]]) -> None:
    store, ids = pipeline
    g = store.graph()
    assert isinstance(g, nx.MultiDiGraph)
    raw = g.nodes[f"artifact:{ids['raw']}"]
    assert (raw["kind"], raw["type_name"], raw["base_type"], raw["name"], raw["version"]) == (
        "artifact", "Dataset", "DATASET", "raw", 1)
    assert raw["fingerprint"].startswith("sha256:")
    assert raw["id"] == ids["raw"] and raw["create_time"]
    train = g.nodes[f"execution:{ids['train']}"]
    assert (train["kind"], train["name"], train["state"], train["params"]) == (
        "execution", "train", "COMPLETE", {"lr": 0.05})
    assert train["properties"]["git_commit"] == "abc"
    assert train["runs"] == ["r1"] and train["error"] is None
    assert edges_of(g) == {
        (f"artifact:{ids['raw']}", f"execution:{ids['prep']}", "INPUT:data"),
        (f"execution:{ids['prep']}", f"artifact:{ids['clean']}", "OUTPUT:out"),
        (f"artifact:{ids['clean']}", f"execution:{ids['train']}", "INPUT:data"),
        (f"execution:{ids['train']}", f"artifact:{ids['model']}", "OUTPUT:return"),
    }
    data = g.get_edge_data(f"artifact:{ids['clean']}", f"execution:{ids['train']}", "INPUT:data")
    assert data["event_type"] == "INPUT" and data["path"] == "data"
    assert nx.is_directed_acyclic_graph(g)


def test_graph_is_a_copy_the_caller_may_change(pipeline: tuple[lineage.Store, dict[str, int]]) -> None:
    store, ids = pipeline
    g = store.graph()
    g.remove_node(f"artifact:{ids['raw']}")
    g.nodes[f"artifact:{ids['model']}"]["name"] = "changed"
    again = store.graph()
    assert f"artifact:{ids['raw']}" in again
    assert again.nodes[f"artifact:{ids['model']}"]["name"] == "clf"


def test_second_graph_reads_only_what_was_added(pipeline: tuple[lineage.Store, dict[str, int]]) -> None:
    store, ids = pipeline
    w = RawWriter(store)
    filler = [pb.Artifact(type_id=w.artifact_type("Thing"), uri=f"/f{i}") for i in range(600)]
    store.mlmd.put_artifacts(filler)
    first = store.graph()
    report = w.artifact("Metrics", "eval", base=pb.ArtifactType.METRICS, version=1)
    ev = w.execution("evaluate", [(ids["model"], "model")], [(report, "metrics")], ours=True,
                     contexts=[ids["run"]])
    with CallCounter(store) as counter:
        second = store.graph()
    assert f"artifact:{report}" in second and f"execution:{ev}" in second
    assert second.nodes[f"execution:{ev}"]["runs"] == ["r1"]
    assert len(second) == len(first) + 2
    # Reads grow with what was added (a first page of newest rows), not with the store.
    assert counter.rows["get_artifacts"] < 300
    assert counter.rows["get_executions"] < 300
    assert counter.rows["get_events_by_execution_ids"] == 2
    assert same_graph(second, load_graph(_fresh_view(store)))


def _fresh_view(store: lineage.Store) -> lineage.Store:
    """Another Store object on the same MLMD connection, with an empty cache."""
    other = object.__new__(lineage.Store)
    other.__dict__.update(store.__dict__)
    other._graph_cache = None
    other._artifact_types, other._execution_types, other._context_types = {}, {}, {}
    return other


def test_unchanged_store_costs_no_row_reads(pipeline: tuple[lineage.Store, dict[str, int]]) -> None:
    store, _ids = pipeline
    store.graph()
    with CallCounter(store) as counter:
        store.graph()
    # One probe row per table (the newest artifact, execution and context), nothing else.
    assert counter.rows == {"get_artifacts": 1, "get_executions": 1, "get_contexts": 1}


def test_running_execution_that_finishes_is_updated(store: lineage.Store) -> None:
    w = RawWriter(store)
    data = w.artifact("Dataset", "d", uri="/tmp/d", version=1)
    ex = w.execution("train", [(data, "data")], state=pb.Execution.RUNNING, ours=True)
    assert store.graph().nodes[f"execution:{ex}"]["state"] == "RUNNING"
    model = w.artifact("Model", "m", uri="/tmp/m", version=1)
    w.update_state(ex, pb.Execution.COMPLETE, outputs=[(model, "return")])
    g = store.graph()
    assert g.nodes[f"execution:{ex}"]["state"] == "COMPLETE"
    assert g.has_edge(f"execution:{ex}", f"artifact:{model}", "OUTPUT:return")
    assert same_graph(g, load_graph(_fresh_view(store)))


def test_load_calls_do_not_grow_per_node() -> None:
    """A constant number of MLMD calls per batch: a 10x bigger chain, the same calls."""

    def chain(n: int) -> Counter[str]:
        s = lineage.connect(":memory:")
        w = RawWriter(s)
        prev = w.artifact("Dataset", "a0", uri="/a0")
        for i in range(n):
            nxt = w.artifact("Dataset", f"a{i + 1}", uri=f"/a{i + 1}")
            w.execution("step", [(prev, "in")], [(nxt, "out")], ours=True)
            prev = nxt
        with CallCounter(s) as counter:
            g = s.graph()
        assert g.number_of_nodes() == 2 * n + 1 and g.number_of_edges() == 2 * n
        return counter.calls

    small, big = chain(20), chain(200)
    assert small == big


def test_graph_of_one_run_and_of_an_experiment(pipeline: tuple[lineage.Store, dict[str, int]]) -> None:
    store, ids = pipeline
    w = RawWriter(store)
    other_run = w.context(RUN_TYPE, "r2", parent=ids["exp"])
    lone = w.context(RUN_TYPE, "r3")
    m2 = w.artifact("Model", "clf", uri="/tmp/m2.pkl", version=2)
    t2 = w.execution("train", [(ids["clean"], "data")], [(m2, "return")], ours=True,
                     params={"lr": 0.1}, contexts=[other_run])
    t3 = w.execution("train", [(ids["clean"], "data")], [], ours=True, contexts=[lone])
    g1 = store.graph(run="r1")
    assert {n for n, k in g1.nodes(data="kind") if k == "execution"} == {
        f"execution:{ids['prep']}", f"execution:{ids['train']}"}
    # The run's inputs from outside (raw was put outside any run) are in the graph.
    assert f"artifact:{ids['raw']}" in g1 and f"artifact:{m2}" not in g1
    g2 = store.graph(run=other_run)
    assert set(g2) == {f"artifact:{ids['clean']}", f"execution:{t2}", f"artifact:{m2}"}
    ge = store.graph(experiment="iris")
    assert f"execution:{t2}" in ge and f"execution:{ids['train']}" in ge
    assert f"execution:{t3}" not in ge
    with pytest.raises(lineage.NotFound):
        store.graph(run="nope")
    with pytest.raises(lineage.NotFound):
        store.graph(experiment="nope")


def test_graph_with_contexts_as_nodes(pipeline: tuple[lineage.Store, dict[str, int]]) -> None:
    store, ids = pipeline
    g = store.graph(contexts=True)
    run, exp = f"context:{ids['run']}", f"context:{ids['exp']}"
    assert g.nodes[run]["kind"] == "context" and g.nodes[run]["type_name"] == RUN_TYPE
    assert g.has_edge(exp, run, "PARENT:")
    assert g.has_edge(run, f"execution:{ids['train']}", "ASSOCIATION:")
    assert g.has_edge(run, f"artifact:{ids['model']}", "ATTRIBUTION:")
    # Without contexts=True the cached graph has none.
    assert not [n for n in store.graph() if n.startswith("context:")]
    gr = store.graph(run="r1", contexts=True)
    assert gr.has_edge(run, f"execution:{ids['prep']}", "ASSOCIATION:")
    # A context's properties change (a run's status): the cached graph shows the new ones.
    ctx = store.mlmd.get_contexts_by_id([ids["run"]])[0]
    ctx.custom_properties["status"].string_value = "COMPLETE"
    store.mlmd.put_contexts([ctx])
    assert store.graph(contexts=True).nodes[run]["properties"]["status"] == "COMPLETE"


def test_every_event_type_is_an_edge_with_its_type(store: lineage.Store) -> None:
    w = RawWriter(store)
    a = [w.artifact("Thing", None, uri=f"/x{i}") for i in range(8)]
    ex = w.execution("x", [(a[0], "in")], [(a[1], "out")])
    for i, et in enumerate([pb.Event.DECLARED_INPUT, pb.Event.INTERNAL_INPUT]):
        store.mlmd.put_events([pb.Event(artifact_id=a[2 + i], execution_id=ex, type=et)])
    for i, et in enumerate([pb.Event.DECLARED_OUTPUT, pb.Event.INTERNAL_OUTPUT, pb.Event.PENDING_OUTPUT]):
        store.mlmd.put_events([pb.Event(artifact_id=a[4 + i], execution_id=ex, type=et)])
    g = store.graph()
    got = {(u, v, d["event_type"]) for u, v, d in g.edges(data=True)}
    e = f"execution:{ex}"
    assert got == {
        (f"artifact:{a[0]}", e, "INPUT"), (e, f"artifact:{a[1]}", "OUTPUT"),
        (f"artifact:{a[2]}", e, "DECLARED_INPUT"), (f"artifact:{a[3]}", e, "INTERNAL_INPUT"),
        (e, f"artifact:{a[4]}", "DECLARED_OUTPUT"), (e, f"artifact:{a[5]}", "INTERNAL_OUTPUT"),
        (e, f"artifact:{a[6]}", "PENDING_OUTPUT"),
    }
    assert g.nodes[f"artifact:{a[7]}"]["name"] is None  # unnamed artifacts are nodes too


def test_traversal_generators_follow_input_and_output_only(pipeline: tuple[lineage.Store, dict[str, int]]) -> None:
    store, ids = pipeline
    g = store.graph()
    up = list(upstream(g, f"artifact:{ids['model']}"))
    assert up == [f"execution:{ids['train']}", f"artifact:{ids['clean']}",
                  f"execution:{ids['prep']}", f"artifact:{ids['raw']}"]
    down = set(downstream(g, f"artifact:{ids['raw']}"))
    assert down == set(up[:3]) | {f"artifact:{ids['model']}"}


def test_store_graph_draws_itself_in_jupyter(store: lineage.Store, monkeypatch: pytest.MonkeyPatch) -> None:
    """store.graph() is a LineageGraph (a MultiDiGraph): networkx operations keep the class,
    render accepts it, and the SVG is drawn only when a notebook asks for it."""
    import sys

    render_module = sys.modules["lineage.render"]  # lineage.render is the function
    w = RawWriter(store)
    d = w.artifact("Dataset", "iris", uri="/iris.csv", version=1)
    m = w.artifact("Model", "clf", uri="/clf.pkl", version=1)
    w.execution("train", [(d, "data")], [(m, "model")], ours=True, params={"lr": 0.5})
    calls: list[object] = []
    real = render_module.to_svg

    def counting(obj: object, **options: object) -> str:
        calls.append(obj)
        return real(obj, **options)

    monkeypatch.setattr(render_module, "to_svg", counting)
    g = store.graph()
    assert isinstance(g, lineage.LineageGraph) and isinstance(g, nx.MultiDiGraph)
    assert calls == []  # nothing drawn until asked
    for derived in (g.copy(), g.subgraph([f"artifact:{d}", f"artifact:{m}"]), g.reverse(),
                    nx.compose(g, g), store.graph(run=None, contexts=True),
                    store.provenance(m).graph):
        assert isinstance(derived, lineage.LineageGraph), type(derived)
    svg = g._repr_svg_()
    assert svg.lstrip().startswith("<?xml") and "<svg" in svg and "iris" in svg and "clf" in svg
    assert calls == [g]
    assert "<svg" in g._repr_html_() and len(calls) == 2
    assert str(g).startswith("LineageGraph with 3 nodes and 2 edges")
    dot = lineage.render(g, format="dot")
    assert "train" in getattr(dot, "source", str(dot))


def test_run_membership_of_steps_comes_from_run_context(
    store: lineage.Store, tmp_path: Any,
) -> None:
    """A store written by @step/run: store.graph() names each execution's run without
    reading any context's members; a foreign execution in one of our runs is still
    found; incremental loads agree with fresh ones; contexts=True keeps every association
    (cache-key contexts included)."""

    @lineage.step(store=store, cache=True)
    def prep(data: lineage.Dataset, k: int = 0) -> lineage.Dataset:
        out = tmp_path / f"p{k}.csv"
        out.write_text(f"{k}")
        return lineage.Dataset(out, name="mid")

    raw_file = tmp_path / "raw.csv"
    raw_file.write_text("r")
    for name in ("r1", "r2"):
        with lineage.run(name, store=store):
            prep(lineage.Dataset(raw_file, name="raw"), k=1)  # r2: a cache hit
    store._graph_cache = None
    with CallCounter(store) as counter:
        g = store.graph()
    assert counter.calls["get_executions_by_context"] == 0
    assert counter.calls["get_contexts_by_execution"] == 0
    runs = sorted(d["runs"] for _, d in g.nodes(data=True) if d["kind"] == "execution")
    assert runs == [["r1"], ["r2"]]
    # A foreign execution associated with run r1 (no run_context): looked up.
    w = RawWriter(store)
    r1 = store.runs(name="r1")[0].id
    foreign = w.execution("Pusher", [(store.get("mid").id, "model")], [], contexts=[r1])
    with lineage.run("r3", store=store):
        prep(lineage.Dataset(raw_file, name="raw"), k=2)
    incremental = store.graph()
    assert incremental.nodes[f"execution:{foreign}"]["runs"] == [store.runs(name="r1")[0].name]
    assert same_graph(incremental, load_graph(_fresh_view(store)))
    full = store.graph(contexts=True)
    assoc = {(u, v) for u, v, k in full.edges(keys=True) if k == "ASSOCIATION:"}
    expected = {(f"context:{a.context_id}", f"execution:{a.execution_id}")
                for c in store.mlmd.get_contexts()
                for a in [pb.Association(context_id=c.id, execution_id=e.id)
                          for e in store.mlmd.get_executions_by_context(c.id)]}
    assert assoc == expected and any(
        full.nodes[u]["type_name"] == "execution_cache" for u, _ in assoc)


def test_edges_of_every_path_shape_match_event_edge(store: lineage.Store) -> None:
    """The bulk loader decodes each distinct path once: every path shape (one key, key
    and index, several keys, index only, empty key, none) and every event type gives
    the edge event_edge gives for that event."""
    from lineage.graph import event_edge

    w = RawWriter(store)
    shapes: list[list[str | int]] = [
        ["data"], ["examples", 0], ["examples", "train", 3], [2], [""], [], ["data"]]
    kinds = [pb.Event.INPUT, pb.Event.OUTPUT, pb.Event.DECLARED_INPUT, pb.Event.INTERNAL_OUTPUT,
             pb.Event.PENDING_OUTPUT, pb.Event.DECLARED_OUTPUT, pb.Event.OUTPUT]
    ex = w.execution("x")
    events = []
    for i, (shape, kind) in enumerate(zip(shapes, kinds, strict=True)):
        ev = pb.Event(artifact_id=w.artifact("Thing", None, uri=f"/p{i}"), execution_id=ex,
                      type=kind, milliseconds_since_epoch=1000 + i)
        _convert.make_event_path(ev, shape)
        events.append(ev)
    store.mlmd.put_events(events)
    g = store.graph()
    expected = {(u, v, k): d for u, v, k, d in map(
        event_edge, store.mlmd.get_events_by_execution_ids([ex]))}
    got = {(u, v, k): d for u, v, k, d in g.edges(keys=True, data=True)}
    assert got == expected and len(got) == len(shapes)
    assert {d["path"] for d in got.values()} == {
        "data", "examples[0]", "examples.train[3]", "[2]", ""}


def test_node_properties_decode_every_value_kind(store: lineage.Store) -> None:
    """Graph nodes decode properties as _convert does: ints, doubles, strings, bools,
    structs, lists, None, wide ints and non-finite floats (packed values)."""
    values = {"i": 3, "f": 0.25, "s": "x", "b": True, "d": {"k": [1, "a"]}, "l": [1, 2],
              "n": None, "wide": 2**40, "inf": float("inf"), "tiny": 1e-7}
    w = RawWriter(store)
    aid = w.artifact("Thing", "t", uri="/t", **values)
    ex = w.execution("step", [(aid, "in")], ours=True, params=values)
    g = store.graph()
    assert g.nodes[f"artifact:{aid}"]["properties"] == values
    assert g.nodes[f"execution:{ex}"]["params"] == values
    assert list(g.nodes[f"execution:{ex}"]["params"]) == sorted(values)  # keys sorted


def test_nodes_stay_in_kind_and_id_order_after_incremental_loads(
    pipeline: tuple[lineage.Store, dict[str, int]],
) -> None:
    store, ids = pipeline
    w = RawWriter(store)
    store.graph()
    report = w.artifact("Metrics", "eval", version=1)
    w.execution("evaluate", [(ids["model"], "model")], [(report, "metrics")], ours=True)
    g = store.graph()

    def order(node: str) -> tuple[int, int]:
        kind, num = node.split(":")
        return ({"artifact": 0, "execution": 1}[kind], int(num))

    assert list(g) == sorted(g, key=order) and f"artifact:{report}" in g
    assert list(g) == list(load_graph(_fresh_view(store)))


def test_bulk_load_restores_the_collector_and_keeps_other_frozen_objects(
    pipeline: tuple[lineage.Store, dict[str, int]],
) -> None:
    """The load turns cyclic GC off and on again, moving what it made to the oldest
    generation; it leaves GC off if it was off, and does not unfreeze objects that
    someone else froze (gc.freeze is used by pre-fork servers)."""
    import gc

    store, _ids = pipeline
    was = gc.isenabled()
    try:
        gc.enable()
        store._graph_cache = None
        store.graph()
        assert gc.isenabled() and gc.get_freeze_count() == 0
        gc.disable()
        store._graph_cache = None
        store.graph()
        assert not gc.isenabled()
        gc.enable()
        marker = [[]]  # a tracked container, frozen with everything else

        def frozen() -> bool:  # frozen objects are in no generation
            return gc.get_freeze_count() > 0 and not any(
                o is marker for gen in range(3) for o in gc.get_objects(generation=gen))

        gc.freeze()
        assert frozen()
        store._graph_cache = None
        store.graph()
        assert frozen() and gc.isenabled()
    finally:
        gc.unfreeze()
        if not was:
            gc.disable()


def test_event_pointing_at_a_row_not_read_gets_a_placeholder_node(
    pipeline: tuple[lineage.Store, dict[str, int]],
) -> None:
    """An artifact written between the artifact read and the event read (a concurrent
    writer) has an edge but no row: the graph still has the edge, with a placeholder node."""
    store, ids = pipeline
    store.graph()
    cache = store._graph_cache
    cache.edges[f"execution:{ids['train']}", "artifact:999999", "OUTPUT:late"] = 7
    cache.edge_kinds["OUTPUT:late"] = ("OUTPUT", "late")
    g = store.graph()
    assert g.get_edge_data(f"execution:{ids['train']}", "artifact:999999", "OUTPUT:late") == {
        "event_type": "OUTPUT", "path": "late", "time": 7}
    late = g.nodes["artifact:999999"]
    assert (late["kind"], late["id"], late["state"], late["name"]) == ("artifact", 999999, "UNKNOWN", None)
    assert g.nodes[f"artifact:{ids['model']}"]["name"] == "clf"
