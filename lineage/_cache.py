"""Step caching: a call with the same code, input content and params reuses a recorded result.

The cache key (step name, source hash, input fingerprints, params) names an
``execution_cache`` context that groups the COMPLETE executions of that call (TFX's
convention); a lookup is two indexed reads, never a scan. A hit is recorded as a CACHED
execution that re-emits the outputs of the call it reused (``cached_from``).
"""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ml_metadata.proto import metadata_store_pb2 as pb

from lineage import _convert
from lineage._recording import (
    Pending,
    ms,
    new_event,
    put_execution,
    recorded_fingerprint,
    set_prop,
)
from lineage._schema import CACHE_CONTEXT_TYPE
from lineage.artifacts import Artifact
from lineage.checkout import load_contents, restore_outputs
from lineage.errors import LineageError
from lineage.fingerprint import fingerprint, json_safe

if TYPE_CHECKING:
    from lineage.runs import ActiveRun
    from lineage.steps import StepSpec
    from lineage.store import Store

def rebuild(shape: str, outputs: list[tuple[str, Artifact]]) -> Any:
    """The return value of a cached call from its shape and (path, artifact) outputs."""
    if shape == "none":
        return None
    if shape == "artifact":
        return outputs[0][1]
    if shape in ("tuple", "list"):
        ordered = [a for _p, a in sorted(outputs, key=lambda pa: int(pa[0].strip("[]")))]
        return tuple(ordered) if shape == "tuple" else ordered
    return {p: a for p, a in outputs}

# --- caching -----------------------------------------------------------------------------


def key_of(spec: StepSpec, inputs: Pending, params: Mapping[str, Any]) -> str:
    identity = {
        "step": spec.name,
        "source": spec.code["source_hash"],
        "inputs": sorted(
            [_convert.event_path(new_event(pb.Event.INPUT, path)), inputs.fingerprint(i)]
            for i, (path, _a, _p) in enumerate(inputs.items)
        ),
        "params": json_safe(params),
    }
    text = json.dumps(identity, sort_keys=True, separators=(",", ":"), default=repr)
    return "lineage:" + hashlib.sha256(text.encode("utf-8")).hexdigest()



def unchanged(store: Store, proto: pb.Artifact) -> bool:
    """Whether a recorded artifact's content still matches its fingerprint."""
    recorded = recorded_fingerprint(proto)
    if not recorded or not proto.uri or "://" in proto.uri:
        return True  # in-memory or remote content: nothing to re-read
    path = Path(proto.uri)
    if not path.exists():
        return False
    try:
        algo = recorded.split(":", 1)[0]
        return fingerprint(path, algo=algo, cache=store._fingerprints()) == recorded
    except LineageError:
        return False


def cache_hit(
    store: Store, spec: StepSpec, type_id: int, key: str
) -> tuple[pb.Execution, str, list[tuple[str, pb.Artifact]]] | None:
    """The newest COMPLETE execution under ``key`` whose outputs are unchanged."""
    ctx = store._call("get_context_by_type_and_name", CACHE_CONTEXT_TYPE, key, missing=None)
    if ctx is None or not ctx.id:
        return None
    candidates = [
        e for e in store._call("get_executions_by_context", ctx.id)
        if e.type_id == type_id and e.last_known_state == pb.Execution.COMPLETE
    ]
    if not candidates:
        return None
    candidates.sort(key=lambda e: e.id, reverse=True)
    events = store._batched("get_events_by_execution_ids", [e.id for e in candidates])
    by_exec: dict[int, list[pb.Event]] = {}
    for ev in events:
        if ev.type == pb.Event.OUTPUT:
            by_exec.setdefault(ev.execution_id, []).append(ev)
    artifacts = {
        a.id: a
        for a in store._batched(
            "get_artifacts_by_id", sorted({ev.artifact_id for ev in events if ev.type == pb.Event.OUTPUT})
        )
    }
    for execution in candidates:
        shape = execution.properties["returns"].string_value if "returns" in execution.properties else ""
        outs = [
            (_convert.event_path(ev), artifacts[ev.artifact_id])
            for ev in by_exec.get(execution.id, [])
            if ev.artifact_id in artifacts
        ]
        if shape in ("", "other"):
            continue
        if restore_outputs(store, [proto for _p, proto in outs], unchanged):  # kept copies too
            return execution, shape, outs
    return None

def record_cached(
    store: Store,
    spec: StepSpec,
    proto: pb.Execution,
    inputs: Pending,
    outputs: Pending,
    contexts: list[pb.Context],
    hit: tuple[pb.Execution, str, list[tuple[str, pb.Artifact]]],
    active: ActiveRun | None,
    start: float,
) -> Any:
    cached, shape, outs = hit
    recorded = store._artifacts_from_protos([p for _path, p in outs])
    load_contents(store, recorded)  # in-memory outputs: their kept content
    outputs.items = [
        (parse_path(path), art, p) for (path, p), art in zip(outs, recorded, strict=True)
    ]
    proto.last_known_state = pb.Execution.CACHED
    end = time.time()
    set_prop(proto.properties, "end_time", ms(end), typed=True)
    set_prop(proto.properties, "duration", round(end - start, 6), typed=True)
    set_prop(proto.properties, "returns", shape, typed=True)
    set_prop(proto.properties, "cached_from", int(cached.id), typed=True)
    for key in ("metrics", "metric_series"):
        if key in cached.properties:
            proto.properties[key].CopyFrom(cached.properties[key])
    proto.id = put_execution(store, spec, proto, [inputs, outputs], contexts)
    if active is not None:
        metrics = _convert.from_value(cached.properties["metrics"]) if "metrics" in cached.properties else {}
        series = (
            _convert.from_value(cached.properties["metric_series"])
            if "metric_series" in cached.properties else {}
        )
        if metrics or series:
            active._merge(metrics, series)
    return rebuild(shape, [(path, art) for (path, _p), art in zip(outs, recorded, strict=True)])


def parse_path(path: str) -> list[str | int]:
    if path.startswith("[") and path.endswith("]") and path[1:-1].isdigit():
        return [int(path[1:-1])]
    return [path]

