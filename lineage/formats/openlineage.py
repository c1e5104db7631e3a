"""The ``openlineage`` format: one OpenLineage ``RunEvent`` per execution (a JSON list, or
JSON lines for ``.jsonl``/``.ndjson``), following the OpenLineage spec 2-0-2.

- ``inputs``/``outputs``: the datasets the execution read (INPUT events) and produced
  (OUTPUT events). Declared, pending and internal events are no reads or productions and
  are left out (a ``DECLARED_OUTPUT`` may never have been written).
- ``run.runId``: a UUID derived from the execution's identity (its ``external_id``, or
  its content identity, :mod:`lineage.formats._ids`): the same in a copy of the store and
  after an import.
- the ``parent`` facet: the execution's own run (our ``Run``, TFX's ``pipeline_run``,
  Kubeflow's ``system.PipelineRun``), whose job is the run's experiment or pipeline.
- custom facets, named as the spec asks (``{prefix}_{name}``, prefix ``mlmdLineage``):
  ``mlmdLineage_execution`` on the run and ``mlmdLineage_artifact`` on each dataset. Their
  ``_schemaURL`` names JSON schemas the package ships (``lineage/formats/schemas/``), each
  with that URL as its ``$id``: :func:`facet_schemas` returns them.
- ``producer`` and every ``_producer``: :func:`producer`, which names the library's version.
"""

from __future__ import annotations

import functools
import json
import uuid
from collections.abc import Sequence
from importlib import resources
from typing import Any

from ml_metadata.proto import metadata_store_pb2 as pb

from lineage.artifacts import Artifact
from lineage.formats import _ids
from lineage.formats._slice import Slice, clean, iso, producer, seconds_ms
from lineage.records import Run

__all__ = ["FACET_PREFIX", "OL_SCHEMA", "SCHEMA_BASE", "facet_schemas", "to_openlineage"]

#: The spec version of the events written (``schemaURL`` of every event).
OL_SCHEMA = "https://openlineage.io/spec/2-0-2/OpenLineage.json#/$defs/RunEvent"
_FACETS = "https://openlineage.io/spec/facets"
_OL_FACET_SCHEMAS = {
    "version": f"{_FACETS}/1-0-1/DatasetVersionDatasetFacet.json#/$defs/DatasetVersionDatasetFacet",
    "parent": f"{_FACETS}/1-2-0/ParentRunFacet.json#/$defs/ParentRunFacet",
    "errorMessage": f"{_FACETS}/1-0-1/ErrorMessageRunFacet.json#/$defs/ErrorMessageRunFacet",
    "jobType": f"{_FACETS}/2-0-4/JobTypeJobFacet.json#/$defs/JobTypeJobFacet",
}
#: Prefix of our custom facets (keys ``mlmdLineage_<name>``, schemas ``MlmdLineage…Facet``).
FACET_PREFIX = "mlmdLineage"
#: Where the project publishes the JSON schemas of its facets (the ``$id`` of each file
#: in ``lineage/formats/schemas/``).
SCHEMA_BASE = "https://mlmd-lineage.github.io/spec/facets/1-0-0/"
_ARTIFACT_FACET = "MlmdLineageArtifactDatasetFacet"
_EXECUTION_FACET = "MlmdLineageExecutionRunFacet"
#: MLMD execution state → OpenLineage event type.
_OL_EVENT_TYPES = {
    "NEW": "START", "RUNNING": "RUNNING", "COMPLETE": "COMPLETE", "CACHED": "COMPLETE",
    "FAILED": "FAIL", "CANCELED": "ABORT",
}
_OBJECT_STORES = ("s3", "s3a", "s3n", "gs", "gcs", "abfs", "abfss", "wasb", "wasbs", "hdfs")


def _schema_url(name: str) -> str:
    return f"{SCHEMA_BASE}{name}.json#/$defs/{name}"


@functools.cache
def _load_schemas() -> tuple[tuple[str, str], ...]:
    folder = resources.files("lineage.formats").joinpath("schemas")
    out = []
    for name in (_ARTIFACT_FACET, _EXECUTION_FACET):
        text = folder.joinpath(f"{name}.json").read_text(encoding="utf-8")
        out.append((f"{SCHEMA_BASE}{name}.json", text))
    return tuple(out)


def facet_schemas() -> dict[str, dict[str, Any]]:
    """The JSON schemas of our custom facets, by URL (each schema's ``$id``), read from
    the package.

    Example:
        >>> sorted(url.rsplit("/", 1)[-1] for url in facet_schemas())
        ['MlmdLineageArtifactDatasetFacet.json', 'MlmdLineageExecutionRunFacet.json']
    """
    return {url: json.loads(text) for url, text in _load_schemas()}


def _uuid(identity: str) -> str:
    return str(uuid.uuid5(uuid.NAMESPACE_URL, f"mlmd-lineage:{identity}"))


def _artifact_identity(sl: Slice, proto: pb.Artifact) -> str:
    if proto.external_id:
        return str(proto.external_id)
    types = sl.store._types("artifact", [proto.type_id])
    tname = types[proto.type_id].name if proto.type_id in types else ""
    return _ids.artifact_identity(tname, proto.name, proto.uri, proto.create_time_since_epoch)


def _execution_uuid(sl: Slice, proto: pb.Execution, inputs: Sequence[pb.Event]) -> str:
    """From the execution's identity; ``inputs``: its INPUT events."""
    if proto.external_id:
        return _uuid(proto.external_id)
    types = sl.store._types("execution", [proto.type_id])
    tname = types[proto.type_id].name if proto.type_id in types else ""
    reads = [(_artifact_identity(sl, sl.artifacts[ev.artifact_id]), _ids.path_text(ev.path.steps))
             for ev in inputs if ev.artifact_id in sl.artifacts]
    return _uuid(_ids.execution_identity(tname, proto.name, proto.create_time_since_epoch, reads))


def _context_uuid(sl: Slice, proto: pb.Context) -> str:
    if proto.external_id:
        return _uuid(proto.external_id)
    types = sl.store._types("context", [proto.type_id])
    tname = types[proto.type_id].name if proto.type_id in types else ""
    return _uuid(_ids.context_identity(tname, proto.name, proto.create_time_since_epoch))


def _is_run(run: Run) -> bool:
    """Our ``Run``, TFX's ``pipeline_run``, Kubeflow's ``system.PipelineRun``."""
    kind = run.type_name.lower().replace("_", "").replace(".", "")
    return run.type_name == "Run" or kind.endswith("run")


def _dataset_name(a: Artifact, secrets: Sequence[str]) -> tuple[str, str]:
    """OpenLineage (namespace, name) of an artifact, from its URI (naming spec)."""
    uri = clean(a.uri or "", secrets)
    if not uri:
        return "lineage", f"{a.type_name}/{a.name}@{a.version}" if a.version else f"artifact/{a.id}"
    if "://" not in uri:
        return "file", uri
    scheme, rest = uri.split("://", 1)
    host, _, path = rest.partition("/")
    if scheme.lower() == "file":
        return "file", "/" + path
    if scheme.lower() in _OBJECT_STORES:
        return f"{scheme}://{host}", path
    return f"{scheme}://{host}", "/" + path


def _facet(schema: str, **fields: Any) -> dict[str, Any]:
    return {"_producer": producer(), "_schemaURL": schema, **fields}


def _ol_dataset(a: Artifact, secrets: Sequence[str]) -> dict[str, Any]:
    namespace, name = _dataset_name(a, secrets)
    facets: dict[str, Any] = {
        f"{FACET_PREFIX}_artifact": _facet(
            _schema_url(_ARTIFACT_FACET), artifactId=a.id, type=a.type_name, name=a.name,
            version=a.version, fingerprint=a.fingerprint, state=a.state),
    }
    if a.fingerprint or a.version:
        facets["version"] = _facet(_OL_FACET_SCHEMAS["version"],
                                   datasetVersion=a.fingerprint or str(a.version))
    return {"namespace": namespace, "name": name, "facets": facets}


def to_openlineage(sl: Slice, secrets: Sequence[str], namespace: str = "lineage",
                   ) -> list[dict[str, Any]]:
    read: dict[int, list[pb.Event]] = {}
    made: dict[int, set[int]] = {}
    for ev in sl.events:
        if ev.type == pb.Event.INPUT:
            read.setdefault(ev.execution_id, []).append(ev)
        elif ev.type == pb.Event.OUTPUT:
            made.setdefault(ev.execution_id, set()).add(ev.artifact_id)
    events = []
    for eid in sorted(sl.steps):
        step, proto = sl.steps[eid], sl.executions[eid]
        props = step.properties
        when = (seconds_ms(props.get("end_time")) or seconds_ms(props.get("start_time"))
                or step.update_time or step.create_time)
        contexts = [r for r in sl.runs.get(eid, []) if r.id in sl.contexts]
        used = {ev.artifact_id for ev in read.get(eid, [])}
        run_facets: dict[str, Any] = {
            f"{FACET_PREFIX}_execution": _facet(
                _schema_url(_EXECUTION_FACET), executionId=step.id, type=step.type_name,
                state=step.state, params=step.params,
                contexts=[{"type": r.type_name, "name": r.name} for r in contexts],
                store=clean(sl.store.uri, secrets)),
        }
        parent = next((r for r in contexts if _is_run(r)), None)
        if parent is not None:
            run_facets["parent"] = _facet(
                _OL_FACET_SCHEMAS["parent"],
                run={"runId": _context_uuid(sl, sl.contexts[parent.id])},
                job={"namespace": namespace,
                     "name": parent.experiment or parent.run_name or parent.name},
            )
        if step.state == "FAILED":
            error = _facet(_OL_FACET_SCHEMAS["errorMessage"],
                           message=clean(step.error or "failed", secrets),
                           programmingLanguage="python")
            if isinstance(props.get("traceback"), str) and props["traceback"]:
                error["stackTrace"] = clean(props["traceback"], secrets)
            run_facets["errorMessage"] = error
        job_facets = {"jobType": _facet(_OL_FACET_SCHEMAS["jobType"], processingType="BATCH",
                                        integration="MLMD-LINEAGE",
                                        jobType=step.base_type or "STEP")}
        events.append({
            "eventType": _OL_EVENT_TYPES.get(step.state, "OTHER"),
            "eventTime": iso(when) or "1970-01-01T00:00:00.000Z",
            "run": {"runId": _execution_uuid(sl, proto, read.get(eid, [])),
                    "facets": run_facets},
            "job": {"namespace": namespace, "name": step.name, "facets": job_facets},
            "inputs": [_ol_dataset(sl.records[i], secrets) for i in step.inputs
                       if i in sl.records and i in used],
            "outputs": [_ol_dataset(sl.records[i], secrets) for i in step.outputs
                        if i in sl.records and i in made.get(eid, ())],
            "producer": producer(),
            "schemaURL": OL_SCHEMA,
        })
    return events
