"""What is being recorded right now: the active run and step of this thread or task.

Process-level state of the recording side, kept in one place: the run a ``with
lineage.run(...)`` block started (a context variable, so threads and asyncio tasks each see
their own), the step call whose body is running, and the runs active in the process.
Nothing here touches the store.
"""

from __future__ import annotations

import contextvars
import threading
from typing import TYPE_CHECKING, Any

import attrs
from ml_metadata.proto import metadata_store_pb2 as pb

from lineage import _fork

if TYPE_CHECKING:
    from lineage.runs import ActiveRun
    from lineage.steps import StepSpec
    from lineage.store import Store

__all__ = ["current_run", "others", "propagate_into_threads"]

_RUN: contextvars.ContextVar[ActiveRun | None] = contextvars.ContextVar("lineage_run", default=None)
_CALL: contextvars.ContextVar[_Call | None] = contextvars.ContextVar("lineage_step", default=None)
_active_runs: list[ActiveRun] = []
_active_lock = threading.Lock()


def _reset_after_fork() -> None:
    global _active_lock
    _active_lock = threading.Lock()


_fork.in_child(_reset_after_fork)


def started(run: ActiveRun) -> None:
    """``run`` is active in this process (see :func:`current_run`)."""
    with _active_lock:
        _active_runs.append(run)


def ended(run: ActiveRun) -> None:
    """``run`` is no longer active in this process."""
    with _active_lock:
        if run in _active_runs:
            _active_runs.remove(run)


def current_run() -> ActiveRun | None:
    """The run steps are recorded in here: this thread's (or task's) run, else the
    process's only active run; ``None`` when no run or several runs are active.

    Threads started inside a ``with lineage.run(...)`` block, and the tasks of a thread
    pool submitted there, record into that run (see :func:`propagate_into_threads`).

    Example:
        >>> import lineage
        >>> lineage.current_run() is None
        True
    """
    active = _RUN.get()
    if active is not None and active in _active_runs:
        return active
    with _active_lock:
        return _active_runs[0] if len(_active_runs) == 1 else None


def others() -> list[ActiveRun]:
    """The runs active in the process, when this thread is in none of them."""
    active = _RUN.get()
    if active is not None and active in _active_runs:
        return []
    with _active_lock:
        return list(_active_runs)


_propagating = False


def propagate_into_threads() -> None:
    """From now on, a thread started, or a task submitted to a
    ``concurrent.futures.ThreadPoolExecutor``, inside a run (or a step) runs in a copy of
    the starter's context, so its steps record into that run (Python does not carry
    context variables into threads by itself). Installed once, when the first run
    starts; it wraps ``threading.Thread.start`` and ``ThreadPoolExecutor.submit``."""
    global _propagating
    with _active_lock:
        if _propagating:
            return
        _propagating = True
    import concurrent.futures
    import functools

    start = threading.Thread.start
    submit = concurrent.futures.ThreadPoolExecutor.submit

    @functools.wraps(start)
    def start_in_context(self: threading.Thread) -> None:
        if _RUN.get() is not None or _CALL.get() is not None:
            context = contextvars.copy_context()
            run = self.run
            self.run = lambda: context.run(run)  # type: ignore[method-assign]
        start(self)

    @functools.wraps(submit)  # type: ignore[arg-type]
    def submit_in_context(self: Any, fn: Any, /, *args: Any, **kwargs: Any) -> Any:
        if _RUN.get() is not None or _CALL.get() is not None:
            return submit(self, contextvars.copy_context().run, fn, *args, **kwargs)
        return submit(self, fn, *args, **kwargs)

    threading.Thread.start = start_in_context  # type: ignore[method-assign]
    concurrent.futures.ThreadPoolExecutor.submit = submit_in_context  # type: ignore[method-assign]


@attrs.define(eq=False)
class _Call:
    """The state of one step call while its body runs."""

    spec: StepSpec
    store: Store
    run: ActiveRun | None
    proto: pb.Execution
    params: dict[str, Any]
    metrics: dict[str, Any] = attrs.field(factory=dict)
    buffer: Any = None
    """The series buffer of the call (:class:`lineage._series.Buffer`), made on its first point."""
    published: dict[int, str] = attrs.field(factory=dict)
    """Artifact id → event path of the outputs published with ``log_artifact`` so far."""
    logged: set[str] = attrs.field(factory=set)
    """Params (re)set by ``log_params`` while the body ran."""
    lock: threading.Lock = attrs.field(factory=threading.Lock)

