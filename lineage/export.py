"""Export the provenance of an artifact (OpenLineage, W3C PROV, bundles) and import bundles.

Three formats, all built from ``store.provenance(ref)``: the target, every upstream
artifact and step, the other artifacts those steps read or wrote (so each step keeps all
its inputs and outputs), the runs and experiments of the steps, and the Config artifacts
the runs name.

- ``bundle``: our portable ``lineage.v1.Bundle`` message (``proto/lineage/v1/bundle.proto``):
  types, records with their properties, events with paths, contexts with attributions,
  associations and parent links, and a header. Binary protobuf, or JSON when the file
  ends in ``.json``. :func:`import_bundle` reads it into another store.
- ``openlineage``: one OpenLineage ``RunEvent`` per execution (JSON list, or JSON lines
  for ``.jsonl``/``.ndjson``).
- ``prov``: a W3C PROV-JSON document (entities, activities, used, wasGeneratedBy,
  wasDerivedFrom, the software agent).

JSON output has sorted keys and is the same for the same store content; no output holds
the store's password.

Importing is idempotent: a record already in the target store (same ``external_id``; else,
for a type the store already had, the same name: a Run of the same name but another start
time is another run and is imported as ``name-2``) is reused, never written twice. Records without an ``external_id`` get a stable one,
``"bundle:<digest>:<kind>:<old id>"``, where the digest covers the source store's URI and
the record's type, name and creation time. Our artifacts are versions of a name: an
artifact whose ``name@version`` is taken in the target store by other content becomes the
next version there, as ``store.put`` does.
"""

from __future__ import annotations

import datetime as _dt
import hashlib
import json
import math
import os
import uuid
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import attrs
from google.protobuf import json_format, message
from ml_metadata.proto import metadata_store_pb2 as pb

from lineage import _convert
from lineage._proto.lineage.v1 import bundle_pb2 as bpb
from lineage._proto.lineage.v1 import types_pb2 as tpb
from lineage._schema import (
    ARTIFACT_PROPERTIES,
    INPUT_EVENTS,
    OUTPUT_EVENTS,
    RECORDED_BY,
    RUN_TYPE,
)
from lineage.artifacts import Artifact
from lineage.errors import BundleError, InvalidRef, TypeConflict, redact
from lineage.records import Execution

if TYPE_CHECKING:
    from lineage.queries import Provenance
    from lineage.store import Ref, Store

__all__ = [
    "FORMATS",
    "FORMAT_VERSION",
    "Bundle",
    "Exported",
    "ImportResult",
    "export",
    "import_bundle",
    "read_bundle",
]

#: The export formats.
FORMATS = ("bundle", "openlineage", "prov")
#: The bundle format version this module writes and reads.
FORMAT_VERSION = 1
#: The bundle message (``lineage.v1.Bundle``).
Bundle = bpb.Bundle

PRODUCER = "https://pypi.org/project/mlmd-lineage/"
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
_ARTIFACT_REFS = {"previous_version": "artifact"}
_EXECUTION_REFS = {"parent_execution": "execution", "cached_from": "execution",
                   "run_context": "context"}
_VALUE_KINDS = {
    pb.INT: "int_value", pb.DOUBLE: "double_value", pb.STRING: "string_value",
    pb.STRUCT: "struct_value", pb.PROTO: "proto_value", pb.BOOLEAN: "bool_value",
}


# --- what is exported ---------------------------------------------------------------


@attrs.define
class _Slice:
    """The records of an export, read in batches."""

    store: Store
    provenance: Provenance
    artifacts: dict[int, pb.Artifact]
    records: dict[int, Artifact]
    executions: dict[int, pb.Execution]
    steps: dict[int, Execution]
    events: list[pb.Event]
    contexts: dict[int, pb.Context]
    attributions: list[tuple[int, int]]
    associations: list[tuple[int, int]]
    parents: list[tuple[int, int]]


def _slice(store: Store, ref: Ref) -> _Slice:
    p = store.provenance(ref)
    steps = {s.id: s for s in p.steps}
    executions = {e.id: e for e in store._batched("get_executions_by_id", sorted(steps))}
    events = sorted(store._batched("get_events_by_execution_ids", sorted(steps)),
                    key=lambda e: (e.execution_id, e.artifact_id, e.type))
    art_ids = {int(p.target.id or 0)} | {int(a.id or 0) for a in p.artifacts}
    art_ids |= {e.artifact_id for e in events}
    # Contexts: the runs (and foreign groupings) of the steps, then their ancestors.
    associations = sorted({(eid, r.id) for eid, runs in p.runs.items() for r in runs})
    ctx_ids = {cid for _, cid in associations}
    contexts = {c.id: c for c in store._batched("get_contexts_by_id", sorted(ctx_ids))}
    parents: set[tuple[int, int]] = set()
    frontier = sorted(contexts)
    while frontier:
        found: dict[int, pb.Context] = {}
        for cid in frontier:  # one call per context (MLMD has no batched form)
            for parent in store._call("get_parent_contexts_by_context", cid, missing=[]):
                parents.add((cid, parent.id))
                if parent.id not in contexts:
                    found[parent.id] = parent
        contexts.update(found)
        frontier = sorted(found)
    ctypes = store._types("context", {c.type_id for c in contexts.values()})
    # The Config artifacts our runs name (their `config` property).
    for c in contexts.values():
        if _is_our_run(ctypes.get(c.type_id)) and "config" in c.properties:
            config = _convert.from_value(c.properties["config"])
            if isinstance(config, dict):
                art_ids |= {v for v in config.values() if isinstance(v, int)}
    artifacts = {a.id: a for a in store._batched("get_artifacts_by_id", sorted(art_ids))}
    attributions: set[tuple[int, int]] = set()
    for cid in sorted(contexts):  # one call per context
        for a in store._call("get_artifacts_by_context", cid, missing=[]):
            if a.id in artifacts:
                attributions.add((a.id, cid))
    records = {a.id: a for a in store._artifacts_from_protos(list(artifacts.values()))
               if a.id is not None}
    return _Slice(
        store=store, provenance=p, artifacts=artifacts, records=records,
        executions=executions, steps=steps, events=events, contexts=contexts,
        attributions=sorted(attributions), associations=associations,
        parents=sorted(parents),
    )


def _is_our_run(ctype: pb.ContextType | None) -> bool:
    return ctype is not None and ctype.name == RUN_TYPE and RECORDED_BY in ctype.properties


# --- the result of an export ----------------------------------------------------------


@attrs.define(eq=False)
class Exported:
    """An export: the document in one format, and how to write it.

    Example:
        >>> import lineage
        >>> store = lineage.connect(":memory:")
        >>> m = store.put(lineage.Model(content=b"w", name="clf"))
        >>> doc = store.export("clf", "prov")
        >>> doc.format, sorted(doc.to_dict()["entity"])
        ('prov', ['lineage:artifact/1'])
    """

    format: str
    """``bundle``, ``openlineage`` or ``prov``."""
    document: Any
    """A :data:`Bundle` message, a list of OpenLineage event dicts, or a PROV-JSON dict."""
    secrets: tuple[str, ...] = attrs.field(default=(), repr=False)

    def to_dict(self) -> Any:
        """The JSON form: the bundle's protobuf JSON mapping, the events, the PROV dict."""
        if self.format == "bundle":
            return _bundle_dict(self.document)
        return self.document

    def to_bytes(self, *, json_form: bool | None = None, lines: bool = False) -> bytes:
        """Encode: binary protobuf for a bundle unless ``json_form``; JSON otherwise
        (``lines``: one OpenLineage event per line)."""
        if self.format == "bundle" and not json_form:
            data: bytes = self.document.SerializeToString(deterministic=True)
            return data
        if self.format == "openlineage" and lines:
            return "".join(_dumps(e, indent=None) + "\n" for e in self.document).encode()
        return (_dumps(self.to_dict(), indent=2) + "\n").encode()

    def write(self, path: str | os.PathLike[str]) -> Path:
        """Write to ``path`` (a bundle as JSON when it ends in ``.json``; OpenLineage as
        JSON lines for ``.jsonl``/``.ndjson``); return the path."""
        out = Path(path)
        suffix = out.suffix.lower()
        data = self.to_bytes(json_form=suffix == ".json",
                             lines=suffix in (".jsonl", ".ndjson"))
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_bytes(data)
        return out


def _bundle_dict(bundle: bpb.Bundle) -> dict[str, Any]:
    try:
        out: dict[str, Any] = json_format.MessageToDict(
            bundle, preserving_proto_field_name=True)
    except TypeError as exc:  # a proto_value of a message type this process does not know
        raise BundleError(
            f"cannot write the bundle as JSON: {exc}; write it as binary (.pb) instead"
        ) from None
    return out


def _dumps(value: Any, *, indent: int | None) -> str:
    return json.dumps(_jsonable(value), sort_keys=True, indent=indent, ensure_ascii=False,
                      allow_nan=False, default=str)


def _jsonable(value: Any) -> Any:
    if isinstance(value, float) and not math.isfinite(value):
        return repr(value)
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    return value


def export(store: Store, ref: Ref, format: str = "bundle",
           path: str | os.PathLike[str] | None = None) -> Exported:
    """Export the provenance of ``ref``: a bundle, OpenLineage events or W3C PROV-JSON.

    Args:
        store: the store to read.
        ref: the artifact (an Artifact, an id, ``"name"``, ``"name@3"``, ``"artifact:12"``).
        format: ``"bundle"``, ``"openlineage"`` or ``"prov"``.
        path: also write the export there (see :meth:`Exported.write`).

    Raises:
        InvalidRef: an unknown format. NotFound: ``ref`` names nothing.

    Example:
        >>> import lineage
        >>> store = lineage.connect(":memory:")
        >>> m = store.put(lineage.Model(content=b"w", name="clf"))
        >>> [a.name for a in store.export("clf").document.artifacts]
        ['clf@1']
    """
    if format not in FORMATS:
        raise InvalidRef(f"unknown export format {format!r}; use one of {', '.join(FORMATS)}",
                         ref=format)
    sl = _slice(store, ref)
    secrets = tuple(s for s in (store._backend.password,) if s)
    doc: Any
    if format == "bundle":
        doc = _to_bundle(sl, secrets)
    elif format == "openlineage":
        doc = _to_openlineage(sl, secrets)
    else:
        doc = _to_prov(sl, secrets)
    out = Exported(format=format, document=doc, secrets=secrets)
    if path is not None:
        out.write(path)
    return out


# --- bundle: MLMD → lineage.v1 --------------------------------------------------------


def _clean(text: str, secrets: Sequence[str]) -> str:
    return redact(text, secrets) if text else text


def _copy_props(src: Mapping[str, Any], dst: Any, secrets: Sequence[str] = ()) -> None:
    """Copy a properties map between MLMD's Value and ours (same field numbers)."""
    for key in sorted(src):
        dst[key].MergeFromString(src[key].SerializeToString())
        if secrets and dst[key].WhichOneof("value") == "string_value":
            dst[key].string_value = _clean(dst[key].string_value, secrets)


def _type_set(sl: _Slice) -> tpb.TypeSet:
    from lineage.typedecl import (
        artifact_type_from_mlmd,
        context_type_from_mlmd,
        execution_type_from_mlmd,
    )

    store = sl.store
    atypes = store._types("artifact", {a.type_id for a in sl.artifacts.values()})
    etypes = store._types("execution", {e.type_id for e in sl.executions.values()})
    ctypes = store._types("context", {c.type_id for c in sl.contexts.values()})
    used_a = sorted({a.type_id for a in sl.artifacts.values()})
    used_e = sorted({e.type_id for e in sl.executions.values()})
    used_c = sorted({c.type_id for c in sl.contexts.values()})
    out = tpb.TypeSet()
    out.artifact_types.extend(sorted((artifact_type_from_mlmd(atypes[i]) for i in used_a),
                                     key=lambda t: t.name))
    out.execution_types.extend(sorted((execution_type_from_mlmd(etypes[i]) for i in used_e),
                                      key=lambda t: t.name))
    out.context_types.extend(sorted((context_type_from_mlmd(ctypes[i]) for i in used_c),
                                    key=lambda t: t.name))
    return out


def _to_bundle(sl: _Slice, secrets: Sequence[str]) -> bpb.Bundle:
    import ml_metadata

    from lineage import __version__

    store = sl.store
    atypes = store._types("artifact", {a.type_id for a in sl.artifacts.values()})
    etypes = store._types("execution", {e.type_id for e in sl.executions.values()})
    ctypes = store._types("context", {c.type_id for c in sl.contexts.values()})
    target = sl.provenance.target
    bundle = bpb.Bundle()
    h = bundle.header
    h.format_version = FORMAT_VERSION
    h.created.GetCurrentTime()
    h.source_uri = store.uri
    h.lineage_version = __version__
    h.mlmd_version = str(getattr(ml_metadata, "__version__", ""))
    h.description = (f"provenance of {target.type_name} {target.name}@{target.version} "
                     f"(artifact:{target.id})")
    bundle.types.CopyFrom(_type_set(sl))
    for aid in sorted(sl.artifacts):
        a = sl.artifacts[aid]
        out = bundle.artifacts.add(
            id=a.id, type=atypes[a.type_id].name, uri=_clean(a.uri, secrets), name=a.name,
            external_id=a.external_id, state=int(a.state),
            create_time_since_epoch=a.create_time_since_epoch,
            last_update_time_since_epoch=a.last_update_time_since_epoch,
        )
        _copy_props(a.properties, out.properties, secrets)
        _copy_props(a.custom_properties, out.custom_properties, secrets)
    for eid in sorted(sl.executions):
        e = sl.executions[eid]
        ex = bundle.executions.add(
            id=e.id, type=etypes[e.type_id].name, name=e.name, external_id=e.external_id,
            last_known_state=int(e.last_known_state),
            create_time_since_epoch=e.create_time_since_epoch,
            last_update_time_since_epoch=e.last_update_time_since_epoch,
        )
        _copy_props(e.properties, ex.properties, secrets)
        _copy_props(e.custom_properties, ex.custom_properties, secrets)
    for ev in sl.events:
        bev = bundle.events.add(artifact_id=ev.artifact_id, execution_id=ev.execution_id,
                                type=int(ev.type),
                                milliseconds_since_epoch=ev.milliseconds_since_epoch)
        for step in ev.path.steps:
            bev.path.add().MergeFromString(step.SerializeToString())
    for cid in sorted(sl.contexts):
        c = sl.contexts[cid]
        bc = bundle.contexts.add(
            id=c.id, type=ctypes[c.type_id].name, name=c.name, external_id=c.external_id,
            create_time_since_epoch=c.create_time_since_epoch,
            last_update_time_since_epoch=c.last_update_time_since_epoch,
        )
        _copy_props(c.properties, bc.properties, secrets)
        _copy_props(c.custom_properties, bc.custom_properties, secrets)
    for aid, cid in sl.attributions:
        bundle.attributions.add(artifact_id=aid, context_id=cid)
    for eid, cid in sl.associations:
        bundle.associations.add(execution_id=eid, context_id=cid)
    for child, parent in sl.parents:
        bundle.parent_contexts.add(child_id=child, parent_id=parent)
    return bundle


# --- OpenLineage ------------------------------------------------------------------------


def _iso(ms: float | None) -> str | None:
    if ms is None or ms <= 0:
        return None
    stamp = _dt.datetime.fromtimestamp(ms / 1000, tz=_dt.timezone.utc)
    return stamp.isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _seconds_ms(value: Any) -> float | None:
    return float(value) * 1000 if isinstance(value, (int, float)) and value > 0 else None


def _run_uuid(sl: _Slice, kind: str, proto: Any) -> str:
    """A UUID stable across exports: from the record's unique MLMD name when it has one
    (survives an import into another store), else from the store and the id."""
    types = sl.store._types(kind, [proto.type_id])
    tname = types[proto.type_id].name if proto.type_id in types else ""
    key = (f"lineage:{kind}:{tname}:{proto.name}" if proto.name
           else f"lineage:{sl.store.uri}:{kind}:{proto.id}")
    return str(uuid.uuid5(uuid.NAMESPACE_URL, key))


def _dataset_name(a: Artifact, secrets: Sequence[str]) -> tuple[str, str]:
    """OpenLineage (namespace, name) of an artifact, from its URI (naming spec)."""
    uri = _clean(a.uri or "", secrets)
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


def _to_openlineage(sl: _Slice, secrets: Sequence[str], namespace: str = "lineage",
                    ) -> list[dict[str, Any]]:
    events = []
    runs_of = sl.provenance.runs
    for eid in sorted(sl.steps):
        step, proto = sl.steps[eid], sl.executions[eid]
        props = step.properties
        when = (_seconds_ms(props.get("end_time")) or _seconds_ms(props.get("start_time"))
                or step.update_time or step.create_time)
        run_facets: dict[str, Any] = {
            "lineage": _facet(_CUSTOM_FACET + "LineageRunFacet", executionId=step.id,
                              state=step.state, params=step.params,
                              store=_clean(sl.store.uri, secrets)),
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
                           message=_clean(step.error or "failed", secrets),
                           programmingLanguage="python")
            if isinstance(props.get("traceback"), str) and props["traceback"]:
                error["stackTrace"] = _clean(props["traceback"], secrets)
            run_facets["errorMessage"] = error
        job_facets = {"jobType": _facet(_OL_FACET_SCHEMAS["jobType"], processingType="BATCH",
                                        integration="MLMD-LINEAGE",
                                        jobType=step.base_type or "STEP")}
        events.append({
            "eventType": _OL_EVENT_TYPES.get(step.state, "OTHER"),
            "eventTime": _iso(when) or "1970-01-01T00:00:00.000Z",
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


# --- W3C PROV-JSON ----------------------------------------------------------------------


def _qname(value: str) -> dict[str, str]:
    return {"$": value, "type": "prov:QUALIFIED_NAME"}


def _to_prov(sl: _Slice, secrets: Sequence[str]) -> dict[str, Any]:
    from lineage import __version__

    digest = hashlib.sha256(sl.store.uri.encode()).hexdigest()[:16]
    agent = "lineage:agent/mlmd-lineage"
    entity: dict[str, Any] = {}
    for aid in sorted(sl.records):
        a = sl.records[aid]
        attrs_: dict[str, Any] = {
            "prov:type": _qname(f"lineage:{a.type_name}"),
            "prov:label": f"{a.name}@{a.version}" if a.version else (a.name or f"artifact {aid}"),
            "lineage:id": aid,
        }
        if a.uri:
            attrs_["prov:location"] = _clean(a.uri, secrets)
        for key in ("name", "version", "fingerprint"):
            if getattr(a, key) not in (None, ""):
                attrs_[f"lineage:{key}"] = getattr(a, key)
        entity[f"lineage:artifact/{aid}"] = attrs_
    activity: dict[str, Any] = {}
    used: dict[str, Any] = {}
    generated: dict[str, Any] = {}
    derived: dict[str, Any] = {}
    associated: dict[str, Any] = {}
    runs_of = sl.provenance.runs
    for eid in sorted(sl.steps):
        step = sl.steps[eid]
        act = f"lineage:execution/{eid}"
        props = step.properties
        attrs_ = {
            "prov:label": step.name,
            "prov:type": _qname(f"lineage:{(step.base_type or 'step').lower()}"),
            "lineage:id": eid,
            "lineage:state": step.state,
            "lineage:params": _dumps(step.params, indent=None),
        }
        start = _iso(_seconds_ms(props.get("start_time")) or step.create_time)
        end = _iso(_seconds_ms(props.get("end_time")))
        if start:
            attrs_["prov:startTime"] = start
        if end:
            attrs_["prov:endTime"] = end
        run_names = [r.name for r in runs_of.get(eid, [])]
        if run_names:
            attrs_["lineage:run"] = ", ".join(run_names)
        if step.error:
            attrs_["lineage:error"] = _clean(step.error, secrets)
        activity[act] = attrs_
        associated[f"_:assoc{eid}"] = {"prov:activity": act, "prov:agent": agent}
    for ev in sl.events:
        if ev.execution_id not in sl.steps or ev.artifact_id not in sl.records:
            continue
        ent, act = f"lineage:artifact/{ev.artifact_id}", f"lineage:execution/{ev.execution_id}"
        rel: dict[str, Any] = {"prov:activity": act, "prov:entity": ent}
        if _convert.event_path(ev):
            rel["prov:role"] = _convert.event_path(ev)
        if _iso(ev.milliseconds_since_epoch):
            rel["prov:time"] = _iso(ev.milliseconds_since_epoch)
        key = f"{ev.execution_id}_{ev.artifact_id}"
        if ev.type in INPUT_EVENTS:
            used[f"_:used{key}_{int(ev.type)}"] = rel
        elif ev.type in OUTPUT_EVENTS:
            generated[f"_:gen{key}_{int(ev.type)}"] = rel
    for eid in sorted(sl.steps):
        step = sl.steps[eid]
        for made in step.outputs:
            for inp in step.inputs:
                if made in sl.records and inp in sl.records and made != inp:
                    derived[f"_:der{eid}_{made}_{inp}"] = {
                        "prov:generatedEntity": f"lineage:artifact/{made}",
                        "prov:usedEntity": f"lineage:artifact/{inp}",
                        "prov:activity": f"lineage:execution/{eid}",
                    }
    doc: dict[str, Any] = {
        "prefix": {"lineage": f"urn:mlmd-lineage:{digest}:"},
        "entity": entity,
        "activity": activity,
        "agent": {agent: {"prov:type": _qname("prov:SoftwareAgent"),
                          "prov:label": f"mlmd-lineage {__version__}"}},
    }
    for key, rels in (("used", used), ("wasGeneratedBy", generated),
                      ("wasDerivedFrom", derived), ("wasAssociatedWith", associated)):
        if rels:
            doc[key] = rels
    out: dict[str, Any] = _jsonable(doc)
    return out


# --- import -----------------------------------------------------------------------------


def read_bundle(source: str | os.PathLike[str] | bytes | bpb.Bundle) -> bpb.Bundle:
    """Read a bundle from a file, from bytes (binary protobuf or JSON), or take a message.

    Raises:
        BundleError: the file is missing, is not a bundle, or has an unknown format version.

    Example:
        >>> import lineage
        >>> store = lineage.connect(":memory:")
        >>> _ = store.put(lineage.Model(content=b"w", name="clf"))
        >>> data = store.export("clf").to_bytes()
        >>> read_bundle(data).header.format_version
        1
    """
    where: str
    if isinstance(source, bpb.Bundle):
        bundle, where = source, "<message>"
    else:
        if isinstance(source, (bytes, bytearray, memoryview)):
            data, where = bytes(source), "<bytes>"
        else:
            where = os.fspath(source)
            try:
                data = Path(where).read_bytes()
            except OSError as exc:
                raise BundleError(f"cannot read the bundle {where}: {exc.strerror or exc}",
                                  source=where) from None
        bundle = bpb.Bundle()
        text = data.lstrip()[:1]
        try:
            if text == b"{" or where.lower().endswith(".json"):
                json_format.Parse(data.decode("utf-8"), bundle)
            else:
                bundle.ParseFromString(data)
        except (message.DecodeError, json_format.ParseError, UnicodeDecodeError,
                ValueError) as exc:
            raise BundleError(
                f"{where} is not a lineage bundle (binary protobuf or JSON): "
                f"{' '.join(str(exc).split())[:200]}; export one with `lineage export REF "
                "--format bundle -o FILE`",
                source=where,
            ) from None
    if bundle.header.format_version != FORMAT_VERSION:
        version = bundle.header.format_version
        what = ("has no bundle header" if version == 0
                else f"has bundle format version {version}")
        raise BundleError(
            f"{where} {what}; this lineage reads format version {FORMAT_VERSION} "
            "(export it again with this version)",
            source=where,
        )
    _validate(bundle, where)
    return bundle


def _validate(bundle: bpb.Bundle, where: str) -> None:
    """Every reference inside the bundle resolves; typed properties match their types."""
    problems: list[str] = []
    decls: dict[str, dict[str, dict[str, int]]] = {"artifact": {}, "execution": {}, "context": {}}
    for kind, types in (("artifact", bundle.types.artifact_types),
                        ("execution", bundle.types.execution_types),
                        ("context", bundle.types.context_types)):
        for t in types:
            if not t.name:
                problems.append(f"an {kind} type without a name")
            elif t.name in decls[kind]:
                problems.append(f"the {kind} type {t.name!r} is declared twice")
            decls[kind][t.name] = {p.name: int(p.type) for p in t.properties}
            for p in t.properties:
                if int(p.type) not in _VALUE_KINDS:
                    problems.append(f"{kind} type {t.name!r}: property {p.name!r} has an "
                                    f"unknown type {int(p.type)}")
    ids: dict[str, set[int]] = {}
    for kind, records in (("artifact", bundle.artifacts), ("execution", bundle.executions),
                          ("context", bundle.contexts)):
        seen: set[int] = set()
        for r in records:
            label = f"{kind} {r.id}"
            if r.id <= 0 or r.id in seen:
                problems.append(f"{label}: ids must be positive and unique")
            seen.add(r.id)
            declared = decls[kind].get(r.type)
            if declared is None:
                problems.append(f"{label}: its type {r.type!r} is not declared in the bundle")
                continue
            for key in r.properties:
                if key not in declared:
                    problems.append(f"{label}: property {key!r} is not declared by {r.type!r}")
                elif r.properties[key].WhichOneof("value") not in (
                        None, _VALUE_KINDS.get(declared[key])):
                    problems.append(f"{label}: property {key!r} does not hold a "
                                    f"{pb.PropertyType.Name(declared[key])}")
        ids[kind] = seen
        if kind == "context" and any(not r.name for r in records):
            problems.append("a context without a name")
    for ev in bundle.events:
        if ev.artifact_id not in ids["artifact"] or ev.execution_id not in ids["execution"]:
            problems.append(f"an event links artifact {ev.artifact_id} and execution "
                            f"{ev.execution_id}, not both in the bundle")
        if int(ev.type) not in pb.Event.Type.values():
            problems.append(f"an event has the unknown type {int(ev.type)}")
    for link, a_kind, a_field in (("attribution", "artifact", "artifact_id"),
                                  ("association", "execution", "execution_id")):
        for r in getattr(bundle, link + "s"):
            if getattr(r, a_field) not in ids[a_kind] or r.context_id not in ids["context"]:
                problems.append(f"an {link} links records that are not in the bundle")
    for pc in bundle.parent_contexts:
        if pc.child_id not in ids["context"] or pc.parent_id not in ids["context"]:
            problems.append("a parent link between contexts that are not in the bundle")
    if problems:
        shown = "; ".join(sorted(set(problems))[:5])
        more = f" (and {len(set(problems)) - 5} more)" if len(set(problems)) > 5 else ""
        raise BundleError(f"{where} is inconsistent: {shown}{more}; nothing was imported",
                          source=where)


@attrs.define(eq=False)
class ImportResult:
    """What :func:`import_bundle` did: old id → new id maps and what it added.

    Example:
        >>> import lineage
        >>> a, b = lineage.connect(":memory:"), lineage.connect(":memory:")
        >>> _ = a.put(lineage.Model(content=b"w", name="clf"))
        >>> b.import_bundle(a.export("clf").to_bytes()).added["artifacts"]
        1
    """

    source_uri: str
    """The store the bundle was exported from (password redacted)."""
    artifacts: dict[int, int]
    """Bundle artifact id → id in this store."""
    executions: dict[int, int]
    """Bundle execution id → id in this store."""
    contexts: dict[int, int]
    """Bundle context id → id in this store."""
    added: dict[str, int]
    """How many artifacts, executions, contexts, events, attributions, associations and
    parent_contexts were written (0 everywhere when the bundle was already imported)."""

    def to_dict(self) -> dict[str, Any]:
        """JSON shape: ``source_uri``, ``added`` and the three id maps (keys as strings)."""
        return {
            "source_uri": self.source_uri,
            "added": dict(self.added),
            "artifacts": {str(k): v for k, v in sorted(self.artifacts.items())},
            "executions": {str(k): v for k, v in sorted(self.executions.items())},
            "contexts": {str(k): v for k, v in sorted(self.contexts.items())},
        }

    def __str__(self) -> str:
        parts = [f"{n} {k.replace('_', ' ')}" for k, n in self.added.items() if n]
        counts = (f"{len(self.artifacts)} artifacts, {len(self.executions)} executions, "
                  f"{len(self.contexts)} contexts")
        if not parts:
            return f"nothing new: the bundle from {self.source_uri} was already here ({counts})"
        return f"imported from {self.source_uri}: added {', '.join(parts)} ({counts} in all)"


def _derived_id(bundle: bpb.Bundle, kind: str, record: Any) -> str:
    key = "\0".join((bundle.header.source_uri, kind, record.type, record.name,
                     str(record.create_time_since_epoch)))
    digest = hashlib.sha256(key.encode()).hexdigest()[:24]
    return f"bundle:{digest}:{kind}:{record.id}"


def _type_proto(kind: str, decl: Any) -> Any:
    cls = {"artifact": pb.ArtifactType, "execution": pb.ExecutionType,
           "context": pb.ContextType}[kind]
    proto = cls(name=decl.name)
    if kind != "context" and decl.base_type:
        proto.base_type = int(decl.base_type)
    for p in decl.properties:
        proto.properties[p.name] = int(p.type)
    return proto


def _check_types(store: Store, bundle: bpb.Bundle) -> dict[str, set[str]]:
    """Raise TypeConflict before writing anything if a declared type clashes with a
    stored one; return the type names the store already had, per kind."""
    existed: dict[str, set[str]] = {"artifact": set(), "execution": set(), "context": set()}
    for kind, decls in (("artifact", bundle.types.artifact_types),
                        ("execution", bundle.types.execution_types),
                        ("context", bundle.types.context_types)):
        for decl in decls:
            base = int(getattr(decl, "base_type", 0))
            stored = store._type_named(kind, decl.name)
            if stored is None or not stored.id:
                continue
            existed[kind].add(decl.name)
            clashes = [p.name for p in decl.properties
                       if p.name in stored.properties and stored.properties[p.name] != p.type]
            if base and stored.HasField("base_type") and int(stored.base_type) != base:
                clashes.append("base type")
            if clashes:
                raise TypeConflict(
                    f"cannot import: the {kind} type {decl.name!r} in {store.uri} differs "
                    f"from the bundle's in {', '.join(clashes)}; import into another store, "
                    "or rename the type in the source",
                    uri=store.uri,
                )
    return existed


@attrs.define
class _Plan:
    """Which bundle records exist in the store, and the protos of the new ones."""

    maps: dict[str, dict[int, int]]
    stored: dict[str, dict[int, Any]]  # bundle id -> stored proto (existing records)
    new: dict[str, dict[int, Any]]  # bundle id -> proto to write (no id yet)
    type_ids: dict[str, dict[str, int]]
    # (kind, bundle id) -> {property: (referenced kind, bundle id of the referenced record)}
    refs: dict[tuple[str, int], dict[str, tuple[str, Any]]]


def _lookup(store: Store, kind: str, records: Sequence[Any], bundle: bpb.Bundle,
            ) -> tuple[dict[int, Any], dict[int, str]]:
    """Bundle id → stored proto of the records already in the store; bundle id → the
    external_id to write for the others."""
    ext: dict[int, str] = {
        int(r.id): str(r.external_id or _derived_id(bundle, kind, r)) for r in records}
    wanted = sorted(set(ext.values()))
    found: dict[str, Any] = {}
    for start in range(0, len(wanted), 1000):  # batched, like Store._batched
        got = store._call(f"get_{kind}s_by_external_ids", wanted[start:start + 1000], missing=[])
        found.update((p.external_id, p) for p in got)
    stored = {rid: found[e] for rid, e in ext.items() if e in found}
    return stored, {rid: e for rid, e in ext.items() if rid not in stored}


def _by_name(store: Store, kind: str, type_name: str, name: str) -> Any | None:
    got = store._call(f"get_{kind}_by_type_and_name", type_name, name, missing=None)
    return got if got is not None and got.id and got.name == name else None


def _plan(store: Store, bundle: bpb.Bundle, existed: dict[str, set[str]],
          type_ids: dict[str, dict[str, int]]) -> _Plan:
    plan = _Plan(maps={"artifact": {}, "execution": {}, "context": {}},
                 stored={"artifact": {}, "execution": {}, "context": {}},
                 new={"artifact": {}, "execution": {}, "context": {}},
                 type_ids=type_ids, refs={})
    our_atypes = {t.name for t in bundle.types.artifact_types
                  if all(any(p.name == k for p in t.properties) for k in ARTIFACT_PROPERTIES)}
    our_etypes = {t.name for t in bundle.types.execution_types
                  if any(p.name == RECORDED_BY for p in t.properties)}
    our_runs = {t.name for t in bundle.types.context_types
                if t.name == RUN_TYPE and any(p.name == RECORDED_BY for p in t.properties)}

    # contexts
    stored, ext = _lookup(store, "context", bundle.contexts, bundle)
    taken: set[tuple[str, str]] = set()
    for c in sorted(bundle.contexts, key=lambda r: r.id):
        if c.id in stored:
            plan.stored["context"][c.id] = stored[c.id]
            continue
        name = c.name
        if c.type in existed["context"]:
            hit = _by_name(store, "context", c.type, c.name)
            if hit is not None and (c.type not in our_runs or _same_run(hit, c)):
                plan.stored["context"][c.id] = hit
                continue
            if hit is not None:  # another run of that name: the next free "name-<n>"
                name = _free_context_name(store, c.type, c.name, taken)
        taken.add((c.type, name))
        proto = pb.Context(type_id=type_ids["context"][c.type], name=name,
                           external_id=ext[c.id])
        _copy_props(c.properties, proto.properties)
        _copy_props(c.custom_properties, proto.custom_properties)
        plan.new["context"][c.id] = proto
        if c.type in our_runs and "config" in c.properties:
            config = _convert.from_value(proto.properties["config"])
            if isinstance(config, dict):
                del proto.properties["config"]
                plan.refs[("context", c.id)] = {"config": ("artifact", config)}

    # artifacts
    stored, ext = _lookup(store, "artifact", bundle.artifacts, bundle)
    latest: dict[tuple[str, str], tuple[int, str, int]] = {}  # -> (version, kind, id)
    for a in sorted(bundle.artifacts, key=lambda r: r.id):
        if a.id in stored:
            plan.stored["artifact"][a.id] = stored[a.id]
            continue
        proto = pb.Artifact(type_id=type_ids["artifact"][a.type], uri=a.uri,
                            external_id=ext[a.id], state=int(a.state))
        if a.name:  # an empty name is a name to MLMD: two would collide
            proto.name = a.name
        _copy_props(a.properties, proto.properties)
        _copy_props(a.custom_properties, proto.custom_properties)
        version = a.properties["version"].int_value if "version" in a.properties else 0
        ours = a.type in our_atypes and version > 0 and a.name.endswith(f"@{version}")
        refs: dict[str, tuple[str, Any]] = {}
        if "previous_version" in proto.properties and a.type in our_atypes:
            del proto.properties["previous_version"]
        if ours:
            logical = a.name[: -len(f"@{version}")]
            key = (a.type, logical)
            if key not in latest and a.type in existed["artifact"]:
                hit = store._latest_version(a.type, logical)
                if hit is not None:
                    latest[key] = (int(hit.properties["version"].int_value), "stored", hit.id)
            prev = latest.get(key)
            number = prev[0] + 1 if prev is not None else 1
            proto.name = _convert.mlmd_artifact_name(logical, number)
            proto.properties["version"].int_value = number
            if prev is not None and prev[1] == "stored":
                proto.properties["previous_version"].int_value = prev[2]
            elif prev is not None:
                refs["previous_version"] = ("artifact", prev[2])
            latest[key] = (number, "new", a.id)
        elif a.name and a.type in existed["artifact"]:
            hit = _by_name(store, "artifact", a.type, a.name)
            if hit is not None:
                plan.stored["artifact"][a.id] = hit
                continue
        plan.new["artifact"][a.id] = proto
        if refs:
            plan.refs[("artifact", a.id)] = refs

    # executions
    stored, ext = _lookup(store, "execution", bundle.executions, bundle)
    for e in sorted(bundle.executions, key=lambda r: r.id):
        if e.id in stored:
            plan.stored["execution"][e.id] = stored[e.id]
            continue
        if e.name and e.type in existed["execution"]:
            hit = _by_name(store, "execution", e.type, e.name)
            if hit is not None:
                plan.stored["execution"][e.id] = hit
                continue
        proto = pb.Execution(type_id=type_ids["execution"][e.type], external_id=ext[e.id],
                             last_known_state=int(e.last_known_state))
        if e.name:
            proto.name = e.name
        _copy_props(e.properties, proto.properties)
        _copy_props(e.custom_properties, proto.custom_properties)
        if e.type in our_etypes:
            refs = {}
            for prop, kind in _EXECUTION_REFS.items():
                if prop in proto.properties:
                    refs[prop] = (kind, proto.properties[prop].int_value)
                    del proto.properties[prop]
            if refs:
                plan.refs[("execution", e.id)] = refs
        plan.new["execution"][e.id] = proto
    for kind in plan.maps:
        plan.maps[kind] = {rid: p.id for rid, p in plan.stored[kind].items()}
    return plan


def _same_run(stored: pb.Context, incoming: bpb.Context) -> bool:
    """Whether a stored Run context is the bundle's run (same name, start time)."""
    for key in ("run_name", "start_time"):
        a = _convert.from_value(stored.properties[key]) if key in stored.properties else None
        b = (_convert.from_value(_to_mlmd_value(incoming.properties[key]))
             if key in incoming.properties else None)
        if a != b:
            return False
    return True


def _to_mlmd_value(v: bpb.Value) -> pb.Value:
    out = pb.Value()
    out.MergeFromString(v.SerializeToString())
    return out


def _free_context_name(store: Store, type_name: str, name: str,
                       taken: set[tuple[str, str]]) -> str:
    n = 2
    while (type_name, f"{name}-{n}") in taken or _by_name(
            store, "context", type_name, f"{name}-{n}") is not None:
        n += 1
    return f"{name}-{n}"


def _resolve_refs(plan: _Plan, kind: str, rid: int) -> dict[str, Any]:
    """The id-valued properties of a record, in this store's ids (unknown targets left out)."""
    out: dict[str, Any] = {}
    for prop, (target_kind, old) in plan.refs.get((kind, rid), {}).items():
        ids = plan.maps[target_kind]
        if isinstance(old, dict):  # a Run's config: file name -> Config artifact id
            out[prop] = {k: ids[v] for k, v in old.items() if isinstance(v, int) and v in ids}
        elif old in ids:
            out[prop] = ids[old]
    return out


def import_bundle(store: Store, source: str | os.PathLike[str] | bytes | bpb.Bundle,
                  ) -> ImportResult:
    """Import a bundle: types, records with new ids, events, contexts and their links.

    Idempotent: importing the same bundle again adds nothing. The whole bundle is checked
    before anything is written (its format, the references inside it, its types against
    the store's); records go in with one ``put_contexts`` and one ``put_lineage_subgraph``
    (executions, artifacts and events in one transaction), then the id-valued properties
    that point at records new in this import (``previous_version``, ``parent_execution``,
    ``cached_from``, a run's ``config``) and the links. If the store fails half-way,
    importing again writes the records, events and links still missing (not those
    id-valued properties of records written by the failed attempt).

    Args:
        store: the store to write.
        source: a bundle file, its bytes (binary or JSON), or a :data:`Bundle` message.

    Raises:
        ReadOnlyStore: the store was opened read-only.
        BundleError: the bundle is corrupt, of another format version, or inconsistent.
        TypeConflict: a type in the bundle clashes with the store's type of that name.

    Example:
        >>> import lineage
        >>> a, b = lineage.connect(":memory:"), lineage.connect(":memory:")
        >>> _ = a.put(lineage.Model(content=b"w", name="clf"))
        >>> data = a.export("clf").to_bytes()
        >>> b.import_bundle(data).added["artifacts"], b.import_bundle(data).added["artifacts"]
        (1, 0)
        >>> b.get("clf").fingerprint == a.get("clf").fingerprint
        True
    """
    store._check_writable("import a bundle")
    bundle = read_bundle(source)
    existed = _check_types(store, bundle)
    type_ids: dict[str, dict[str, int]] = {"artifact": {}, "execution": {}, "context": {}}
    for kind, decls in (("artifact", bundle.types.artifact_types),
                        ("execution", bundle.types.execution_types),
                        ("context", bundle.types.context_types)):
        for decl in decls:
            type_ids[kind][decl.name] = store._register_type(kind, _type_proto(kind, decl))

    def attempt() -> ImportResult:
        return _write(store, bundle, _plan(store, bundle, existed, type_ids))

    return store._write_with_retry(attempt, "import the bundle")


def _write(store: Store, bundle: bpb.Bundle, plan: _Plan) -> ImportResult:
    added = dict.fromkeys(("artifacts", "executions", "contexts", "events", "attributions",
                           "associations", "parent_contexts"), 0)
    # 1. contexts (executions name their run in `run_context`)
    new_ctx = sorted(plan.new["context"])
    if new_ctx:
        ids = store._call("put_contexts", [plan.new["context"][i] for i in new_ctx])
        for rid, new_id in zip(new_ctx, ids, strict=True):
            plan.new["context"][rid].id = new_id
            plan.maps["context"][rid] = int(new_id)
        added["contexts"] = len(new_ctx)
    # 2. executions, artifacts and events: one transaction
    new_exec, new_art = sorted(plan.new["execution"]), sorted(plan.new["artifact"])
    for rid in new_exec:
        from lineage._convert import set_props
        set_props(plan.new["execution"][rid].properties,
                  {k: v for k, v in _resolve_refs(plan, "execution", rid).items()
                   if k == "run_context"}, typed=True)
    exec_index = {rid: i for i, rid in enumerate(new_exec)}
    art_index = {rid: i for i, rid in enumerate(new_art)}
    existing_events = _existing_events(store, bundle, plan)
    edges: list[tuple[int | None, int | None, pb.Event]] = []
    for ev in bundle.events:
        event = pb.Event(type=int(ev.type))
        if ev.milliseconds_since_epoch:  # keeps the event order of the source store
            event.milliseconds_since_epoch = ev.milliseconds_since_epoch
        for step in ev.path:
            event.path.steps.add().MergeFromString(step.SerializeToString())
        ei, ai = exec_index.get(ev.execution_id), art_index.get(ev.artifact_id)
        if ei is None:
            event.execution_id = plan.maps["execution"][ev.execution_id]
        if ai is None:
            event.artifact_id = plan.maps["artifact"][ev.artifact_id]
        if ei is None and ai is None and (
                event.artifact_id, event.execution_id, event.type) in existing_events:
            continue
        edges.append((ei, ai, event))
    if new_exec or new_art or edges:
        exec_ids, art_ids, _ = store._call(
            "put_lineage_subgraph", [plan.new["execution"][i] for i in new_exec],
            [plan.new["artifact"][i] for i in new_art], [], edges)
        for rid, new_id in zip(new_exec, exec_ids, strict=True):
            plan.new["execution"][rid].id = new_id
            plan.maps["execution"][rid] = int(new_id)
        for rid, new_id in zip(new_art, art_ids, strict=True):
            plan.new["artifact"][rid].id = new_id
            plan.maps["artifact"][rid] = int(new_id)
        added.update(executions=len(new_exec), artifacts=len(new_art), events=len(edges))
    # 3. id-valued properties that point at records written in this import
    _fix_refs(store, plan)
    # 4. links
    _write_links(store, bundle, plan, added)
    return ImportResult(
        source_uri=bundle.header.source_uri,
        artifacts=dict(sorted(plan.maps["artifact"].items())),
        executions=dict(sorted(plan.maps["execution"].items())),
        contexts=dict(sorted(plan.maps["context"].items())),
        added=added,
    )


def _existing_events(store: Store, bundle: bpb.Bundle, plan: _Plan) -> set[tuple[int, int, int]]:
    """(artifact, execution, type) of the events of the bundle's executions already stored."""
    ids = sorted(plan.maps["execution"][e.id] for e in bundle.executions
                 if e.id in plan.stored["execution"])
    return {(ev.artifact_id, ev.execution_id, ev.type)
            for ev in store._batched("get_events_by_execution_ids", ids)}


def _fix_refs(store: Store, plan: _Plan) -> None:
    """Set id-valued properties whose target was written in this import (or is found
    now), on the records that lack them; never overwrite a stored value."""
    from lineage._convert import set_props

    for kind in ("artifact", "execution", "context"):
        updates = []
        for (k, rid), _refs in sorted(plan.refs.items()):
            if k != kind:
                continue
            proto = plan.new[kind].get(rid)
            if proto is None or not proto.id:
                continue
            wanted = {p: v for p, v in _resolve_refs(plan, kind, rid).items()
                      if p not in proto.properties and v not in ({}, None)}
            if not wanted:
                continue
            set_props(proto.properties, wanted, typed=True)
            updates.append(proto)
        if updates:
            store._call(f"put_{kind}s", updates)


def _write_links(store: Store, bundle: bpb.Bundle, plan: _Plan, added: dict[str, int]) -> None:
    amap, emap, cmap = plan.maps["artifact"], plan.maps["execution"], plan.maps["context"]
    old_ctx = {cmap[c] for c in plan.stored["context"]}
    have_attr: set[tuple[int, int]] = set()
    have_assoc: set[tuple[int, int]] = set()
    have_parent: set[tuple[int, int]] = set()
    for cid in sorted(old_ctx):  # one call per context that was already there
        have_attr |= {(a.id, cid) for a in store._call("get_artifacts_by_context", cid,
                                                        missing=[])}
        have_assoc |= {(e.id, cid) for e in store._call("get_executions_by_context", cid,
                                                         missing=[])}
        have_parent |= {(cid, p.id) for p in store._call("get_parent_contexts_by_context",
                                                          cid, missing=[])}
    attributions = sorted({(amap[r.artifact_id], cmap[r.context_id])
                           for r in bundle.attributions} - have_attr)
    associations = sorted({(emap[r.execution_id], cmap[r.context_id])
                           for r in bundle.associations} - have_assoc)
    parents = sorted({(cmap[r.child_id], cmap[r.parent_id])
                      for r in bundle.parent_contexts} - have_parent)
    if attributions or associations:
        store._call("put_attributions_and_associations",
                    [pb.Attribution(artifact_id=a, context_id=c) for a, c in attributions],
                    [pb.Association(execution_id=e, context_id=c) for e, c in associations])
    if parents:
        store._call("put_parent_contexts",
                    [pb.ParentContext(child_id=ch, parent_id=pa) for ch, pa in parents])
    added.update(attributions=len(attributions), associations=len(associations),
                 parent_contexts=len(parents))
