"""Metric series in MLMD: buffered points, flushed in chunks, read back in a few calls.

``log_metrics(..., step=)`` appends three doubles per metric to an array of a
:class:`Buffer` (no store call, no object kept per point, so neither the buffer nor the
garbage collector slows down as it grows): a call costs the same at the first point and at
the millionth. The
points reach MLMD when the buffer is flushed:

- by a background thread, once the oldest waiting point is :data:`FLUSH_AGE` seconds old
  (checked every :data:`TICK` seconds: nothing waits more than about 5 s);
- at the end of the step or run (also when it fails or is interrupted);
- on SIGTERM and SIGINT (the handlers flush, then do what was there before), and at exit.

A killed process (SIGKILL) keeps every point of the last flush.

Where the points live (nothing outside MLMD):

- context type ``MetricChunk``: one context holds up to :data:`CHUNK_POINTS` points (a
  confusion-matrix cell counts as a point) of one *owner* — a run (``"context:<id>"``) or
  a step call (``"execution:<id>"``) — as a ``lineage.v1.MetricChunk`` message in
  the typed PROTO property ``points`` (MLMD's unindexed ``proto_value``: PostgreSQL's
  index row limit and MariaDB's packet size are never reached). Typed ``owner`` names the
  owner, ``step`` the step name, ``count`` the points held. (The message is serialized
  inside a ``google.protobuf.BytesValue``: see :func:`pack_value`.) A flush adds the new points to
  the owner's last chunk while it has room (rewriting at most one chunk, whatever the
  length of the series), else starts new chunks.
- every chunk is a child context of its owner's run (one ``get_children_contexts_by_
  context`` call reads the chunks of a run and of all its steps). Chunks of a step called
  outside any run are children of a ``MetricSeries`` context named ``"execution:<id>"``.
- the points a step logged after its last flush (all of them for a step shorter than the
  flush age) are written with the step's final record, packed the same way in its typed
  ``metric_series`` property: no extra write for short steps.
"""

from __future__ import annotations

import array
import atexit
import collections
import contextlib
import json
import os
import signal
import threading
import time
import uuid
import warnings
import weakref
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

from google.protobuf import struct_pb2, wrappers_pb2
from google.protobuf.message import DecodeError
from ml_metadata.proto import metadata_store_pb2 as pb

from lineage import _fork
from lineage._proto.lineage.v1 import metrics_pb2

if TYPE_CHECKING:
    from lineage.store import Store

#: Context type of the chunk records.
CHUNK_TYPE = "MetricChunk"
#: Context type of the parent of the chunks of a step called outside any run.
HOLDER_TYPE = "MetricSeries"
CHUNK_PROPERTIES: dict[str, int] = {
    "recorded_by": pb.STRING,
    "owner": pb.STRING,
    "step": pb.STRING,
    "count": pb.INT,
    "points": pb.PROTO,
}
HOLDER_PROPERTIES: dict[str, int] = {"recorded_by": pb.STRING, "owner": pb.STRING}

#: Points per chunk record (about 19 bytes each packed: ~300 kB per chunk at most, far below
#: MariaDB's 16 MB max_allowed_packet and MEDIUMBLOB columns).
CHUNK_POINTS = 16_384
#: A waiting point is written by the background flusher once it is this old (seconds).
FLUSH_AGE = 3.0
#: How often the background flusher looks (seconds).
TICK = 1.0
#: The flusher is woken early when a buffer holds this many points.
WAKE_POINTS = 8 * CHUNK_POINTS

# First field of the buffer entries that are not (step, wall time, {name: value}) points:
_MATRIX = -1  # (_MATRIX, wall time, ConfusionMatrix)
_BULK = -2  # (_BULK, time queued, (name, steps, values, wall times)): imported series


def owner_of_run(context_id: int) -> str:
    return f"context:{context_id}"


def owner_of_execution(execution_id: int) -> str:
    return f"execution:{execution_id}"


# --- encoding -------------------------------------------------------------------------------


class _Points:
    """Parallel arrays of one metric being packed."""

    __slots__ = ("steps", "times", "values")

    def __init__(self) -> None:
        self.steps: list[int] = []
        self.values: list[float] = []
        self.times: list[float] = []


def _collect(
    points: Mapping[str, array.array[float]], entries: Iterable[tuple[Any, ...]] = (),
) -> tuple[dict[str, _Points], list[metrics_pb2.ConfusionMatrix]]:
    """Buffered points (per metric, ``[step, value, wall time, ...]``) and other entries
    (matrices, imported slices) as parallel arrays per metric."""
    series: dict[str, _Points] = {}
    for name, flat in points.items():
        pts = series[name] = _Points()
        pts.steps = [int(x) for x in flat[0::3]]
        pts.values = flat[1::3].tolist()
        pts.times = flat[2::3].tolist()
    matrices: list[metrics_pb2.ConfusionMatrix] = []
    for step, _wall, payload in entries:
        if step == _MATRIX and isinstance(payload, metrics_pb2.ConfusionMatrix):
            matrices.append(payload)
        elif step == _BULK and isinstance(payload, tuple):
            name, steps, values, times = payload
            found = series.get(name)
            pts = found if found is not None else series.setdefault(name, _Points())
            pts.steps.extend(steps)
            pts.values.extend(values)
            pts.times.extend(times)
    return series, matrices


def _size(series: Mapping[str, _Points], matrices: Sequence[metrics_pb2.ConfusionMatrix]) -> int:
    return sum(len(p.steps) for p in series.values()) + sum(
        max(1, len(m.counts)) for m in matrices)


def _extend(chunk: metrics_pb2.MetricChunk, name: str, pts: _Points, lo: int, hi: int) -> None:
    target = None
    if chunk.series and chunk.series[-1].name == name:
        target = chunk.series[-1]
    else:
        for existing in chunk.series:
            if existing.name == name:
                target = existing
                break
    if target is None:
        target = chunk.series.add(name=name)
    target.steps.extend(pts.steps[lo:hi])
    target.values.extend(pts.values[lo:hi])
    target.wall_times.extend(pts.times[lo:hi])


def pack(
    series: Mapping[str, _Points],
    matrices: Sequence[metrics_pb2.ConfusionMatrix],
    *,
    first: metrics_pb2.MetricChunk | None = None,
    first_count: int = 0,
) -> list[tuple[metrics_pb2.MetricChunk, int]]:
    """Split points and matrices into chunks of at most :data:`CHUNK_POINTS` (a matrix is
    never split). ``first`` (a copy of an open chunk holding ``first_count``) is filled
    first. Returns (chunk, count) pairs, ``first`` first when given."""
    out: list[tuple[metrics_pb2.MetricChunk, int]] = []
    current = first if first is not None else metrics_pb2.MetricChunk()
    count = first_count if first is not None else 0
    for name, pts in series.items():
        lo, total = 0, len(pts.steps)
        while lo < total:
            room = CHUNK_POINTS - count
            if room <= 0:
                out.append((current, count))
                current, count = metrics_pb2.MetricChunk(), 0
                room = CHUNK_POINTS
            hi = min(total, lo + room)
            _extend(current, name, pts, lo, hi)
            count += hi - lo
            lo = hi
    for matrix in matrices:
        cells = max(1, len(matrix.counts))
        if count and count + cells > CHUNK_POINTS:
            out.append((current, count))
            current, count = metrics_pb2.MetricChunk(), 0
        current.matrices.add().CopyFrom(matrix)
        count += cells
    if count or first is not None:
        out.append((current, count))
    return out


def pack_value(chunk: metrics_pb2.MetricChunk) -> pb.Value:
    """A chunk as an MLMD property value: its serialized bytes in a
    ``google.protobuf.BytesValue`` in ``proto_value``. (MLMD compares the stored and the new
    value when a chunk is rewritten; with a type its C++ side does not know, such as
    ``lineage.v1.MetricChunk`` itself, protobuf logs "Proto type ... not found" on stderr
    each time.)"""
    value = pb.Value()
    value.proto_value.Pack(wrappers_pb2.BytesValue(value=chunk.SerializeToString()))
    return value


def chunk_of_bytes(any_value: Any) -> metrics_pb2.MetricChunk | None:
    """The chunk an ``Any`` holds (a BytesValue as :func:`pack_value` writes it, or a
    MetricChunk), else None."""
    chunk = metrics_pb2.MetricChunk()
    if any_value.Unpack(chunk):
        return chunk
    raw = wrappers_pb2.BytesValue()
    if any_value.Unpack(raw):
        try:
            chunk.ParseFromString(raw.value)
        except DecodeError:
            return None
        return chunk
    return None


def unpack_value(value: pb.Value) -> metrics_pb2.MetricChunk | None:
    """The chunk a ``points`` / ``metric_series`` value holds; the older encoding (a
    ``google.protobuf.Value`` ``{name: [[step, value], ...]}``) is converted."""
    if value.WhichOneof("value") != "proto_value":
        return None
    chunk = chunk_of_bytes(value.proto_value)
    if chunk is not None:
        return chunk
    chunk = metrics_pb2.MetricChunk()
    old = struct_pb2.Value()
    if not value.proto_value.Unpack(old) or old.WhichOneof("kind") != "struct_value":
        return None
    for name, points in old.struct_value.fields.items():
        target = chunk.series.add(name=name)
        for point in points.list_value.values:
            pair = point.list_value.values
            if len(pair) == 2:
                target.steps.append(int(pair[0].number_value))
                target.values.append(pair[1].number_value)
    return chunk


# --- reading ----------------------------------------------------------------------------------


def chunk_type_id(store: Store) -> int | None:
    """The store's MetricChunk context type id (None when nothing was ever flushed)."""
    found = store._type_named("context", CHUNK_TYPE)
    return int(found.id) if found is not None and found.id else None


def read_children(store: Store, parent_id: int, type_id: int | None) -> dict[str, list[pb.Context]]:
    """Owner → its chunk contexts (oldest first) among the children of ``parent_id``: one
    call for a run and all its steps."""
    if type_id is None:
        return {}
    out: dict[str, list[pb.Context]] = {}
    for ctx in store._call("get_children_contexts_by_context", parent_id, missing=[]):
        if ctx.type_id == type_id and "owner" in ctx.properties:
            out.setdefault(ctx.properties["owner"].string_value, []).append(ctx)
    for chunks in out.values():
        chunks.sort(key=lambda c: c.id)
    return out


def holder_chunks(store: Store, owner: str, type_id: int | None) -> list[pb.Context]:
    """The chunks of a step called outside any run (two indexed calls)."""
    if type_id is None or store._type_named("context", HOLDER_TYPE) is None:
        return []
    holder = store._call("get_context_by_type_and_name", HOLDER_TYPE, owner, missing=None)
    if holder is None or not holder.id:
        return []
    return read_children(store, holder.id, type_id).get(owner, [])


def decode(chunks: Iterable[metrics_pb2.MetricChunk]) -> tuple[
    dict[str, list[tuple[int, float]]], list[metrics_pb2.ConfusionMatrix]
]:
    """Metric → [(step, value), ...] and the matrices, in logging order."""
    series: dict[str, list[tuple[int, float]]] = {}
    matrices: list[metrics_pb2.ConfusionMatrix] = []
    for chunk in chunks:
        for pts in chunk.series:
            series.setdefault(pts.name, []).extend(zip(pts.steps, pts.values, strict=False))
        matrices.extend(chunk.matrices)
    return series, matrices


def chunks_of(contexts: Iterable[pb.Context]) -> list[metrics_pb2.MetricChunk]:
    out = []
    for ctx in contexts:
        value = ctx.properties.get("points")
        chunk = unpack_value(value) if value is not None else None
        if chunk is not None:
            out.append(chunk)
    return out


# --- writing ----------------------------------------------------------------------------------


class Buffer:
    """What one run or step call logged and has not written yet, and where it goes.

    ``add`` is the hot path: one ``array.extend`` per metric. ``flush`` writes what waits,
    one flush at a time per buffer.
    """

    def __init__(
        self,
        store: Store,
        owner: str,
        *,
        step: str = "",
        run_context_id: int | None = None,
        on_flush: Callable[[], None] | None = None,
    ) -> None:
        self.store = store
        self.owner = owner
        self.step = step
        self.run_context_id = run_context_id
        self.on_flush = on_flush
        # Points: metric -> [step, value, wall time, step, ...] (doubles: no object per
        # point is kept, so a long buffer costs the garbage collector nothing). One
        # array.extend per metric under _lock; a signal handler that finds _lock taken
        # reads the arrays anyway (every extend is whole).
        self._points: dict[str, array.array[float]] = {}
        self._count = 0
        self._oldest: float | None = None
        self._lock = threading.Lock()
        # Matrices and imported slices: (kind, time queued, payload).
        self.pending: collections.deque[tuple[Any, float, Any]] = collections.deque()
        self.written = 0  # chunk records written
        self._open: tuple[pb.Context, metrics_pb2.MetricChunk, int] | None = None
        self._parent_id: int | None = run_context_id
        self._write_lock = threading.Lock()
        self._writer: int | None = None
        self._warned = False
        self._touched: float | None = None
        self.closed = False

    def add(self, step: int, values: Mapping[str, float]) -> None:
        """Queue one point per metric at ``step`` (no store call, no object kept)."""
        now = time.time()
        with self._lock:
            points = self._points
            for name, value in values.items():
                flat = points.get(name)
                if flat is None:
                    flat = points[name] = array.array("d")
                flat.extend((step, value, now))
            if self._oldest is None:
                self._oldest = now
            self._count += len(values)
            count = self._count
        if count >= WAKE_POINTS:
            _flusher.wake()

    def add_points(self, name: str, steps: Sequence[int], values: Sequence[float],
                   times: Sequence[float]) -> None:
        """Queue a whole series slice (an import) with its own wall times."""
        self.pending.append((_BULK, time.time(), (name, list(steps), [float(v) for v in values],
                                                  list(times))))

    def add_matrix(self, matrix: metrics_pb2.ConfusionMatrix) -> None:
        self.pending.append((_MATRIX, time.time(), matrix))

    def touch(self) -> None:
        """Something besides points waits (final values): the flusher calls ``on_flush``."""
        if self._touched is None:
            self._touched = time.time()

    def waiting(self) -> int:
        """How many points (and other entries) wait."""
        return self._count + len(self.pending)

    def age(self) -> float:
        """Seconds the oldest waiting entry has waited (0 when none)."""
        now = time.time()
        oldest = min(self._oldest or now, self._touched or now)
        pending = self.pending
        if pending:
            with contextlib.suppress(IndexError):  # emptied by a flush meanwhile
                oldest = min(oldest, pending[0][1])
        return now - oldest

    def _take(self, *, force: bool = False) -> tuple[dict[str, array.array[float]],
                                                     list[tuple[Any, float, Any]]]:
        locked = self._lock.acquire(blocking=not force)
        try:
            points, self._points = self._points, {}
            self._count = 0
            self._oldest = None
        finally:
            if locked:
                self._lock.release()
        pending = self.pending
        others = [pending.popleft() for _ in range(len(pending))]
        return points, others

    def _restore(self, points: dict[str, array.array[float]],
                 others: list[tuple[Any, float, Any]]) -> None:
        """Put back what a failed write took, before what came since."""
        with self._lock:
            for name, flat in points.items():
                newer = self._points.get(name)
                if newer is not None:
                    flat.extend(newer)
                self._points[name] = flat
                self._count += len(flat) // 3
            self._oldest = time.time() if self._count else None
        self.pending.extendleft(reversed(others))

    def flush(self, *, blocking: bool = True, force: bool = False) -> bool:
        """Write what waits; return False when another flush of this buffer holds the
        write lock and ``blocking`` is false (or in the thread that holds it). ``force``
        (a signal handler): do not wait for the lock of ``add``."""
        if self._writer == threading.get_ident():
            return False  # a signal handler interrupting this thread's own flush
        if not self._write_lock.acquire(blocking=blocking):
            return False
        self._writer = threading.get_ident()
        self._touched = None
        try:
            points, others = self._take(force=force)
            if points or others:
                try:
                    self._write_collected(*_collect(points, others))
                except BaseException:
                    self._restore(points, others)  # kept for the next flush
                    raise
            if self.on_flush is not None:
                self.on_flush()
            return True
        finally:
            self._writer = None
            self._write_lock.release()

    def drain_inline(self) -> metrics_pb2.MetricChunk | None:
        """At the end of a step: what waits, as one chunk for the step's own record when
        no chunk was written yet and it fits in one; else flush it to chunks (None)."""
        with self._write_lock:
            if self.written == 0 and self.waiting() <= CHUNK_POINTS:
                series, matrices = _collect(*self._take())
                if _size(series, matrices) <= CHUNK_POINTS:
                    packed = pack(series, matrices)
                    return packed[0][0] if packed else None
                self._write_collected(series, matrices)  # many metrics per call
                return None
        self.flush()
        return None

    def close(self) -> None:
        self.closed = True
        _flusher.forget(self)

    # -- the writes
    def _write_collected(
        self, series: Mapping[str, _Points], matrices: Sequence[metrics_pb2.ConfusionMatrix]
    ) -> None:
        if not series and not matrices:
            return
        store = self.store
        type_id = store._register_type("context", _chunk_type())
        first: metrics_pb2.MetricChunk | None = None
        first_count = 0
        if self._open is not None and self._open[2] < CHUNK_POINTS:
            first = metrics_pb2.MetricChunk()
            first.CopyFrom(self._open[1])  # the stored one stays as it is if the write fails
            first_count = self._open[2]
        packed = pack(series, matrices, first=first, first_count=first_count)
        protos: list[pb.Context] = []
        for index, (chunk, count) in enumerate(packed):
            if index == 0 and first is not None and self._open is not None:
                proto = pb.Context()
                proto.CopyFrom(self._open[0])
            else:
                proto = pb.Context(type_id=type_id, name=f"{self.owner}:{uuid.uuid4().hex}")
                _typed(proto, "recorded_by", _recorded_by())
                _typed(proto, "owner", self.owner)
                _typed(proto, "step", self.step)
            proto.properties["count"].int_value = count
            proto.properties["points"].CopyFrom(pack_value(chunk))
            protos.append(proto)
        ids = store._call("put_contexts", protos)
        new = [(proto, int(i)) for proto, i in zip(protos, ids, strict=True) if not proto.id]
        for proto, i in new:
            proto.id = i
        if new:
            parent = self._parent()
            store._call(
                "put_parent_contexts",
                [pb.ParentContext(child_id=i, parent_id=parent) for _p, i in new],
            )
            self.written += len(new)
        last_proto, (last_chunk, last_count) = protos[-1], packed[-1]
        self._open = (last_proto, last_chunk, last_count)

    def _parent(self) -> int:
        if self._parent_id is not None:
            return self._parent_id
        store = self.store
        type_id = store._register_type("context", _holder_type())

        def attempt() -> int:
            found = store._call("get_context_by_type_and_name", HOLDER_TYPE, self.owner,
                                missing=None)
            if found is not None and found.id:
                return int(found.id)
            ctx = pb.Context(type_id=type_id, name=self.owner)
            _typed(ctx, "recorded_by", _recorded_by())
            _typed(ctx, "owner", self.owner)
            [new_id] = store._call("put_contexts", [ctx])
            return int(new_id)

        self._parent_id = store._write_with_retry(attempt, f"record the metrics of {self.owner}")
        return self._parent_id

    def _forked(self) -> None:
        self._points = {}
        self._count = 0
        self._oldest = None
        self._lock = threading.Lock()
        self.pending.clear()
        self._open = None
        self._write_lock = threading.Lock()
        self._writer = None
        self._touched = None

    def warn_once(self, exc: BaseException) -> None:
        if not self._warned:
            self._warned = True
            warnings.warn(f"could not write the metrics of {self.owner} yet (kept, retried at "
                          f"the next flush): {exc}", RuntimeWarning, stacklevel=2)


def _typed(proto: pb.Context, key: str, text: str) -> None:
    proto.properties[key].string_value = text


def _recorded_by() -> str:
    from lineage._recording import recorded_by

    return recorded_by()


def _chunk_type() -> pb.ContextType:
    t = pb.ContextType(name=CHUNK_TYPE)
    for key, ptype in CHUNK_PROPERTIES.items():
        t.properties[key] = ptype
    return t


def _holder_type() -> pb.ContextType:
    t = pb.ContextType(name=HOLDER_TYPE)
    for key, ptype in HOLDER_PROPERTIES.items():
        t.properties[key] = ptype
    return t


# --- the background flusher and the signal handlers -------------------------------------------


class _Flusher:
    """One daemon thread per process flushing the buffers whose oldest point is old enough."""

    def __init__(self) -> None:
        self._buffers: weakref.WeakSet[Buffer] = weakref.WeakSet()
        self._lock = threading.Lock()
        self._event = threading.Event()
        self._thread: threading.Thread | None = None
        self._pid = 0

    def watch(self, buffer: Buffer) -> None:
        with self._lock:
            self._buffers.add(buffer)
            if self._thread is None or not self._thread.is_alive() or self._pid != os.getpid():
                self._pid = os.getpid()
                self._thread = threading.Thread(target=self._loop, name="lineage-metrics-flusher",
                                                daemon=True)
                self._thread.start()
        _install_signal_handlers()

    def forget(self, buffer: Buffer) -> None:
        with self._lock:
            self._buffers.discard(buffer)

    def wake(self) -> None:
        self._event.set()

    def buffers(self) -> list[Buffer]:
        with self._lock:
            return list(self._buffers)

    def _loop(self) -> None:
        while True:
            self._event.wait(TICK)
            self._event.clear()
            for buffer in self.buffers():
                if buffer.closed:
                    continue
                if buffer.age() >= FLUSH_AGE or buffer.waiting() >= WAKE_POINTS:
                    try:
                        buffer.flush(blocking=False)
                    except Exception as exc:  # kept in the buffer; said once
                        buffer.warn_once(exc)

    def flush_all(self, *, blocking: bool = True, force: bool = False) -> None:
        for buffer in self.buffers():
            try:
                buffer.flush(blocking=blocking, force=force)
            except Exception as exc:
                buffer.warn_once(exc)


    def _forked(self) -> None:
        """In a forked child: fresh locks and thread; the buffers drop what they held (the
        parent writes those points) and start new chunks of their own."""
        self._lock = threading.Lock()
        self._event = threading.Event()
        self._thread = None
        for buffer in list(self._buffers):
            buffer._forked()
        if len(self._buffers):
            self._pid = os.getpid()
            self._thread = threading.Thread(target=self._loop, name="lineage-metrics-flusher",
                                            daemon=True)
            self._thread.start()


_flusher = _Flusher()
_fork.in_child(_flusher._forked)


def watch(buffer: Buffer) -> None:
    """Let the background flusher (started on first use) and the exit handlers see ``buffer``."""
    _flusher.watch(buffer)


def flush_all() -> None:
    """Flush every open buffer of the process now (what the exit and signal handlers do)."""
    _flusher.flush_all()


_installed = False
_install_lock = threading.Lock()


def _install_signal_handlers() -> None:
    """Flush on SIGTERM and SIGINT, then do what the previous handler did (installed once,
    from the main thread, over the default handlers or a Python one; never over SIG_IGN)."""
    global _installed
    with _install_lock:
        if _installed or threading.current_thread() is not threading.main_thread():
            return
        _installed = True
        atexit.register(_flusher.flush_all)
        for signum in (signal.SIGTERM, signal.SIGINT):
            try:
                previous = signal.getsignal(signum)
                if previous in (signal.SIG_IGN, None):
                    continue
                signal.signal(signum, _handler(signum, previous))
            except (ValueError, OSError):  # not the main interpreter, or no such signal
                continue


def _handler(signum: int, previous: Any) -> Callable[[int, Any], None]:
    def handle(received: int, frame: Any) -> None:
        _flusher.flush_all(blocking=False, force=True)
        if callable(previous):
            previous(received, frame)
            return
        # SIG_DFL: die of the signal, as without us
        signal.signal(signum, signal.SIG_DFL)
        os.kill(os.getpid(), signum)

    return handle


# --- confusion matrices -------------------------------------------------------------------------


def label_text(label: Any) -> str:
    """A label as stored: its JSON text (so ints stay ints)."""
    try:
        return json.dumps(label)
    except TypeError:
        return json.dumps(str(label))


def label_value(text: str) -> Any:
    try:
        return json.loads(text)
    except ValueError:
        return text


__all__ = [
    "CHUNK_POINTS",
    "CHUNK_TYPE",
    "FLUSH_AGE",
    "HOLDER_TYPE",
    "Buffer",
    "chunk_type_id",
    "chunks_of",
    "decode",
    "flush_all",
    "holder_chunks",
    "owner_of_execution",
    "owner_of_run",
    "pack",
    "pack_value",
    "read_children",
    "unpack_value",
    "watch",
]
