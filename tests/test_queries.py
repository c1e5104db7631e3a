"""Provenance, impact, diff, verify and compare on stores of each backend.

Stores are built with ``store.put`` and raw ml_metadata (``RawWriter`` from test_graph),
laid out as ``lineage/_schema.py`` says; answers of the frontier walk are checked against
a brute-force traversal of the whole store written independently here.
"""

from __future__ import annotations

import json
import socket
from collections.abc import Callable
from pathlib import Path
from typing import Any

import networkx as nx
import oracle
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from ml_metadata.proto import metadata_store_pb2 as pb
from test_graph import CallCounter, RawWriter

import lineage
from lineage._schema import EXPERIMENT_TYPE, RUN_TYPE
from lineage.queries import Comparison, Impact, LineageDiff, Provenance, Verification


def brute_force_upstream(mlmd: Any, artifact_id: int) -> tuple[set[int], set[int]]:
    """Upstream artifacts and executions by replaying every event of the store (written one
    execution at a time, in id order) through the oracle."""
    return oracle.upstream(oracle.history_of(mlmd), artifact_id)


def brute_force_downstream(mlmd: Any, artifact_id: int) -> tuple[set[int], set[int]]:
    return oracle.downstream(oracle.history_of(mlmd), artifact_id)


@pytest.fixture
def iris(store: lineage.Store, write_file: Callable[..., Path]) -> tuple[lineage.Store, dict[str, Any]]:
    """A small pipeline in run 'baseline' of experiment 'iris'.

    raw (Dataset, a file) → prep(drop_na) → clean (Dataset) ─┐
    cfg (Config)  ───────────────────────────────────────────┴→ train(lr) → model, log (sibling)
    """
    w = RawWriter(store)
    raw = store.put(lineage.Dataset(write_file("iris.csv", "a,b\n1,2\n"), name="iris"))
    cfg = store.put(lineage.Config(write_file("params.yaml", "lr: 0.05\n")))
    exp = w.context(EXPERIMENT_TYPE, "iris")
    run = w.context(RUN_TYPE, "baseline", parent=exp)
    clean = w.artifact("Dataset", "clean", uri=str(write_file("clean.csv", "a\n1\n")), version=1,
                       base=pb.ArtifactType.DATASET)
    prep = w.execution("prep", [(raw.id, "data")], [(clean, "return")], ours=True,
                       params={"drop_na": True}, props={"source_hash": "s1", "python": "3.11.2",
                                                       "packages": {"pandas": "2.1.0"}},
                       contexts=[run])
    model = w.artifact("Model", "clf", uri="/nonexistent/model.pkl", version=1,
                       base=pb.ArtifactType.MODEL)
    log = w.artifact("Thing", "log", uri="/tmp/log.txt")
    train = w.execution("train", [(clean, "data"), (cfg.id, "config")],
                        [(model, "return"), (log, "log")], ours=True,
                        params={"lr": 0.05, "epochs": 10},
                        props={"source_hash": "t1", "git_commit": "abc123", "python": "3.11.2",
                               "packages": {"scikit-learn": "1.3.0"}},
                        contexts=[run])
    return store, {"raw": raw.id, "cfg": cfg.id, "clean": clean, "model": model, "log": log,
                   "prep": prep, "train": train, "run": run, "exp": exp, "w": w}


def test_provenance_of_a_model(iris: tuple[lineage.Store, dict[str, Any]]) -> None:
    store, ids = iris
    p = store.provenance(f"artifact:{ids['model']}")
    assert isinstance(p, Provenance)
    assert p.target.id == ids["model"] and p.target.name == "clf"
    assert [a.id for a in p.artifacts] == sorted([ids["raw"], ids["cfg"], ids["clean"]])
    assert [a.id for a in p.datasets] == sorted([ids["raw"], ids["clean"]])
    assert p.roots == sorted([ids["raw"], ids["cfg"]])
    assert [s.id for s in p.steps] == [ids["prep"], ids["train"]]
    d = p.to_dict()
    assert set(d) >= {"target", "datasets", "artifacts", "roots", "steps"}
    assert d["target"] == {"id": ids["model"], "type": "Model", "name": "clf", "version": 1,
                           "uri": "/nonexistent/model.pkl", "fingerprint": None}
    train = d["steps"][1]
    assert {k: train[k] for k in ("id", "type", "name", "state", "params")} == {
        "id": ids["train"], "type": "train", "name": "train", "state": "COMPLETE",
        "params": {"lr": 0.05, "epochs": 10}}
    assert sorted(train["inputs"]) == sorted([ids["clean"], ids["cfg"]])
    assert sorted(train["outputs"]) == sorted([ids["model"], ids["log"]])
    assert train["runs"] == ["baseline"] and train["experiment"] == "iris"
    assert train["code"] == {"source_hash": "t1", "git_commit": "abc123"}
    assert train["environment"] == {"python": "3.11.2", "packages": {"scikit-learn": "1.3.0"}}
    json.dumps(d)
    # The subgraph holds the target and what is upstream, not the sibling output.
    assert set(p.graph) == {f"artifact:{i}" for i in (ids["raw"], ids["cfg"], ids["clean"], ids["model"])} | {
        f"execution:{ids['prep']}", f"execution:{ids['train']}"}
    assert p.graph.nodes[f"execution:{ids['train']}"]["runs"] == ["baseline"]
    assert p.graph.has_edge(f"execution:{ids['train']}", f"artifact:{ids['model']}", "OUTPUT:return")


def test_provenance_by_name_and_of_a_root(iris: tuple[lineage.Store, dict[str, Any]]) -> None:
    store, ids = iris
    assert store.provenance("clf").target.id == ids["model"]
    p = store.provenance("iris@1")
    assert (p.artifacts, p.steps, p.roots, set(p.graph)) == ([], [], [], {f"artifact:{ids['raw']}"})
    with pytest.raises(lineage.NotFound):
        store.provenance("nothing-here")


def test_provenance_of_model_trained_twice(iris: tuple[lineage.Store, dict[str, Any]]) -> None:
    store, ids = iris
    w = ids["w"]
    m2 = w.artifact("Model", "clf", uri="/nonexistent/m2.pkl", version=2, base=pb.ArtifactType.MODEL)
    t2 = w.execution("train", [(ids["clean"], "data")], [(m2, "return")], ours=True,
                     params={"lr": 0.1, "epochs": 10})
    p = store.provenance("clf")  # the latest version
    assert p.target.id == m2 and [s.id for s in p.steps] == [ids["prep"], t2]
    assert ids["cfg"] not in [a.id for a in p.artifacts]
    assert store.provenance("clf@1").target.id == ids["model"]


def test_artifact_with_several_producers(store: lineage.Store) -> None:
    """A cached execution re-emits OUTPUT for an artifact an earlier one produced."""
    w = RawWriter(store)
    d1, d2 = w.artifact("Dataset", "d1", uri="/d1"), w.artifact("Dataset", "d2", uri="/d2")
    m = w.artifact("Model", "m", uri="/m")
    first = w.execution("train", [(d1, "data")], [(m, "model")])
    cached = w.execution("train", [(d2, "data")], [(m, "model")], state=pb.Execution.CACHED)
    p = store.provenance(m)
    assert {s.id for s in p.steps} == {first, cached}
    assert {a.id for a in p.artifacts} == {d1, d2} and p.roots == sorted([d1, d2])
    assert p.to_dict()["steps"][1]["state"] in ("COMPLETE", "CACHED")


def test_ingest_output_is_a_root(store: lineage.Store) -> None:
    w = RawWriter(store)
    raw = w.artifact("Dataset", "raw", uri="/raw")
    ingest = w.execution("ingest", [], [(raw, "out")])
    m = w.artifact("Model", "m", uri="/m")
    w.execution("train", [(raw, "data")], [(m, "model")])
    p = store.provenance(m)
    assert p.roots == [raw] and p.steps[0].id == ingest


def test_provenance_walk_is_batched_and_does_not_read_the_store(store: lineage.Store) -> None:
    """Per hop one events-by-artifact, one executions-by-id (the producers' output places:
    time-respecting lineage) and one events-by-execution call; rows read grow with the
    answer, not with the unrelated rest of the store."""
    w = RawWriter(store)
    other = [pb.Artifact(type_id=w.artifact_type("Thing"), uri=f"/o{i}") for i in range(300)]
    store.mlmd.put_artifacts(other)
    prev = w.artifact("Dataset", "a0", uri="/a0")
    for i in range(5):
        nxt = w.artifact("Dataset", f"a{i + 1}", uri=f"/a{i + 1}")
        w.execution("step", [(prev, "in")], [(nxt, "out")], ours=True)
        prev = nxt
    with CallCounter(store) as counter:
        p = store.provenance(prev)
    assert len(p.steps) == 5 and len(p.artifacts) == 5
    assert counter.calls["get_events_by_artifact_ids"] == 6  # 5 hops + the root's
    assert counter.calls["get_events_by_execution_ids"] == 5
    assert counter.calls["get_artifacts_by_id"] <= 2 and counter.calls["get_executions_by_id"] == 5
    assert "get_artifacts" not in counter.calls and "get_executions" not in counter.calls
    assert counter.rows["get_artifacts_by_id"] <= 7


def test_thousand_step_chain_is_followed_to_its_root() -> None:
    store = lineage.connect(":memory:")
    w = RawWriter(store)
    tid = w.artifact_type("Dataset")
    [root, *rest] = store.mlmd.put_artifacts(
        [pb.Artifact(type_id=tid, uri=f"/c{i}") for i in range(1001)])
    etype = w.execution_type("step")
    exec_ids = store.mlmd.put_executions(
        [pb.Execution(type_id=etype, last_known_state=pb.Execution.COMPLETE) for _ in range(1000)])
    chain = [root, *rest]
    events = []
    for i, eid in enumerate(exec_ids):
        events.append(pb.Event(artifact_id=chain[i], execution_id=eid, type=pb.Event.INPUT))
        events.append(pb.Event(artifact_id=chain[i + 1], execution_id=eid, type=pb.Event.OUTPUT))
    store.mlmd.put_events(events)
    p = store.provenance(chain[-1])
    arts, execs = brute_force_upstream(store.mlmd, chain[-1])
    assert {a.id for a in p.artifacts} == arts and {s.id for s in p.steps} == execs
    assert p.roots == [root] and [s.id for s in p.steps] == list(exec_ids)
    down = store.impact(root)
    assert len(down.executions) == 1000 and down.artifacts[-1].id == chain[-1]


@st.composite
def random_dags(draw: st.DrawFn) -> tuple[int, list[tuple[list[int], list[int], int]]]:
    """n artifacts; executions reading earlier artifacts and writing later ones (so a DAG,
    with several producers per artifact allowed), with random event types."""
    n = draw(st.integers(2, 14))
    execs = []
    for _ in range(draw(st.integers(0, 14))):
        cut = draw(st.integers(1, n - 1))
        ins = draw(st.lists(st.integers(0, cut - 1), max_size=3, unique=True))
        outs = draw(st.lists(st.integers(cut, n - 1), min_size=1, max_size=2, unique=True))
        kind = draw(st.sampled_from(["plain", "plain", "declared", "internal", "pending"]))
        execs.append((ins, outs, {"plain": 0, "declared": 1, "internal": 2, "pending": 3}[kind]))
    return n, execs


_KINDS = [
    (pb.Event.INPUT, pb.Event.OUTPUT),
    (pb.Event.DECLARED_INPUT, pb.Event.DECLARED_OUTPUT),
    (pb.Event.INTERNAL_INPUT, pb.Event.INTERNAL_OUTPUT),
    (pb.Event.INPUT, pb.Event.PENDING_OUTPUT),
]


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(random_dags())
def test_random_dags_match_brute_force(dag: tuple[int, list[tuple[list[int], list[int], int]]]) -> None:
    n, execs = dag
    store = lineage.connect(":memory:")
    w = RawWriter(store)
    arts = [w.artifact("Thing", None, uri=f"/r{i}") for i in range(n)]
    for ins, outs, kind in execs:
        it, ot = _KINDS[kind]
        w.execution("x", [(arts[i], "in") for i in ins], [(arts[o], "out") for o in outs],
                    input_type=it, output_type=ot)
    g = store.graph()
    for a in arts:
        up_a, up_e = brute_force_upstream(store.mlmd, a)
        p = store.provenance(a)
        assert {x.id for x in p.artifacts} == up_a and {s.id for s in p.steps} == up_e
        order = [s.id for s in p.steps]
        for s in p.steps:  # topological: producers of a step's inputs come before it
            for i in s.inputs:
                for other in p.steps:
                    if i in other.outputs and other.id != s.id:
                        assert order.index(other.id) < order.index(s.id)
        down_a, down_e = brute_force_downstream(store.mlmd, a)
        imp = store.impact(a)
        assert {x.id for x in imp.artifacts} == down_a and {e.id for e in imp.executions} == down_e
        # The query subgraphs are subgraphs of the store graph, with the same edges.
        for u, v, k in p.graph.edges(keys=True):
            assert g.has_edge(u, v, k)


def test_impact_groups_by_type(iris: tuple[lineage.Store, dict[str, Any]]) -> None:
    store, ids = iris
    w = ids["w"]
    deploy = w.execution("deploy", [(ids["model"], "model")], [], ours=True)
    imp = store.impact("iris")
    assert isinstance(imp, Impact)
    assert imp.source.id == ids["raw"]
    assert {a.id for a in imp.artifacts} == {ids["clean"], ids["model"], ids["log"]}
    assert [e.id for e in imp.executions] == [ids["prep"], ids["train"], deploy]
    assert [x.id for x in imp.by_type["Model"]] == [ids["model"]]
    assert [x.id for x in imp.by_type["deploy"]] == [deploy]
    d = imp.to_dict()
    json.dumps(d)
    assert d["by_type"]["Model"][0]["ref"] == f"artifact:{ids['model']}"
    assert f"artifact:{ids['raw']}" in imp.graph and f"artifact:{ids['cfg']}" not in imp.graph


def _second_training(ids: dict[str, Any], *, lr: float, data: int | None = None,
                     commit: str = "abc123", sklearn: str = "1.3.0") -> int:
    w = ids["w"]
    m = w.artifact("Model", "clf", uri="/nonexistent/other.pkl", version=ids.setdefault("v", 2),
                   base=pb.ArtifactType.MODEL)
    ids["v"] += 1
    w.execution("train", [(data or ids["clean"], "data"), (ids["cfg"], "config")], [(m, "return")],
                ours=True, params={"lr": lr, "epochs": 10},
                props={"source_hash": "t1", "git_commit": commit, "python": "3.11.2",
                       "packages": {"scikit-learn": sklearn}})
    return m


def test_diff_of_equal_lineages_is_empty(iris: tuple[lineage.Store, dict[str, Any]]) -> None:
    store, ids = iris
    m2 = _second_training(ids, lr=0.05)
    d = store.diff(ids["model"], m2)
    assert isinstance(d, LineageDiff)
    assert d.is_empty, d.to_dict()
    assert d.to_dict()["is_empty"] is True
    assert d.graph.nodes[f"artifact:{ids['raw']}"]["diff"] == "same"
    assert d.graph.nodes[f"artifact:{m2}"]["diff"] == "changed"
    assert store.diff("clf@1", "clf@1").is_empty


def test_diff_reports_params_code_environment_and_data(iris: tuple[lineage.Store, dict[str, Any]]) -> None:
    store, ids = iris
    w = ids["w"]
    clean2 = w.artifact("Dataset", "clean", uri="/tmp/clean2.csv", version=2,
                        base=pb.ArtifactType.DATASET)
    prep2 = w.execution("prep", [(ids["raw"], "data")], [(clean2, "return")], ours=True,
                        params={"drop_na": True}, props={"source_hash": "s1", "python": "3.11.2",
                                                        "packages": {"pandas": "2.1.0"}})
    m2 = _second_training(ids, lr=0.1, data=clean2, commit="def456", sklearn="1.4.0")
    d = store.diff(ids["model"], m2)
    assert not d.is_empty
    assert d.params == {"train": {"lr": (0.05, 0.1)}}
    assert d.code == {"train": {"git_commit": ("abc123", "def456")}}
    assert d.environment == {"train": {"packages.scikit-learn": ("1.3.0", "1.4.0")}}
    assert [(x["name"], x["status"]) for x in d.datasets] == [("clean", "changed")]
    assert (d.only_in_a, d.only_in_b) == ([], [])
    diffs = dict(d.graph.nodes(data="diff"))
    assert diffs[f"execution:{ids['train']}"] == "changed"
    assert diffs[f"artifact:{ids['clean']}"] == "changed" and diffs[f"artifact:{clean2}"] == "changed"
    assert diffs[f"execution:{ids['prep']}"] == "same" and diffs[f"execution:{prep2}"] == "same"
    assert diffs[f"artifact:{ids['raw']}"] == "same"
    out = d.to_dict()
    json.dumps(out)
    assert out["params"] == {"train": {"lr": {"a": 0.05, "b": 0.1}}}


def test_diff_steps_and_datasets_only_in_one(iris: tuple[lineage.Store, dict[str, Any]]) -> None:
    store, ids = iris
    w = ids["w"]
    extra = w.artifact("Dataset", "extra", uri="/extra", version=1, base=pb.ArtifactType.DATASET)
    m = w.artifact("Model", "clf", uri="/m3", version=2, base=pb.ArtifactType.MODEL)
    direct = w.execution("fit", [(extra, "data")], [(m, "return")], ours=True, params={"k": 1})
    d = store.diff(ids["model"], m)
    assert d.only_in_a == ["prep", "train"] and d.only_in_b == ["fit"]
    statuses = {x["name"]: x["status"] for x in d.datasets}
    assert statuses == {"iris": "only_a", "clean": "only_a", "extra": "only_b"}
    assert d.graph.nodes[f"execution:{direct}"]["diff"] == "only_b"
    assert d.graph.nodes[f"artifact:{ids['cfg']}"]["diff"] == "only_a"


def test_verify_reports_each_status(store: lineage.Store, write_file: Callable[..., Path]) -> None:
    good = store.put(lineage.Dataset(write_file("good.csv", "1"), name="good"))
    changed_path = write_file("changed.csv", "1")
    changed = store.put(lineage.Dataset(changed_path, name="changed"))
    gone_path = write_file("gone.csv", "1")
    gone = store.put(lineage.Dataset(gone_path, name="gone"))
    odd = store.put(lineage.Dataset(write_file("odd.csv", "1"), name="odd", fingerprint="md5:00"))
    mem = store.put(lineage.Metrics({"acc": 0.9}, name="eval"))
    remote = store.put(lineage.Model("s3://bucket/model.pkl", name="remote"))
    changed_path.write_text("2")
    gone_path.unlink()
    v = store.verify()
    assert isinstance(v, Verification)
    status = {r.artifact.id: r.status for r in v.results}
    assert status == {good.id: "ok", changed.id: "changed", gone.id: "missing",
                      odd.id: "unreadable", mem.id: "ok", remote.id: "skipped"}
    assert not v.ok
    by_id = {r.artifact.id: r for r in v.results}
    assert by_id[changed.id].recorded != by_id[changed.id].current
    assert by_id[good.id].current == good.fingerprint
    d = v.to_dict()
    json.dumps(d)
    assert d["counts"] == {"changed": 1, "missing": 1, "ok": 2, "skipped": 1, "unreadable": 1}
    assert by_id[mem.id].detail == "re-derived from the recorded values"


def test_verify_unreadable_file(store: lineage.Store, write_file: Callable[..., Path]) -> None:
    path = write_file("secret.csv", "1")
    store.put(lineage.Dataset(path, name="secret"))
    # A Unix socket where the file was: open() fails for every user, root included
    # (chmod 0 would not stop root, who runs CI).
    path.unlink()
    sock = socket.socket(socket.AF_UNIX)
    try:
        sock.bind(str(path))
        [result] = store.verify().results
        assert result.status == "unreadable" and result.current is None
    finally:
        sock.close()


def test_verify_one_lineage(iris: tuple[lineage.Store, dict[str, Any]], write_file: Callable[..., Path]) -> None:
    store, ids = iris
    store.put(lineage.Dataset(write_file("unrelated.csv", "9"), name="unrelated"))
    v = store.verify("clf")
    assert sorted(r.artifact.id for r in v.results) == sorted(
        [ids["model"], ids["raw"], ids["cfg"], ids["clean"]])
    # the model's local uri does not exist: missing, whether or not a fingerprint was kept
    assert {r.artifact.id: r.status for r in v.results}[ids["model"]] == "missing"
    assert not v.ok


def _run_with(store: lineage.Store, w: RawWriter, exp: int, data: int, name: str, lr: float,
              acc: float) -> int:
    run = w.context(RUN_TYPE, name, parent=exp)
    ctx = store.mlmd.get_contexts_by_id([run])[0]
    ctx.custom_properties["seed"].int_value = 7
    store.mlmd.put_contexts([ctx])
    metrics = w.artifact("Metrics", f"eval-{name}", base=pb.ArtifactType.METRICS, acc=acc)
    w.execution("train", [(data, "data")], [(metrics, "metrics")], ours=True,
                params={"lr": lr, "epochs": 5}, contexts=[run])
    return run


def test_compare_runs_side_by_side(store: lineage.Store) -> None:
    w = RawWriter(store)
    exp = w.context(EXPERIMENT_TYPE, "iris")
    data = w.artifact("Dataset", "d", uri="/d")
    _run_with(store, w, exp, data, "baseline", 0.05, 0.9)
    r2 = _run_with(store, w, exp, data, "tuned", 0.1, 0.95)
    c = store.compare(["baseline", r2])
    assert isinstance(c, Comparison)
    assert [r.name for r in c.runs] == ["baseline", "tuned"]
    names = [col.name for col in c.columns]
    differing = [col.name for col in c.columns if col.differs]
    assert names[:len(differing)] == differing  # differing columns first
    assert "train.lr" in differing and "train.epochs" not in differing and "seed" not in differing
    assert any(col.kind == "metric" and col.differs for col in c.columns)
    d = c.to_dict()
    json.dumps(d)
    assert d["rows"][1]["values"]["train.lr"] == 0.1
    df = c.to_pandas()
    assert df.loc["tuned", "train.lr"] == 0.1 and list(df.columns) == names
    text = str(c)
    assert "baseline" in text and "tuned" in text and "* train.lr" in text
    with pytest.raises(lineage.NotFound):
        store.compare(["no-such-run"])
    with pytest.raises(lineage.InvalidRef):
        store.compare("baseline")  # type: ignore[arg-type]


def test_results_render_hooks_exist() -> None:
    for cls in (Provenance, Impact, LineageDiff):
        assert callable(cls._repr_svg_) and callable(cls._repr_html_)


def test_graph_of_results_is_a_multidigraph(iris: tuple[lineage.Store, dict[str, Any]]) -> None:
    store, ids = iris
    for result in (store.provenance(ids["model"]), store.impact(ids["raw"])):
        assert isinstance(result.graph, nx.MultiDiGraph)
        assert nx.is_directed_acyclic_graph(result.graph)


def test_queries_on_a_pipeline_recorded_with_steps(store: lineage.Store, write_file: Callable[..., Path]) -> None:
    """End to end with @lineage.step and lineage.run: code, environment, runs, failures,
    cache hits, and compare's final metrics."""
    folder = write_file("data/iris.csv", "a,b\n1,2\n").parent

    @lineage.step(store=store, cache=True)
    def prep(data: lineage.Dataset, scale: float = 1.0) -> lineage.Dataset:
        out = folder / f"clean-{scale}.csv"
        out.write_text(Path(data.uri).read_text() + str(scale))
        return lineage.Dataset(out, name="clean")

    @lineage.step(store=store, kind="train")
    def train(data: lineage.Dataset, lr: float = 0.1) -> lineage.Model:
        if lr < 0:
            raise ValueError("negative learning rate")
        out = folder / f"model-{lr}.pkl"
        out.write_text(str(lr))
        lineage.log_metrics({"acc": 0.5 + lr})
        return lineage.Model(out, name="clf")

    raw = lineage.Dataset(folder / "iris.csv", name="iris")
    with lineage.run("a", experiment="exp", store=store):
        train(prep(raw), lr=0.1)
    with lineage.run("b", experiment="exp", store=store):
        train(prep(raw), lr=0.3)  # prep is a cache hit
        with pytest.raises(ValueError):
            train(prep(raw), lr=-1.0)
    p = store.provenance("clf")
    d = p.to_dict()
    train_step = d["steps"][-1]
    assert train_step["params"] == {"lr": 0.3} and train_step["runs"] == ["b"]
    assert train_step["experiment"] == "exp"
    assert train_step["code"]["source_hash"].startswith("sha256:")
    assert train_step["environment"]["python"]
    assert train_step["metrics"] == {"acc": 0.8}
    assert {s["state"] for s in d["steps"][:-1]} <= {"COMPLETE", "CACHED"}
    assert [a.name for a in p.datasets] == ["iris", "clean"]
    imp = store.impact("iris")
    failed = [e for e in imp.executions if e.state == "FAILED"]
    assert len(failed) == 1 and "negative learning rate" in (failed[0].error or "")
    c = store.compare(["a", "b"])
    by_name = {col.name: col for col in c.columns}
    assert by_name["acc"].differs and by_name["acc"].kind == "metric"
    assert c.to_dict()["rows"][0]["values"]["acc"] == 0.6
    assert store.diff("clf@1", "clf@2").params == {"train": {"lr": (0.1, 0.3)}}


def test_cache_contexts_are_not_runs(store: lineage.Store, write_file: Callable[..., Path]) -> None:
    """A cached step's ``execution_cache`` context is no run: not in runs, step dicts,
    the graph's ``runs`` or the run clusters; still a node with contexts=True."""
    folder = write_file("data/raw.csv", "a\n1\n").parent

    @lineage.step(store=store, cache=True)
    def prep(data: lineage.Dataset) -> lineage.Dataset:
        out = folder / "clean.csv"
        out.write_text(Path(data.uri).read_text() + "x")
        return lineage.Dataset(out, name="clean")

    raw = lineage.Dataset(folder / "raw.csv", name="raw")
    with lineage.run("first", store=store):
        prep(raw)
    with lineage.run("second", store=store):
        prep(raw)  # a cache hit: CACHED execution in the same cache context
    cache_ctxs = list(store.mlmd.get_contexts_by_type("execution_cache"))
    assert len(cache_ctxs) == 1
    cache_name = cache_ctxs[0].name
    imp = store.impact("raw")
    assert sorted(e.state for e in imp.executions) == ["CACHED", "COMPLETE"]
    for result_runs in (imp.runs, store.provenance("clean").runs):
        names = {r.name for rs in result_runs.values() for r in rs}
        types = {r.type_name for rs in result_runs.values() for r in rs}
        assert cache_name not in names and "execution_cache" not in types
    steps = imp.to_dict()["executions"]
    assert sorted(tuple(s["runs"]) for s in steps) == [("first",), ("second",)]
    assert all(c["type"] != "execution_cache" for s in steps for c in s["contexts"])
    for g in (store.graph(), store.graph(run="second"), imp.graph):
        runs = [r for _, data in g.nodes(data=True) if data["kind"] == "execution"
                for r in data["runs"]]
        assert runs and cache_name not in runs
    full = store.graph(contexts=True)
    assert "execution_cache" in {d["type_name"] for _, d in full.nodes(data=True)
                                 if d["kind"] == "context"}
    from lineage.render import to_graphviz

    for drawn in (imp, store.graph()):
        source = to_graphviz(drawn, fold=False).source  # every execution in its run
        clusters = [line for line in source.splitlines() if "cluster_run" in line
                    or line.strip().startswith("label=")]
        assert cache_name not in "\n".join(clusters)
        assert source.count("subgraph cluster_run") == 2
        assert cache_name not in to_graphviz(drawn).source  # folded: the cache hit in its call


def test_runs_of_our_steps_come_from_run_context(store: lineage.Store, write_file: Callable[..., Path]) -> None:
    """Steps recorded in a run carry its context id: provenance and impact name the run
    with one batched get_contexts_by_id and no per-execution get_contexts_by_execution
    (an Association scan); a foreign execution still gets its contexts."""
    folder = write_file("d/raw.csv", "a\n1\n").parent

    @lineage.step(store=store, cache=True)
    def prep(data: lineage.Dataset, k: int = 0) -> lineage.Dataset:
        out = folder / f"p{k}.csv"
        out.write_text(f"{k}")
        return lineage.Dataset(out, name="mid")

    @lineage.step(store=store)
    def last(data: lineage.Dataset) -> lineage.Model:
        out = folder / "m.pkl"
        out.write_text("m")
        return lineage.Model(out, name="m")

    with lineage.run("r1", experiment="e", store=store) as run:
        last(prep(prep(lineage.Dataset(folder / "raw.csv", name="raw"), k=1), k=2))
    execs = store.mlmd.get_executions()
    assert {e.properties["run_context"].int_value for e in execs} == {run.context.id}
    # A foreign execution reading the model, in a foreign context.
    w = RawWriter(store)
    ctx = w.context("pipeline_run", "tfx-run")
    m = store.get("m")
    w.execution("Pusher", [(m.id, "model")], [], contexts=[ctx])
    with CallCounter(store) as counter:
        p = store.provenance("m")
    assert counter.calls["get_contexts_by_execution"] == 0
    assert counter.calls["get_contexts_by_id"] == 1
    assert [s["runs"] for s in p.to_dict()["steps"]] == [["r1"]] * 3
    assert {s["experiment"] for s in p.to_dict()["steps"]} == {"e"}
    with CallCounter(store) as counter:
        imp = store.impact("raw")
    assert counter.calls["get_contexts_by_execution"] == 1  # the foreign Pusher only
    by_name = {e["name"]: e for e in imp.to_dict()["executions"]}
    assert by_name["Pusher"]["runs"] == ["tfx-run"] and by_name["last"]["runs"] == ["r1"]
    g = store.graph(run="r1")
    assert {d["runs"][0] for _, d in g.nodes(data=True) if d["kind"] == "execution"} == {"r1"}


def test_results_print_as_text_for_people(iris: tuple[lineage.Store, dict[str, Any]],
                                          write_file: Callable[..., Path]) -> None:
    """str() of every result is the CLI's text; repr() is one short line."""
    store, ids = iris
    w = ids["w"]
    model2 = w.artifact("Model", "clf", uri="/nonexistent/model2.pkl", version=2,
                        base=pb.ArtifactType.MODEL)
    w.execution("train", [(ids["clean"], "data"), (ids["cfg"], "config")], [(model2, "return")],
                ours=True, params={"lr": 0.5, "epochs": 10}, contexts=[ids["run"]])
    p = store.provenance(ids["model"])
    text = str(p)
    lines = text.splitlines()
    assert lines[0].startswith(f"Model clf v1  artifact:{ids['model']}")
    assert f"└── train  execution:{ids['train']}  COMPLETE  run baseline (iris)  epochs=10 lr=0.05" in text
    assert f"Dataset clean v1  artifact:{ids['clean']}" in text and "prep  execution:" in text
    assert "2 steps, 3 upstream artifacts, 2 datasets, roots: " in text
    assert text.count("artifact:") >= 6 and "ref         type" in text
    assert repr(p) == "<Provenance of Model clf v1: 2 steps, 2 datasets>"
    assert repr(store.provenance(ids["raw"])) == "<Provenance of Dataset iris v1: 0 steps, 0 datasets>"

    imp = store.impact(ids["raw"])
    text = str(imp)
    assert text.startswith(f"downstream of Dataset iris v1  artifact:{ids['raw']}: 4 artifacts, 3 executions")
    assert "  Model (2)" in text and f"    execution:{ids['prep']}  prep  COMPLETE" in text
    assert repr(imp) == "<Impact of Dataset iris v1: 4 artifacts, 3 executions>"

    d = store.diff(ids["model"], model2)
    assert str(d).splitlines() == [
        f"a: Model clf v1  artifact:{ids['model']}", f"b: Model clf v2  artifact:{model2}",
        "params:", "  train.lr: 0.05 -> 0.5",
        "code:", "  train.git_commit: abc123 -> None", "  train.source_hash: t1 -> None",
        "environment:", "  train.packages.scikit-learn: 1.3.0 -> None", "  train.python: 3.11.2 -> None"]
    assert repr(d) == "<LineageDiff Model clf v1 vs Model clf v2: params, code, environment differ>"
    same = store.diff(ids["model"], ids["model"])
    assert str(same).endswith("same lineage: same datasets, params, code and environment")
    assert repr(same).endswith(": same lineage>")

    Path(store.get(ids["raw"]).uri).write_text("changed\n")
    v = store.verify(ids["model"])
    text = str(v)
    assert text.splitlines()[0].split() == ["ref", "artifact", "status", "recorded", "now", "detail"]
    rows = {line.split()[0]: line.split()[1:5] for line in text.splitlines()[2:-1]}
    assert rows[f"artifact:{ids['raw']}"] == ["Dataset", "iris", "v1", "CHANGED"]
    assert rows[f"artifact:{ids['model']}"] == ["Model", "clf", "v1", "MISSING"]
    counts = ", ".join(f"{n} {s}" for s, n in v.counts.items())
    assert v.counts["changed"] == 1 and text.splitlines()[-1] == f"FAILED: {counts}"
    assert repr(v) == f"<Verification FAILED: {counts}>"
    assert repr(v.results[0]).startswith("<ArtifactCheck Dataset iris v1 artifact:")
    empty = lineage.connect(":memory:").verify()
    assert str(empty) == "NOT VERIFIED (nothing could be checked here): no artifacts"
    assert repr(empty) == "<Verification NOT VERIFIED (nothing could be checked here): no artifacts>"

    c = store.compare(["baseline"])
    assert str(c).splitlines()[0].split() == ["baseline"]
    assert repr(c).startswith("<Comparison of 1 run: ") and repr(c).endswith("0 differ>")


def test_cache_hits_are_not_extra_steps_in_a_diff_or_the_provenance_tree(
    sqlite_store: lineage.Store, tmp_path: Path,
) -> None:
    store = sqlite_store

    @lineage.step(store=store, cache=True)
    def prep(n: int = 3) -> lineage.Dataset:
        (tmp_path / "prepped.bin").write_bytes(b"x" * n)  # a file: a hit can hand it back
        return lineage.Dataset(tmp_path / "prepped.bin", name="prepped")

    @lineage.step(store=store)
    def fit(data: lineage.Dataset, lr: float = 0.1) -> lineage.Model:
        return lineage.Model(content=f"{lr}".encode(), name="m")

    for run, lr in (("a", 0.1), ("b", 0.2), ("a", 0.1)):
        with lineage.run(run, store=store):
            fit(prep(), lr=lr)
    d = store.diff("m@1", "m@2")
    assert d.params == {"fit": {"lr": (0.1, 0.2)}}
    assert d.only_in_a == [] and d.only_in_b == []
    text = str(store.provenance("m@1"))
    assert text.count("prep  execution:") == 1
    assert "also produced by the same call: execution:" in text and "CACHED (run a-2)" in text


def test_diff_text_names_changed_keys_and_never_cuts_values(store: lineage.Store) -> None:
    @lineage.step(store=store)
    def train(custom_config: str = "{}", note: str = "") -> lineage.Model:
        return lineage.Model(content=(custom_config + note).encode(), name="m")

    long_a, long_b = "a" * 150 + "X", "a" * 150 + "Y"
    train(custom_config=json.dumps({"learning_rate": 0.01, "epochs": 5}), note=long_a)
    train(custom_config=json.dumps({"learning_rate": 0.05, "epochs": 5}), note=long_b)
    d = store.diff("m@1", "m@2")
    assert d.params == {"train": {"custom_config.learning_rate": (0.01, 0.05),
                                  "note": (long_a, long_b)}}
    text = str(d).replace("\n    ", "")  # long values wrap onto indented lines
    assert "train.custom_config.learning_rate: 0.01 -> 0.05" in text
    assert long_a in text and long_b in text
