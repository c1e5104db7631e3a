"""The ``openlineage`` format: one OpenLineage ``RunEvent`` per execution (a JSON list, or
JSON lines for ``.jsonl``/``.ndjson``)."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from typing import Any

from lineage.artifacts import Artifact
from lineage.formats._slice import PRODUCER, Slice, clean, iso, seconds_ms

__all__ = ["to_openlineage"]

OL_SCHEMA = "https://openlineage.io/spec/2-0-2/OpenLineage.json#/$defs/RunEvent"
_FACETS = "https://openlineage.io/spec/facets"
_OL_FACET_SCHEMAS = {
    "version": f"{_FACETS}/1-0-1/DatasetVersionDatasetFacet.json#/$defs/DatasetVersionDatasetFacet",
    "parent": f"{_FACETS}/1-0-1/ParentRunFacet.json#/$defs/ParentRunFacet",
    "errorMessage": f"{_FACETS}/1-0-1/ErrorMessageRunFacet.json#/$defs/ErrorMessageRunFacet",
    "jobType": f"{_FACETS}/2-0-3/JobTypeJobFacet.json#/$defs/JobTypeJobFacet",
}
_CUSTOM_FACET = PRODUCER + "#/$defs/"
#: MLMD execution state → OpenLineage event type.
_OL_EVENT_TYPES = {
    "NEW": "START", "RUNNING": "RUNNING", "COMPLETE": "COMPLETE", "CACHED": "COMPLETE",
    "FAILED": "FAIL", "CANCELED": "ABORT",
}
_OBJECT_STORES = ("s3", "s3a", "s3n", "gs", "gcs", "abfs", "abfss", "wasb", "wasbs", "hdfs")
# Our properties that hold ids of other records, remapped on import.

def _run_uuid(sl: Slice, kind: str, proto: Any) -> str:
    """A UUID stable across exports: from the record's unique MLMD name when it has one
    (survives an import into another store), else from the store and the id."""
    types = sl.store._types(kind, [proto.type_id])
    tname = types[proto.type_id].name if proto.type_id in types else ""
    key = (f"lineage:{kind}:{tname}:{proto.name}" if proto.name
           else f"lineage:{sl.store.uri}:{kind}:{proto.id}")
    return str(uuid.uuid5(uuid.NAMESPACE_URL, key))


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
    return {"_producer": PRODUCER, "_schemaURL": schema, **fields}


def _ol_dataset(a: Artifact, secrets: Sequence[str]) -> dict[str, Any]:
    namespace, name = _dataset_name(a, secrets)
    facets: dict[str, Any] = {
        "lineage": _facet(_CUSTOM_FACET + "LineageDatasetFacet", artifactId=a.id,
                          type=a.type_name, name=a.name, version=a.version,
                          fingerprint=a.fingerprint),
    }
    if a.fingerprint or a.version:
        facets["version"] = _facet(_OL_FACET_SCHEMAS["version"],
                                   datasetVersion=a.fingerprint or str(a.version))
    return {"namespace": namespace, "name": name, "facets": facets}


def to_openlineage(sl: Slice, secrets: Sequence[str], namespace: str = "lineage",
                    ) -> list[dict[str, Any]]:
    events = []
    runs_of = sl.provenance.runs
    for eid in sorted(sl.steps):
        step, proto = sl.steps[eid], sl.executions[eid]
        props = step.properties
        when = (seconds_ms(props.get("end_time")) or seconds_ms(props.get("start_time"))
                or step.update_time or step.create_time)
        run_facets: dict[str, Any] = {
            "lineage": _facet(_CUSTOM_FACET + "LineageRunFacet", executionId=step.id,
                              state=step.state, params=step.params,
                              store=clean(sl.store.uri, secrets)),
        }
        parent = next((r for r in runs_of.get(eid, []) if r.id in sl.contexts), None)
        if parent is not None:
            run_facets["parent"] = _facet(
                _OL_FACET_SCHEMAS["parent"],
                run={"runId": _run_uuid(sl, "context", sl.contexts[parent.id])},
                job={"namespace": namespace, "name": parent.run_name or parent.name},
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
            "run": {"runId": _run_uuid(sl, "execution", proto), "facets": run_facets},
            "job": {"namespace": namespace, "name": step.name, "facets": job_facets},
            "inputs": [_ol_dataset(sl.records[i], secrets) for i in step.inputs
                       if i in sl.records],
            "outputs": [_ol_dataset(sl.records[i], secrets) for i in step.outputs
                        if i in sl.records],
            "producer": PRODUCER,
            "schemaURL": OL_SCHEMA,
        })
    return events


