"""Runs: ``with lineage.run(...)`` groups the steps it records into a run of an experiment.

A run is an MLMD context of type ``Run``, child of an ``Experiment`` context:

- ``name``: the user's name, suffixed (``"baseline-2"``) when taken; the user's name is in
  the typed ``run_name`` property, the experiment in ``experiment``.
- params: the context's **custom properties** (``Run.params``): config file values (dotted
  keys), ``params=`` and ``log_params`` calls.
- final metrics: typed property ``metrics`` (metric → last value), over the metrics logged
  on the run and in its steps; the series and confusion matrices logged on the run are
  ``MetricChunk`` child contexts (:mod:`lineage._series`), written at least every 5 s.
- typed ``status`` (RUNNING, COMPLETE, FAILED, CANCELED), ``start_time``, ``end_time``;
  ``config`` maps each config file name to the id of its ``Config`` artifact, which is
  attributed to the run.
- every execution of the run is associated with it, and every artifact it reads or writes
  (and every ``store.put`` inside it) attributed.
"""

from __future__ import annotations

import atexit
import contextlib
import contextvars
import os
import threading
import time
import typing
import warnings
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

from ml_metadata.proto import metadata_store_pb2 as pb

from lineage import _active, _convert, _env, _params, _series
from lineage._active import _CALL, _RUN, current_run
from lineage._recording import now_ms, recorded_by, set_prop
from lineage._schema import EXPERIMENT_TYPE, RUN_TYPE
from lineage.artifacts import Artifact, Config
from lineage.environment import record_environment
from lineage.errors import LineageError, StepError
from lineage.metrics import RunMetrics, _check_metrics, run_metrics
from lineage.records import Run
from lineage.store import Store, default_store, last_present, store_of

__all__ = ["ActiveRun", "current_run", "log_params", "run"]

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
        name: str | int | None,
        experiment: str | None,
        store: Store | str | os.PathLike[str] | None,
        params: Mapping[str, Any] | None,
        config: str | os.PathLike[str] | Sequence[str | os.PathLike[str]] | None,
        resume: bool = False,
    ) -> None:
        problems: list[str] = []
        if resume and (name is None or isinstance(name, bool) or not isinstance(name, (str, int))):
            problems.append(f"resume=True needs the run to reopen: its name, context:N or "
                            f"experiment/name, got {name!r}")
        elif resume and experiment is not None:
            problems.append("resume=True reopens a run of its own experiment: leave out "
                            "experiment=")
        elif not resume and name is not None and (not isinstance(name, str) or not name.strip()):
            problems.append(f"name={name!r}: a run name is a non-empty string")
        if experiment is not None and (not isinstance(experiment, str) or not experiment.strip()):
            problems.append(f"experiment={experiment!r}: an experiment name is a non-empty string")
        if params is not None and not isinstance(params, Mapping):
            problems.append(f"params= takes a dict, got {type(params).__name__}")
        if problems:
            raise StepError("cannot start the run:\n" + "\n".join(f"  - {p}" for p in problems))
        self._store_arg = store
        self.store: Store = None  # type: ignore[assignment]  # set on __enter__
        self._resume: str | int | None = name if resume else None
        self._reopened = False
        self._joined = False  # a run a process records into through $LINEAGE_RUN
        self.run_name = str(name) if name is not None else time.strftime("run-%Y%m%d-%H%M%S")
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
        self._metrics_dirty = False
        self._series_buffer: _series.Buffer | None = None
        self._lock = threading.RLock()
        self.context: pb.Context = pb.Context()
        self._pid = os.getpid()
        self._started = False  # whether start()/``with`` was tried (else: warn when collected)
        self._entered = False  # whether it started
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
        """The run's metrics so far (what waits in the buffer is written first)."""
        if not self.context.id:
            return RunMetrics(final=dict(self._metrics), series={})
        self.flush_metrics()
        return run_metrics(self.store, self.id)

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
                set_prop(self.context.custom_properties, key, value)
            self._flush()

    def log_metrics(self, values: Mapping[str, Any], step: int | None = None) -> None:
        """Add metric values to the run (a series point each when ``step`` is given)."""
        self._log_checked(_check_metrics(values, step), step)

    def _log_checked(self, checked: dict[str, Any], step: int | None) -> None:
        # the hot path: no store call; final values and points are written by flushes
        self._metrics.update(checked)
        self._metrics_dirty = True
        buffer = self._series_buffer or self._buffer()
        if step is not None and checked:
            buffer.add(step, checked)
        else:
            buffer.touch()

    def _buffer(self) -> _series.Buffer:
        """The buffer of the run's series (made on first use)."""
        with self._lock:
            if self._series_buffer is None:
                if not self.context.id:
                    raise StepError(f"the run {self.run_name!r} has not started: log inside "
                                    "its `with` block")
                self._series_buffer = _series.Buffer(
                    self.store, _series.owner_of_run(self.id), run_context_id=self.id,
                    on_flush=self._write_final,
                )
                _series.watch(self._series_buffer)
            return self._series_buffer

    def _merge(self, metrics: Mapping[str, Any], series: Mapping[str, Any] | None = None) -> None:
        """Add the final values of a step (its series stay with the step) to the run's;
        written by the next flush."""
        del series
        if metrics:
            with self._lock:
                self._metrics.update(metrics)
                self._metrics_dirty = True
            (self._series_buffer or self._buffer()).touch()  # written within seconds

    def _write_final(self) -> None:
        """Write the final values when they changed since the last write."""
        if not self._metrics_dirty or not self.context.id:
            return
        with self._lock:
            self._metrics_dirty = False
            _convert.set_final_metrics(self.context.properties, dict(self._metrics))
            try:
                self._flush()
            except BaseException:
                self._metrics_dirty = True
                raise

    def log_tensorboard(self, logdir: str | os.PathLike[str], *, name: str | None = None) -> Any:
        """Take a TensorBoard log dir into the run (see
        :func:`lineage.formats.tensorboard.log_tensorboard`)."""
        from lineage.formats.tensorboard import log_tensorboard

        return log_tensorboard(logdir, name=name, run=self)

    def flush_metrics(self) -> None:
        """Write the metrics waiting in the buffer now (the flusher does it within seconds;
        the end of the run does it too)."""
        if self._series_buffer is not None:
            self._series_buffer.flush()
        else:
            self._write_final()

    def _flush(self) -> None:
        # A child forked inside the run records its steps into it, but the run's context
        # is written by the process that started the run only: the child's copy is stale.
        if self.context.id and os.getpid() == self._pid:
            self.store._call("put_contexts", [self.context])

    # -- lifecycle
    def __enter__(self) -> ActiveRun:
        self._started = True  # tried: a failure here is an error of its own, not a warning
        outer = _RUN.get()
        if outer is not None:
            raise StepError(
                f"a run cannot start inside the run {outer.name!r}; runs nest inside "
                "experiments, not inside runs: end the outer run first, or give both the "
                "same experiment="
            )
        self.store = store_of(self._store_arg) or default_store()
        self._pid = os.getpid()
        store = self.store
        store._check_writable(f"start the run {self.run_name!r}")
        exp_type, run_type = store._ensure_run_types()
        config_ids: dict[str, int] = {}
        configs = [store.put(Config(path)) for path in self._configs]
        for path, art in zip(self._configs, configs, strict=True):
            config_ids[path.name if path.name not in config_ids else str(path)] = int(art.id or 0)
        if self._resume is not None:
            self._reopen(configs, config_ids)
            self._token = _RUN.set(self) if not self._joined else None
            _active.started(self)
            _active.propagate_into_threads()
            self._entered = True
            return self
        experiment = self._get_or_create(exp_type, EXPERIMENT_TYPE, self.experiment)
        ctx = pb.Context(type_id=run_type)
        start = now_ms()
        set_prop(ctx.properties, "recorded_by", recorded_by(), typed=True)
        set_prop(ctx.properties, "run_name", self.run_name, typed=True)
        set_prop(ctx.properties, "experiment", self.experiment, typed=True)
        set_prop(ctx.properties, "start_time", start, typed=True)
        set_prop(ctx.properties, "status", "RUNNING", typed=True)
        if config_ids:
            set_prop(ctx.properties, "config", config_ids, typed=True)
        for key, value in _accountability(store).items():  # who ran it, where, how
            set_prop(ctx.properties, key, value, typed=True)
        for key, value in self._params.items():
            set_prop(ctx.custom_properties, key, value)
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
        _active.started(self)
        _active.propagate_into_threads()
        self._entered = True
        return self

    def _reopen(self, configs: Sequence[Artifact], config_ids: Mapping[str, int]) -> None:
        """Take over an existing run (``resume=True``, ``$LINEAGE_RUN``): RUNNING again if it
        had ended, with the params and config files given now added."""
        assert self._resume is not None
        store = self.store
        ctx = store._resolve_run(self._resume)
        ctype = store._types("context", [ctx.type_id]).get(ctx.type_id)
        if ctype is None or ctype.name != RUN_TYPE:
            raise StepError(f"{self._resume!r} is a {getattr(ctype, 'name', 'context')} of "
                            "another tool, not a run lineage can reopen")
        record = store._runs_from_protos([ctx])[0]
        self.run_name = record.run_name or record.name
        self.experiment = record.experiment or "default"
        with self._lock:
            self.context = ctx
            final = record.properties.get("metrics")
            if isinstance(final, dict):
                self._metrics.update(final)
            if record.properties.get("status") != "RUNNING":
                self._reopened = True
                set_prop(ctx.properties, "status", "RUNNING", typed=True)
                if "end_time" in ctx.properties:
                    del ctx.properties["end_time"]
            for key, value in self._params.items():
                set_prop(ctx.custom_properties, key, value)
            if config_ids:
                known = _convert.from_value(ctx.properties["config"]) if "config" in \
                    ctx.properties else {}
                set_prop(ctx.properties, "config", {**(known or {}), **config_ids}, typed=True)
            self._params = {**record.params, **self._params}
            self._flush()
        if configs:
            store._call(
                "put_attributions_and_associations",
                [pb.Attribution(context_id=ctx.id, artifact_id=a.id) for a in configs], [])

    def start(self) -> ActiveRun:
        """Start the run without a ``with`` block (end it with :meth:`end`); steps of this
        thread, and of threads and pools started from it, record into it.

        Example:
            >>> import lineage
            >>> store = lineage.connect(":memory:")
            >>> r = lineage.run("manual", store=store).start()
            >>> r.end()
            >>> store.run("manual").properties["status"]
            'COMPLETE'
        """
        return self.__enter__()

    def end(self, status: str = "COMPLETE") -> None:
        """End a run started with :meth:`start`: ``"COMPLETE"``, ``"FAILED"`` or
        ``"CANCELED"``."""
        errors = {"COMPLETE": None, "FAILED": RuntimeError("the run failed"),
                  "CANCELED": KeyboardInterrupt()}
        if status not in errors:
            raise StepError(f"status={status!r}: use COMPLETE, FAILED or CANCELED")
        if not self._entered:
            self._started = True  # told now: no second warning when it is collected
            raise StepError(f"the run {self.run_name!r} was not started: call start() first")
        exc = errors[status]
        self.__exit__(type(exc) if exc else None, exc, None)

    @contextlib.contextmanager
    def attach(self) -> Iterator[ActiveRun]:
        """Record the steps of this block into this run: for threads the library cannot
        tell apart (a pool made outside the run, used by several runs at once).

        Example:
            >>> import lineage, threading
            >>> store = lineage.connect(":memory:")
            >>> with lineage.run("a", store=store) as a:
            ...     def work():
            ...         with a.attach():
            ...             assert lineage.current_run() is a
            ...     t = threading.Thread(target=work); t.start(); t.join()
        """
        token = _RUN.set(self)
        try:
            yield self
        finally:
            _RUN.reset(token)

    def __del__(self) -> None:
        if not getattr(self, "_started", True):
            warnings.warn(
                f"lineage.run({self.run_name!r}) was created but never started, so nothing "
                "was recorded in it: use `with lineage.run(...):`, or call .start() and "
                ".end()", RuntimeWarning, stacklevel=2)

    def __exit__(self, exc_type: Any, exc: Any, tb: Any) -> None:
        _active.ended(self)
        if self._token is not None:
            _RUN.reset(self._token)
            self._token = None
        if self._joined:
            status = recorded_status(self.store, self.id)
        elif exc is None:
            status = "COMPLETE"
        elif isinstance(exc, Exception):
            status = "FAILED"
        else:
            status = "CANCELED"
        buffer = self._series_buffer
        failed: LineageError | None = None
        if buffer is not None:  # the series first (outside the run's lock: the flusher
            buffer.on_flush = None  # may hold the buffer and want the lock); the final
            buffer.close()  # values go with the status below
            try:
                buffer.flush()
            except LineageError as err:
                failed = err
        with self._lock:
            set_prop(self.context.properties, "status", status, typed=True)
            set_prop(self.context.properties, "end_time", now_ms(), typed=True)
            if self._metrics:
                _convert.set_final_metrics(self.context.properties, dict(self._metrics))
                self._metrics_dirty = False
            try:
                self._flush()
            except LineageError as err:
                failed = failed or err
        if failed is not None:
            if exc is None:
                raise failed
            warnings.warn(f"could not record the end of run {self.name!r}: {failed}",
                          RuntimeWarning, stacklevel=2)

    def _get_or_create(self, type_id: int, type_name: str, name: str) -> pb.Context:
        def attempt() -> pb.Context:
            found = self.store._call("get_context_by_type_and_name", type_name, name, missing=None)
            if found is not None and found.id:
                return typing.cast(pb.Context, found)
            ctx = pb.Context(type_id=type_id, name=name)
            set_prop(ctx.properties, "recorded_by", recorded_by(), typed=True)
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


def _accountability(store: Store) -> dict[str, Any]:
    """Who runs this run and where: OS user, git author, CI job, host, command line and
    the recorded environment (:mod:`lineage._env`, :mod:`lineage.environment`)."""
    script = _env.host_facts().get("script") or ""
    facts: dict[str, Any] = {
        **_env.who_facts(),
        "git_author": _env.git_facts(script or os.path.join(os.getcwd(), "-")).get("git_author"),
        "command": _env.command_line(),
        "hostname": _env.host_facts().get("hostname"),
        "environment": record_environment(store),
    }
    return {k: v for k, v in facts.items() if v}


def recorded_status(store: Store, run_id: int) -> str:
    """The status a run's executions say: FAILED if one failed, CANCELED if one was
    canceled, else COMPLETE (what ``lineage run end`` and a ``$LINEAGE_RUN`` process
    record)."""
    states = {p.last_known_state
              for p in store._call("get_executions_by_context", run_id, missing=[])}
    if pb.Execution.FAILED in states:
        return "FAILED"
    if pb.Execution.CANCELED in states:
        return "CANCELED"
    return "COMPLETE"


_joined: dict[str, ActiveRun] = {}
_joined_lock = threading.Lock()


def joined_run(store: Store) -> ActiveRun | None:
    """The run named by ``$LINEAGE_RUN`` in ``store``, joined once per process: steps and
    ``log_*`` calls outside any ``with lineage.run()`` record into it (a pipeline of
    separate scripts, a Makefile, DVC stages). Reopened if it had ended; when the process
    exits its status follows what was recorded in it (a run started with ``lineage run
    start`` stays RUNNING until ``lineage run end``)."""
    ref = os.environ.get(ENV_RUN)
    if not ref:
        return None
    key = f"{store.uri}\0{ref}\0{os.getpid()}"
    with _joined_lock:
        found = _joined.get(key)
        if found is None:
            found = ActiveRun(ref, None, store, None, None, resume=True)
            found._joined = True
            try:
                found.__enter__()
            except LineageError as exc:
                raise StepError(f"${ENV_RUN}={ref!r}: {exc}") from exc
            _joined[key] = found
            atexit.register(_leave, found)
        return found


def run_for_logging() -> ActiveRun | None:
    """The run ``log_params``/``log_metrics`` outside steps record on: this thread's run,
    else the process's only run, else the ``$LINEAGE_RUN`` run of the default store."""
    active = current_run()
    if active is None and os.environ.get(ENV_RUN) and not _active.others():
        active = joined_run(default_store())
    return active


def _leave(joined: ActiveRun) -> None:
    """At exit: a joined run that this process reopened gets the status its executions
    say; one that was RUNNING already (``lineage run start``) is left to its owner."""
    if not joined._reopened:
        _active.ended(joined)
        joined.flush_metrics()
        return
    try:
        joined.__exit__(None, None, None)
    except LineageError as exc:
        warnings.warn(f"could not close the run {joined.name!r}: {exc}", RuntimeWarning,
                      stacklevel=1)


#: The environment variable naming the run that steps outside ``with lineage.run()`` join.
ENV_RUN = "LINEAGE_RUN"


def end_run(store: Store, ref: str | int, status: str | None = None) -> Run:
    """End a run (``lineage run end REF``): its status is ``status``, else what its
    executions say (see :func:`recorded_status`); the end time is now.

    Example:
        >>> import lineage
        >>> store = lineage.connect(":memory:")
        >>> r = lineage.runs.start_run(store, "stage")
        >>> lineage.runs.end_run(store, r.ref).properties["status"]
        'COMPLETE'
    """
    if status is not None and status not in ("COMPLETE", "FAILED", "CANCELED"):
        raise StepError(f"status={status!r}: use COMPLETE, FAILED or CANCELED")
    active = ActiveRun(ref, None, store, None, None, resume=True)
    active._joined = status is None
    active.__enter__()
    errors: dict[str, BaseException] = {"FAILED": RuntimeError("failed"),
                                        "CANCELED": KeyboardInterrupt()}
    exc = errors.get(status or "")
    active.__exit__(type(exc) if exc else None, exc, None)
    return store.run(active.id)


def start_run(
    store: Store, name: str | None = None, experiment: str | None = None,
    params: Mapping[str, Any] | None = None,
    config: str | os.PathLike[str] | Sequence[str | os.PathLike[str]] | None = None,
) -> Run:
    """Start a run that other processes join (``lineage run start NAME``): it stays
    RUNNING until :func:`end_run`; processes record into it with ``$LINEAGE_RUN`` set to
    its ref (``context:N``)."""
    active = ActiveRun(name, experiment, store, params, config)
    active.__enter__()
    _active.ended(active)  # this process does not record into it by itself
    if active._token is not None:
        _RUN.reset(active._token)
        active._token = None
    return store.run(active.id)


def run(
    name: str | int | None = None,
    experiment: str | None = None,
    store: Store | str | os.PathLike[str] | None = None,
    params: Mapping[str, Any] | None = None,
    config: str | os.PathLike[str] | Sequence[str | os.PathLike[str]] | None = None,
    *,
    resume: bool = False,
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
        resume: reopen the existing run ``name`` (its unique name, ``context:N`` or
            ``experiment/name``) instead of starting a new one: RUNNING again, with the
            params and config given now added.

    Raises:
        StepError: bad arguments, an unreadable config, or a run started inside a run.
        NotFound: ``resume=True`` and no such run.

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
    return ActiveRun(name, experiment, store, params, config, resume)


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
    active = run_for_logging()
    if active is None:
        raise StepError(
            "log_params() records on the current step or run; call it inside a @lineage.step "
            "function or a `with lineage.run(...)` block (or set $LINEAGE_RUN)"
        )
    active.log_params(**params)
