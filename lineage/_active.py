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

__all__ = ["current_run"]

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
    buffer: Any = None
    """The series buffer of the call (:class:`lineage._series.Buffer`), made on its first point."""
    logged: set[str] = attrs.field(factory=set)
    """Params (re)set by ``log_params`` while the body ran."""
    lock: threading.Lock = attrs.field(factory=threading.Lock)

