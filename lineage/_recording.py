"""Writing executions: one atomic ``put_execution`` per state change, retried idempotently.

Shared by steps (``@step``), cache hits and published outputs. An execution carries a
unique MLMD name (``"<step>:<uuid hex>"``), so when the outcome of a write is unknown the
execution is looked up by name before anything is written again.
"""

from __future__ import annotations

import random
import threading
import time
import weakref
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from ml_metadata import errors as mlmd_errors
from ml_metadata.proto import metadata_store_pb2 as pb

from lineage import _convert, _identity, _timeline
from lineage._schema import OUTPUT_EVENTS
from lineage.artifacts import Artifact
from lineage.errors import LineageError, StepError, StoreError
from lineage.keeping import keep_pending
from lineage.secrets import redact_value

if TYPE_CHECKING:
    from lineage.steps import StepSpec
    from lineage.store import Store


# error and traceback are typed STRING properties, which MLMD indexes: PostgreSQL refuses
# index rows over ~2.7 kB, so both are cut to this many UTF-8 bytes (the traceback keeps
# its end, the error its start).
INDEXED_BYTES = 2000


def cut_indexed(text: str, *, keep_end: bool = False) -> str:
    data = text.encode()
    if len(data) <= INDEXED_BYTES:
        return text
    if keep_end:
        return "..." + data[-(INDEXED_BYTES - 3):].decode(errors="ignore")
    return data[: INDEXED_BYTES - 3].decode(errors="ignore") + "..."
WRITE_ATTEMPTS = 50


def recorded_by() -> str:
    from lineage import __version__

    return f"lineage {__version__}"

# --- writing -----------------------------------------------------------------------------


def new_event(kind: int, path: Sequence[str | int]) -> pb.Event:
    ev = pb.Event(type=kind)
    _convert.make_event_path(ev, path)
    return ev


def set_prop(target: Any, key: str, value: Any, *, typed: bool = False,
             what: str = "parameter", error: type[LineageError] = StepError) -> None:
    """Set ``target[key]`` (a param unless ``typed``); a value of a type MLMD cannot hold
    is recorded as its ``repr``; one :func:`lineage._values.plain` refuses raises ``error``
    and leaves ``target`` as it was."""
    if not typed:  # a param: secrets are redacted before they are written
        value = redact_value(key, value)
    existed = key in target
    try:
        _convert.set_value(target[key], value, typed=typed, where=f"{what} {key!r}", error=error)
    except TypeError:
        target[key].CopyFrom(_convert.to_value(repr(value)))
    except LineageError:
        if not existed:
            del target[key]
        raise


_type_ids: weakref.WeakKeyDictionary[Store, dict[type[Artifact], int]] = weakref.WeakKeyDictionary()


def artifact_type_id(store: Store, cls: type[Artifact]) -> int:
    """The store's type id of an artifact class, registered once per store and class."""
    ids = _type_ids.setdefault(store, {})
    found = ids.get(cls)
    if found is None:
        found = ids[cls] = store._artifact_type_id(cls)
    return found


def optimistic(store: Store, artifact: Artifact) -> pb.Artifact | None:
    """A new proto for the next version of a name this store object wrote or read before,
    without asking the store: if the same content is already recorded (``external_id``) or
    the version was taken meanwhile (``name``), MLMD's unique keys reject the write, which
    is then redone with :func:`lineage._identity.prepare`. Saves two reads per output.

    Not for a path given without a name: that may be a record under another name."""
    if not artifact.uri and not artifact.has_content and not artifact.fingerprint:
        return None
    if not artifact.name_given:
        return None
    hint = store._version_hints.get((artifact.type_name, artifact.name))
    if hint is None:
        return None
    artifact.fingerprint = store.fingerprint_of(artifact)
    return _identity.new_version(
        artifact, artifact_type_id(store, type(artifact)), hint[0] + 1, hint[1].id)


# Artifacts each store object recorded or read in this process (id -> external_id). An input
# known here is referenced by an event alone, without re-reading and re-sending the stored
# artifact: MLMD leaves the artifact untouched when a pair carries no artifact.
_known: weakref.WeakKeyDictionary[Store, dict[int, str]] = weakref.WeakKeyDictionary()
_known_lock = threading.Lock()
_KNOWN_MAX = 200_000


def remember(store: Store, artifact: Artifact) -> None:
    if artifact.id is None or not artifact.external_id:
        return
    with _known_lock:
        known = _known.setdefault(store, {})
        if len(known) >= _KNOWN_MAX:
            known.clear()
        known[artifact.id] = artifact.external_id


def is_known(store: Store, artifact: Artifact) -> bool:
    known = _known.get(store)
    return (
        known is not None and artifact.id is not None and artifact.external_id is not None
        and known.get(artifact.id) == artifact.external_id
    )


class Pending:
    """Artifacts to write with an execution: nothing for artifacts this store object
    recorded (an event with their id is enough), stored protos for other recorded ones,
    new protos (re-prepared after a lost race) for the others.

    MLMD allows one event per (artifact, execution, event type), so an artifact given
    twice (``f(a, [a])``) gets one event, at its first path; the later objects are
    aliases, filled in like the first. New content of one name given several times (two
    checkpoints named ``checkpoint``) becomes consecutive versions.
    """

    def __init__(self, store: Store, event_type: int) -> None:
        self.store = store
        self.event_type = event_type
        self.items: list[tuple[list[str | int], Artifact, pb.Artifact | None]] = []
        self.aliases: list[tuple[Artifact, int]] = []
        self.updates: list[pb.Artifact] = []
        """Other stored artifacts written with the execution (no event): the newest
        version of a name whose older content was recorded again."""
        self.chained: list[tuple[int, int]] = []
        """(item, earlier item): new versions whose ``previous_version`` is another new
        version of this write, set once both have ids."""

    def add(self, entries: Sequence[tuple[list[str | int], Artifact]]) -> None:
        if not entries:
            return
        known = {id(a) for _p, a in entries if is_known(self.store, a)}
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
                    proto = optimistic(self.store, artifact) or self._prepare(artifact)
                key = proto.id or proto.external_id or id(artifact)
            if key in seen:
                self.aliases.append((artifact, seen[key]))
                continue
            seen[key] = len(self.items)
            self.items.append((path, artifact, proto))
        self._number_new_versions()

    def _prepare(self, artifact: Artifact) -> pb.Artifact:
        prepared = _identity.prepare(
            self.store, artifact, artifact_type_id(self.store, type(artifact)))
        self.updates.extend(p for p in prepared.others
                            if all(p.id != u.id for u in self.updates))
        return prepared.proto

    def _number_new_versions(self) -> None:
        """Give new versions of one name in this write consecutive version numbers."""
        self.chained = []
        last: dict[tuple[int, str], tuple[int, int]] = {}  # -> (version, item index)
        for index, (_path, _artifact, proto) in enumerate(self.items):
            if proto is None or proto.id or "version" not in proto.properties:
                continue
            name = _identity.logical_name(proto)
            key = (proto.type_id, name)
            version = int(proto.properties["version"].int_value)
            before = last.get(key)
            if before is not None and version <= before[0]:
                version = before[0] + 1
                proto.name = _convert.mlmd_artifact_name(name, version)
                proto.properties["version"].int_value = version
                if "previous_version" in proto.properties:
                    del proto.properties["previous_version"]
                self.chained.append((index, before[1]))
            last[key] = (version, index)

    def drop(self, ids: set[int]) -> bool:
        """Leave out the artifacts already written as outputs of this execution
        (published while it ran: MLMD keeps one OUTPUT event per artifact and execution);
        their objects are filled from the record. Whether any was left out."""
        keep: list[tuple[list[str | int], Artifact, pb.Artifact | None]] = []
        index: dict[int, int] = {}
        dropped = False
        for i, (path, artifact, proto) in enumerate(self.items):
            known = proto.id if proto is not None else artifact.id
            if known in ids:
                dropped = True
                if proto is not None and proto.id:
                    _identity.fill(self.store, artifact, proto)
                continue
            index[i] = len(keep)
            keep.append((path, artifact, proto))
        if dropped:
            self.aliases = [(a, index[i]) for a, i in self.aliases if i in index]
            self.items = keep
            self._number_new_versions()
        return dropped

    def reprepare(self) -> None:
        """Prepare the new artifacts again (another writer may have recorded them)."""
        self.updates = []
        self.items = [
            (path, artifact,
             self._prepare(artifact) if proto is not None and not proto.id else proto)
            for path, artifact, proto in self.items
        ]
        self._number_new_versions()

    def pairs(self) -> list[tuple[pb.Artifact | None, pb.Event | None]]:
        out: list[tuple[pb.Artifact | None, pb.Event | None]] = []
        for path, artifact, proto in self.items:
            event = new_event(self.event_type, path)
            if proto is None:
                event.artifact_id = int(artifact.id or 0)
            out.append((proto, event))
        out.extend((update, None) for update in self.updates)
        return out

    def fingerprint(self, index: int) -> str:
        """The content identity of item ``index`` (for cache keys)."""
        _path, artifact, proto = self.items[index]
        found = recorded_fingerprint(proto) if proto is not None else artifact.fingerprint
        return found or f"artifact:{proto.id if proto is not None else artifact.id}"

    def fill(self, ids: Sequence[int]) -> None:
        """Copy what was written into the artifact objects (``ids``: one per pair)."""
        for (_path, _artifact, proto), artifact_id in zip(
                self.items, ids[:len(self.items)], strict=True):
            if proto is not None and not proto.id:
                proto.id = artifact_id
        if self.chained:  # new versions chained to new versions: link them now
            patched = []
            for index, earlier in self.chained:
                proto, before = self.items[index][2], self.items[earlier][2]
                assert proto is not None and before is not None
                proto.properties["previous_version"].int_value = before.id
                patched.append(proto)
            self.store._call("put_artifacts", patched)
        for _path, artifact, proto in self.items:
            if proto is None:
                continue  # known to this store: already filled
            if not (artifact.id == proto.id and artifact.version is not None):
                _identity.fill(self.store, artifact, proto)
            remember(self.store, artifact)  # (a recorded artifact passed in: nothing new)
        for artifact, index in self.aliases:
            _path, first, proto = self.items[index]
            if proto is not None:
                _identity.fill(self.store, artifact, proto)
            elif artifact is not first:
                _identity.fill(self.store, artifact, self.store._resolve(int(first.id or 0)))


def stamp_outputs(store: Store, proto: pb.Execution, outputs: Pending) -> None:
    """Record where the outputs about to be written fall in the store's order of records
    (``output_seq``: event path → :func:`lineage._timeline.stamp`).

    Only outputs already in the store (content recorded before: a shared intermediate)
    need a stamp. A new artifact cannot have been read before this write: every reader's
    execution is created after it, so its place is the execution's own id (the default
    of :func:`lineage._timeline.production_key`), and the store is not read for it. The
    retry of a lost race (the new artifact turned out to exist) stamps again.
    """
    shared = [path for path, _artifact, stored in outputs.items
              if stored is None or stored.id]
    if not shared:
        return
    seq = _timeline.output_seq_of(proto) or {}
    now = _timeline.stamp(store)
    for path in shared:
        seq[_convert.event_path(new_event(outputs.event_type, path))] = now
    proto.properties["output_seq"].CopyFrom(_convert.to_value(seq, packed=True))


def put_execution(
    store: Store,
    spec: StepSpec,
    proto: pb.Execution,
    pending: Sequence[Pending],
    contexts: Sequence[pb.Context],
) -> int:
    """One atomic ``put_execution``, retried idempotently.

    The execution's MLMD name is unique, so when the outcome of a write is unknown (an
    error after which another attempt may or may not be needed) we look the execution up
    by name: if it is already in the target state, the write happened and is not redone.
    A lost race to create an artifact (``AlreadyExists``) re-prepares the new artifacts.
    """
    for _attempt in range(WRITE_ATTEMPTS):
        keep_pending(store, spec.keep, pending)  # new artifacts' content, before the record
        pairs = [pair for p in pending for pair in p.pairs()]
        try:
            flags = (
                {"reuse_context_if_already_exist": True, "force_reuse_context": True}
                if contexts else {}
            )
            eid, aids, _cids = store._call("put_execution", proto, pairs, list(contexts), **flags)
        except StoreError as exc:
            try:
                done = written(store, spec, proto, pending)
            except LineageError:
                done = None  # cannot tell: report the write's own error
            if done is not None:
                return done
            if not isinstance(exc.__cause__, mlmd_errors.AlreadyExistsError):
                raise
            for p in pending:
                p.reprepare()
                if p.event_type in OUTPUT_EVENTS:
                    stamp_outputs(store, proto, p)
            time.sleep(random.random() * 0.005 * (_attempt + 1))
            continue
        start = 0
        for p in pending:
            size = len(p.items) + len(p.updates)
            p.fill(aids[start:start + size])
            start += size
        return int(eid)
    raise StepError(
        f"could not record a call of step {spec.name!r}: other writers kept winning the "
        f"races to create its artifacts in {store.uri}; retry",
        step=spec.name,
    )


def written(
    store: Store, spec: StepSpec, proto: pb.Execution, pending: Sequence[Pending]
) -> int | None:
    """If the write of ``proto`` already happened, fill the artifacts and return its id."""
    found = store._call(
        "get_execution_by_type_and_name", spec.name, proto.name, missing=None
    )
    if found is None or not found.id or found.last_known_state != proto.last_known_state:
        return None
    if proto.id and found.id != proto.id:
        return None
    wanted = {(p.event_type, _convert.event_path(ev))
              for p in pending for _a, ev in p.pairs() if ev is not None}
    events = store._call("get_events_by_execution_ids", [found.id])
    by_path = {(ev.type, _convert.event_path(ev)): ev.artifact_id for ev in events}
    if not wanted <= by_path.keys():
        return None
    for p in pending:
        ids = [by_path[(p.event_type, _convert.event_path(ev))]
               for _a, ev in p.pairs() if ev is not None]
        protos = {a.id: a for a in store._batched("get_artifacts_by_id", ids)}
        p.items = [(path, art, protos[i]) for (path, art, _old), i in zip(p.items, ids, strict=True)]
        p.updates = []
        p.fill(ids)
    return int(found.id)


def recorded_fingerprint(proto: pb.Artifact) -> str | None:
    value = proto.properties.get("fingerprint")
    return value.string_value or None if value is not None else None

def ms(seconds: float) -> float:
    """A time stamp to the millisecond: MLMD keeps doubles with six decimals and SQLite
    reads them back with 15 digits, so a finer one would not round-trip (and every update
    of the execution would rewrite it)."""
    return round(seconds, 3)


def now_ms() -> float:
    """Seconds since the epoch, to the millisecond."""
    return ms(time.time())

