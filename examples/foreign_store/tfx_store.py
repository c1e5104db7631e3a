"""`lineage` on a store it did not write: a TFX-shaped MLMD store, made with raw ml_metadata.

The first half writes what a TFX 1.x pipeline writes (artifact types Examples,
ExampleStatistics, Schema, Model, ModelBlessing, PushedModel; execution types named by
component class path; contexts pipeline / pipeline_run / node; event paths
``[{key: channel}, {index: 0}]``; component settings as JSON strings in custom
properties; a second pipeline run whose Trainer was cached and re-emits the first run's
model). The second half opens it read-only with ``lineage`` and asks for the provenance
of the pushed model, and draws it.

    python examples/foreign_store/tfx_store.py [STORE_PATH]
"""

from __future__ import annotations

import json
import sys
import tempfile
from pathlib import Path

from ml_metadata.metadata_store import metadata_store
from ml_metadata.proto import metadata_store_pb2 as pb

import lineage

PIPELINE = "taxi"
ARTIFACT_TYPES = {
    "Examples": pb.ArtifactType.DATASET,
    "ExampleStatistics": pb.ArtifactType.STATISTICS,
    "Schema": None,
    "Model": pb.ArtifactType.MODEL,
    "ModelBlessing": None,
    "PushedModel": pb.ArtifactType.MODEL,
}
COMPONENTS = {
    "CsvExampleGen": "tfx.components.example_gen.csv_example_gen.component.CsvExampleGen",
    "StatisticsGen": "tfx.components.statistics_gen.component.StatisticsGen",
    "SchemaGen": "tfx.components.schema_gen.component.SchemaGen",
    "Trainer": "tfx.components.trainer.component.Trainer",
    "Evaluator": "tfx.components.evaluator.component.Evaluator",
    "Pusher": "tfx.components.pusher.component.Pusher",
}


class _TfxWriter:
    """Writes executions the way TFX's launcher does (one put_execution per component)."""

    def __init__(self, store: metadata_store.MetadataStore, root: Path) -> None:
        self.store, self.root = store, root
        self.made = 0
        self.types = {}
        for name, base in ARTIFACT_TYPES.items():
            t = pb.ArtifactType(name=name)
            if base is not None:
                t.base_type = base
            t.properties["span"] = pb.INT
            t.properties["version"] = pb.INT
            self.types[name] = store.put_artifact_type(t)
        self.exec_types = {
            short: store.put_execution_type(pb.ExecutionType(name=full))
            for short, full in COMPONENTS.items()
        }
        self.ctx_types = {
            name: store.put_context_type(pb.ContextType(name=name))
            for name in ("pipeline", "pipeline_run", "node")
        }
        [self.pipeline] = self._contexts([("pipeline", PIPELINE)])

    def _contexts(self, wanted: list[tuple[str, str]]) -> list[pb.Context]:
        out = []
        for type_name, name in wanted:
            found = self.store.get_context_by_type_and_name(type_name, name)
            if found is None:
                ctx = pb.Context(type_id=self.ctx_types[type_name], name=name)
                [ctx.id] = self.store.put_contexts([ctx])
                found = ctx
            out.append(found)
        return out

    def new_run(self, run_id: str) -> pb.Context:
        [run] = self._contexts([("pipeline_run", run_id)])
        self.store.put_parent_contexts([pb.ParentContext(child_id=run.id, parent_id=self.pipeline.id)])
        return run

    def component(
        self,
        run: pb.Context,
        short: str,
        inputs: dict[str, pb.Artifact],
        outputs: dict[str, str | pb.Artifact],
        settings: dict[str, object] | None = None,
        state: int = pb.Execution.COMPLETE,
    ) -> dict[str, pb.Artifact]:
        execution = pb.Execution(type_id=self.exec_types[short], last_known_state=state)
        for key, value in (settings or {}).items():
            execution.custom_properties[key].string_value = json.dumps(value)
        pairs = []
        for channel, artifact in inputs.items():
            event = pb.Event(type=pb.Event.INPUT)
            event.path.steps.add().key = channel
            event.path.steps.add().index = 0
            pairs.append((artifact, event))
        made: dict[str, pb.Artifact] = {}
        for channel, spec in outputs.items():
            if isinstance(spec, pb.Artifact):  # a cached component re-emits an old output
                artifact = spec
            else:
                self.made += 1
                uri = self.root / short / channel / str(self.made)
                artifact = pb.Artifact(type_id=self.types[spec], uri=str(uri), state=pb.Artifact.LIVE)
                artifact.properties["span"].int_value = 0
            event = pb.Event(type=pb.Event.OUTPUT)
            event.path.steps.add().key = channel
            event.path.steps.add().index = 0
            pairs.append((artifact, event))
            made[channel] = artifact
        [node] = self._contexts([("node", f"{PIPELINE}.{short}")])
        _, ids, _ = self.store.put_execution(
            execution, pairs, [self.pipeline, run, node], reuse_context_if_already_exist=True
        )
        out_ids = ids[len(inputs):]
        stored = {a.id: a for a in self.store.get_artifacts_by_id(out_ids)}
        return {channel: stored[i] for channel, i in zip(made, out_ids, strict=True)}


def write_tfx_store(path: str | Path) -> None:
    """Write two TFX pipeline runs into a new SQLite MLMD store at ``path``."""
    config = pb.ConnectionConfig()
    config.sqlite.filename_uri = str(path)
    config.sqlite.connection_mode = pb.SqliteMetadataSourceConfig.READWRITE_OPENCREATE
    tfx = _TfxWriter(metadata_store.MetadataStore(config), Path(path).parent / "pipeline_root")

    run1 = tfx.new_run("taxi-2026-11-01T00:00:00")
    examples = tfx.component(run1, "CsvExampleGen", {}, {"examples": "Examples"},
                             {"input_base": "/data/taxi", "output_config": {"split": ["train", "eval"]}})["examples"]
    stats = tfx.component(run1, "StatisticsGen", {"examples": examples}, {"statistics": "ExampleStatistics"})["statistics"]
    schema = tfx.component(run1, "SchemaGen", {"statistics": stats}, {"schema": "Schema"},
                           {"infer_feature_shape": 1})["schema"]
    model = tfx.component(run1, "Trainer", {"examples": examples, "schema": schema}, {"model": "Model"},
                          {"train_args": {"num_steps": 1000}, "eval_args": {"num_steps": 100},
                           "module_file": "taxi_utils.py"})["model"]
    blessing = tfx.component(run1, "Evaluator", {"examples": examples, "model": model},
                             {"blessing": "ModelBlessing"}, {"eval_config": {"metric": "AUC"}})["blessing"]
    tfx.component(run1, "Pusher", {"model": model, "model_blessing": blessing},
                  {"pushed_model": "PushedModel"}, {"push_destination": "/serving/taxi"})

    # A second run: same data, the Trainer is a cache hit and re-emits run 1's model.
    run2 = tfx.new_run("taxi-2026-11-02T00:00:00")
    tfx.component(run2, "Trainer", {"examples": examples, "schema": schema}, {"model": model},
                  {"train_args": {"num_steps": 1000}, "eval_args": {"num_steps": 100},
                   "module_file": "taxi_utils.py"}, state=pb.Execution.CACHED)


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    folder = Path(args[0]).parent if args else Path(tempfile.mkdtemp(prefix="tfx-store-"))
    path = Path(args[0]) if args else folder / "metadata.sqlite"
    folder.mkdir(parents=True, exist_ok=True)
    if not path.exists():
        write_tfx_store(path)
    print(f"a TFX-shaped store written with raw ml_metadata: {path}")

    store = lineage.connect(path, read_only=True)
    pushed = store.artifacts(type="PushedModel")[-1]
    prov = store.provenance(pushed)
    print(f"provenance of {pushed.type_name} artifact:{pushed.id} ({pushed.uri}):")
    for step in prov.steps:
        print(f"  {step.name:<14} {step.state:<8} params={step.params}")
    print("  datasets: " + ", ".join(f"{d.type_name} artifact:{d.id} {d.uri}" for d in prov.datasets))
    picture = lineage.render(prov, folder / "tfx_provenance.svg")
    print(f"diagram: {picture}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
