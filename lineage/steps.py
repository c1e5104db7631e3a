"""Recording pipelines as people write them: ``@step``, ``run()``, ``log_params``, ``log_metrics``.

Add ``@lineage.step`` to the functions of a script and wrap it in ``with lineage.run(...)``;
every call is then recorded in MLMD with its inputs, outputs, parameters, code and
environment. Nothing else in the code changes: a step returns what the function returns.

Where everything lives in MLMD (read it from here, e.g. for ``store.compare()``):

Steps (one MLMD execution per call, in the execution type named like the step):
    - MLMD ``name``: ``"<step>:<uuid hex>"``, unique, so a retried write is detected.
    - parameters: the execution's **custom properties**, one per argument (dotted keys for
      flattened config objects), plus what ``log_params`` added; ``Execution.params``.
    - code, environment, timing, error: the **typed properties** of
      :data:`lineage._schema.STEP_PROPERTIES` (``Execution.properties``).
    - metrics logged in the step: typed ``metrics`` (metric → final value) and
      ``metric_series`` (metric → ``[[step, value], ...]``, only for ``step=`` calls).
    - inputs and outputs: INPUT / OUTPUT events whose path names the argument (and its
      index or key) or the output index (``[0]``) or key (``"train"``).
    - state: RUNNING when the body starts, then COMPLETE, FAILED, CANCELED or CACHED.

Runs (an MLMD context of type ``Run``, child of an ``Experiment`` context):
    - ``name``: the user's name, suffixed (``"baseline-2"``) when taken; the user's name is
      in the typed ``run_name`` property, the experiment in ``experiment``.
    - params: the context's **custom properties** (``Run.params``): config file values
      (dotted keys), ``params=`` and ``log_params`` calls.
    - final metrics: typed property ``metrics`` (metric → last value), over the metrics
      logged on the run and in its steps; series in ``metric_series``
      (``Run.properties["metrics"]``, ``Run.properties["metric_series"]``, or
      :func:`run_metrics`).
    - typed ``status`` (RUNNING, COMPLETE, FAILED, CANCELED), ``start_time``, ``end_time``;
      ``config`` maps each config file name to the id of its ``Config`` artifact, which is
      attributed to the run.
    - every execution of the run is associated with it, and every artifact it reads or
      writes (and every ``store.put`` inside it) attributed.

Caching (``cache=True``): the cache key (step name, source hash, input fingerprints,
params) names an ``execution_cache`` context that groups the COMPLETE executions of that
call; a lookup is two indexed reads, never a scan.

Example:
    >>> import lineage
    >>> store = lineage.connect(":memory:")
    >>> @lineage.step(store=store)
    ... def double(x: int = 2) -> int:
    ...     return 2 * x
    >>> with lineage.run("demo", store=store):
    ...     double(21)
    42
    >>> [(e.name, e.state, e.params) for e in store.executions(run="demo")]
    [('double', 'COMPLETE', {'x': 21})]
"""

from __future__ import annotations

import contextvars
import functools
import hashlib
import inspect
import json
import os
import random
import threading
import time
import traceback
import types
import typing
import uuid
import warnings
import weakref
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any, TypeVar, overload

import attrs
from ml_metadata import errors as mlmd_errors
from ml_metadata.proto import metadata_store_pb2 as pb

from lineage import _convert, _env, _params
from lineage._backends import parse_uri
from lineage._schema import (
    CACHE_CONTEXT_TYPE,
    EXPERIMENT_TYPE,
    RUN_TYPE,
    STEP_KINDS,
    STEP_PROPERTIES,
)
from lineage.artifacts import Artifact, Config, artifact_class
from lineage.errors import LineageError, StepError, StoreError
from lineage.fingerprint import fingerprint, json_safe
from lineage.records import Run
from lineage.store import Store, connect, last_present

__all__ = [
    "ActiveRun",
    "RunMetrics",
    "StepSpec",
    "current_run",
    "log_metrics",
    "log_params",
    "run",
    "run_metrics",
    "step",
]

F = TypeVar("F", bound=Callable[..., Any])

# error and traceback are typed STRING properties, which MLMD indexes: PostgreSQL refuses
# index rows over ~2.7 kB, so both are cut to this many UTF-8 bytes (the traceback keeps
# its end, the error its start).
_INDEXED_BYTES = 2000


def _cut(text: str, *, keep_end: bool = False) -> str:
    data = text.encode()
    if len(data) <= _INDEXED_BYTES:
        return text
    if keep_end:
        return "..." + data[-(_INDEXED_BYTES - 3):].decode(errors="ignore")
    return data[: _INDEXED_BYTES - 3].decode(errors="ignore") + "..."
_WRITE_ATTEMPTS = 50


def _recorded_by() -> str:
    from lineage import __version__

    return f"lineage {__version__}"


# --- the default store -------------------------------------------------------------------

_default_stores: dict[str, Store] = {}
_default_lock = threading.Lock()


def _default_store() -> Store:
    """``lineage.connect()``'s store, opened once per process and URI."""
    key = parse_uri(None).display
    with _default_lock:
        store = _default_stores.get(key)
        if store is None:
            store = _default_stores[key] = connect()
        return store


def _store_of(value: Store | str | os.PathLike[str] | None) -> Store | None:
    if value is None or isinstance(value, Store):
        return value
    key = parse_uri(value).display
    with _default_lock:
        store = _default_stores.get(key)
        if store is None:
            store = _default_stores[key] = connect(value)
        return store


# --- step specs ----------------------------------------------------------------------------


@attrs.define(eq=False)
class StepSpec:
    """What ``@step`` learnt about a function at decoration time."""

    name: str
    """The step name: the MLMD execution type name."""
    kind: str
    """``process``, ``transform``, ``train``, ``evaluate`` or ``deploy``."""
    cache: bool
    """Whether a call with the same code, inputs and params reuses a recorded result."""
    store: Store | str | os.PathLike[str] | None
    """The store given to the decorator, if any."""
    func: Callable[..., Any]
    """The undecorated function."""
    signature: inspect.Signature
    """The function's signature."""
    artifact_args: dict[str, type[Artifact]]
    """Arguments annotated with an artifact type (a path given there is put as that type)."""
    skip_first: bool
    """Whether the first argument is ``self``/``cls`` (not recorded)."""
    code: dict[str, str]
    """``function``, ``source_hash`` and ``file``."""

    _type: pb.ExecutionType | None = attrs.field(default=None, repr=False)
    _base: tuple[dict[str, str], pb.Execution] | None = attrs.field(default=None, repr=False)
    _type_ids: weakref.WeakKeyDictionary[Store, int] = attrs.field(
        factory=weakref.WeakKeyDictionary, repr=False
    )
    _plain: tuple[tuple[str, Any], ...] | None = attrs.field(default=None, repr=False)
    """(name, default) of every parameter when all are positional-or-keyword (the fast
    binding path of :func:`_bind`), else None."""

    def __attrs_post_init__(self) -> None:
        kinds = {p.kind for p in self.signature.parameters.values()}
        if kinds <= {inspect.Parameter.POSITIONAL_OR_KEYWORD}:
            self._plain = tuple(
                (p.name, p.default) for p in self.signature.parameters.values()
            )

    def type_id(self, store: Store) -> int:
        """The step's execution type id in ``store`` (registered once per store object)."""
        found = self._type_ids.get(store)
        if found is None:
            found = self._type_ids[store] = store._register_type("execution", self.type_proto())
        return found

    def type_proto(self) -> pb.ExecutionType:
        """The MLMD execution type of the step (built once)."""
        if self._type is None:
            t = pb.ExecutionType(name=self.name, base_type=STEP_KINDS[self.kind])
            for key, ptype in STEP_PROPERTIES.items():
                t.properties[key] = ptype
            self._type = t
        return self._type

    def base_properties(self) -> pb.Execution:
        """An execution carrying the code and environment properties (cached; the package
        versions are checked on every call, as a script may import more as it goes)."""
        packages = _env.package_versions()
        cached = self._base
        if cached is not None and cached[0] == packages:
            return cached[1]
        proto = pb.Execution()
        props = proto.properties
        _set(props, "recorded_by", _recorded_by(), typed=True)
        _set(props, "function", self.code["function"], typed=True)
        _set(props, "source_hash", self.code["source_hash"], typed=True)
        for key, value in _env.git_facts(self.code["file"]).items():
            _set(props, key, value, typed=True)
        for key, value in _env.host_facts().items():
            if value:
                _set(props, key, value, typed=True)
        _set(props, "packages", packages, typed=True)
        self._base = (packages, proto)
        return proto


def _artifact_annotation(annotation: Any) -> type[Artifact] | None:
    """The artifact class an annotation names (``Dataset``, ``Dataset | None``), else None."""
    if isinstance(annotation, str):
        parts = [p.strip() for p in annotation.split("|") if p.strip() not in ("None", "")]
        if len(parts) != 1:
            return None
        name = parts[0]
        for prefix in ("Optional[", "typing.Optional["):
            if name.startswith(prefix) and name.endswith("]"):
                name = name[len(prefix):-1]
        short = name.rsplit(".", 1)[-1]
        cls = artifact_class(short)
        if cls.type_name == short or short == "Artifact":
            return cls
        return None
    if isinstance(annotation, type):
        return annotation if issubclass(annotation, Artifact) else None
    origin = typing.get_origin(annotation)
    if origin in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(annotation) if a is not type(None)]
        if len(args) == 1:
            return _artifact_annotation(args[0])
    return None


def _inspect(
    func: Any, name: str | None, kind: Any, cache: Any, store: Any
) -> StepSpec:
    problems: list[str] = []
    step_name = name if name is not None else getattr(func, "__name__", None)
    if not callable(func):
        problems.append(f"@step decorates functions; got {type(func).__name__} {func!r}")
    if not isinstance(step_name, str) or not step_name.strip():
        problems.append(f"name={step_name!r}: a step needs a non-empty string name")
    if kind not in STEP_KINDS:
        problems.append(f"kind={kind!r} is unknown; use one of {sorted(STEP_KINDS)}")
    if not isinstance(cache, bool):
        problems.append(f"cache={cache!r} must be True or False")
    if store is not None and not isinstance(store, (Store, str, os.PathLike)):
        problems.append(
            f"store={store!r} must be a lineage.Store (lineage.connect(...)) or a store URI"
        )
    if callable(func):
        if inspect.iscoroutinefunction(func) or inspect.isasyncgenfunction(func):
            problems.append("async functions cannot be steps yet; decorate a sync function")
        elif inspect.isgeneratorfunction(func):
            problems.append(
                "generator functions cannot be steps (their body runs after the call "
                "returns); return a list or an artifact instead"
            )
    signature: inspect.Signature | None = None
    if callable(func):
        try:
            signature = inspect.signature(func)
        except (TypeError, ValueError) as exc:
            problems.append(f"cannot read the signature of {func!r}: {exc}")
    if problems:
        what = step_name if isinstance(step_name, str) else repr(func)
        raise StepError(
            f"cannot make {what!r} a step:\n" + "\n".join(f"  - {p}" for p in problems),
            step=step_name if isinstance(step_name, str) else None,
        )
    assert signature is not None and isinstance(step_name, str)
    try:
        hints = typing.get_type_hints(func)
    except Exception:  # forward references that do not resolve: use the strings
        hints = {}
    artifact_args: dict[str, type[Artifact]] = {}
    for pname, param in signature.parameters.items():
        annotation = hints.get(pname, param.annotation)
        if annotation is inspect.Parameter.empty:
            continue
        cls = _artifact_annotation(annotation)
        if cls is not None:
            artifact_args[pname] = cls
    first = next(iter(signature.parameters.values()), None)
    skip_first = first is not None and first.name in ("self", "cls") and first.kind in (
        inspect.Parameter.POSITIONAL_ONLY, inspect.Parameter.POSITIONAL_OR_KEYWORD
    )
    return StepSpec(
        name=step_name,
        kind=kind,
        cache=cache,
        store=store,
        func=func,
        signature=signature,
        artifact_args=artifact_args,
        skip_first=skip_first,
        code=_env.code_facts(func),
    )


@overload
def step(func: F, /) -> F: ...


@overload
def step(
    *,
    name: str | None = None,
    kind: str = "process",
    cache: bool = False,
    store: Store | str | os.PathLike[str] | None = None,
) -> Callable[[F], F]: ...


def step(
    func: Any = None,
    /,
    *,
    name: str | None = None,
    kind: str = "process",
    cache: bool = False,
    store: Store | str | os.PathLike[str] | None = None,
) -> Any:
    """Record every call of a function as an MLMD execution.

    Use it bare (``@lineage.step``) or with options. The function keeps its name,
    docstring, signature and return value. Arguments that are artifacts become INPUT
    events, returned artifacts OUTPUT events, every other argument (defaults included) a
    parameter. The execution is written RUNNING before the body runs, then COMPLETE with
    its outputs (FAILED with the error, CANCELED on Ctrl-C, CACHED on a cache hit).

    Args:
        func: the function (when used bare).
        name: the step name (MLMD execution type); defaults to the function's name.
        kind: ``process``, ``transform``, ``train``, ``evaluate`` or ``deploy`` (the MLMD
            execution base type).
        cache: reuse the recorded outputs of a COMPLETE call with the same source code,
            input fingerprints and params when their content is unchanged.
        store: where to record (a Store or URI); default: the active run's store, else
            ``lineage.connect()``.

    Raises:
        StepError: at decoration time, listing every problem (unknown kind, ...).

    Example:
        >>> import lineage
        >>> store = lineage.connect(":memory:")
        >>> @lineage.step(kind="train", store=store)
        ... def fit(lr: float = 0.1) -> lineage.Metrics:
        ...     return lineage.Metrics({"acc": 0.9}, name="eval")
        >>> fit(lr=0.5).version
        1
        >>> [(e.state, e.params, e.base_type) for e in store.executions(step="fit")]
        [('COMPLETE', {'lr': 0.5}, 'TRAIN')]
    """

    def decorate(target: Any) -> Any:
        if isinstance(target, (staticmethod, classmethod)):
            return type(target)(decorate(target.__func__))
        spec = _inspect(target, name, kind, cache, store)

        @functools.wraps(target)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            return _call(spec, _bind(spec, args, kwargs))

        wrapper.__lineage_step__ = spec  # type: ignore[attr-defined]
        return wrapper

    if func is not None:
        return decorate(func)
    return decorate


def _bind(spec: StepSpec, args: tuple[Any, ...], kwargs: dict[str, Any]) -> inspect.BoundArguments:
    """``signature.bind(*args, **kwargs)`` with defaults applied; a direct loop for plain
    signatures (``signature.bind`` gives the error message of any call it cannot take)."""
    plain = spec._plain
    if plain is not None and len(args) <= len(plain):
        arguments: dict[str, Any] = {}
        n = len(args)
        used = 0
        for i, (name, default) in enumerate(plain):
            if i < n:
                if name in kwargs:
                    break
                arguments[name] = args[i]
            elif name in kwargs:
                arguments[name] = kwargs[name]
                used += 1
            elif default is not _EMPTY:
                arguments[name] = default
            else:
                break
        else:
            if used == len(kwargs):  # no unknown keyword
                return inspect.BoundArguments(spec.signature, arguments)
    bound = spec.signature.bind(*args, **kwargs)
    bound.apply_defaults()
    return bound


_EMPTY = inspect.Parameter.empty


# --- active runs and steps -------------------------------------------------------------

_RUN: contextvars.ContextVar[ActiveRun | None] = contextvars.ContextVar("lineage_run", default=None)
_CALL: contextvars.ContextVar[_Call | None] = contextvars.ContextVar("lineage_step", default=None)
_active_runs: list[ActiveRun] = []
_active_lock = threading.Lock()


def current_run() -> ActiveRun | None:
    """The run steps are recorded in here: this context's run, else the process's only one.

    A thread started inside a ``with lineage.run(...)`` block does not inherit the block's
    context; when exactly one run is active in the process, its steps go to that run.

    Example:
        >>> import lineage
        >>> lineage.current_run() is None
        True
    """
    active = _RUN.get()
    if active is not None:
        return active
    with _active_lock:
        return _active_runs[0] if len(_active_runs) == 1 else None


@attrs.define(eq=False)
class _Call:
    """The state of one step call while its body runs."""

    spec: StepSpec
    store: Store
    run: ActiveRun | None
    proto: pb.Execution
    params: dict[str, Any]
    metrics: dict[str, Any] = attrs.field(factory=dict)
    series: dict[str, list[list[Any]]] = attrs.field(factory=dict)
    logged: set[str] = attrs.field(factory=set)
    """Params (re)set by ``log_params`` while the body ran."""
    lock: threading.Lock = attrs.field(factory=threading.Lock)


# --- classifying arguments -------------------------------------------------------------


def _all_artifacts(values: Any) -> bool:
    return bool(values) and all(isinstance(v, Artifact) for v in values)


def _classify(
    spec: StepSpec, bound: inspect.BoundArguments
) -> tuple[list[tuple[list[str | int], Artifact]], dict[str, Any]]:
    """Split the call's arguments into input artifacts (with event paths) and params."""
    inputs: list[tuple[list[str | int], Artifact]] = []
    params: dict[str, Any] = {}

    def one(name: str, value: Any, annotated: type[Artifact] | None) -> Any:
        if isinstance(value, Artifact):
            inputs.append(([name], value))
        elif annotated is not None and isinstance(value, (str, os.PathLike)):
            value = annotated(value)
            inputs.append(([name], value))
        elif isinstance(value, (list, tuple)) and _all_artifacts(value):
            inputs.extend(([name, i], v) for i, v in enumerate(value))
        elif isinstance(value, Mapping) and _all_artifacts(value.values()):
            inputs.extend(([name, str(k)], v) for k, v in value.items())
        else:
            params.update(_params.flatten(name, value))
        return value

    artifact_args = spec.artifact_args
    for index, (pname, value) in enumerate(list(bound.arguments.items())):
        if index == 0 and spec.skip_first:
            continue
        kind = type(value)
        if kind in _PLAIN and (kind is not str or pname not in artifact_args):
            params[pname] = value  # what flatten() gives for these
            continue
        param = spec.signature.parameters[pname]
        if param.kind is inspect.Parameter.VAR_POSITIONAL:
            if _all_artifacts(value):
                inputs.extend(([pname, i], v) for i, v in enumerate(value))
            elif value:
                params.update(_params.flatten(pname, list(value)))
        elif param.kind is inspect.Parameter.VAR_KEYWORD:
            for key, item in value.items():
                value[key] = one(key, item, None)
        else:
            bound.arguments[pname] = one(pname, value, spec.artifact_args.get(pname))
    return inputs, params


_PLAIN = frozenset({bool, int, float, str, type(None)})


def _outputs(result: Any) -> tuple[str, list[tuple[list[str | int], Artifact]]]:
    """The shape of a return value and its artifacts with their event paths."""
    if result is None:
        return "none", []
    if isinstance(result, Artifact):
        return "artifact", [([0], result)]
    if isinstance(result, (tuple, list)):
        shape = "tuple" if isinstance(result, tuple) else "list"
        found: list[tuple[list[str | int], Artifact]] = [
            ([i], v) for i, v in enumerate(result) if isinstance(v, Artifact)
        ]
        return (shape if len(found) == len(result) else "other"), found
    if isinstance(result, Mapping):
        found = [([str(k)], v) for k, v in result.items() if isinstance(v, Artifact)]
        return ("dict" if len(found) == len(result) else "other"), found
    return "other", []


def _rebuild(shape: str, outputs: list[tuple[str, Artifact]]) -> Any:
    """The return value of a cached call from its shape and (path, artifact) outputs."""
    if shape == "none":
        return None
    if shape == "artifact":
        return outputs[0][1]
    if shape in ("tuple", "list"):
        ordered = [a for _p, a in sorted(outputs, key=lambda pa: int(pa[0].strip("[]")))]
        return tuple(ordered) if shape == "tuple" else ordered
    return {p: a for p, a in outputs}


# --- writing -----------------------------------------------------------------------------


def _event(kind: int, path: Sequence[str | int]) -> pb.Event:
    ev = pb.Event(type=kind)
    _convert.make_event_path(ev, path)
    return ev


def _set(target: Any, key: str, value: Any, *, typed: bool = False) -> None:
    try:
        _convert.set_value(target[key], value, typed=typed)
    except TypeError:
        target[key].CopyFrom(_convert.to_value(repr(value)))


_type_ids: weakref.WeakKeyDictionary[Store, dict[type[Artifact], int]] = weakref.WeakKeyDictionary()


def _artifact_type_id(store: Store, cls: type[Artifact]) -> int:
    """The store's type id of an artifact class, registered once per store and class."""
    ids = _type_ids.setdefault(store, {})
    found = ids.get(cls)
    if found is None:
        found = ids[cls] = store._artifact_type_id(cls)
    return found


def _optimistic(store: Store, artifact: Artifact) -> pb.Artifact | None:
    """A new proto for the next version of a name this store object wrote or read before,
    without asking the store: if the same content is already recorded (``external_id``) or
    the version was taken meanwhile (``name``), MLMD's unique keys reject the write, which
    is then redone with :meth:`Store._prepare`. Saves two reads per output."""
    if not artifact.uri and not artifact.has_content and not artifact.fingerprint:
        return None
    hint = store._version_hints.get((artifact.type_name, artifact.name))
    if hint is None:
        return None
    artifact.fingerprint = store.fingerprint_of(artifact)
    cls = type(artifact)
    return _convert.artifact_to_proto(
        artifact,
        type_id=_artifact_type_id(store, cls),
        version=hint[0] + 1,
        previous=hint[1].id,
        external_id=store._identity_key(artifact),
        declared=cls.property_types,
    )


# Artifacts each store object recorded or read in this process (id -> external_id). An input
# known here is referenced by an event alone, without re-reading and re-sending the stored
# artifact: MLMD leaves the artifact untouched when a pair carries no artifact.
_known: weakref.WeakKeyDictionary[Store, dict[int, str]] = weakref.WeakKeyDictionary()
_known_lock = threading.Lock()
_KNOWN_MAX = 200_000


def _remember(store: Store, artifact: Artifact) -> None:
    if artifact.id is None or not artifact.external_id:
        return
    with _known_lock:
        known = _known.setdefault(store, {})
        if len(known) >= _KNOWN_MAX:
            known.clear()
        known[artifact.id] = artifact.external_id


def _is_known(store: Store, artifact: Artifact) -> bool:
    known = _known.get(store)
    return (
        known is not None and artifact.id is not None and artifact.external_id is not None
        and known.get(artifact.id) == artifact.external_id
    )


class _Pending:
    """Artifacts to write with an execution: nothing for artifacts this store object
    recorded (an event with their id is enough), stored protos for other recorded ones,
    new protos (re-prepared after a lost race) for the others.

    MLMD allows one event per (artifact, execution, event type), so an artifact given
    twice (``f(a, [a])``) gets one event, at its first path; the later objects are
    aliases, filled in like the first.
    """

    def __init__(self, store: Store, event_type: int) -> None:
        self.store = store
        self.event_type = event_type
        self.items: list[tuple[list[str | int], Artifact, pb.Artifact | None]] = []
        self.aliases: list[tuple[Artifact, int]] = []

    def add(self, entries: Sequence[tuple[list[str | int], Artifact]]) -> None:
        if not entries:
            return
        known = {id(a) for _p, a in entries if _is_known(self.store, a)}
        stored_ids = {a.id for _p, a in entries if a.id is not None and id(a) not in known}
        stored = (
            {p.id: p for p in self.store._batched("get_artifacts_by_id", sorted(stored_ids))}
            if stored_ids else {}
        )
        seen: dict[object, int] = {}
        for path, artifact in entries:
            proto: pb.Artifact | None = None
            if id(artifact) in known:
                key: object = artifact.id
            else:
                proto = stored.get(artifact.id) if artifact.id is not None else None
                if proto is None:
                    proto = _optimistic(self.store, artifact) or self.store._prepare(artifact)
                key = proto.id or proto.external_id or id(artifact)
            if key in seen:
                self.aliases.append((artifact, seen[key]))
                continue
            seen[key] = len(self.items)
            self.items.append((path, artifact, proto))

    def reprepare(self) -> None:
        """Prepare the new artifacts again (another writer may have recorded them)."""
        self.items = [
            (path, artifact,
             self.store._prepare(artifact) if proto is not None and not proto.id else proto)
            for path, artifact, proto in self.items
        ]

    def pairs(self) -> list[tuple[pb.Artifact | None, pb.Event]]:
        out: list[tuple[pb.Artifact | None, pb.Event]] = []
        for path, artifact, proto in self.items:
            event = _event(self.event_type, path)
            if proto is None:
                event.artifact_id = int(artifact.id or 0)
            out.append((proto, event))
        return out

    def fingerprint(self, index: int) -> str:
        """The content identity of item ``index`` (for cache keys)."""
        _path, artifact, proto = self.items[index]
        found = _fingerprint_of(proto) if proto is not None else artifact.fingerprint
        return found or f"artifact:{proto.id if proto is not None else artifact.id}"

    def fill(self, ids: Sequence[int]) -> None:
        for (_path, artifact, proto), artifact_id in zip(self.items, ids, strict=True):
            if proto is None:
                continue  # known to this store: already filled
            if not proto.id:
                proto.id = artifact_id
            elif artifact.id == proto.id and artifact.version is not None:
                _remember(self.store, artifact)
                continue  # a recorded artifact passed in: nothing new to copy into it
            self.store._fill(artifact, proto)
            _remember(self.store, artifact)
        for artifact, index in self.aliases:
            _path, first, proto = self.items[index]
            if proto is not None:
                self.store._fill(artifact, proto)
            elif artifact is not first:
                self.store._fill(artifact, self.store._resolve(int(first.id or 0)))


def _put_execution(
    store: Store,
    spec: StepSpec,
    proto: pb.Execution,
    pending: Sequence[_Pending],
    contexts: Sequence[pb.Context],
) -> int:
    """One atomic ``put_execution``, retried idempotently.

    The execution's MLMD name is unique, so when the outcome of a write is unknown (an
    error after which another attempt may or may not be needed) we look the execution up
    by name: if it is already in the target state, the write happened and is not redone.
    A lost race to create an artifact (``AlreadyExists``) re-prepares the new artifacts.
    """
    for _attempt in range(_WRITE_ATTEMPTS):
        pairs = [pair for p in pending for pair in p.pairs()]
        try:
            flags = (
                {"reuse_context_if_already_exist": True, "force_reuse_context": True}
                if contexts else {}
            )
            eid, aids, _cids = store._call("put_execution", proto, pairs, list(contexts), **flags)
        except StoreError as exc:
            try:
                done = _written(store, spec, proto, pending)
            except LineageError:
                done = None  # cannot tell: report the write's own error
            if done is not None:
                return done
            if not isinstance(exc.__cause__, mlmd_errors.AlreadyExistsError):
                raise
            for p in pending:
                p.reprepare()
            time.sleep(random.random() * 0.005 * (_attempt + 1))
            continue
        start = 0
        for p in pending:
            p.fill(aids[start:start + len(p.items)])
            start += len(p.items)
        return int(eid)
    raise StepError(
        f"could not record a call of step {spec.name!r}: other writers kept winning the "
        f"races to create its artifacts in {store.uri}; retry",
        step=spec.name,
    )


def _written(
    store: Store, spec: StepSpec, proto: pb.Execution, pending: Sequence[_Pending]
) -> int | None:
    """If the write of ``proto`` already happened, fill the artifacts and return its id."""
    found = store._call(
        "get_execution_by_type_and_name", spec.name, proto.name, missing=None
    )
    if found is None or not found.id or found.last_known_state != proto.last_known_state:
        return None
    if proto.id and found.id != proto.id:
        return None
    wanted = {(p.event_type, _convert.event_path(ev)) for p in pending for _a, ev in p.pairs()}
    events = store._call("get_events_by_execution_ids", [found.id])
    by_path = {(ev.type, _convert.event_path(ev)): ev.artifact_id for ev in events}
    if not wanted <= by_path.keys():
        return None
    for p in pending:
        ids = [by_path[(p.event_type, _convert.event_path(ev))] for _a, ev in p.pairs()]
        protos = {a.id: a for a in store._batched("get_artifacts_by_id", ids)}
        p.items = [(path, art, protos[i]) for (path, art, _old), i in zip(p.items, ids, strict=True)]
        p.fill(ids)
    return int(found.id)


# --- caching -----------------------------------------------------------------------------


def _cache_key(spec: StepSpec, inputs: _Pending, params: Mapping[str, Any]) -> str:
    identity = {
        "step": spec.name,
        "source": spec.code["source_hash"],
        "inputs": sorted(
            [_convert.event_path(_event(pb.Event.INPUT, path)), inputs.fingerprint(i)]
            for i, (path, _a, _p) in enumerate(inputs.items)
        ),
        "params": json_safe(params),
    }
    text = json.dumps(identity, sort_keys=True, separators=(",", ":"), default=repr)
    return "lineage:" + hashlib.sha256(text.encode("utf-8")).hexdigest()


def _fingerprint_of(proto: pb.Artifact) -> str | None:
    value = proto.properties.get("fingerprint")
    return value.string_value or None if value is not None else None


def _unchanged(store: Store, proto: pb.Artifact) -> bool:
    """Whether a recorded artifact's content still matches its fingerprint."""
    recorded = _fingerprint_of(proto)
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


def _cache_hit(
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
        if all(_unchanged(store, proto) for _p, proto in outs):
            return execution, shape, outs
    return None


# --- one call ----------------------------------------------------------------------------


def _call(spec: StepSpec, bound: inspect.BoundArguments) -> Any:
    active = current_run()
    store = _store_of(spec.store) or (active.store if active is not None else None)
    store = store or _default_store()
    if active is not None and active.store is not store:
        active = None
    if store.read_only:
        store._check_writable(f"record a call of step {spec.name!r}")
    type_id = spec.type_id(store)
    parent = _CALL.get()

    inputs_list, params = _classify(spec, bound)
    inputs = _Pending(store, pb.Event.INPUT)
    outputs = _Pending(store, pb.Event.OUTPUT)
    inputs.add(inputs_list)

    proto = pb.Execution()
    proto.CopyFrom(spec.base_properties())
    proto.type_id = type_id
    proto.name = f"{spec.name}:{uuid.uuid4().hex}"
    if parent is not None and parent.proto.id:
        _set(proto.properties, "parent_execution", int(parent.proto.id), typed=True)
    for key, value in params.items():
        _set(proto.custom_properties, key, value)
    contexts = [active.context] if active is not None else []
    if active is not None and active.context.id:  # queries read the run from here (no scan)
        _set(proto.properties, "run_context", int(active.context.id), typed=True)
    start = time.time()
    proto.properties["start_time"].double_value = _ms(start)  # what _set(typed=True) writes

    cache_key = _cache_key(spec, inputs, params) if spec.cache else None
    if cache_key is not None:
        _set(proto.properties, "cache_key", cache_key, typed=True)
        hit = _cache_hit(store, spec, type_id, cache_key)
        if hit is not None:
            return _record_cached(store, spec, proto, inputs, outputs, contexts, hit, active, start)

    proto.last_known_state = pb.Execution.RUNNING
    proto.id = _put_execution(store, spec, proto, [inputs], contexts)

    call = _Call(spec=spec, store=store, run=active, proto=proto, params=params)
    token = _CALL.set(call)
    try:
        if spec._plain is not None:
            result = spec.func(*bound.arguments.values())  # what bound.args holds then
        else:
            result = spec.func(*bound.args, **bound.kwargs)
    except BaseException as exc:
        _CALL.reset(token)
        _record_failure(call, exc, start)
        raise
    _CALL.reset(token)

    try:
        shape, produced = _outputs(result)
        outputs.add(produced)
        if outputs.aliases and shape != "artifact":
            shape = "other"  # an artifact returned twice: one event, not rebuildable
        _finish(call, pb.Execution.COMPLETE, start)
        proto.properties["returns"].string_value = shape
        cache_contexts = []
        if cache_key is not None and shape != "other":
            cache_type = store._register_type("context", pb.ContextType(name=CACHE_CONTEXT_TYPE))
            cache_contexts = [pb.Context(type_id=cache_type, name=cache_key)]
        _put_execution(store, spec, proto, [outputs], [*contexts, *cache_contexts])
    except BaseException as exc:
        if proto.last_known_state != pb.Execution.COMPLETE or not _is_written(store, spec, proto):
            _record_failure(call, exc, start)
        raise
    _roll_up(call)
    return result


def _is_written(store: Store, spec: StepSpec, proto: pb.Execution) -> bool:
    try:
        found = store._call("get_executions_by_id", [proto.id])
    except LineageError:
        return False
    return bool(found) and found[0].last_known_state == proto.last_known_state


def _ms(seconds: float) -> float:
    """A time stamp to the millisecond: MLMD keeps doubles with six decimals and SQLite
    reads them back with 15 digits, so a finer one would not round-trip (and every update
    of the execution would rewrite it)."""
    return round(seconds, 3)


def _now() -> float:
    """Seconds since the epoch, to the millisecond."""
    return _ms(time.time())


def _finish(call: _Call, state: int, start: float) -> None:
    proto = call.proto
    end = time.time()
    proto.last_known_state = state
    props = proto.properties  # finite floats: what _set(typed=True) writes
    props["end_time"].double_value = _ms(end)
    props["duration"].double_value = round(end - start, 6)
    with call.lock:
        for key, value in call.params.items():
            if key not in proto.custom_properties or key in call.logged:
                _set(proto.custom_properties, key, value)
        if call.metrics:
            _set(proto.properties, "metrics", call.metrics, typed=True)
        if call.series:
            proto.properties["metric_series"].CopyFrom(_convert.to_value(call.series, packed=True))


def _short_traceback(exc: BaseException) -> str:
    tb = exc.__traceback__
    lines = traceback.format_exception(type(exc), exc, tb, limit=-12)
    return _cut("".join(lines), keep_end=True)


def _record_failure(call: _Call, exc: BaseException, start: float) -> None:
    """Write FAILED (CANCELED on Ctrl-C) with the error; never mask ``exc``."""
    canceled = not isinstance(exc, Exception)
    _finish(call, pb.Execution.CANCELED if canceled else pb.Execution.FAILED, start)
    name = type(exc).__qualname__
    message = str(exc)
    error = _cut(f"{name}: {message}" if message else name)
    _set(call.proto.properties, "error", error, typed=True)
    _set(call.proto.properties, "traceback", _short_traceback(exc), typed=True)
    try:
        _put_execution(call.store, call.spec, call.proto, [], [])
    except Exception as write_error:
        warnings.warn(
            f"step {call.spec.name!r} raised {name}, and recording that failed too: "
            f"{write_error}",
            RuntimeWarning,
            stacklevel=4,
        )
    _roll_up(call)


def _record_cached(
    store: Store,
    spec: StepSpec,
    proto: pb.Execution,
    inputs: _Pending,
    outputs: _Pending,
    contexts: list[pb.Context],
    hit: tuple[pb.Execution, str, list[tuple[str, pb.Artifact]]],
    active: ActiveRun | None,
    start: float,
) -> Any:
    cached, shape, outs = hit
    recorded = store._artifacts_from_protos([p for _path, p in outs])
    outputs.items = [
        (_parse_path(path), art, p) for (path, p), art in zip(outs, recorded, strict=True)
    ]
    proto.last_known_state = pb.Execution.CACHED
    end = time.time()
    _set(proto.properties, "end_time", _ms(end), typed=True)
    _set(proto.properties, "duration", round(end - start, 6), typed=True)
    _set(proto.properties, "returns", shape, typed=True)
    _set(proto.properties, "cached_from", int(cached.id), typed=True)
    for key in ("metrics", "metric_series"):
        if key in cached.properties:
            proto.properties[key].CopyFrom(cached.properties[key])
    proto.id = _put_execution(store, spec, proto, [inputs, outputs], contexts)
    if active is not None:
        metrics = _convert.from_value(cached.properties["metrics"]) if "metrics" in cached.properties else {}
        series = (
            _convert.from_value(cached.properties["metric_series"])
            if "metric_series" in cached.properties else {}
        )
        if metrics or series:
            active._merge(metrics, series)
    return _rebuild(shape, [(path, art) for (path, _p), art in zip(outs, recorded, strict=True)])


def _parse_path(path: str) -> list[str | int]:
    if path.startswith("[") and path.endswith("]") and path[1:-1].isdigit():
        return [int(path[1:-1])]
    return [path]


def _roll_up(call: _Call) -> None:
    if call.run is not None and (call.metrics or call.series):
        with call.lock:
            metrics, series = dict(call.metrics), {k: list(v) for k, v in call.series.items()}
        try:
            call.run._merge(metrics, series)
        except LineageError as exc:
            warnings.warn(f"could not add the metrics of {call.spec.name!r} to the run: {exc}",
                          RuntimeWarning, stacklevel=3)


# --- runs --------------------------------------------------------------------------------


@attrs.define(eq=False)
class RunMetrics:
    """The metrics of a run or step: final values and the series logged with ``step=``.

    Example:
        >>> RunMetrics(final={"loss": 0.1}, series={"loss": [(0, 0.5), (1, 0.1)]}).to_dict()
        {'final': {'loss': 0.1}, 'series': {'loss': [[0, 0.5], [1, 0.1]]}}
    """

    final: dict[str, Any]
    """Metric → the last value logged."""
    series: dict[str, list[tuple[int, Any]]]
    """Metric → ``[(step, value), ...]`` in logging order."""

    def to_dict(self) -> dict[str, Any]:
        """JSON shape."""
        return {"final": self.final, "series": {k: [list(p) for p in v] for k, v in self.series.items()}}


def run_metrics(store: Store, ref: str | int | Run) -> RunMetrics:
    """The final metrics and metric series of a run.

    Example:
        >>> import lineage
        >>> store = lineage.connect(":memory:")
        >>> with lineage.run("r", store=store):
        ...     for epoch in range(3):
        ...         lineage.log_metrics({"loss": 1 / (epoch + 1)}, step=epoch)
        >>> m = lineage.run_metrics(store, "r")
        >>> m.final["loss"], [s for s, _v in m.series["loss"]]
        (0.3333333333333333, [0, 1, 2])
    """
    ctx = store._resolve_run(ref)
    final = _convert.from_value(ctx.properties["metrics"]) if "metrics" in ctx.properties else {}
    raw = (
        _convert.from_value(ctx.properties["metric_series"])
        if "metric_series" in ctx.properties else {}
    )
    series = {k: [(int(s), v) for s, v in points] for k, points in (raw or {}).items()}
    return RunMetrics(final=dict(final or {}), series=series)


def _number(name: str, value: Any) -> float | int:
    ok, scalar = _params._scalar(value)
    if not ok or isinstance(scalar, (bool, str)) or scalar is None:
        raise StepError(
            f"metric {name!r} is {value!r}; metrics are numbers (log text with log_params)"
        )
    return typing.cast(float | int, scalar)


def _check_metrics(values: Any, step_index: Any) -> dict[str, float | int]:
    if not isinstance(values, Mapping):
        raise StepError(
            f"log_metrics takes a dict of name → number, got {type(values).__name__}; "
            "e.g. log_metrics({'acc': 0.93})"
        )
    if step_index is not None and (isinstance(step_index, bool) or not isinstance(step_index, int)):
        ok, scalar = _params._scalar(step_index)
        if not ok or not isinstance(scalar, int) or isinstance(scalar, bool):
            raise StepError(f"step={step_index!r}: the step of a metric is an int (the epoch)")
    return {str(k): _number(str(k), v) for k, v in values.items()}


class ActiveRun:
    """A run being recorded: what ``with lineage.run(...) as run`` gives.

    Attributes:
        store: the store the run is recorded in.
        experiment: the experiment's name.
        run_name: the name the user asked for (``name`` may carry a ``-2`` suffix).

    Example:
        >>> import lineage
        >>> store = lineage.connect(":memory:")
        >>> with lineage.run("r", experiment="e", store=store) as active:
        ...     active.log_params(seed=3)
        ...     active.log_metrics({"acc": 0.5}, step=1)
        >>> active.name, active.params, active.metrics.series
        ('r', {'seed': 3}, {'acc': [(1, 0.5)]})
    """

    def __init__(
        self,
        name: str | None,
        experiment: str | None,
        store: Store | str | os.PathLike[str] | None,
        params: Mapping[str, Any] | None,
        config: str | os.PathLike[str] | Sequence[str | os.PathLike[str]] | None,
    ) -> None:
        problems: list[str] = []
        if name is not None and (not isinstance(name, str) or not name.strip()):
            problems.append(f"name={name!r}: a run name is a non-empty string")
        if experiment is not None and (not isinstance(experiment, str) or not experiment.strip()):
            problems.append(f"experiment={experiment!r}: an experiment name is a non-empty string")
        if params is not None and not isinstance(params, Mapping):
            problems.append(f"params= takes a dict, got {type(params).__name__}")
        if problems:
            raise StepError("cannot start the run:\n" + "\n".join(f"  - {p}" for p in problems))
        self._store_arg = store
        self.store: Store = None  # type: ignore[assignment]  # set on __enter__
        self.run_name = name or time.strftime("run-%Y%m%d-%H%M%S")
        self.experiment = experiment or "default"
        if config is None:
            configs: list[Path] = []
        elif isinstance(config, (str, os.PathLike)):
            configs = [Path(config)]
        else:
            configs = [Path(c) for c in config]
        self._configs = configs
        self._params: dict[str, Any] = {}
        for path in configs:  # parsed before anything is written: bad input writes nothing
            self._params.update(_params.load_config(path))
        for key, value in (params or {}).items():
            self._params.update(_params.flatten(str(key), value))
        self._metrics: dict[str, Any] = {}
        self._series: dict[str, list[list[Any]]] = {}
        self._lock = threading.RLock()
        self.context: pb.Context = pb.Context()
        self._token: contextvars.Token[ActiveRun | None] | None = None

    # -- identity
    @property
    def id(self) -> int:
        """The MLMD context id of the run."""
        return int(self.context.id)

    @property
    def name(self) -> str:
        """The run's unique context name."""
        return str(self.context.name)

    @property
    def params(self) -> dict[str, Any]:
        """The run's params so far."""
        with self._lock:
            return dict(self._params)

    @property
    def metrics(self) -> RunMetrics:
        """The run's metrics so far."""
        with self._lock:
            return RunMetrics(
                final=dict(self._metrics),
                series={k: [(int(s), v) for s, v in pts] for k, pts in self._series.items()},
            )

    @property
    def record(self) -> Run:
        """The run as a :class:`~lineage.Run` record."""
        with self._lock:
            return _convert.context_from_proto(
                self.context, self.store._types("context", [self.context.type_id]).get(
                    self.context.type_id), self.experiment
            )

    def __repr__(self) -> str:
        return f"<lineage.run {self.name or self.run_name!r} experiment={self.experiment!r}>"

    # -- logging
    def log_params(self, **params: Any) -> None:
        """Add params to the run (flattened, dotted keys) and record them now."""
        flat: dict[str, Any] = {}
        for key, value in params.items():
            flat.update(_params.flatten(key, value))
        with self._lock:
            self._params.update(flat)
            for key, value in flat.items():
                _set(self.context.custom_properties, key, value)
            self._flush()

    def log_metrics(self, values: Mapping[str, Any], step: int | None = None) -> None:
        """Add metric values to the run (a series point each when ``step`` is given)."""
        checked = _check_metrics(values, step)
        series = {k: [[int(step), v]] for k, v in checked.items()} if step is not None else {}
        self._merge(checked, series)

    def _merge(self, metrics: Mapping[str, Any], series: Mapping[str, list[list[Any]]]) -> None:
        with self._lock:
            self._metrics.update(metrics)
            for key, points in series.items():
                self._series.setdefault(key, []).extend([list(p) for p in points])
            if self._metrics:
                _set(self.context.properties, "metrics", self._metrics, typed=True)
            if self._series:
                self.context.properties["metric_series"].CopyFrom(
                    _convert.to_value(self._series, packed=True)
                )
            self._flush()

    def _flush(self) -> None:
        if self.context.id:
            self.store._call("put_contexts", [self.context])

    # -- lifecycle
    def __enter__(self) -> ActiveRun:
        outer = _RUN.get()
        if outer is not None:
            raise StepError(
                f"a run cannot start inside the run {outer.name!r}; runs nest inside "
                "experiments, not inside runs: end the outer run first, or give both the "
                "same experiment="
            )
        self.store = _store_of(self._store_arg) or _default_store()
        store = self.store
        store._check_writable(f"start the run {self.run_name!r}")
        exp_type, run_type = store._ensure_run_types()
        config_ids: dict[str, int] = {}
        configs = [store.put(Config(path)) for path in self._configs]
        for path, art in zip(self._configs, configs, strict=True):
            config_ids[path.name if path.name not in config_ids else str(path)] = int(art.id or 0)
        experiment = self._get_or_create(exp_type, EXPERIMENT_TYPE, self.experiment)
        ctx = pb.Context(type_id=run_type)
        start = _now()
        _set(ctx.properties, "recorded_by", _recorded_by(), typed=True)
        _set(ctx.properties, "run_name", self.run_name, typed=True)
        _set(ctx.properties, "experiment", self.experiment, typed=True)
        _set(ctx.properties, "start_time", start, typed=True)
        _set(ctx.properties, "status", "RUNNING", typed=True)
        if config_ids:
            _set(ctx.properties, "config", config_ids, typed=True)
        for key, value in self._params.items():
            _set(ctx.custom_properties, key, value)
        self.context = self._create_run(ctx)
        store._call(
            "put_parent_contexts",
            [pb.ParentContext(child_id=self.context.id, parent_id=experiment.id)],
        )
        if configs:
            store._call(
                "put_attributions_and_associations",
                [pb.Attribution(context_id=self.context.id, artifact_id=a.id) for a in configs],
                [],
            )
        self._token = _RUN.set(self)
        with _active_lock:
            _active_runs.append(self)
        return self

    def __exit__(self, exc_type: Any, exc: Any, tb: Any) -> None:
        with _active_lock:
            if self in _active_runs:
                _active_runs.remove(self)
        if self._token is not None:
            _RUN.reset(self._token)
            self._token = None
        if exc is None:
            status = "COMPLETE"
        elif isinstance(exc, Exception):
            status = "FAILED"
        else:
            status = "CANCELED"
        with self._lock:
            _set(self.context.properties, "status", status, typed=True)
            _set(self.context.properties, "end_time", _now(), typed=True)
            try:
                self._flush()
            except LineageError as err:
                if exc is None:
                    raise
                warnings.warn(f"could not record the end of run {self.name!r}: {err}",
                              RuntimeWarning, stacklevel=2)

    def _get_or_create(self, type_id: int, type_name: str, name: str) -> pb.Context:
        def attempt() -> pb.Context:
            found = self.store._call("get_context_by_type_and_name", type_name, name, missing=None)
            if found is not None and found.id:
                return typing.cast(pb.Context, found)
            ctx = pb.Context(type_id=type_id, name=name)
            _set(ctx.properties, "recorded_by", _recorded_by(), typed=True)
            [ctx.id] = self.store._call("put_contexts", [ctx])
            return ctx

        return self.store._write_with_retry(attempt, f"create the {type_name} context {name!r}")

    def _taken(self, name: str) -> bool:
        got = self.store._call("get_context_by_type_and_name", RUN_TYPE, name, missing=None)
        return got is not None and bool(got.id)

    def _free_name(self) -> str:
        """The user's name, or the first free ``name-<n>`` (O(log n) probes)."""
        base = self.run_name
        if not self._taken(base):
            return base

        def taken(n: int) -> bool | None:  # n=1 is the bare name, taken
            return True if n == 1 or self._taken(f"{base}-{n}") else None

        last = last_present(taken)
        return f"{base}-{(last[0] if last else 1) + 1}"

    def _create_run(self, ctx: pb.Context) -> pb.Context:
        def attempt() -> pb.Context:  # another writer may take the free name first
            ctx.name = self._free_name()
            [ctx.id] = self.store._call("put_contexts", [ctx])
            return ctx

        return self.store._write_with_retry(attempt, f"find a free run name for {self.run_name!r}")


def run(
    name: str | None = None,
    experiment: str | None = None,
    store: Store | str | os.PathLike[str] | None = None,
    params: Mapping[str, Any] | None = None,
    config: str | os.PathLike[str] | Sequence[str | os.PathLike[str]] | None = None,
) -> ActiveRun:
    """Group the steps recorded in a ``with`` block into a run of an experiment.

    Args:
        name: the run's name; a taken name gets a suffix (``baseline-2``). Default: a
            readable time stamp (``run-20250101-120000``).
        experiment: the experiment the run belongs to (``"default"`` if not given).
        store: where to record; default ``lineage.connect()``.
        params: run params (flattened to dotted keys).
        config: a YAML, JSON or TOML file (or several): recorded as ``Config`` artifacts of
            the run, their values flattened into run params (``params=`` wins on a clash).

    Raises:
        StepError: bad arguments, an unreadable config, or a run started inside a run.

    Example:
        >>> import lineage
        >>> store = lineage.connect(":memory:")
        >>> with lineage.run("baseline", experiment="iris", store=store, params={"seed": 1}) as r:
        ...     lineage.log_metrics({"acc": 0.9})
        >>> [(x.name, x.experiment, x.params) for x in store.runs()]
        [('baseline', 'iris', {'seed': 1})]
        >>> with lineage.run("baseline", experiment="iris", store=store) as r2:
        ...     pass
        >>> r2.name, r2.run_name
        ('baseline-2', 'baseline')
    """
    return ActiveRun(name, experiment, store, params, config)


def log_params(**params: Any) -> None:
    """Record params on the current step (its execution) or, outside steps, on the run.

    Values are flattened like step arguments (``log_params(**vars(args))`` records every
    command-line option).

    Raises:
        StepError: called outside any step and run.

    Example:
        >>> import lineage
        >>> store = lineage.connect(":memory:")
        >>> with lineage.run("r", store=store):
        ...     lineage.log_params(batch_size=32, optim={"lr": 0.1})
        >>> store.runs()[0].params
        {'batch_size': 32, 'optim': {'lr': 0.1}}
    """
    call = _CALL.get()
    if call is not None:
        flat: dict[str, Any] = {}
        for key, value in params.items():
            flat.update(_params.flatten(key, value))
        with call.lock:
            call.params.update(flat)
            call.logged.update(flat)
        return
    active = current_run()
    if active is None:
        raise StepError(
            "log_params() records on the current step or run; call it inside a @lineage.step "
            "function or a `with lineage.run(...)` block"
        )
    active.log_params(**params)


def log_metrics(values: Mapping[str, Any], step: int | None = None) -> None:
    """Record metric values on the current step or, outside steps, on the run.

    Each call sets the metric's final value; with ``step=`` (an epoch, a batch) it also
    appends ``(step, value)`` to the metric's series, so the whole curve is kept. Metrics
    of a step are added to its run too.

    Raises:
        StepError: not numbers, or called outside any step and run.

    Example:
        >>> import lineage
        >>> store = lineage.connect(":memory:")
        >>> @lineage.step(store=store)
        ... def fit(epochs: int = 2) -> None:
        ...     for epoch in range(epochs):
        ...         lineage.log_metrics({"loss": 1.0 / (epoch + 1)}, step=epoch)
        >>> fit()
        >>> store.executions(step="fit")[0].properties["metric_series"]
        {'loss': [[0, 1], [1, 0.5]]}
    """
    checked = _check_metrics(values, step)
    call = _CALL.get()
    if call is not None:
        with call.lock:
            call.metrics.update(checked)
            if step is not None:
                for key, value in checked.items():
                    call.series.setdefault(key, []).append([int(step), value])
        return
    active = current_run()
    if active is None:
        raise StepError(
            "log_metrics() records on the current step or run; call it inside a "
            "@lineage.step function or a `with lineage.run(...)` block"
        )
    active.log_metrics(checked, step)


def _attribute_to_run(store: Store, artifact: Artifact) -> None:
    """Attribute an artifact ``store.put()`` recorded to the active run of that store."""
    _remember(store, artifact)
    active = current_run()
    if active is None or active.store is not store or artifact.id is None or not active.context.id:
        return
    store._call(
        "put_attributions_and_associations",
        [pb.Attribution(context_id=active.context.id, artifact_id=artifact.id)],
        [],
    )

