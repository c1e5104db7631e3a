"""The ``prov`` format: a W3C PROV-JSON document (entities, activities, used,
wasGeneratedBy, wasDerivedFrom, the software agent).

``used`` and ``wasGeneratedBy`` come from INPUT and OUTPUT events only, the two the
provenance rule follows: a ``DECLARED_OUTPUT``, ``PENDING_OUTPUT`` or ``INTERNAL_OUTPUT``
(and the input sides) says nothing was read or generated, so it is no relation here.
``wasDerivedFrom`` links what an activity generated to what it used."""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from typing import Any

from ml_metadata.proto import metadata_store_pb2 as pb

from lineage import _convert
from lineage.formats._slice import Slice, clean, dumps, iso, producer, seconds_ms

__all__ = ["to_prov"]

def _qname(value: str) -> dict[str, str]:
    return {"$": value, "type": "prov:QUALIFIED_NAME"}


def to_prov(sl: Slice, secrets: Sequence[str]) -> dict[str, Any]:
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
            attrs_["prov:location"] = clean(a.uri, secrets)
        for key in ("name", "version", "fingerprint"):
            if getattr(a, key) not in (None, ""):
                attrs_[f"lineage:{key}"] = getattr(a, key)
        entity[f"lineage:artifact/{aid}"] = attrs_
    activity: dict[str, Any] = {}
    used: dict[str, Any] = {}
    generated: dict[str, Any] = {}
    derived: dict[str, Any] = {}
    associated: dict[str, Any] = {}
    runs_of = sl.runs
    inputs: dict[int, list[int]] = {}
    outputs: dict[int, list[int]] = {}
    for eid in sorted(sl.steps):
        step = sl.steps[eid]
        act = f"lineage:execution/{eid}"
        props = step.properties
        attrs_ = {
            "prov:label": step.name,
            "prov:type": _qname(f"lineage:{(step.base_type or 'step').lower()}"),
            "lineage:id": eid,
            "lineage:state": step.state,
            "lineage:params": dumps(step.params, indent=None),
        }
        start = iso(seconds_ms(props.get("start_time")) or step.create_time)
        end = iso(seconds_ms(props.get("end_time")))
        if start:
            attrs_["prov:startTime"] = start
        if end:
            attrs_["prov:endTime"] = end
        run_names = [r.name for r in runs_of.get(eid, [])]
        if run_names:
            attrs_["lineage:run"] = ", ".join(run_names)
        if step.error:
            attrs_["lineage:error"] = clean(step.error, secrets)
        activity[act] = attrs_
        associated[f"_:assoc{eid}"] = {"prov:activity": act, "prov:agent": agent}
    for ev in sl.events:
        if ev.execution_id not in sl.steps or ev.artifact_id not in sl.records:
            continue
        ent, act = f"lineage:artifact/{ev.artifact_id}", f"lineage:execution/{ev.execution_id}"
        rel: dict[str, Any] = {"prov:activity": act, "prov:entity": ent}
        if _convert.event_path(ev):
            rel["prov:role"] = _convert.event_path(ev)
        if iso(ev.milliseconds_since_epoch):
            rel["prov:time"] = iso(ev.milliseconds_since_epoch)
        key = f"{ev.execution_id}_{ev.artifact_id}"
        if ev.type == pb.Event.INPUT:
            used[f"_:used{key}"] = rel
            inputs.setdefault(ev.execution_id, []).append(ev.artifact_id)
        elif ev.type == pb.Event.OUTPUT:
            generated[f"_:gen{key}"] = rel
            outputs.setdefault(ev.execution_id, []).append(ev.artifact_id)
    for eid in sorted(sl.steps):
        for made in sorted(set(outputs.get(eid, []))):
            for inp in sorted(set(inputs.get(eid, []))):
                if made != inp:
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
                          "prov:label": f"mlmd-lineage {__version__}",
                          "prov:location": producer()}},
    }
    for key, rels in (("used", used), ("wasGeneratedBy", generated),
                      ("wasDerivedFrom", derived), ("wasAssociatedWith", associated)):
        if rels:
            doc[key] = rels
    out: dict[str, Any] = _convert.jsonable(doc)
    return out


