"""``lineage doctor``: RUNNING steps and runs whose process is gone, found and closed.

A step or run killed without a word (SIGKILL, an out-of-memory kill, a lost machine) stays
RUNNING in the store. Each RUNNING record of ``lineage`` carries the facts of the process
that wrote it (:mod:`lineage._liveness`), and :func:`doctor` judges them:

- **on this host** (the same kernel boot and pid namespace): the process is gone when its
  pid no longer exists or now belongs to another process (other start time): certain;
- **elsewhere**: the record is abandoned when its heartbeat (or, for records written
  before heartbeats, its start) is older than ``stale_after`` seconds (default 600: ten
  heartbeats).
- a run that no process holds (left open for the stages of a pipeline by ``lineage run
  start`` or joined through ``$LINEAGE_RUN``, or recorded before these facts) is
  abandoned when one of its steps is.

With ``fix=True`` each abandoned execution is marked FAILED with an ``error`` beginning
``abandoned:`` that says why, and each abandoned run gets status FAILED, an end time and
the same kind of ``error``. Every record is read again just before it is written and left
alone if it finished or beat meanwhile, so a doctor running beside live writers touches
only the dead; running it again finds nothing more (idempotent). Executions of other
tools (TFX, Kubeflow) are not judged: they carry none of these facts.

Example:
    >>> import lineage
    >>> store = lineage.connect(":memory:")
    >>> store.doctor()
    <DoctorReport: nothing abandoned (0 running)>
"""

from __future__ import annotations

import socket
import time
from typing import TYPE_CHECKING, Any

import attrs
from ml_metadata.proto import metadata_store_pb2 as pb

from lineage import _convert, _liveness
from lineage._schema import RECORDED_BY, RUN_TYPE
from lineage.errors import InvalidRef

if TYPE_CHECKING:
    from lineage.store import Store

__all__ = ["STALE_AFTER", "Abandoned", "DoctorReport", "doctor"]

#: Seconds without a heartbeat after which a RUNNING record from another host is abandoned.
STALE_AFTER = 600.0


@attrs.frozen
class Abandoned:
    """A RUNNING execution or run whose process is gone."""

    kind: str
    """``"execution"`` or ``"run"``."""
    id: int
    """The MLMD id of the execution or run context."""
    name: str
    """The step name, or the run's name."""
    host: str | None
    """The host that recorded it, if known."""
    pid: int | None
    """The process that recorded it, if known."""
    reason: str
    """Why it is abandoned (the recorded error is ``"abandoned: " + reason``)."""
    fixed: bool = False
    """Whether ``fix=True`` marked it FAILED."""

    @property
    def ref(self) -> str:
        """``"execution:<id>"`` or ``"context:<id>"``."""
        return f"{'execution' if self.kind == 'execution' else 'context'}:{self.id}"

    def to_dict(self) -> dict[str, Any]:
        """The JSON shape of ``lineage doctor --json``."""
        return {"kind": self.kind, "id": self.id, "ref": self.ref, "name": self.name,
                "host": self.host, "pid": self.pid, "reason": self.reason,
                "fixed": self.fixed}


@attrs.frozen
class DoctorReport:
    """What :func:`doctor` found (and fixed)."""

    running: int
    """RUNNING executions and runs judged."""
    abandoned: list[Abandoned]
    """Those whose process is gone."""
    fixed: bool
    """Whether they were marked FAILED (``fix=True``)."""
    stale_after: float
    """The heartbeat age used for records from other hosts, in seconds."""

    @property
    def ok(self) -> bool:
        """True when nothing abandoned is left RUNNING."""
        return all(a.fixed for a in self.abandoned)

    def to_dict(self) -> dict[str, Any]:
        """The JSON shape of ``lineage doctor --json``."""
        return {"running": self.running, "stale_after": self.stale_after, "fixed": self.fixed,
                "ok": self.ok, "abandoned": [a.to_dict() for a in self.abandoned]}

    def __str__(self) -> str:
        from lineage import _text

        if not self.abandoned:
            return f"nothing abandoned: {self.running} running, all alive"
        rows = [[a.ref, a.kind, a.name, a.host or "-", str(a.pid or "-"),
                 ("FIXED " if a.fixed else "") + a.reason] for a in self.abandoned]
        lines = [_text.table(rows, ["ref", "kind", "name", "host", "pid", "reason"])]
        n = len(self.abandoned)
        if self.fixed:
            lines.append(f"{n} abandoned, marked FAILED")
        else:
            lines.append(f"{n} abandoned of {self.running} running; `lineage doctor --fix` "
                         "marks them FAILED")
        return "\n".join(lines)

    def __repr__(self) -> str:
        if not self.abandoned:
            return f"<DoctorReport: nothing abandoned ({self.running} running)>"
        done = ", fixed" if self.fixed else ""
        return f"<DoctorReport: {len(self.abandoned)} abandoned of {self.running} running{done}>"


def _value(props: Any, key: str) -> Any:
    if key not in props:
        return None
    return _convert.from_value(props[key])


def _verdict(props: Any, fallback: float | None, now: float, stale_after: float
             ) -> str | None:
    """Why the process that wrote ``props`` is gone, or ``None`` if it may be alive."""
    pid, key, host = (_value(props, k) for k in ("pid", "process_id", "hostname"))
    where = f"host {host}" if host else "an unknown host"
    if isinstance(key, str) and isinstance(pid, int) and key.count(":") >= 3:
        scope = key.rsplit(":", 2)[0]
        if scope == _liveness._namespace():
            current = _liveness.process_id(pid)
            if current == key:
                return None
            if current is None:
                return f"process {pid} on {where} is gone"
            return f"process {pid} on {where} is gone (its pid now belongs to another process)"
    beat = _value(props, "heartbeat")
    since = "heartbeat"
    if not isinstance(beat, (int, float)):
        beat, since = _value(props, "start_time"), "start"
    if not isinstance(beat, (int, float)):
        beat, since = fallback, "last update"
    if not isinstance(beat, (int, float)):
        return None
    age = now - float(beat)
    if age <= stale_after:
        return None
    rebooted = ""
    if host == socket.gethostname() and isinstance(key, str) and key.count(":") >= 3:
        rebooted = " (this host restarted since, or it ran in another container)"
    who = f"process {pid} on {where}" if pid else where
    return (f"no heartbeat from {who} for {age:,.0f} s{rebooted}; the threshold is "
            f"{stale_after:g} s (last {since} at {_text_time(float(beat))})")


def _text_time(seconds: float) -> str:
    from lineage import _text

    return _text.time(seconds)


def _ours(props: Any) -> bool:
    return RECORDED_BY in props or "process_id" in props or "heartbeat" in props


def doctor(store: Store, *, fix: bool = False, stale_after: float = STALE_AFTER) -> DoctorReport:
    """Find RUNNING executions and runs whose process is gone; with ``fix``, mark them
    FAILED (error ``"abandoned: <why>"``) and close their runs.

    Args:
        store: the store to examine (writable for ``fix``).
        fix: mark what is abandoned FAILED.
        stale_after: seconds without a heartbeat after which a record from another host
            is abandoned.

    Raises:
        ReadOnlyStore: ``fix`` on a store opened read-only.
        InvalidRef: ``stale_after`` is not a positive number.

    Example:
        >>> import lineage
        >>> lineage.connect(":memory:").doctor(fix=True).ok
        True
    """
    if isinstance(stale_after, bool) or not isinstance(stale_after, (int, float)) or not (
            stale_after > 0):
        raise InvalidRef(f"stale_after={stale_after!r}: give a positive number of seconds",
                         ref=stale_after)
    if fix:
        store._check_writable("mark abandoned executions FAILED (doctor --fix)")
    now = time.time()
    found: list[Abandoned] = []
    running = 0

    executions = [e for e in store._call("get_executions")
                  if e.last_known_state == pb.Execution.RUNNING and _ours(e.properties)]
    types = store._types("execution", (e.type_id for e in executions))
    dead_runs: dict[int, str] = {}
    for proto in executions:
        running += 1
        reason = _verdict(proto.properties, proto.last_update_time_since_epoch / 1000 or None,
                          now, stale_after)
        if reason is None:
            continue
        etype = types.get(proto.type_id)
        name = etype.name if etype is not None else f"type#{proto.type_id}"
        fixed = fix and _fix_execution(store, proto.id, stale_after)
        found.append(Abandoned("execution", proto.id, name, _value(proto.properties, "hostname"),
                               _value(proto.properties, "pid"), reason, fixed))
        run_id = _value(proto.properties, "run_context")
        if isinstance(run_id, int):
            dead_runs.setdefault(run_id, f"its step execution:{proto.id} was abandoned: {reason}")

    runs = []
    if store._type_named("context", RUN_TYPE) is not None:
        runs = [c for c in store._call("get_contexts_by_type", RUN_TYPE)
                if _value(c.properties, "status") == "RUNNING"]
    for ctx in runs:
        running += 1
        if "process_id" in ctx.properties or "heartbeat" in ctx.properties:
            reason = _verdict(ctx.properties, None, now, stale_after)
        else:  # held by no process (`lineage run start`, recorded before these facts)
            reason = dead_runs.get(ctx.id)  # its steps tell
        if reason is None:
            continue
        fixed = fix and _fix_run(store, ctx.id, stale_after, reason)
        found.append(Abandoned("run", ctx.id, ctx.name, _value(ctx.properties, "hostname"),
                               _value(ctx.properties, "pid"), reason, fixed))
    return DoctorReport(running=running, abandoned=found, fixed=fix, stale_after=float(stale_after))


def _fix_execution(store: Store, execution_id: int, stale_after: float) -> bool:
    """Mark one execution FAILED if, read again now, it is still RUNNING and abandoned."""
    [fresh] = store._call("get_executions_by_id", [execution_id]) or [None]
    if fresh is None or fresh.last_known_state != pb.Execution.RUNNING:
        return False  # finished meanwhile: its writer was alive after all
    now = time.time()
    reason = _verdict(fresh.properties, fresh.last_update_time_since_epoch / 1000 or None,
                      now, stale_after)
    if reason is None:
        return False  # it beat meanwhile
    fresh.last_known_state = pb.Execution.FAILED
    props = fresh.properties
    props["error"].string_value = f"abandoned: {reason}"
    props["end_time"].double_value = round(now, 3)
    start = _value(props, "start_time")
    if isinstance(start, (int, float)):
        props["duration"].double_value = round(now - float(start), 6)
    store._call("put_executions", [fresh])
    return True


def _fix_run(store: Store, context_id: int, stale_after: float, why: str) -> bool:
    """Close one run as FAILED if, read again now, it is still RUNNING."""
    store._ensure_run_types()  # an older store's Run type gains the 'error' property
    [fresh] = store._call("get_contexts_by_id", [context_id]) or [None]
    if fresh is None or _value(fresh.properties, "status") != "RUNNING":
        return False
    now = time.time()
    held = "process_id" in fresh.properties or "heartbeat" in fresh.properties
    reason = _verdict(fresh.properties, None, now, stale_after) if held else why
    if reason is None:
        return False  # alive after all
    props = fresh.properties
    props["status"].string_value = "FAILED"
    props["end_time"].double_value = round(now, 3)
    props["error"].string_value = f"abandoned: {reason}"
    store._call("put_contexts", [fresh])
    return True
