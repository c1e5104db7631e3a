"""Queries on stores ``lineage`` did not write: TFX- and Kubeflow-shaped, raw ml_metadata.

The TFX writer below follows TFX 1.x's conventions (see MLMD-FACTS.md): artifact types
Examples (DATASET), ExampleStatistics, Schema, Model (MODEL), ModelBlessing, PushedModel,
TransformGraph with no base type; execution types named by component class path with
settings as JSON strings in custom properties; contexts pipeline / pipeline_run (child of
pipeline) / node; event paths ``[{key: channel}, {index: 0}]``; cached executions that
re-emit OUTPUT events for artifacts an earlier execution produced; a resolver linking an
existing model with INTERNAL_OUTPUT. Answers are checked against a brute-force traversal.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from ml_metadata.metadata_store import metadata_store
from ml_metadata.proto import metadata_store_pb2 as pb
from test_queries import brute_force_downstream, brute_force_upstream

import lineage

TFX = "tfx.components"
COMPONENTS = {
    "CsvExampleGen": f"{TFX}.example_gen.csv_example_gen.component.CsvExampleGen",
    "StatisticsGen": f"{TFX}.statistics_gen.component.StatisticsGen",
    "SchemaGen": f"{TFX}.schema_gen.component.SchemaGen",
    "Transform": f"{TFX}.transform.component.Transform",
    "Trainer": f"{TFX}.trainer.component.Trainer",
    "Resolver": "tfx.dsl.components.common.resolver.Resolver",
    "Evaluator": f"{TFX}.evaluator.component.Evaluator",
    "Pusher": f"{TFX}.pusher.component.Pusher",
}
TYPES: dict[str, int | None] = {
    "Examples": pb.ArtifactType.DATASET,
    "ExampleStatistics": pb.ArtifactType.STATISTICS,
    "Schema": None,
    "TransformGraph": None,
    "Model": pb.ArtifactType.MODEL,
    "ModelBlessing": None,
    "PushedModel": pb.ArtifactType.MODEL,
}


class Tfx:
    """Writes components the way TFX's launcher does: one put_execution each."""

    def __init__(self, mlmd: metadata_store.MetadataStore, pipeline: str = "taxi") -> None:
        self.mlmd = mlmd
        self.pipeline_name = pipeline
        self.types = {}
        for name, base in TYPES.items():
            t = pb.ArtifactType(name=name)
            if base is not None:
                t.base_type = base
            for prop in ("span", "version"):
                t.properties[prop] = pb.INT
            t.properties["split_names"] = pb.STRING
            self.types[name] = mlmd.put_artifact_type(t)
        self.exec_types = {k: mlmd.put_execution_type(pb.ExecutionType(name=v))
                           for k, v in COMPONENTS.items()}
        self.ctx_types = {n: mlmd.put_context_type(pb.ContextType(name=n))
                          for n in ("pipeline", "pipeline_run", "node")}
        [pid] = mlmd.put_contexts([pb.Context(type_id=self.ctx_types["pipeline"], name=pipeline)])
        self.pipeline = mlmd.get_contexts_by_id([pid])[0]
        self.nodes: dict[str, pb.Context] = {}

    def run(self, run_id: str) -> pb.Context:
        [cid] = self.mlmd.put_contexts([pb.Context(type_id=self.ctx_types["pipeline_run"], name=run_id)])
        self.mlmd.put_parent_contexts([pb.ParentContext(child_id=cid, parent_id=self.pipeline.id)])
        return self.mlmd.get_contexts_by_id([cid])[0]

    def node(self, short: str) -> pb.Context:
        if short not in self.nodes:
            [cid] = self.mlmd.put_contexts([pb.Context(type_id=self.ctx_types["node"],
                                                       name=f"{self.pipeline_name}.{short}")])
            self.nodes[short] = self.mlmd.get_contexts_by_id([cid])[0]
        return self.nodes[short]

    def component(
        self, run: pb.Context, short: str, inputs: dict[str, pb.Artifact],
        outputs: dict[str, str | pb.Artifact], settings: dict[str, Any] | None = None,
        *, state: int = pb.Execution.COMPLETE, output_event: int = pb.Event.OUTPUT,
        named: bool = False,
    ) -> tuple[int, dict[str, pb.Artifact]]:
        ex = pb.Execution(type_id=self.exec_types[short], last_known_state=state)
        for key, value in (settings or {}).items():
            ex.custom_properties[key].string_value = json.dumps(value)
        pairs = []
        for channel, art in inputs.items():
            ev = pb.Event(type=pb.Event.INPUT)
            ev.path.steps.add().key = channel
            ev.path.steps.add().index = 0
            pairs.append((art, ev))
        for channel, spec in outputs.items():
            if isinstance(spec, pb.Artifact):
                art = spec  # the full stored artifact, as TFX passes it (a stub would wipe it)
            else:
                art = pb.Artifact(type_id=self.types[spec], state=pb.Artifact.LIVE,
                                  uri=f"/pipeline_root/{short}/{channel}/{len(pairs)}-{run.name}")
                art.properties["span"].int_value = 0
                if named:  # TFX >= 1.4 names some artifacts; older stores leave names empty
                    art.name = f"{self.pipeline_name}:{run.name}:{short}:{channel}:0"
            ev = pb.Event(type=output_event)
            ev.path.steps.add().key = channel
            ev.path.steps.add().index = 0
            pairs.append((art, ev))
        eid, ids, _ = self.mlmd.put_execution(
            ex, pairs, [self.pipeline, run, self.node(short)], reuse_context_if_already_exist=True)
        out_ids = ids[len(inputs):]
        stored = {a.id: a for a in self.mlmd.get_artifacts_by_id(out_ids)}
        return eid, {c: stored[i] for c, i in zip(outputs, out_ids, strict=True)}


def write_taxi(mlmd: metadata_store.MetadataStore) -> dict[str, Any]:
    """Three pipeline runs: a full one, a cached one, one with other training settings."""
    tfx = Tfx(mlmd)
    ids: dict[str, Any] = {}
    train_args = {"train_args": {"num_steps": 1000}, "module_file": "taxi_utils.py"}
    r1 = tfx.run("taxi-run-1")
    ids["gen"], o = tfx.component(r1, "CsvExampleGen", {}, {"examples": "Examples"},
                                  {"input_base": "/data/taxi"})
    examples = o["examples"]
    ids["stats_ex"], o = tfx.component(r1, "StatisticsGen", {"examples": examples},
                                       {"statistics": "ExampleStatistics"})
    stats = o["statistics"]
    ids["schema_ex"], o = tfx.component(r1, "SchemaGen", {"statistics": stats}, {"schema": "Schema"},
                                        {"infer_feature_shape": 1})
    schema = o["schema"]
    ids["transform"], o = tfx.component(r1, "Transform", {"examples": examples, "schema": schema},
                                        {"transform_graph": "TransformGraph"}, named=True)
    graph = o["transform_graph"]
    ids["train1"], o = tfx.component(r1, "Trainer", {"examples": examples, "schema": schema,
                                                     "transform_graph": graph},
                                     {"model": "Model"}, train_args, named=True)
    model1 = o["model"]
    ids["eval1"], o = tfx.component(r1, "Evaluator", {"examples": examples, "model": model1},
                                    {"blessing": "ModelBlessing"}, {"eval_config": {"metric": "AUC"}})
    ids["push1"], o = tfx.component(r1, "Pusher", {"model": model1, "model_blessing": o["blessing"]},
                                    {"pushed_model": "PushedModel"}, {"push_destination": "/serving"})
    pushed1 = o["pushed_model"]
    # Run 2: the Trainer is a cache hit and re-emits run 1's model (a second producer).
    r2 = tfx.run("taxi-run-2")
    ids["train2"], _ = tfx.component(r2, "Trainer", {"examples": examples, "schema": schema,
                                                     "transform_graph": graph},
                                     {"model": model1}, train_args, state=pb.Execution.CACHED)
    # Run 3: other settings; a resolver selects run 1's model as the baseline (INTERNAL_OUTPUT).
    r3 = tfx.run("taxi-run-3")
    ids["resolver"], _ = tfx.component(r3, "Resolver", {}, {"baseline": model1},
                                       output_event=pb.Event.INTERNAL_OUTPUT)
    ids["train3"], o = tfx.component(r3, "Trainer", {"examples": examples, "schema": schema,
                                                     "transform_graph": graph},
                                     {"model": "Model"},
                                     {**train_args, "train_args": {"num_steps": 5000}}, named=True)
    model3 = o["model"]
    ids["eval3"], o = tfx.component(r3, "Evaluator", {"examples": examples, "model": model3,
                                                     "baseline_model": model1},
                                    {"blessing": "ModelBlessing"}, {"eval_config": {"metric": "AUC"}})
    ids["push3"], o = tfx.component(r3, "Pusher", {"model": model3, "model_blessing": o["blessing"]},
                                    {"pushed_model": "PushedModel"}, {"push_destination": "/serving"})
    ids.update(examples=examples.id, stats=stats.id, schema=schema.id, graph=graph.id,
               model1=model1.id, model3=model3.id, pushed1=pushed1.id, pushed3=o["pushed_model"].id)
    return ids


@pytest.fixture
def taxi(store: lineage.Store) -> tuple[lineage.Store, dict[str, Any]]:
    return store, write_taxi(store.mlmd)


def test_provenance_of_a_pushed_model(taxi: tuple[lineage.Store, dict[str, Any]]) -> None:
    store, ids = taxi
    p = store.provenance(ids["pushed1"])
    steps = [s.id for s in p.steps]
    # run 2's cached Trainer re-emitted model1 after run 1's Pusher had read it: not part of
    # pushed1's lineage (lineage respects time)
    assert set(steps) == {ids[k] for k in ("gen", "stats_ex", "schema_ex", "transform", "train1",
                                            "eval1", "push1")}
    assert [s.name for s in p.steps][:3] == ["CsvExampleGen", "StatisticsGen", "SchemaGen"]
    assert [s.name for s in p.steps][-1] == "Pusher"
    assert [d.id for d in p.datasets] == [ids["examples"]]
    assert p.datasets[0].type_name == "Examples" and p.datasets[0].name is None
    assert p.roots == [ids["examples"]]
    trainer = next(s for s in p.steps if s.id == ids["train1"])
    assert trainer.params == {"train_args": {"num_steps": 1000}, "module_file": "taxi_utils.py"}
    # the model's own producers all count: the Trainer of run 1 and its cache hit in run 2
    own = store.provenance(ids["model1"]).steps
    cached = next(s for s in own if s.id == ids["train2"])
    assert cached.state == "CACHED" and cached.name == "Trainer"
    assert ids["train1"] in {s.id for s in own}
    d = p.to_dict()
    json.dumps(d)
    step = next(s for s in d["steps"] if s["id"] == ids["train1"])
    assert step["runs"] == ["taxi-run-1"] and step["experiment"] == "taxi"
    assert {c["type"] for c in step["contexts"]} == {"pipeline", "pipeline_run", "node"}
    assert p.graph.has_edge(f"execution:{ids['train1']}", f"artifact:{ids['model1']}", "OUTPUT:model[0]")
    assert p.graph.nodes[f"artifact:{ids['graph']}"]["type_name"] == "TransformGraph"
    assert p.graph.nodes[f"artifact:{ids['graph']}"]["base_type"] is None
    arts, execs = brute_force_upstream(store.mlmd, ids["pushed1"])
    assert {a.id for a in p.artifacts} == arts and set(steps) == execs


def test_resolver_internal_output_is_an_edge_not_a_producer(taxi: tuple[lineage.Store, dict[str, Any]]) -> None:
    store, ids = taxi
    g = store.graph()
    edge = g.get_edge_data(f"execution:{ids['resolver']}", f"artifact:{ids['model1']}",
                           "INTERNAL_OUTPUT:baseline[0]")
    assert edge is not None and edge["event_type"] == "INTERNAL_OUTPUT"
    p = store.provenance(ids["model1"])
    assert ids["resolver"] not in [s.id for s in p.steps]
    assert {s.id for s in p.steps} >= {ids["train1"], ids["train2"]}
    # Run 3's blessing depends on run 1's model through the Evaluator's INPUT.
    blessing3 = store.provenance(ids["pushed3"])
    assert ids["model1"] in [a.id for a in blessing3.artifacts]
    assert ids["resolver"] not in [s.id for s in blessing3.steps]
    assert store.impact(ids["model1"]).executions[0].id not in (ids["resolver"],)


@pytest.mark.parametrize("event", [pb.Event.DECLARED_OUTPUT, pb.Event.PENDING_OUTPUT])
def test_declared_and_pending_outputs_are_never_produced(store: lineage.Store, event: int) -> None:
    """A failed TFX Trainer declared (or left pending) the model it would write: nothing
    reports it as produced, the exports included."""
    tfx = Tfx(store.mlmd)
    run = tfx.run("r")
    _e, o = tfx.component(run, "CsvExampleGen", {}, {"examples": "Examples"})
    _failed, out = tfx.component(run, "Trainer", {"examples": o["examples"]},
                                {"model": "Model"}, state=pb.Execution.FAILED,
                                output_event=event)
    model = out["model"].id
    assert store.provenance(model).steps == []
    assert model not in {a.id for a in store.impact(o["examples"].id).artifacts}
    ol = store.export(model, "openlineage").document
    assert all(not ev["outputs"] for ev in ol)
    prov = store.export(model, "prov").document
    assert "wasGeneratedBy" not in prov


def test_impact_of_the_examples_reaches_every_pushed_model(taxi: tuple[lineage.Store, dict[str, Any]]) -> None:
    store, ids = taxi
    imp = store.impact(ids["examples"])
    assert sorted(a.id for a in imp.by_type["PushedModel"]) == sorted([ids["pushed1"], ids["pushed3"]])
    assert sorted(a.id for a in imp.by_type["Model"]) == sorted([ids["model1"], ids["model3"]])
    assert len(imp.by_type["Trainer"]) == 3
    arts, execs = brute_force_downstream(store.mlmd, ids["examples"])
    assert {a.id for a in imp.artifacts} == arts and {e.id for e in imp.executions} == execs
    json.dumps(imp.to_dict())


def test_diff_of_two_models(taxi: tuple[lineage.Store, dict[str, Any]]) -> None:
    store, ids = taxi
    d = store.diff(ids["model1"], ids["model3"])
    # Shared executions (ExampleGen … Transform) are the same; the Trainers are paired by
    # their place, and the changed key of their JSON settings is named.
    assert d.params == {"Trainer": {"train_args.num_steps": (1000, 5000)}}
    assert d.datasets == []  # the same Examples
    # Run 2's cached Trainer re-emitted run 1's model: not a step of its own in the diff,
    # and drawn like the call it reused.
    assert d.only_in_a == [] and d.only_in_b == []
    nodes = dict(d.graph.nodes(data="diff"))
    assert nodes[f"execution:{ids['train1']}"] == nodes[f"execution:{ids['train3']}"] == "changed"
    assert nodes[f"execution:{ids['train2']}"] == "changed"
    assert nodes[f"execution:{ids['gen']}"] == "same" and nodes[f"artifact:{ids['model3']}"] == "changed"
    json.dumps(d.to_dict())
    # Run 3's pushed model depends on run 1's model too (the Evaluator's baseline). That
    # side path does not hide the change: the Trainers at the Pusher's model input are
    # paired, and run 1's Trainer, read as the baseline, is named by where it was read.
    d = store.diff(ids["pushed1"], ids["pushed3"])
    assert d.params == {"Trainer": {"train_args.num_steps": (1000, 5000)}}
    assert d.only_in_a == [] and d.only_in_b == ["Trainer (via Evaluator.baseline_model[0])"]
    assert "Trainer.train_args.num_steps: 1000 -> 5000" in str(d)


def test_graph_of_a_pipeline_run_and_compare(taxi: tuple[lineage.Store, dict[str, Any]]) -> None:
    store, ids = taxi
    g = store.graph(run="taxi-run-2")
    assert {n for n, k in g.nodes(data="kind") if k == "execution"} == {f"execution:{ids['train2']}"}
    assert f"artifact:{ids['model1']}" in g and f"artifact:{ids['examples']}" in g
    assert sorted(g.nodes[f"execution:{ids['train2']}"]["runs"]) == ["taxi", "taxi-run-2", "taxi.Trainer"]
    ge = store.graph(experiment="taxi")  # the pipeline context, parent of its runs
    assert f"execution:{ids['push3']}" in ge and f"execution:{ids['gen']}" in ge
    c = store.compare(["taxi-run-1", "taxi-run-3"])
    differing = {col.name for col in c.columns if col.differs}
    assert "Trainer.train_args" in differing
    assert "Trainer.module_file" not in differing


def test_tfx_pipeline_runs_are_runs(taxi: tuple[lineage.Store, dict[str, Any]]) -> None:
    store, _ids = taxi
    runs = store.runs()
    assert [(r.name, r.type_name, r.experiment) for r in runs] == [
        ("taxi-run-1", "pipeline_run", "taxi"), ("taxi-run-2", "pipeline_run", "taxi"),
        ("taxi-run-3", "pipeline_run", "taxi")]
    assert [r.name for r in store.runs(experiment="taxi")] == [r.name for r in runs]
    assert store.run("taxi/taxi-run-2").name == "taxi-run-2"
    found = store.search_runs()
    assert {r.name for r in found.runs} == {"taxi-run-1", "taxi-run-2", "taxi-run-3"}


def test_tfx_node_names_are_step_filters(taxi: tuple[lineage.Store, dict[str, Any]]) -> None:
    store, ids = taxi
    assert [e.id for e in store.executions(step="Trainer")] == [
        ids["train1"], ids["train2"], ids["train3"]]
    assert [e.id for e in store.executions(step="Trainer", run="taxi-run-3")] == [ids["train3"]]
    assert [e.id for e in store.executions(step=COMPONENTS["Pusher"])] == [
        ids["push1"], ids["push3"]]
    assert [e.id for e in store.executions(step="taxi.Evaluator")] == [ids["eval1"], ids["eval3"]]


def test_graph_of_a_pipeline_run_is_clustered_by_its_run(
    taxi: tuple[lineage.Store, dict[str, Any]]
) -> None:
    store, _ids = taxi
    dot = lineage.render.to_dot(store.graph(run="taxi-run-3"), fold=False)
    assert "run: taxi-run-3" in dot and "run: taxi\"" not in dot and "run: taxi<" not in dot
    whole = lineage.render.to_dot(store.graph(), fold=False)
    assert all(f"run: taxi-run-{i}" in whole for i in (1, 3))


def test_compare_keeps_two_components_of_one_type(store: lineage.Store) -> None:
    tfx = Tfx(store.mlmd)
    run = tfx.run("two-trainers")
    _e, o = tfx.component(run, "CsvExampleGen", {}, {"examples": "Examples"})
    for steps in (100, 200):
        tfx.component(run, "Trainer", {"examples": o["examples"]}, {"model": "Model"},
                      {"train_args": {"num_steps": steps}})
    c = store.compare(["two-trainers"])
    values = c.values[0]
    assert values["Trainer.train_args"] == {"num_steps": 100}
    assert values["Trainer#2.train_args"] == {"num_steps": 200}


def test_every_artifact_matches_brute_force(taxi: tuple[lineage.Store, dict[str, Any]]) -> None:
    store, _ids = taxi
    for art in store.mlmd.get_artifacts():
        up_a, up_e = brute_force_upstream(store.mlmd, art.id)
        p = store.provenance(art.id)
        assert ({a.id for a in p.artifacts}, {s.id for s in p.steps}) == (up_a, up_e)
        down_a, down_e = brute_force_downstream(store.mlmd, art.id)
        i = store.impact(art.id)
        assert ({a.id for a in i.artifacts}, {e.id for e in i.executions}) == (down_a, down_e)


def test_read_only_open_of_a_tfx_sqlite_file(tmp_path: Path) -> None:
    path = tmp_path / "tfx" / "metadata.sqlite"
    path.parent.mkdir()
    config = pb.ConnectionConfig()
    config.sqlite.filename_uri = str(path)
    config.sqlite.connection_mode = pb.SqliteMetadataSourceConfig.READWRITE_OPENCREATE
    ids = write_taxi(metadata_store.MetadataStore(config))
    store = lineage.connect(path, read_only=True)
    pushed = store.artifacts(type="PushedModel")
    assert [a.id for a in pushed] == [ids["pushed1"], ids["pushed3"]]
    p = store.provenance(f"artifact:{ids['pushed3']}")
    assert p.roots == [ids["examples"]]
    g = store.graph(contexts=True)
    assert g.nodes["context:1"]["type_name"] == "pipeline"
    v = store.verify()
    # TFX records no fingerprints, and its /pipeline_root uris do not exist here
    assert {r.status for r in v.results} == {"missing"} and not v.ok


def test_kubeflow_like_executions_typed_properties_are_params(store: lineage.Store) -> None:
    """Kubeflow Pipelines v1 kept component settings as typed execution properties."""
    mlmd = store.mlmd
    at = pb.ArtifactType(name="system.Dataset")
    at.properties["display_name"] = pb.STRING
    atid = mlmd.put_artifact_type(at)
    et = pb.ExecutionType(name="system.ContainerExecution")
    for prop in ("component_id", "pipeline_name", "run_id"):
        et.properties[prop] = pb.STRING
    etid = mlmd.put_execution_type(et)
    ctid = mlmd.put_context_type(pb.ContextType(name="system.PipelineRun"))
    [ctx] = mlmd.put_contexts([pb.Context(type_id=ctid, name="run-abc")])
    data_in = pb.Artifact(type_id=atid, uri="minio://bucket/raw")
    data_in.properties["display_name"].string_value = "raw"
    [raw] = mlmd.put_artifacts([data_in])
    ex = pb.Execution(type_id=etid, last_known_state=pb.Execution.COMPLETE)
    ex.properties["component_id"].string_value = "preprocess"
    ex.properties["pipeline_name"].string_value = "churn"
    ex.custom_properties["learning_rate"].double_value = 0.3
    ev_in = pb.Event(type=pb.Event.INPUT)
    ev_in.path.steps.add().key = "input"
    ev_out = pb.Event(type=pb.Event.DECLARED_OUTPUT)  # declared, then the real OUTPUT
    ev_out.path.steps.add().key = "output"
    out = pb.Artifact(type_id=atid, uri="minio://bucket/clean")
    eid, [_, clean], _ = mlmd.put_execution(
        ex, [(mlmd.get_artifacts_by_id([raw])[0], ev_in), (out, ev_out)],
        mlmd.get_contexts_by_id([ctx]))
    p = store.provenance(clean)
    assert p.steps == []  # a declared output is not a production
    real = pb.Event(type=pb.Event.OUTPUT, artifact_id=clean, execution_id=eid)
    real.path.steps.add().key = "output"
    mlmd.put_events([real])
    p = store.provenance(clean)
    [step] = p.steps
    assert step.params == {"component_id": "preprocess", "pipeline_name": "churn",
                           "learning_rate": 0.3}
    assert step.name == "ContainerExecution"
    assert p.to_dict()["steps"][0]["runs"] == ["run-abc"]
    assert p.roots == [raw] and p.datasets == []  # no DATASET base type declared
    g = store.graph()
    assert {k for _, _, k in g.edges(keys=True)} == {"INPUT:input", "DECLARED_OUTPUT:output",
                                                     "OUTPUT:output"}
