"""Telling a live step or run from an abandoned one: what is recorded while it runs, the
heartbeat, and the signals that end it as CANCELED.

A step is written RUNNING before its body runs; when the process dies without a word
(SIGKILL, a power cut, an out-of-memory kill) it stays RUNNING. So RUNNING executions and
runs carry the facts that tell whether their process still lives
(:data:`lineage._schema.LIVENESS_PROPERTIES`):

- ``hostname``, ``pid`` and ``process_start``;
- ``process_id``: ``"<boot id>:<pid namespace>:<pid>:<start ticks>"`` from
  ``/proc/sys/kernel/random/boot_id``, ``/proc/self/ns/pid`` and ``/proc/<pid>/stat``. On
  the same kernel boot and pid namespace, the process is alive exactly when that pid
  still has those start ticks (a reused pid has others);
- ``heartbeat``: seconds since the epoch, renewed every
  ``$LINEAGE_HEARTBEAT_SECONDS`` (default 60; 0 turns it off) by one background thread
  per process, with one ``put_executions`` (``put_contexts`` for a run) of the full
  recorded proto. From another host, a RUNNING record whose heartbeat is old is
  abandoned (``lineage doctor``, :mod:`lineage.doctor`).

SIGTERM and SIGHUP end a running step as CANCELED, as Ctrl-C does: the first time a step
or run starts in the main thread, a handler is installed for each of them unless the
program ignores it (``nohup``) or a C library set it. A handler the program had is called
instead (it decides, and a ``SystemExit`` it raises records CANCELED on its way out);
otherwise :class:`Terminated` (a ``SystemExit``) is raised in the main thread, so that
steps record CANCELED and runs close as the stack unwinds, and once the interpreter has
run its exit handlers the process dies of the signal, as it would have without
``lineage`` (as Python does after an uncaught Ctrl-C). A second signal, or one that comes
when nothing is recording, ends the process the default way at once.
"""

from __future__ import annotations

import atexit
import contextlib
import os
import signal
import socket
import sys
import threading
import time
from typing import TYPE_CHECKING, Any

from lineage import _fork

if TYPE_CHECKING:
    from lineage._active import _Call
    from lineage.runs import ActiveRun

__all__ = ["HEARTBEAT_ENV", "Terminated", "facts", "heartbeat_seconds", "process_id",
           "stamp", "started", "finished", "run_started", "run_finished"]

#: Environment variable: seconds between heartbeats of a running step or run (0: none).
HEARTBEAT_ENV = "LINEAGE_HEARTBEAT_SECONDS"
_HEARTBEAT_DEFAULT = 60.0


def heartbeat_seconds() -> float:
    """The heartbeat interval (``$LINEAGE_HEARTBEAT_SECONDS``, default 60; 0: none)."""
    try:
        return max(0.0, float(os.environ.get(HEARTBEAT_ENV, _HEARTBEAT_DEFAULT)))
    except ValueError:
        return _HEARTBEAT_DEFAULT


# --- facts about a process ----------------------------------------------------------------


def _read(path: str) -> str | None:
    try:
        with open(path) as handle:
            return handle.read()
    except OSError:
        return None


def _start_ticks(pid: int) -> int | None:
    """Field 22 of ``/proc/<pid>/stat``: when the process started, in clock ticks since boot."""
    text = _read(f"/proc/{pid}/stat")
    if not text or ")" not in text:
        return None
    fields = text[text.rindex(")") + 2:].split()  # the name (field 2) may hold spaces
    try:
        return int(fields[19])
    except (IndexError, ValueError):
        return None


def _boot_time() -> float | None:
    text = _read("/proc/stat") or ""
    for line in text.splitlines():
        if line.startswith("btime "):
            return float(line.split()[1])
    return None


def _namespace() -> str:
    """This kernel boot and pid namespace: ``"<boot id>:<pid namespace inode>"``."""
    boot = (_read("/proc/sys/kernel/random/boot_id") or "").strip()
    try:
        ns = os.readlink("/proc/self/ns/pid").split("[")[-1].rstrip("]")
    except OSError:
        ns = ""
    return f"{boot}:{ns}"


def process_id(pid: int) -> str | None:
    """The exact identity of a live process on this host, or ``None`` when it is gone
    (or ``/proc`` cannot tell: not Linux).

    Example:
        >>> import os
        >>> process_id(os.getpid()) == facts()["process_id"]
        True
    """
    ticks = _start_ticks(pid)
    if ticks is None:
        return None
    return f"{_namespace()}:{pid}:{ticks}"


_facts: tuple[int, dict[str, Any]] | None = None


def facts() -> dict[str, Any]:
    """This process's ``hostname``, ``pid``, ``process_start`` and ``process_id`` (the
    last two where ``/proc`` tells them), cached per process.

    Example:
        >>> import os
        >>> facts()["pid"] == os.getpid()
        True
    """
    global _facts
    pid = os.getpid()
    if _facts is None or _facts[0] != pid:
        found: dict[str, Any] = {"hostname": socket.gethostname(), "pid": pid}
        ticks, boot = _start_ticks(pid), _boot_time()
        if ticks is not None:
            found["process_id"] = f"{_namespace()}:{pid}:{ticks}"
            if boot is not None:
                found["process_start"] = round(boot + ticks / os.sysconf("SC_CLK_TCK"), 3)
        _facts = (pid, found)
    return dict(_facts[1])


def stamp(props: Any, *, run: bool = False) -> None:
    """Set the liveness facts and a first heartbeat on a proto's typed ``properties``
    (steps carry ``hostname`` already; a run gets it here)."""
    for key, value in facts().items():
        if key == "hostname" and not run:
            continue
        if isinstance(value, int):
            props[key].int_value = value
        elif isinstance(value, float):
            props[key].double_value = value
        else:
            props[key].string_value = value
    props["heartbeat"].double_value = round(time.time(), 3)


# --- the heartbeat ------------------------------------------------------------------------


class _Entry:
    __slots__ = ("active", "last", "lock", "target")

    def __init__(self, target: Any) -> None:
        self.target = target
        self.active = True
        self.last = time.monotonic()
        self.lock = threading.Lock()


_lock = threading.Lock()
_entries: dict[int, _Entry] = {}
_thread: threading.Thread | None = None
_wake = threading.Event()


def _reset_after_fork() -> None:
    global _lock, _thread, _wake, _terminating, _received
    _terminating, _received = False, None
    _lock = threading.Lock()
    _entries.clear()  # the parent's steps and runs are the parent's to beat
    _thread = None
    _wake = threading.Event()


_fork.in_child(_reset_after_fork)


def _register(target: Any) -> None:
    global _thread
    interval = heartbeat_seconds()
    with _lock:
        _entries[id(target)] = _Entry(target)
        if interval > 0 and (_thread is None or not _thread.is_alive()):
            _thread = threading.Thread(target=_beat_forever, name="lineage-heartbeat",
                                       daemon=True)
            _thread.start()


def _unregister(target: Any) -> None:
    with _lock:
        entry = _entries.pop(id(target), None)
    if entry is not None:
        with entry.lock:  # waits for a heartbeat write in flight: none comes after this
            entry.active = False


def _beat_forever() -> None:
    while True:
        interval = heartbeat_seconds()
        _wake.wait(min(interval, 5.0) if interval > 0 else 5.0)
        if interval <= 0:
            continue
        now = time.monotonic()
        with _lock:
            due = [e for e in _entries.values() if now - e.last >= interval]
        for entry in due:
            with entry.lock:
                if entry.active:
                    entry.last = now
                    _beat(entry.target)


def _beat(target: Any) -> None:
    """Renew the heartbeat of one running step or run, under the lock its other writes
    take; never raise and never wait on a busy store (``retry=False``): a beat that
    cannot be written now is written at the next one."""
    from lineage._active import _Call

    beat = round(time.time(), 3)
    with contextlib.suppress(Exception):
        if isinstance(target, _Call):
            with target.lock:
                target.proto.properties["heartbeat"].double_value = beat
                target.store._call("put_executions", [target.proto], retry=False)
        else:
            with target._lock:
                if target.context.id and os.getpid() == target._pid:
                    target.context.properties["heartbeat"].double_value = beat
                    target.store._call("put_contexts", [target.context], retry=False)


def started(call: _Call) -> None:
    """A step call was written RUNNING: beat for it, and end it as CANCELED on SIGTERM."""
    _register(call)
    _install_signal_handlers()


def finished(call: _Call) -> None:
    """A step call is about to record how it ended: no heartbeat is written after this."""
    _unregister(call)


def run_started(run: ActiveRun) -> None:
    """A run was written RUNNING: beat for it, and close it as CANCELED on SIGTERM."""
    _register(run)
    _install_signal_handlers()


def run_finished(run: ActiveRun) -> None:
    """A run is about to record how it ended."""
    _unregister(run)


def unstamp(props: Any) -> None:
    """Remove the process facts from a run's typed ``properties``: a run left open for
    other processes (``lineage run start``, ``$LINEAGE_RUN``) belongs to no process, and
    ``lineage doctor`` judges it by its steps only."""
    for key in ("pid", "process_start", "process_id", "heartbeat"):
        if key in props:
            del props[key]


def release(run: ActiveRun) -> None:
    """This process leaves ``run`` RUNNING for others (``lineage run start``): stop beating
    for it and record that no process holds it."""
    _unregister(run)
    with run._lock:
        unstamp(run.context.properties)
        run._flush()


def _recording() -> bool:
    # No lock: the signal handler runs in the main thread, which may hold _lock right now.
    return bool(_entries)


# --- SIGTERM and SIGHUP -------------------------------------------------------------------

_SIGNALS = tuple(getattr(signal, name) for name in ("SIGTERM", "SIGHUP") if hasattr(signal, name))
_previous: dict[int, Any] = {}
_terminating = False
_received: int | None = None  # the signal a Terminated was raised for
_exit_hooked = False


class Terminated(SystemExit):
    """Raised in the main thread when SIGTERM or SIGHUP arrives while a step or run is
    recording (and the program had no handler of its own): steps record CANCELED and runs
    close as it unwinds. Once the interpreter has run its exit handlers, the process dies
    of the signal (the parent sees it killed by SIGTERM, as without ``lineage``), even if
    the program caught this exception. Its ``code`` is 128 + the signal number.

    Attributes:
        signum: the signal that arrived.
    """

    def __init__(self, signum: int) -> None:
        super().__init__(128 + signum)
        self.signum = signum

    def __str__(self) -> str:
        return f"received {signal.Signals(self.signum).name}"


def _install_signal_handlers() -> None:
    global _exit_hooked
    if threading.current_thread() is not threading.main_thread():
        return  # Python only lets the main thread set handlers
    if not _exit_hooked:  # registered early: it runs after the exit handlers added later
        atexit.register(_die_of_the_signal)
        _exit_hooked = True
    for signum in _SIGNALS:
        if signum in _previous:
            continue  # once: a handler set over ours later is the program's choice (and
            # may chain to ours: installing ours again over it would make a loop)
        current = signal.getsignal(signum)
        if current is None or current == signal.SIG_IGN:
            continue  # set from C; ignored on purpose (nohup)
        _previous[signum] = current
        signal.signal(signum, _on_signal)


def _on_signal(signum: int, frame: Any) -> None:
    global _terminating
    previous = _previous.get(signum, signal.SIG_DFL)
    if callable(previous):
        previous(signum, frame)  # the program's own handler decides
        return
    if previous == signal.SIG_IGN:
        return
    if _terminating or not _recording():
        signal.signal(signum, signal.SIG_DFL)  # the default way: the process ends now
        os.kill(os.getpid(), signum)
        return
    global _received
    _terminating, _received = True, signum
    raise Terminated(signum)


def _die_of_the_signal() -> None:
    """At exit after a :class:`Terminated`: die of the signal, as without ``lineage``."""
    if _received is None:
        return
    # Exit handlers registered before ours (logging's, say) would not run after the
    # signal: flush logs and the standard streams now.
    logging = sys.modules.get("logging")
    if logging is not None:
        with contextlib.suppress(Exception):
            logging.shutdown()
    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(Exception):
            stream.flush()
    signal.signal(_received, signal.SIG_DFL)
    os.kill(os.getpid(), _received)
