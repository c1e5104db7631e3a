"""Exports say only what happened, in documents other tools read: OpenLineage events checked
with the official JSON schema (spec files shipped in tests/data/openlineage) and rebuilt
with openlineage-python's classes; PROV-JSON read back with the ``prov`` package.

Stores: our own pipeline (tests/test_export.py), the TFX-shaped store of
tests/test_foreign_stores.py, and a raw MLMD store whose executions declare outputs
(DECLARED_OUTPUT), leave them pending (PENDING_OUTPUT) or link them as orchestrator
bookkeeping (INTERNAL_OUTPUT) besides producing one for real.
"""

from __future__ import annotations

import fnmatch
import json
import re
from pathlib import Path
from typing import Any

import attr
import pytest
from jsonschema import Draft202012Validator
from ml_metadata.proto import metadata_store_pb2 as pb
from referencing import Registry, Resource
from test_export import record_pipeline
from test_foreign_stores import write_taxi

import lineage
from lineage.formats.openlineage import FACET_PREFIX, OL_SCHEMA, SCHEMA_BASE, facet_schemas

try:
    import tomllib
except ModuleNotFoundError:  # Python 3.10
    import tomli as tomllib  # type: ignore[no-redef]

ROOT = Path(__file__).resolve().parent.parent
SPEC = Path(__file__).resolve().parent / "data" / "openlineage"
STANDARD_FACETS = {"parent", "errorMessage", "jobType", "version"}


# --- stores ---------------------------------------------------------------------------------


def declared_store(path: Path) -> tuple[lineage.Store, dict[str, int]]:
    """One execution reads ``raw``, produces ``clean`` (OUTPUT) and only declares
    ``promised`` (DECLARED_OUTPUT), leaves ``pending`` (PENDING_OUTPUT) and links
    ``selected`` (INTERNAL_OUTPUT); a second one FAILED after producing ``partial``."""
    store = lineage.connect(path)
    mlmd = store.mlmd
    atid = mlmd.put_artifact_type(pb.ArtifactType(name="system.Dataset",
                                                  base_type=pb.ArtifactType.DATASET))
    etid = mlmd.put_execution_type(pb.ExecutionType(name="system.ContainerExecution"))
    ctid = mlmd.put_context_type(pb.ContextType(name="system.PipelineRun"))
    [ctx] = mlmd.put_contexts([pb.Context(type_id=ctid, name="run-abc")])
    [raw] = mlmd.put_artifacts([pb.Artifact(type_id=atid, uri="s3://bucket/raw")])
    names = ["clean", "promised", "pending", "selected"]
    kinds = [pb.Event.OUTPUT, pb.Event.DECLARED_OUTPUT, pb.Event.PENDING_OUTPUT,
             pb.Event.INTERNAL_OUTPUT]
    pairs = [(mlmd.get_artifacts_by_id([raw])[0], pb.Event(type=pb.Event.INPUT))]
    for name, kind in zip(names, kinds, strict=True):
        ev = pb.Event(type=kind)
        ev.path.steps.add().key = name
        pairs.append((pb.Artifact(type_id=atid, uri=f"s3://bucket/{name}"), ev))
    ex = pb.Execution(type_id=etid, last_known_state=pb.Execution.COMPLETE)
    ex.custom_properties["learning_rate"].double_value = 0.3
    _, ids, _ = mlmd.put_execution(ex, pairs, mlmd.get_contexts_by_id([ctx]))
    out = dict(zip(["raw", *names], ids, strict=True))
    failed = pb.Execution(type_id=etid, last_known_state=pb.Execution.FAILED)
    ev = pb.Event(type=pb.Event.OUTPUT)
    ev.path.steps.add().key = "partial"
    clean = mlmd.get_artifacts_by_id([out["clean"]])[0]
    _, [_, partial], _ = mlmd.put_execution(
        failed, [(clean, pb.Event(type=pb.Event.INPUT)),
                 (pb.Artifact(type_id=atid, uri="s3://bucket/partial"), ev)],
        mlmd.get_contexts_by_id([ctx]))
    out["partial"] = partial
    return store, out


# --- OpenLineage: the official schema -------------------------------------------------------


def registry() -> Registry:
    """The OpenLineage spec files shipped with the tests and our facet schemas from the
    package, each under its ``$id``: nothing is downloaded."""
    resources = [Resource.from_contents(json.loads(p.read_text()))
                 for p in sorted(SPEC.glob("*.json"))]
    resources += [Resource.from_contents(s) for s in facet_schemas().values()]
    return Registry().with_resources((r.contents["$id"], r) for r in resources)


def validate(document: dict[str, Any], url: str, reg: Registry) -> None:
    Draft202012Validator({"$ref": url}, registry=reg,
                         format_checker=Draft202012Validator.FORMAT_CHECKER).validate(document)


def all_facets(event: dict[str, Any]) -> list[tuple[str, str, dict[str, Any]]]:
    """(entity kind, key, facet) of every facet of an event."""
    out = [("Run", k, f) for k, f in event["run"].get("facets", {}).items()]
    out += [("Job", k, f) for k, f in event["job"].get("facets", {}).items()]
    for side in ("inputs", "outputs"):
        for d in event[side]:
            out += [("Dataset", k, f) for k, f in d.get("facets", {}).items()]
    return out


def exported_events(tmp_path: Path) -> list[dict[str, Any]]:
    a = lineage.connect(tmp_path / "ours" / "metadata.sqlite")
    rec = record_pipeline(a, tmp_path / "files")
    tfx = lineage.connect(tmp_path / "tfx" / "metadata.sqlite")
    ids = write_taxi(tfx.mlmd)
    kube, kids = declared_store(tmp_path / "kube" / "metadata.sqlite")
    events = a.export(rec["metrics"], "openlineage").document
    events += tfx.export([ids["pushed1"], ids["pushed3"], ids["model1"]], "openlineage").document
    events += kube.export(kids["partial"], "openlineage").document
    return list(events)


def test_openlineage_events_follow_the_official_schema(tmp_path: Path) -> None:
    reg = registry()
    events = exported_events(tmp_path)
    assert {e["eventType"] for e in events} == {"COMPLETE", "FAIL"}
    for event in events:
        assert event["schemaURL"] == OL_SCHEMA
        validate(event, OL_SCHEMA, reg)
        for entity, key, facet in all_facets(event):
            validate(facet, facet["_schemaURL"], reg)  # each facet against its own schema
            assert facet["_producer"] == event["producer"]
            if key in STANDARD_FACETS:
                assert facet["_schemaURL"].startswith("https://openlineage.io/spec/facets/")
                continue
            # custom facets: key {prefix}_{name}, schema {Prefix}{Name}{Entity}Facet
            prefix, _, name = key.partition("_")
            assert prefix == FACET_PREFIX and re.fullmatch(r"[a-z][A-Za-z]*", name), key
            definition = facet["_schemaURL"].rsplit("/", 1)[-1]
            assert definition == f"MlmdLineage{name[0].upper()}{name[1:]}{entity}Facet"
            assert facet["_schemaURL"].startswith(SCHEMA_BASE)
    assert events[0]["producer"].endswith(f"/mlmd-lineage/{lineage.__version__}/")
    failed = next(e for e in events if e["eventType"] == "FAIL")
    assert failed["run"]["facets"]["errorMessage"]["message"] == "failed"


def test_our_facet_schemas_ship_in_the_package_under_their_urls() -> None:
    schemas = facet_schemas()
    folder = ROOT / "lineage" / "formats" / "schemas"
    assert sorted(p.name for p in folder.glob("*.json")) == sorted(
        u.rsplit("/", 1)[-1] for u in schemas)
    for url, schema in schemas.items():
        assert schema["$id"] == url and url.startswith(SCHEMA_BASE)
        name = url.rsplit("/", 1)[-1].removesuffix(".json")
        assert name in schema["$defs"]
        Draft202012Validator.check_schema(schema)
    config = tomllib.loads((ROOT / "pyproject.toml").read_text())
    patterns = config["tool"]["setuptools"]["package-data"]["lineage"]
    for p in folder.glob("*.json"):
        rel = p.relative_to(ROOT / "lineage").as_posix()
        assert any(fnmatch.fnmatch(rel, pat) for pat in patterns), rel


# --- OpenLineage: openlineage-python's classes ----------------------------------------------


def client_event(d: dict[str, Any]) -> Any:
    """Rebuild an event with openlineage-python's classes (their validators run: UUIDs,
    ISO times, URLs), our custom facets as subclasses of its facet classes."""
    from openlineage.client import event_v2 as ol
    from openlineage.client import facet_v2
    from openlineage.client.generated import (
        dataset_version_dataset,
        error_message_run,
        job_type_job,
        parent_run,
    )

    def facet(key: str, value: dict[str, Any], base: type) -> Any:
        fields = {k: v for k, v in value.items() if not k.startswith("_")}
        made: Any
        if key == "parent":
            made = parent_run.ParentRunFacet(
                run=parent_run.Run(**fields["run"]), job=parent_run.Job(**fields["job"]),
                producer=value["_producer"])
        elif key == "jobType":
            made = job_type_job.JobTypeJobFacet(**fields, producer=value["_producer"])
        elif key == "version":
            made = dataset_version_dataset.DatasetVersionDatasetFacet(
                **fields, producer=value["_producer"])
        elif key == "errorMessage":
            made = error_message_run.ErrorMessageRunFacet(**fields, producer=value["_producer"])
        else:
            cls = attr.make_class(value["_schemaURL"].rsplit("/", 1)[-1],
                                  {k: attr.field(default=None) for k in fields},
                                  bases=(base,), kw_only=True)
            cls._get_schema = staticmethod(lambda: value["_schemaURL"])
            made = cls(**fields, producer=value["_producer"])
        # the client's own classes name the same schema versions we do
        assert made._schemaURL == value["_schemaURL"], key
        return made

    def datasets(cls: type, items: list[dict[str, Any]]) -> list[Any]:
        return [cls(namespace=x["namespace"], name=x["name"],
                    facets={k: facet(k, f, facet_v2.DatasetFacet) for k, f in x["facets"].items()})
                for x in items]

    return ol.RunEvent(
        eventType=ol.RunState(d["eventType"]), eventTime=d["eventTime"],
        run=ol.Run(runId=d["run"]["runId"],
                   facets={k: facet(k, f, facet_v2.RunFacet) for k, f in d["run"]["facets"].items()}),
        job=ol.Job(namespace=d["job"]["namespace"], name=d["job"]["name"],
                   facets={k: facet(k, f, facet_v2.JobFacet) for k, f in d["job"]["facets"].items()}),
        inputs=datasets(ol.InputDataset, d["inputs"]),
        outputs=datasets(ol.OutputDataset, d["outputs"]),
        producer=d["producer"],
    )


def without_nulls(value: Any) -> Any:
    """Without None values and empty ``facets`` maps (the client drops the one, adds the
    other)."""
    if isinstance(value, dict):
        return {k: without_nulls(v) for k, v in value.items()
                if v is not None and not (k.endswith(("facets", "Facets")) and v == {})}
    if isinstance(value, list):
        return [without_nulls(v) for v in value]
    return value


def test_openlineage_events_rebuild_with_the_python_client(tmp_path: Path) -> None:
    from openlineage.client.serde import Serde

    for event in exported_events(tmp_path):
        rebuilt = client_event(event)
        assert rebuilt.schemaURL == event["schemaURL"]
        assert without_nulls(Serde.to_dict(rebuilt)) == without_nulls(event)


# --- what happened, and who the parent is ---------------------------------------------------


def test_declared_pending_and_internal_outputs_are_never_exported_as_produced(
    tmp_path: Path,
) -> None:
    from prov.model import ProvDocument, ProvGeneration

    store, ids = declared_store(tmp_path / "kube" / "metadata.sqlite")
    assert [s.name for s in store.provenance(ids["clean"]).steps] == ["ContainerExecution"]
    for ref in (ids["clean"], ids["partial"]):
        for event in store.export(ref, "openlineage").document:
            names = {o["name"] for o in event["outputs"]}
            assert names <= {"clean", "partial"}, names
            assert not names & {"promised", "pending", "selected"}
        doc = store.export(ref, "prov").document
        made = {g["prov:entity"] for g in doc["wasGeneratedBy"].values()}
        assert made <= {f"lineage:artifact/{ids[n]}" for n in ("clean", "partial")}
        derived = {d["prov:generatedEntity"] for d in doc.get("wasDerivedFrom", {}).values()}
        assert derived <= made
        back = ProvDocument.deserialize(content=json.dumps(doc), format="json")
        generated = {str(r.formal_attributes[0][1]) for r in back.get_records(ProvGeneration)}
        assert generated == made
    [event] = [e for e in store.export(ids["clean"], "openlineage").document]
    assert [o["name"] for o in event["outputs"]] == ["clean"]
    assert [i["name"] for i in event["inputs"]] == ["raw"]
    assert event["outputs"][0]["namespace"] == "s3://bucket"


def test_each_tfx_execution_has_its_own_pipeline_run_as_parent(tmp_path: Path) -> None:
    tfx = lineage.connect(tmp_path / "tfx" / "metadata.sqlite")
    ids = write_taxi(tfx.mlmd)
    events = tfx.export([ids["pushed1"], ids["pushed3"], ids["model1"]], "openlineage").document
    by_exec = {e["run"]["facets"]["mlmdLineage_execution"]["executionId"]: e for e in events}
    parents = {k: by_exec[ids[k]]["run"]["facets"]["parent"] for k in ("train1", "train2", "train3")}
    assert len({p["run"]["runId"] for p in parents.values()}) == 3
    assert {p["job"]["name"] for p in parents.values()} == {"taxi"}  # the pipeline
    by_run: dict[str, set[str]] = {}
    for eid in (ids[k] for k in ("gen", "train1", "push1", "train2", "train3", "push3")):
        ctx = by_exec[eid]["run"]["facets"]["mlmdLineage_execution"]["contexts"]
        [run] = [c["name"] for c in ctx if c["type"] == "pipeline_run"]
        by_run.setdefault(run, set()).add(by_exec[eid]["run"]["facets"]["parent"]["run"]["runId"])
    assert all(len(v) == 1 for v in by_run.values())  # one parent id per pipeline run
    assert len(by_run) == 3 and len(set().union(*by_run.values())) == 3


def test_run_ids_are_the_same_in_a_copy_and_after_an_import(tmp_path: Path) -> None:
    tfx = lineage.connect(tmp_path / "tfx" / "metadata.sqlite")
    ids = write_taxi(tfx.mlmd)
    b = lineage.connect(tmp_path / "b.sqlite")
    result = b.import_bundle(tfx.export(ids["pushed3"]).to_bytes())

    def run_ids(store: lineage.Store, ref: int) -> list[tuple[str, str]]:
        return sorted((e["run"]["runId"], e["run"]["facets"]["parent"]["run"]["runId"])
                      for e in store.export(ref, "openlineage").document)

    assert run_ids(b, result.artifacts[ids["pushed3"]]) == run_ids(tfx, ids["pushed3"])


# --- PROV: read back with the prov package --------------------------------------------------


def test_prov_json_reads_back_with_the_prov_package(tmp_path: Path) -> None:
    from prov.model import ProvActivity, ProvDocument, ProvEntity, ProvGeneration, ProvUsage

    a = lineage.connect(tmp_path / "a" / "metadata.sqlite")
    rec = record_pipeline(a, tmp_path / "files")
    p = a.provenance(rec["metrics"])
    text = a.export(rec["metrics"], "prov").to_bytes().decode()
    doc = ProvDocument.deserialize(content=text, format="json")
    entities = {str(r.identifier) for r in doc.get_records(ProvEntity)}
    activities = {str(r.identifier) for r in doc.get_records(ProvActivity)}
    assert {f"lineage:artifact/{x.id}" for x in [p.target, *p.artifacts]} <= entities
    assert activities == {f"lineage:execution/{s.id}" for s in p.steps}
    made = {(str(r.formal_attributes[1][1]), str(r.formal_attributes[0][1]))
            for r in doc.get_records(ProvGeneration)}
    used = {(str(r.formal_attributes[0][1]), str(r.formal_attributes[1][1]))
            for r in doc.get_records(ProvUsage)}
    for s in p.steps:
        act = f"lineage:execution/{s.id}"
        assert {(act, f"lineage:artifact/{o}") for o in s.outputs} <= made
        assert {(act, f"lineage:artifact/{i}") for i in s.inputs} <= used
    # and it survives prov's own round trip and PROV-N
    again = ProvDocument.deserialize(content=doc.serialize(format="json"), format="json")
    assert again == doc
    assert "wasGeneratedBy(" in doc.get_provn()


@pytest.mark.postgres
def test_exports_from_postgresql_validate(pg_uri: str, tmp_path: Path) -> None:
    from prov.model import ProvDocument

    store = lineage.connect(pg_uri)
    rec = record_pipeline(store, tmp_path / "files")
    reg = registry()
    for event in store.export(rec["metrics"], "openlineage").document:
        validate(event, OL_SCHEMA, reg)
        assert "***" in event["run"]["facets"]["mlmdLineage_execution"]["store"]
    doc = store.export(rec["metrics"], "prov").to_bytes().decode()
    assert ProvDocument.deserialize(content=doc, format="json").get_records()
