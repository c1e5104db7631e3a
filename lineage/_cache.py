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

from lineage import _convert, _params
from lineage._recording import (
    Pending,
    ms,
    new_event,
    put_execution,
    recorded_fingerprint,
    set_prop,
)
from lineage._schema import CACHE_CONTEXT_TYPE
from lineage.artifacts import Artifact, artifact_class
from lineage.checkout import load_contents, restore_outputs
from lineage.errors import LineageError
from lineage.fingerprint import fingerprint, fingerprint_content
from lineage.keeping import kept_info

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
    if shape in ("path", "pathlib"):  # a step annotated -> Model that returned a path
        return outputs[0][1].uri if shape == "path" else Path(outputs[0][1].uri)
    if shape in ("tuple", "list"):
        ordered = [a for _p, a in sorted(outputs, key=lambda pa: int(pa[0].strip("[]")))]
        return tuple(ordered) if shape == "tuple" else ordered
    return {p: a for p, a in outputs}

# --- cache keys ------------------------------------------------------------------------


#: Passed as ``instance`` for a function (not a method): no object state in the key.
NOT_A_METHOD: Any = object()


class Uncacheable(Exception):
    """A call whose inputs cannot be keyed exactly: it runs, and is not looked up."""


_DEPTH = 30


def _key_value(value: Any, where: str, depth: int = 0) -> Any:
    """A canonical, exact stand-in for an argument in the cache key: plain values as they
    are, containers item by item, arrays/DataFrames/bytes by a digest of their whole
    content, config objects and estimators by their fields; anything else cannot be keyed
    (its ``repr`` may not tell two values apart)."""
    if depth > _DEPTH:
        raise Uncacheable(f"{where} is nested more than {_DEPTH} levels deep")
    ok, scalar = _params._scalar(value)
    if ok and not (type(value).__module__ == "numpy" and getattr(value, "shape", ()) != ()):
        if isinstance(scalar, float):
            return {"__float__": repr(scalar)}  # 2 and 2.0 are different arguments
        return scalar
    if isinstance(value, Mapping):
        return {"__dict__": sorted(
            ([_key_value(k, f"{where} key", depth + 1), _key_value(v, f"{where}[{k!r}]", depth + 1)]
             for k, v in value.items()), key=lambda kv: json.dumps(kv, sort_keys=True))}
    if isinstance(value, (list, tuple)):
        return {"__" + type(value).__name__ + "__": [
            _key_value(v, f"{where}[{i}]", depth + 1) for i, v in enumerate(value)]}
    if isinstance(value, (set, frozenset)):
        items = [_key_value(v, f"{where}[]", depth + 1) for v in value]
        return {"__set__": sorted(items, key=lambda kv: json.dumps(kv, sort_keys=True))}
    module = type(value).__module__.split(".")[0]
    if isinstance(value, (bytes, bytearray, memoryview)) or module in ("numpy", "pandas"):
        try:
            return {"__content__": fingerprint_content(value)}
        except LineageError as exc:
            raise Uncacheable(f"{where}: {exc}") from None
    fields = _params._object_fields(value)
    if fields is not None:
        return {"__object__": _params._class_path(value), "fields": _key_value(
            fields, where, depth + 1)}
    if _params._is_estimator(value):
        return {"__object__": _params._class_path(value), "params": _key_value(
            _params._estimator_params(value), where, depth + 1)}
    raise Uncacheable(
        f"{where} is a {type(value).__name__}, whose content cannot be keyed exactly (its "
        "repr may not tell two values apart); pass plain values, arrays, DataFrames or a "
        "dataclass/attrs/pydantic object")


def _instance_key(instance: Any, where: str) -> Any:
    """The state of the object a method step is called on: its fields (dataclass, attrs,
    pydantic), an estimator's params, or its ``__dict__`` (``__slots__`` too)."""
    fields = _params._object_fields(instance)
    if fields is None and _params._is_estimator(instance):
        fields = _params._estimator_params(instance)
    if fields is None:
        state = dict(getattr(instance, "__dict__", {}))
        for slot in getattr(type(instance), "__slots__", ()):
            if hasattr(instance, slot):
                state[slot] = getattr(instance, slot)
        fields = state
    return {"__object__": _params._class_path(instance), "state": _key_value(fields, where)}


def key_of(
    spec: StepSpec, inputs: Pending, params: Mapping[str, Any], instance: Any = NOT_A_METHOD,
) -> str:
    """The cache key of a call: step name and version, its code, input content, the whole
    content of every other argument and, for a method, the state of its object.

    Raises:
        Uncacheable: an argument (or the object) cannot be keyed exactly, or an input has
            no fingerprint (a remote URI): the call must run.
    """
    fingerprints = []
    for i, (path, artifact, proto) in enumerate(inputs.items):
        found = recorded_fingerprint(proto) if proto is not None else artifact.fingerprint
        if not found:
            raise Uncacheable(
                f"the input {artifact.name!r} ({artifact.uri or 'no uri'}) has no fingerprint: "
                "its content cannot be compared; give fingerprint= for remote data")
        fingerprints.append([_convert.event_path(new_event(pb.Event.INPUT, path)),
                             inputs.fingerprint(i)])
    identity = {
        "step": spec.name,
        "version": spec.cache_version,
        "source": spec.code["source_hash"],
        "code": spec.code.get("code_hash", ""),
        "inputs": sorted(fingerprints),
        "params": _key_value(dict(params), "an argument"),
    }
    if instance is not NOT_A_METHOD:
        identity["self"] = _instance_key(instance, f"the {type(instance).__name__} object")
    text = json.dumps(identity, sort_keys=True, separators=(",", ":"))
    return "lineage:" + hashlib.sha256(text.encode("utf-8")).hexdigest()


def _given_back(store: Store, proto: pb.Artifact) -> bool:
    """Whether a hit can hand this output back as the call made it: a file or folder (or
    a remote URI), in-memory content whose bytes were kept (:mod:`lineage.keeping`), and
    in-memory content the record holds whole (Metrics) can; other in-memory content
    cannot, so the call runs."""
    if proto.uri or kept_info(proto) is not None:
        return True
    atype = store._types("artifact", [proto.type_id]).get(proto.type_id)
    return atype is not None and artifact_class(atype.name).content_in_record


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
        if all(_given_back(store, proto) for _p, proto in outs) and restore_outputs(
                store, [proto for _p, proto in outs], unchanged):  # kept copies restore files
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
    for key in ("metrics", _convert.METRICS_PACKED, "metric_series"):
        if key in cached.properties:
            proto.properties[key].CopyFrom(cached.properties[key])
    proto.id = put_execution(store, spec, proto, [inputs, outputs], contexts)
    if active is not None:
        metrics = _convert.props_to_dict(cached.properties).get("metrics") or {}
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

