"""Connections across ``os.fork()``: a forked child never uses its parent's.

Two processes on one SQLite handle, PostgreSQL session or gRPC channel corrupt it (a
fork-based process pool whose parent had recorded a step left SQLite stores "malformed").
So every object that holds a connection registers here; in a forked child each is told to
drop its connections and open its own on next use. The dropped ones are kept alive for
the life of the child and never closed: closing an inherited PostgreSQL connection ends
the parent's session, and closing an inherited SQLite handle may checkpoint the parent's
write-ahead log.
"""

from __future__ import annotations

import ctypes
import os
import threading
import weakref
from collections.abc import Callable
from typing import Protocol

__all__ = ["in_child", "keep_forever", "track"]


class _Forkable(Protocol):
    def _forked(self) -> None: ...


_live: weakref.WeakSet[_Forkable] = weakref.WeakSet()
_callbacks: list[Callable[[], None]] = []
_lock = threading.Lock()
_hooked = False


def track(obj: _Forkable) -> None:
    """Call ``obj._forked()`` in every child forked from now on (while ``obj`` lives)."""
    with _lock:
        _live.add(obj)
        _hook()


def in_child(callback: Callable[[], None]) -> None:
    """Call ``callback()`` in every child forked from now on (module-level state: locks
    that another thread may have held at fork time)."""
    with _lock:
        _callbacks.append(callback)
        _hook()


def _hook() -> None:
    global _hooked
    if not _hooked:
        os.register_at_fork(after_in_child=_after_fork_in_child)
        _hooked = True


def keep_forever(obj: object) -> None:
    """Never destroy ``obj`` in this process, not even at interpreter shutdown (its
    destructor would close a connection the parent still uses)."""
    ctypes.pythonapi.Py_IncRef(ctypes.py_object(obj))


def _after_fork_in_child() -> None:
    global _lock
    _lock = threading.Lock()  # another thread may have held it at fork time
    for callback in list(_callbacks):
        callback()
    for obj in list(_live):
        obj._forked()
