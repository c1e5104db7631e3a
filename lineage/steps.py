"""``@lineage.step``: every call of a function recorded as an MLMD execution.

Add ``@lineage.step`` to the functions of a script and wrap it in ``with lineage.run(...)``
(:mod:`lineage.runs`); every call is then recorded in MLMD with its inputs, outputs,
parameters, code and environment. Nothing else in the code changes: a step returns what the
function returns.

Where a step lives in MLMD (one execution per call, in the execution type named like the
step):
    - MLMD ``name``: ``"<step>:<uuid hex>"``, unique, so a retried write is detected.
    - parameters: the execution's **custom properties**, one per argument (dotted keys for
      flattened config objects), plus what ``log_params`` added; ``Execution.params``.
    - code, environment, timing, error: the **typed properties** of
      :data:`lineage._schema.STEP_PROPERTIES` (``Execution.properties``).
    - metrics logged in the step (:mod:`lineage.metrics`): typed ``metrics`` (metric → final
      value); series and confusion matrices in ``MetricChunk`` contexts flushed while the
      body runs, and the points logged after the last flush packed in ``metric_series``
      (:mod:`lineage._series`).
    - inputs and outputs: INPUT / OUTPUT events whose path names the argument (and its
      index or key) or the output index (``[0]``) or key (``"train"``).
    - state: RUNNING when the body starts, then COMPLETE, FAILED, CANCELED or CACHED
      (caching: :mod:`lineage._cache`).

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

import functools
import inspect
import os
import time
import traceback
import types
import typing
import uuid
import warnings
import weakref
from collections.abc import Callable, Mapping
from typing import Any, TypeVar, overload

import attrs
from ml_metadata.proto import metadata_store_pb2 as pb

from lineage import _active, _convert, _env, _limits, _liveness, _params, _series
from lineage._active import _CALL, _Call, current_run
from lineage._cache import NOT_A_METHOD, Uncacheable, cache_hit, key_of, record_cached
from lineage._recording import (
    Pending,
    cut_indexed,
    ms,
    new_event,
    put_execution,
    recorded_by,
    set_prop,
    stamp_outputs,
)
from lineage._schema import CACHE_CONTEXT_TYPE, STEP_KINDS, STEP_PROPERTIES
from lineage.artifacts import Artifact, artifact_class
from lineage.environment import record_environment
from lineage.errors import CacheWarning, LineageError, RecordingWarning, StepError
from lineage.runs import ENV_RUN, joined_run
from lineage.secrets import redact_error, secret_values
from lineage.store import Store, default_store, store_of

__all__ = ["StepSpec", "log_artifact", "step"]

F = TypeVar("F", bound=Callable[..., Any])
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
    """``function``, ``source_hash``, ``code_hash`` and ``file``."""
    cache_version: str | int | None = None
    """Bumped by hand (``cache_version=2``) to invalidate the cache of a step."""
    returns: type[Artifact] | None = None
    """The artifact class the return annotation names: a returned path is recorded as it."""
    keep: bool | None = None
    """Keep the content the step records: ``None`` (the store's rule), False, or True
    (whatever its size); see :mod:`lineage.keeping`."""

    _type: pb.ExecutionType | None = attrs.field(default=None, repr=False)
    _base: tuple[dict[str, str], pb.Execution] | None = attrs.field(default=None, repr=False)
    _type_ids: weakref.WeakKeyDictionary[Store, int] = attrs.field(
        factory=weakref.WeakKeyDictionary, repr=False
    )
    _warned: set[str] = attrs.field(factory=set, repr=False)
    """The reasons this step was not cached that the user was told already."""
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
        set_prop(props, "recorded_by", recorded_by(), typed=True)
        set_prop(props, "function", self.code["function"], typed=True)
        set_prop(props, "source_hash", self.code["source_hash"], typed=True)
        set_prop(props, "code_hash", self.code["code_hash"], typed=True)
        for key, value in _env.git_facts(self.code["file"]).items():
            set_prop(props, key, value, typed=True)
        for key, value in _env.host_facts().items():
            if value:
                set_prop(props, key, value, typed=True)
        set_prop(props, "packages", packages, typed=True)
        # who ran it, and how (accountability: lineage._env)
        for key, value in {**_env.who_facts(), "command": _env.command_line(),
                           "source_file": self.code["file"]}.items():
            if value:
                set_prop(props, key, value, typed=True)
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
    func: Any, name: str | None, kind: Any, cache: Any, store: Any, cache_version: Any = None,
    keep: Any = None,
) -> StepSpec:
    problems: list[str] = []
    step_name = name if name is not None else getattr(func, "__name__", None)
    if not callable(func):
        problems.append(f"@step decorates functions; got {type(func).__name__} {func!r}")
    if not isinstance(step_name, str) or not step_name.strip():
        problems.append(f"name={step_name!r}: a step needs a non-empty string name")
    elif (too_long := _limits.name_problem(step_name, "step name")) is not None:
        problems.append(too_long)
        step_name = step_name[:_limits.NAME_MAX] + "…"
    if kind not in STEP_KINDS:
        problems.append(f"kind={kind!r} is unknown; use one of {sorted(STEP_KINDS)}")
    if not isinstance(cache, bool):
        problems.append(f"cache={cache!r} must be True or False")
    if cache_version is not None and (isinstance(cache_version, bool) or not isinstance(
            cache_version, (str, int))):
        problems.append(f"cache_version={cache_version!r} must be a string or an int")
    if keep is not None and not isinstance(keep, bool):
        problems.append(f"keep={keep!r} must be True, False or None (the store's rule)")
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
        cache_version=cache_version,
        returns=_artifact_annotation(hints.get("return", signature.return_annotation))
        if signature.return_annotation is not inspect.Signature.empty else None,
        keep=keep,
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
    cache_version: str | int | None = None,
    keep: bool | None = None,
) -> Callable[[F], F]: ...


def step(
    func: Any = None,
    /,
    *,
    name: str | None = None,
    kind: str = "process",
    cache: bool = False,
    store: Store | str | os.PathLike[str] | None = None,
    cache_version: str | int | None = None,
    keep: bool | None = None,
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
        cache: reuse the recorded outputs of a COMPLETE call with the same code (the
            function and the project's own helpers it refers to), input content, whole
            content of every other argument and, for a method, state of its object, when
            the outputs are unchanged on disk. A call whose arguments cannot be keyed
            exactly runs, with a warning saying why.
        store: where to record (a Store or URI); default: the active run's store, else
            ``lineage.connect()``.
        cache_version: bump it (``cache_version=2``) to stop reusing earlier results of
            this step, e.g. after changing code the cache key cannot see.
        keep: keep the content of what the step records (``False``: never; ``True``:
            whatever its size; default: the store's rule, see :mod:`lineage.keeping`).

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
        spec = _inspect(target, name, kind, cache, store, cache_version, keep)

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


# --- classifying arguments -------------------------------------------------------------


def _all_artifacts(values: Any) -> bool:
    return bool(values) and all(isinstance(v, Artifact) for v in values)


def _in_memory(value: Any) -> bool:
    """Content an artifact argument can take as ``content=`` (arrays, DataFrames, bytes)."""
    return isinstance(value, (bytes, bytearray)) or type(value).__module__.split(".")[0] in (
        "numpy", "pandas", "polars", "pyarrow")


def _classify(
    spec: StepSpec, bound: inspect.BoundArguments, raw: dict[str, Any] | None = None,
) -> tuple[list[tuple[list[str | int], Artifact]], dict[str, Any]]:
    """Split the call's arguments into input artifacts (with event paths) and params
    (``raw``, when given, gets the params' values as passed, for the cache key)."""
    inputs: list[tuple[list[str | int], Artifact]] = []
    params: dict[str, Any] = {}

    def one(name: str, value: Any, annotated: type[Artifact] | None) -> Any:
        if isinstance(value, Artifact):
            inputs.append(([name], value))
        elif annotated is not None and isinstance(value, (str, os.PathLike)):
            value = annotated(value)
            inputs.append(([name], value))
        elif annotated is not None and _in_memory(value):
            # a DataFrame for a Dataset argument is that content, not a parameter
            value = annotated(content=value, name=f"{spec.name}.{name}")
            inputs.append(([name], value))
        elif isinstance(value, (list, tuple)) and _all_artifacts(value):
            inputs.extend(([name, i], v) for i, v in enumerate(value))
        elif isinstance(value, Mapping) and _all_artifacts(value.values()):
            inputs.extend(([name, str(k)], v) for k, v in value.items())
        else:
            params.update(_params.flatten(name, value))
            if raw is not None:
                raw[name] = value
        return value

    artifact_args = spec.artifact_args
    for index, (pname, value) in enumerate(list(bound.arguments.items())):
        if index == 0 and spec.skip_first:
            continue
        kind = type(value)
        if kind in _PLAIN and (kind is not str or pname not in artifact_args):
            params[pname] = value  # what flatten() gives for these
            if raw is not None:
                raw[pname] = value
            continue
        param = spec.signature.parameters[pname]
        if param.kind is inspect.Parameter.VAR_POSITIONAL:
            if _all_artifacts(value):
                inputs.extend(([pname, i], v) for i, v in enumerate(value))
            elif value:
                params.update(_params.flatten(pname, list(value)))
                if raw is not None:
                    raw[pname] = list(value)
        elif param.kind is inspect.Parameter.VAR_KEYWORD:
            for key, item in value.items():
                value[key] = one(key, item, None)
        else:
            bound.arguments[pname] = one(pname, value, spec.artifact_args.get(pname))
    return inputs, params


_PLAIN = frozenset({bool, int, float, str, type(None)})


def _outputs(
    result: Any, returns: type[Artifact] | None = None,
) -> tuple[str, list[tuple[list[str | int], Artifact]]]:
    """The shape of a return value and its artifacts with their event paths (a path
    returned by a step annotated ``-> Model`` is recorded as a Model)."""
    if result is None:
        return "none", []
    if isinstance(result, Artifact):
        return "artifact", [([0], result)]
    if returns is not None and isinstance(result, (str, os.PathLike)):
        shape = "path" if isinstance(result, str) else "pathlib"
        return shape, [([0], returns(result))]
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


# --- one call ----------------------------------------------------------------------------


def _call(spec: StepSpec, bound: inspect.BoundArguments) -> Any:
    active = current_run()
    if active is None and os.environ.get(ENV_RUN) and not _active.others():
        active = joined_run(store_of(spec.store) or default_store())  # a stage of a pipeline
    elif active is None and spec.store is None:
        _no_run_to_guess(spec)
    store = store_of(spec.store) or (active.store if active is not None else None)
    store = store or default_store()
    if active is not None and active.store is not store:
        active = None
    if store.read_only:
        store._check_writable(f"record a call of step {spec.name!r}")
    type_id = spec.type_id(store)
    parent = _CALL.get()

    raw: dict[str, Any] | None = {} if spec.cache else None
    inputs_list, params = _classify(spec, bound, raw)
    inputs = Pending(store, pb.Event.INPUT)
    outputs = Pending(store, pb.Event.OUTPUT)
    inputs.add(inputs_list)

    proto = pb.Execution()
    proto.CopyFrom(spec.base_properties())
    proto.type_id = type_id
    proto.name = f"{spec.name}:{uuid.uuid4().hex}"
    if parent is not None and parent.proto.id:
        set_prop(proto.properties, "parent_execution", int(parent.proto.id), typed=True)
    for key, value in params.items():
        set_prop(proto.custom_properties, key, value)
    contexts = [active.context] if active is not None else []
    if active is not None and active.context.id:  # queries read the run from here (no scan)
        set_prop(proto.properties, "run_context", int(active.context.id), typed=True)
    env_id = record_environment(store)  # once per store and process
    if env_id is not None:
        proto.properties["environment"].int_value = env_id
    start = time.time()
    proto.properties["start_time"].double_value = ms(start)  # what set_prop(typed=True) writes

    cache_key = _key(spec, inputs, raw, bound) if raw is not None else None
    if cache_key is not None:
        set_prop(proto.properties, "cache_key", cache_key, typed=True)
        hit = cache_hit(store, spec, type_id, cache_key)
        if hit is not None:
            return record_cached(store, spec, proto, inputs, outputs, contexts, hit, active, start)

    proto.last_known_state = pb.Execution.RUNNING
    _liveness.stamp(proto.properties)  # pid, process id, heartbeat: `lineage doctor`
    proto.id = put_execution(store, spec, proto, [inputs], contexts)

    call = _Call(spec=spec, store=store, run=active, proto=proto, params=params)
    _liveness.started(call)  # heartbeat; SIGTERM/SIGHUP end it as CANCELED
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
        shape, produced = _outputs(result, spec.returns)
        outputs.add(produced)
        if outputs.aliases and shape != "artifact":
            shape = "other"  # an artifact returned twice: one event, not rebuildable
        if call.published and outputs.drop(set(call.published)):
            shape = "other"  # returned what log_artifact published: its event is there
        if cache_key is not None and shape == "other":
            _warn_once(spec, "its return value mixes artifacts with other values (or returns "
                       "one artifact twice); return artifacts only (a Metrics artifact for "
                       "numbers) to cache it")
        _finish(call, pb.Execution.COMPLETE, start)
        proto.properties["returns"].string_value = shape
        stamp_outputs(store, proto, outputs)
        cache_contexts = []
        if cache_key is not None and shape != "other":
            cache_type = store._register_type("context", pb.ContextType(name=CACHE_CONTEXT_TYPE))
            cache_contexts = [pb.Context(type_id=cache_type, name=cache_key)]
        put_execution(store, spec, proto, [outputs], [*contexts, *cache_contexts])
    except Exception as exc:
        # The body ran: its result is the user's, whatever happens to the record. The step
        # is FAILED with the recording error (never left RUNNING), and the caller is told.
        if proto.last_known_state != pb.Execution.COMPLETE or not _is_written(store, spec, proto):
            _record_failure(call, exc, start)
            warnings.warn(f"step {spec.name!r} ran, but recording its outputs failed ({exc}); "
                          "it is recorded FAILED and its return value is passed on",
                          RecordingWarning, stacklevel=3)
        return result
    except BaseException as exc:  # Ctrl-C while recording: CANCELED, and stop
        if proto.last_known_state != pb.Execution.COMPLETE or not _is_written(store, spec, proto):
            _record_failure(call, exc, start)
        raise
    _roll_up(call)
    return result


def log_artifact(artifact: Artifact, name: str | None = None) -> Artifact:
    """Publish an output of the running step now (a checkpoint each epoch): an OUTPUT event
    of its execution, written at once, which stays if the step later fails. Outside a step
    but inside a run, the artifact is put and attributed to the run.

    Args:
        artifact: the artifact (a path or content); new content of a known name is the
            next version (``checkpoint`` v1, v2, …).
        name: the event path it is published under (default ``logged[<n>]``).

    Returns:
        The artifact, recorded (id, version, fingerprint filled in).

    Raises:
        StepError: called outside any step and run, or not with an artifact.

    Example:
        >>> import lineage
        >>> store = lineage.connect(":memory:")
        >>> @lineage.step(store=store)
        ... def train(epochs: int = 2) -> None:
        ...     for epoch in range(epochs):
        ...         lineage.log_artifact(lineage.Model(content=f"w{epoch}".encode(),
        ...                                            name="checkpoint"))
        >>> train()
        >>> [a.version for a in store.artifacts(name="checkpoint")]
        [1, 2]
    """
    if not isinstance(artifact, Artifact):
        raise StepError(f"log_artifact() takes an artifact (lineage.Model(path, name=...)), "
                        f"got {type(artifact).__name__}")
    call = _CALL.get()
    if call is None:
        from lineage.runs import run_for_logging

        active = run_for_logging()
        if active is None:
            raise StepError("log_artifact() publishes an output of the running step; call it "
                            "inside a @lineage.step function (or a run, to put it there)")
        return active.store.put(artifact)
    store, spec, proto = call.store, call.spec, call.proto
    with call.lock:
        pending = Pending(store, pb.Event.OUTPUT)
        path: list[str | int] = [name] if name else ["logged", len(call.published)]
        pending.add([(path, artifact)])
        if pending.drop(set(call.published)):
            return artifact  # published already: it keeps its first event
        stamp_outputs(store, proto, pending)
        contexts = [call.run.context] if call.run is not None and call.run.context.id else []
        put_execution(store, spec, proto, [pending], contexts)
        if artifact.id is not None:
            call.published[artifact.id] = _convert.event_path(new_event(pb.Event.OUTPUT, path))
    return artifact


def _no_run_to_guess(spec: StepSpec) -> None:
    """Refuse to guess the run (or to fall back to the default store) when this thread is
    in no run and several runs are active in the process."""
    runs = _active.others()
    if len(runs) > 1:
        names = ", ".join(repr(r.name or r.run_name) for r in runs)
        raise StepError(
            f"cannot tell which run a call of step {spec.name!r} belongs to: this thread is "
            f"in no run and {len(runs)} runs are active ({names}). Start the thread or the "
            "thread pool inside the run (its tasks then record into it), or wrap the work "
            "in `with run.attach():`, or give the step store= to record outside runs",
            step=spec.name)


def _key(spec: StepSpec, inputs: Pending, raw: dict[str, Any],
         bound: inspect.BoundArguments) -> str | None:
    """The cache key of a call, or None (with a warning saying why) when the call cannot
    be keyed exactly and must run."""
    instance = next(iter(bound.arguments.values())) if spec.skip_first and bound.arguments \
        else NOT_A_METHOD
    try:
        return key_of(spec, inputs, raw, instance)
    except Uncacheable as why:
        _warn_once(spec, str(why))
        return None


def _warn_once(spec: StepSpec, why: str) -> None:
    """Tell the user, once per decorated step and reason, that a ``cache=True`` call is not
    cached."""
    if why in spec._warned:
        return
    spec._warned.add(why)
    warnings.warn(f"step {spec.name!r} (cache=True) is not cached: {why}", CacheWarning,
                  stacklevel=4)


def _is_written(store: Store, spec: StepSpec, proto: pb.Execution) -> bool:
    try:
        found = store._call("get_executions_by_id", [proto.id])
    except LineageError:
        return False
    return bool(found) and found[0].last_known_state == proto.last_known_state


def _finish(call: _Call, state: int, start: float) -> None:
    _liveness.finished(call)  # no heartbeat write after this one
    proto = call.proto
    end = time.time()
    proto.last_known_state = state
    props = proto.properties  # finite floats: what set_prop(typed=True) writes
    props["end_time"].double_value = ms(end)
    props["duration"].double_value = round(end - start, 6)
    with call.lock:
        for key, value in call.params.items():
            if key not in proto.custom_properties or key in call.logged:
                set_prop(proto.custom_properties, key, value)
        if call.metrics:
            _convert.set_final_metrics(proto.properties, call.metrics)
    buffer = call.buffer
    if buffer is not None:  # the series: the tail goes with this write, or into chunks
        buffer.close()
        try:
            tail = buffer.drain_inline()
        except LineageError as exc:
            warnings.warn(f"could not record the metric series of step {call.spec.name!r}: "
                          f"{exc}", RuntimeWarning, stacklevel=3)
            tail = None
        if tail is not None:
            proto.properties["metric_series"].CopyFrom(_series.pack_value(tail))


def _short_traceback(exc: BaseException, secrets: list[str]) -> str:
    tb = exc.__traceback__
    lines = traceback.format_exception(type(exc), exc, tb, limit=-12)
    return cut_indexed(redact_error("".join(lines), secrets, keep_end=True), keep_end=True)


def _record_failure(call: _Call, exc: BaseException, start: float) -> None:
    """Write FAILED (CANCELED on Ctrl-C) with the error; never mask ``exc``."""
    canceled = not isinstance(exc, Exception)
    _finish(call, pb.Execution.CANCELED if canceled else pb.Execution.FAILED, start)
    name = type(exc).__qualname__
    message = str(exc)
    secrets = secret_values(call.params)  # errors quote secrets: redacted before writing
    error = cut_indexed(redact_error(f"{name}: {message}" if message else name, secrets))
    set_prop(call.proto.properties, "error", error, typed=True)
    set_prop(call.proto.properties, "traceback", _short_traceback(exc, secrets), typed=True)
    try:
        put_execution(call.store, call.spec, call.proto, [], [])
    except Exception as write_error:
        warnings.warn(
            f"step {call.spec.name!r} raised {name}, and recording that failed too: "
            f"{write_error}",
            RuntimeWarning,
            stacklevel=4,
        )
    _roll_up(call)


def _roll_up(call: _Call) -> None:
    """Add the step's final values to its run's (its series stay its own)."""
    if call.run is not None and call.metrics:
        with call.lock:
            metrics = dict(call.metrics)
        try:
            call.run._merge(metrics)
        except LineageError as exc:
            warnings.warn(f"could not add the metrics of {call.spec.name!r} to the run: {exc}",
                          RuntimeWarning, stacklevel=3)


