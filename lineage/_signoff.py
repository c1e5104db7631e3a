"""Recording a sign-off: an execution (``audit``, ``approve``) that reads the artifact
signed off and writes the record of the sign-off (an ``AuditReport``, an ``Approval``),
with who did it, where and in which environment, in one ``put_execution``.

The sign-off is then downstream of the artifact: ``impact`` lists it, diagrams draw it.
"""

from __future__ import annotations

import os
import uuid
from typing import TYPE_CHECKING, Any

from ml_metadata.proto import metadata_store_pb2 as pb

from lineage import _convert, _env, _identity
from lineage._recording import now_ms, recorded_by, set_prop
from lineage._schema import STEP_PROPERTIES

if TYPE_CHECKING:
    from lineage.artifacts import Artifact
    from lineage.store import Store

__all__ = ["put_unattributed", "record_signoff"]


def put_unattributed(store: Store, artifact: Artifact) -> Artifact:
    """``store.put(artifact)`` without attributing it to the active run (facts about a
    process, such as its environment, belong to no run in particular)."""
    type_id = store._artifact_type_id(type(artifact))

    def attempt() -> Artifact:
        prepared = _identity.prepare(store, artifact, type_id)
        proto = prepared.proto
        writes = [proto] if not proto.id or prepared.dirty else []
        writes += prepared.others
        if writes:
            ids = store._call("put_artifacts", writes)
            if not proto.id:
                proto.id = ids[0]
        return _identity.fill(store, artifact, proto)

    return store._write_with_retry(attempt, f"put {artifact!r}")


def record_signoff(store: Store, step: str, target: Artifact, output: Artifact,
                   params: dict[str, Any]) -> Artifact:
    """Record ``step`` (an ``approve`` or ``audit`` execution) reading ``target`` and
    writing ``output``, with the accountability facts of this process, in one write."""
    store._check_writable(f"record {step} of {target!r}")
    t = pb.ExecutionType(name=step)
    for key, ptype in STEP_PROPERTIES.items():
        t.properties[key] = ptype
    type_id = store._register_type("execution", t)
    ex = pb.Execution(type_id=type_id, name=f"{step}:{uuid.uuid4().hex}",
                      last_known_state=pb.Execution.COMPLETE)
    props = ex.properties
    set_prop(props, "recorded_by", recorded_by(), typed=True)
    now = now_ms()
    set_prop(props, "start_time", now, typed=True)
    set_prop(props, "end_time", now, typed=True)
    facts = {**_env.host_facts(), **_env.who_facts(), "command": _env.command_line()}
    facts["git_author"] = _env.git_facts(os.path.join(os.getcwd(), "-")).get("git_author")
    for key, value in facts.items():
        if value and key in STEP_PROPERTIES:
            set_prop(props, key, value, typed=True)
    from lineage.environment import record_environment

    env_id = record_environment(store)
    if env_id is not None:
        props["environment"].int_value = env_id
    for key, value in params.items():
        set_prop(ex.custom_properties, key, value)

    out_type = store._artifact_type_id(type(output))

    def attempt() -> Artifact:
        prepared = _identity.prepare(store, output, out_type)
        proto = prepared.proto
        if prepared.others:
            store._call("put_artifacts", prepared.others)
        in_event = pb.Event(type=pb.Event.INPUT, artifact_id=int(target.id or 0))
        _convert.make_event_path(in_event, ["artifact"])
        out_event = pb.Event(type=pb.Event.OUTPUT)
        _convert.make_event_path(out_event, [step])
        if proto.id:
            out_event.artifact_id = proto.id
        write = proto if not proto.id or prepared.dirty else None
        _eid, ids, _ = store._call("put_execution", ex, [(None, in_event), (write, out_event)], [])
        if not proto.id:
            proto.id = ids[1]
        return _identity.fill(store, output, proto)

    return store._write_with_retry(attempt, f"record {step} of {target!r}")
