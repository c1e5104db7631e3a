"""The store: ``connect()``, artifact recording with versions, batched reads.

A :class:`Store` wraps an ``ml_metadata.MetadataStore`` (``store.mlmd``). Every call into
MLMD goes through :meth:`Store._call`, the one place where MLMD's errors are translated
and aborted transactions are retried.
"""

from __future__ import annotations

import os
import random
import re
import threading
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

from ml_metadata import errors as mlmd_errors
from ml_metadata.metadata_store import metadata_store
from ml_metadata.proto import metadata_store_pb2 as pb

from lineage import _convert, _faults, _fork, _identity, _limits, _runref, _types
from lineage._active import current_run
from lineage._backends import Backend, open_mlmd, parse_uri, quiet_mlmd_client, reconnect
from lineage._recording import remember
from lineage._schema import (
    EXPERIMENT_PROPERTIES,
    EXPERIMENT_TYPE,
    RUN_PROPERTIES,
    RUN_TYPE,
    STEP_KINDS,
)
from lineage.artifacts import Artifact
from lineage.errors import (
    AmbiguousRef,
    ConcurrentWriteError,
    InvalidRef,
    NotFound,
    ReadOnlyStore,
    StoreError,
    TypeConflict,
    translate,
)
from lineage.fingerprint import FingerprintCache, fingerprint, fingerprint_content
from lineage.keeping import configure, keep, settings
from lineage.records import Execution, Run

if TYPE_CHECKING:
    from lineage.checkout import Checkout
    from lineage.doctor import DoctorReport
    from lineage.formats import Exported
    from lineage.formats.bundle_import import ImportResult
    from lineage.graph import LineageGraph
    from lineage.housekeeping import Collection, Usage
    from lineage.metrics import RunMetrics
    from lineage.objects import ObjectStore
    from lineage.plot import Chart
    from lineage.queries import Comparison, Impact, LineageDiff, Provenance, Verification
    from lineage.remotes import Transfer
    from lineage.search import RunSearch

__all__ = ["Ref", "Store", "connect", "default_store", "store_of"]

#: What every query accepts as a reference to an artifact.
Ref = Artifact | int | str

T = TypeVar("T")
_BATCH = 1000
_RAISE: Any = object()
_REF = re.compile(r"^(?P<name>.+)@(?P<version>\d+)$")
# Writes that fail with AlreadyExists when run again after they committed (and their
# connection was lost before the answer came): the second try found the first one's work.
_DONE_IF_EXISTS = frozenset({"put_parent_contexts", "put_attributions_and_associations"})
# Errors that mean "another writer got in the way; the transaction was rolled back".
_RETRYABLE_INTERNAL = (
    "deadlock detected",
    "deadlock found",  # MySQL/InnoDB: the transaction was rolled back
    "current transaction is aborted",
    "could not serialize",
    "database is locked",
    "concurrent",
)


def last_present(get: Callable[[int], T | None]) -> tuple[int, T] | None:
    """The largest ``n >= 1`` with ``get(n)`` not None, and that value, in O(log n) calls.

    ``get`` must be "present up to some n, absent after" (versions 1..n, run names
    ``x``, ``x-2``..``x-n``): doubling finds an absent n, bisection the last present one.

    Example:
        >>> last_present(lambda n: n * 10 if n <= 5 else None)
        (5, 50)
        >>> last_present(lambda n: None) is None
        True
    """
    if (hit := get(1)) is None:
        return None
    lo, lo_hit, hi = 1, hit, 2
    while (probe := get(hi)) is not None:
        lo, lo_hit, hi = hi, probe, hi * 2
    while hi - lo > 1:  # lo is present, hi is not
        mid = (lo + hi) // 2
        if (probe := get(mid)) is not None:
            lo, lo_hit = mid, probe
        else:
            hi = mid
    return lo, lo_hit


def connect(
    uri: str | os.PathLike[str] | None = None,
    *,
    read_only: bool = False,
    create: bool | None = None,
    objects: str | os.PathLike[str] | None = None,
    keep: bool | int | str | None = None,
) -> Store:
    """Open (or create) a lineage store.

    Args:
        uri: where the MLMD store lives:

            - ``None``: ``$LINEAGE_URI``, else ``./.lineage/metadata.sqlite``
            - a path or ``sqlite:///path``: a SQLite file, created with its folders
            - ``":memory:"``: a throwaway in-process store
            - ``postgresql://user:pw@host:5432/db``, ``mysql://user:pw@host:3306/db``
            - ``grpc://host:8080``: an MLMD gRPC server
        read_only: open for reading only: nothing is created (a missing store is an
            error), SQLite is opened READONLY, PostgreSQL sessions are read-only; every
            write method then raises :class:`~lineage.errors.ReadOnlyStore`.
        create: ``None`` (default): create a missing store; never add MLMD's tables to an
            existing file that is not an MLMD store (a 0-byte file, another program's
            SQLite database). ``True``: add them to such a file too. ``False``: create
            nothing; a missing store is an error.
        objects: where recorded content is kept (a path or fsspec URL, ``s3://…``);
            default ``$LINEAGE_OBJECTS``, else ``objects/`` beside a SQLite file (see
            :mod:`lineage.keeping`).
        keep: which content is kept: ``True`` (default: up to 1 GiB each), ``False``,
            a size limit (``"10G"``) or ``"all"``; default ``$LINEAGE_KEEP``.

    Raises:
        ConnectionFailed: the store cannot be opened or reached.
        InvalidRef: the URI has an unknown scheme.

    Example:
        >>> import lineage
        >>> store = lineage.connect(":memory:")
        >>> store
        <lineage.Store :memory:>
    """
    backend = parse_uri(uri, read_only=read_only)
    store = Store(backend, read_only=read_only, create=create)
    configure(store, objects=objects, keep=keep)
    return store


def _reopen(backend: Backend, read_only: bool, kept: tuple[str, Any] | None = None) -> Store:
    store = Store(backend, read_only=read_only)
    if kept is not None:  # where the pickled store kept content, and its keep policy
        configure(store, objects=kept[0], keep=kept[1])
    return store


# --- the default store -------------------------------------------------------------------

_default_stores: dict[str, Store] = {}
_default_lock = threading.Lock()


def _reset_after_fork() -> None:
    global _default_lock
    _default_lock = threading.Lock()


_fork.in_child(_reset_after_fork)


def default_store() -> Store:
    """``lineage.connect()``'s store, opened once per process and URI (what steps and runs
    record into when given no store)."""
    key = parse_uri(None).display
    with _default_lock:
        store = _default_stores.get(key)
        if store is None:
            store = _default_stores[key] = connect()
        return store


def store_of(value: Store | str | os.PathLike[str] | None) -> Store | None:
    """The store a ``store=`` option names: a Store as given, a URI opened once per process."""
    if value is None or isinstance(value, Store):
        return value
    key = parse_uri(value).display
    with _default_lock:
        store = _default_stores.get(key)
        if store is None:
            store = _default_stores[key] = connect(value)
        return store


class Store:
    """A connection to an MLMD store, with ``lineage``'s reads and writes.

    Use :func:`connect` to make one. The raw ``ml_metadata`` store is ``store.mlmd``.
    """

    def __init__(
        self, backend: Backend, *, read_only: bool = False, create: bool | None = None
    ) -> None:
        self._backend = backend
        self.read_only = read_only
        self._lock = threading.RLock()
        self._mlmd: metadata_store.MetadataStore | None = open_mlmd(
            backend, read_only=read_only, create=create
        )
        self._pid = os.getpid()
        _fork.track(self)
        self._artifact_types: dict[int, pb.ArtifactType] = {}
        self._execution_types: dict[int, pb.ExecutionType] = {}
        self._context_types: dict[int, pb.ContextType] = {}
        self._registered: dict[tuple[str, str], int] = {}
        # kind -> (when read, duplicated type name -> its type ids): see lineage._types
        self._duplicated_types: dict[str, tuple[float, dict[str, frozenset[int]]]] = {}
        self._fingerprint_cache: FingerprintCache | None = None
        self._graph_cache: Any = None
        # (type name, logical name) -> (newest version seen, its proto): one probe per put
        self._version_hints: dict[tuple[str, str], tuple[int, pb.Artifact]] = {}

    # --- identity ----------------------------------------------------------------------

    @property
    def uri(self) -> str:
        """The store's URI, password redacted."""
        return self._backend.display

    @property
    def kind(self) -> str:
        """``sqlite``, ``memory``, ``postgresql``, ``mysql`` or ``grpc``."""
        return self._backend.kind

    @property
    def folder(self) -> Path | None:
        """The folder of a SQLite store, else ``None``."""
        return self._backend.folder

    def __repr__(self) -> str:
        ro = " read-only" if self.read_only else ""
        return f"<lineage.Store {self.uri}{ro}>"

    def __reduce__(self) -> tuple[Any, ...]:
        """Pickled (for ``spawn`` process pools), a store reopens its backend in the other
        process; a ``:memory:`` store cannot be shared and refuses."""
        if self.kind == "memory":
            raise StoreError(
                "a ':memory:' store lives in one process and cannot be sent to another; "
                "use a SQLite file (lineage.connect('path/metadata.sqlite')) for process pools",
                uri=self.uri,
            )
        return (_reopen, (self._backend, self.read_only, settings(self)))

    # --- the connection, in this process -------------------------------------------------

    @property
    def mlmd(self) -> metadata_store.MetadataStore:
        """The underlying ``ml_metadata`` ``MetadataStore``, opened in this process.

        After ``os.fork()`` the child never uses the parent's connection (two processes on
        one SQLite handle or PostgreSQL session corrupt it): the first use in the child
        opens a connection of its own.
        """
        found = self._mlmd
        if found is None:
            with self._lock:
                if self._mlmd is None:
                    if self.kind == "memory":
                        raise StoreError(
                            "this ':memory:' store was opened in the parent process: a "
                            "forked child cannot share it (its writes would be lost); use a "
                            "SQLite file for process pools",
                            uri=self.uri,
                        )
                    self._mlmd = open_mlmd(self._backend, read_only=self.read_only)
                found = self._mlmd
        return found

    def _forked(self) -> None:
        """In a forked child: drop (never close) what belongs to the parent's process."""
        self._lock = threading.RLock()
        self._pid = os.getpid()
        if self._mlmd is not None:
            _fork.keep_forever(self._mlmd)  # closing it would end the parent's session
            self._mlmd = None
        if self._fingerprint_cache is not None:
            self._fingerprint_cache.forget()

    def __enter__(self) -> Store:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        """Release the fingerprint cache (MLMD closes its connection when collected)."""
        if self._fingerprint_cache is not None:
            self._fingerprint_cache.close()

    # --- the MLMD boundary -------------------------------------------------------------

    def _call(
        self, method: str, *args: Any, retry: bool = True, missing: Any = _RAISE,
        route: bool = True, **kwargs: Any
    ) -> Any:
        """Call ``store.mlmd.<method>``; translate errors; retry lost races.

        ``missing``, when given, is returned instead of raising when MLMD says NotFound.
        Queries by type name cover every type of that name where the store holds
        duplicates (``route``; see :mod:`lineage._types`).

        Aborted transactions (SQLite busy, MLMD's own conflict detection) and PostgreSQL's
        deadlock/aborted-transaction errors are retried with jittered back-off for up to
        about a minute when ``retry`` is true: they mean the transaction was rolled back,
        so running it again is safe.
        """
        if self.read_only and method.startswith("put_"):
            # Every MLMD write is a put_* call: refusing them here covers every write
            # method of the library, present and future.
            self._check_writable(method.replace("_", " "))
        if route and "_by_type" in method:
            found = _types.routed(self, method, args, kwargs)
            if found is not _types.NOT_ROUTED:
                return found
        delay, deadline = 0.005, time.monotonic() + 60
        reopened = False
        reconnects = 0
        while True:
            try:
                used = self._mlmd
                try:
                    with self._lock, quiet_mlmd_client():
                        return getattr(self.mlmd, method)(*args, **kwargs)
                except (mlmd_errors.StatusError, RuntimeError) as exc:
                    # A server connection lost (a restart): reconnect and run it again.
                    if not self._reconnected(exc, used, method, reconnects):
                        raise
                    reconnects += 1
                    continue
            except mlmd_errors.FailedPreconditionError as exc:
                # MySQL: a request over max_allowed_packet drops the connection mid-
                # transaction and MLMD's client then refuses every call with "Transaction
                # already open". The server rolled that transaction back: reconnect, rerun.
                if reopened or "transaction already open" not in str(exc).lower():
                    raise self._translate(exc, method) from exc
                with self._lock:
                    self._mlmd = open_mlmd(self._backend, read_only=self.read_only)
                reopened = True
            except (mlmd_errors.AbortedError, mlmd_errors.InternalError) as exc:
                transient = isinstance(exc, mlmd_errors.AbortedError) or any(
                    t in str(exc).lower() for t in _RETRYABLE_INTERNAL
                )
                if retry and transient and time.monotonic() < deadline:
                    time.sleep(delay * (0.5 + random.random()))
                    delay = min(delay * 2, 0.5)
                    continue
                raise self._translate(exc, method) from exc
            except mlmd_errors.NotFoundError as exc:
                if missing is not _RAISE:
                    return missing
                raise self._translate(exc, method) from exc
            except mlmd_errors.StatusError as exc:
                if reconnects and method in _DONE_IF_EXISTS and isinstance(
                        exc, mlmd_errors.AlreadyExistsError):
                    return None  # the try before the connection was lost had written it
                raise self._translate(exc, method) from exc
            except RuntimeError as exc:
                raise self._translate(exc, method) from exc
            except (ValueError, TypeError, RecursionError) as exc:
                # protobuf refused a value before MLMD ran (an id beyond 64 bits, a lone
                # surrogate, nesting too deep): the caller's input, said as such.
                raise _limits.refused_value(exc, method, self.uri) from exc

    def _reconnected(
        self, exc: BaseException, used: metadata_store.MetadataStore | None, method: str,
        reconnects: int,
    ) -> bool:
        """Whether ``exc`` means the server connection is gone; then reconnect (see
        :func:`lineage._backends.reconnect`) and say the call may run again.

        Reads are safe to run again; writes are idempotent: new records have unique names
        or external ids (a write that did commit before the connection dropped is found
        on the second try), updates rewrite the same values.
        """
        if reconnects >= 3 or not _faults.connection_lost(str(exc), self.kind):
            return False
        with self._lock:
            if self._mlmd is used:  # not reconnected meanwhile by another thread
                self._mlmd = reconnect(self._backend, read_only=self.read_only, lost=exc,
                                       action=method.replace("_", " "))
        return True

    def _translate(self, exc: BaseException, method: str) -> StoreError:
        secrets = [self._backend.password] if self._backend.password else []
        return translate(exc, uri=self.uri, action=method.replace("_", " "), secrets=secrets)

    def _check_writable(self, what: str) -> None:
        if self.read_only:
            raise ReadOnlyStore(
                f"cannot {what}: the store {self.uri} was opened with read_only=True; "
                "connect without read_only to record",
                uri=self.uri,
            )

    # --- types -------------------------------------------------------------------------

    def _register_type(self, kind: str, proto: Any) -> int:
        """Put a type once per store object (adding fields to an older stored type).

        Keyed by the whole declaration, so a redefined class that adds a property (a
        notebook cell run again) upgrades the stored type on the same store object too.
        """
        key = (kind, proto.SerializeToString(deterministic=True).hex())
        if key in self._registered:
            return self._registered[key]
        self._check_writable(f"register the {kind} type {proto.name!r}")
        method = {"artifact": "put_artifact_type", "execution": "put_execution_type",
                  "context": "put_context_type"}[kind]
        plain = proto
        if not proto.external_id:
            # The unique key on Type.external_id makes the database refuse a second type
            # of this name from a concurrent writer (see lineage._types); a type another
            # tool created keeps the external id it has.
            stored = self._type_named(kind, proto.name)
            if stored is not None:  # (by name, MLMD on MySQL leaves external_id out)
                stored = next(iter(self._call(f"get_{kind}_types_by_id", [stored.id])), stored)
            ours = _types.external_id(kind, proto.name)
            if ours is not None and (stored is None or not stored.external_id):
                proto = type(plain)()
                proto.CopyFrom(plain)
                proto.external_id = ours
        while True:
            try:
                type_id = self._call(method, proto, can_add_fields=True, can_omit_fields=True)
                break
            except StoreError as exc:
                cause = exc.__cause__
                if proto is not plain and _types.is_creation_race(cause):
                    # Another writer created it just now and the database refused our
                    # insert: the same put without the external id finds theirs by name.
                    proto = plain
                    continue
                if isinstance(cause, mlmd_errors.AlreadyExistsError) or (
                    isinstance(cause, mlmd_errors.UnimplementedError)
                    and "base_type" in str(cause)
                ):
                    raise TypeConflict(self._conflict(kind, proto, exc.__cause__),
                                       uri=self.uri) from exc.__cause__
                raise
        self._registered[key] = int(type_id)
        return int(type_id)

    def _conflict(self, kind: str, proto: Any, cause: BaseException | None) -> str:
        """What to do when a type declaration clashes with the stored type of its name."""
        stored = self._type_named(kind, proto.name)
        if kind == "execution" and stored is not None:
            kinds = {v: k for k, v in STEP_KINDS.items()}
            have = kinds.get(stored.base_type) if stored.HasField("base_type") else None
            want = kinds.get(proto.base_type) if proto.HasField("base_type") else None
            if have != want:
                return (
                    f"the step {proto.name!r} is already recorded in {self.uri} as "
                    f"kind={have!r} (by another project, or an earlier version of this step), "
                    f"and this one is kind={want!r}; MLMD keeps one type per step name: give "
                    f"this step its own name, e.g. @lineage.step(name='<project>.{proto.name}'"
                    f", kind={want!r}), or the stored kind={have!r}")
        return (f"the {kind} type {proto.name!r} is already in {self.uri} with different "
                f"property types or base type ({cause}); keep the stored property types, or "
                "use a new type name")

    def _artifact_type_id(self, cls: type[Artifact]) -> int:
        return self._register_type("artifact", _convert.artifact_type_proto(cls))

    def _types(self, kind: str, ids: Iterable[int]) -> dict[int, Any]:
        cache: dict[int, Any] = {
            "artifact": self._artifact_types,
            "execution": self._execution_types,
            "context": self._context_types,
        }[kind]
        missing = sorted({i for i in ids if i not in cache})
        if missing:
            got = self._call(f"get_{kind}_types_by_id", missing)
            cache.update({t.id: t for t in got})
        return cache

    def _type_named(self, kind: str, name: str) -> Any | None:
        return self._call(f"get_{kind}_type", name, missing=None)

    # --- batched reads -----------------------------------------------------------------

    def _batched(self, method: str, ids: Sequence[int]) -> list[Any]:
        out: list[Any] = []
        for start in range(0, len(ids), _BATCH):
            out.extend(self._call(method, list(ids[start:start + _BATCH])))
        return out

    def _artifacts_from_protos(self, protos: Sequence[pb.Artifact]) -> list[Artifact]:
        types = self._types("artifact", (p.type_id for p in protos))
        return [_convert.artifact_from_proto(p, types.get(p.type_id)) for p in protos]

    def artifacts_by_id(self, ids: Iterable[int]) -> dict[int, Artifact]:
        """Read artifacts by id in batches; missing ids are left out.

        Example:
            >>> import lineage
            >>> lineage.connect(":memory:").artifacts_by_id([1, 2])
            {}
        """
        protos = self._batched("get_artifacts_by_id", sorted(set(ids)))
        return {a.id: a for a in self._artifacts_from_protos(protos) if a.id is not None}

    def executions_by_id(self, ids: Iterable[int]) -> dict[int, Execution]:
        """Read executions by id, with their input and output ids, in batches.

        Example:
            >>> import lineage
            >>> lineage.connect(":memory:").executions_by_id([1])
            {}
        """
        id_list = sorted(set(ids))
        protos = self._batched("get_executions_by_id", id_list)
        return {e.id: e for e in self._executions_from_protos(protos)}

    def _executions_from_protos(self, protos: Sequence[pb.Execution]) -> list[Execution]:
        events = self._batched("get_events_by_execution_ids", [p.id for p in protos])
        by_exec: dict[int, list[pb.Event]] = {}
        for ev in events:
            by_exec.setdefault(ev.execution_id, []).append(ev)
        types = self._types("execution", (p.type_id for p in protos))
        return [
            _convert.execution_from_proto(p, types.get(p.type_id), by_exec.get(p.id, ()))
            for p in protos
        ]

    # --- artifacts: write --------------------------------------------------------------

    def _fingerprints(self) -> FingerprintCache:
        if self._fingerprint_cache is None:
            folder = self.folder or Path(
                os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")
            ) / "lineage"
            self._fingerprint_cache = FingerprintCache(folder / "fingerprints.sqlite")
        return self._fingerprint_cache

    def fingerprint_of(self, artifact: Artifact) -> str | None:
        """Compute (or reuse) the content fingerprint of an unrecorded artifact.

        In-memory content is digested as given; a local path is read (through the cache of
        unchanged files); remote URIs get ``None`` unless a fingerprint was given.
        """
        if artifact.fingerprint:
            return artifact.fingerprint
        if artifact.has_content:
            return fingerprint_content(artifact.content)
        uri = artifact.uri
        if not uri or "://" in uri:  # remote: what _local_path() calls it
            return None
        return fingerprint(uri, cache=self._fingerprints())

    def _latest_version(
        self, type_name: str, name: str, *, writing: bool = False
    ) -> pb.Artifact | None:
        """The stored proto of the newest version of ``name`` (see
        :func:`lineage._identity.latest_version`)."""
        return _identity.latest_version(self, type_name, name, writing=writing)

    def _write_with_retry(self, attempt: Callable[[], T], what: str) -> T:
        """Run ``attempt`` again when it lost a creation race to another writer."""
        for _ in range(50):
            try:
                return attempt()
            except StoreError as exc:
                if isinstance(exc, TypeConflict) or not isinstance(
                    exc.__cause__, mlmd_errors.AlreadyExistsError
                ):
                    raise
                time.sleep(random.random() * 0.01)
        raise ConcurrentWriteError(f"could not {what}: other writers kept winning", uri=self.uri)

    def put(self, artifact: Artifact) -> Artifact:
        """Record an artifact outside any step; return it with id, version and fingerprint.

        The same content under the same name returns the existing record; new content
        under a known name becomes the next version, linked to the previous one by the
        ``previous_version`` property.

        Raises:
            ReadOnlyStore: the store was opened read-only.
            FingerprintError: the content cannot be read.

        Example:
            >>> import lineage, tempfile, pathlib
            >>> store = lineage.connect(":memory:")
            >>> f = pathlib.Path(tempfile.mkdtemp()) / "iris.csv"
            >>> _ = f.write_text("a,b\\n1,2\\n")
            >>> store.put(lineage.Dataset(f, name="iris")).version
            1
            >>> _ = f.write_text("a,b\\n1,3\\n")
            >>> store.put(lineage.Dataset(f, name="iris")).version
            2
        """
        self._check_writable(f"put {artifact!r}")

        type_id = self._artifact_type_id(type(artifact))

        def attempt() -> Artifact:
            prepared = _identity.prepare(self, artifact, type_id)
            proto = prepared.proto
            kept = keep(self, artifact, proto)  # keeps the content before the record
            writes = [proto] if not proto.id or prepared.dirty or kept else []
            writes += prepared.others
            if writes:
                ids = self._call("put_artifacts", writes)
                if not proto.id:
                    proto.id = ids[0]
            return _identity.fill(self, artifact, proto)

        recorded = self._write_with_retry(attempt, f"put {artifact!r}")
        remember(self, recorded)
        active = current_run()  # inside a `with lineage.run()`: attribute it to the run
        if active is not None and active.store is self and recorded.id is not None and (
            active.context.id
        ):
            self._call(
                "put_attributions_and_associations",
                [pb.Attribution(context_id=active.context.id, artifact_id=recorded.id)],
                [],
            )
        return recorded

    # --- artifacts: read ---------------------------------------------------------------

    def _artifact_protos_of_type(self, type_name: str) -> list[pb.Artifact]:
        return list(self._call("get_artifacts_by_type", type_name))

    def _all_artifact_types(self) -> list[pb.ArtifactType]:
        types = list(self._call("get_artifact_types"))
        self._artifact_types.update({t.id: t for t in types})
        return types

    def _resolve(self, ref: Ref, *, type: str | type[Artifact] | None = None) -> pb.Artifact:
        """The stored artifact a reference names (see ``Store.get``)."""
        if isinstance(ref, Artifact):
            if ref.id is not None:
                return self._resolve(ref.id)
            type = type or ref.__class__
            ref = f"{ref.name}@{ref.version}" if ref.version else ref.name
        if isinstance(ref, bool) or not isinstance(ref, (int, str)):
            raise InvalidRef(
                f"{ref!r} is not a reference: use an Artifact, an id, 'name', 'name@3' or "
                "'artifact:12'",
                ref=ref,
            )
        if isinstance(ref, str) and ref.startswith("file:"):
            return _identity.by_file(self, ref[len("file:"):])
        if isinstance(ref, str) and ref.split(":", 1)[0] in ("execution", "context", "run"):
            kind = ref.split(":", 1)[0]
            raise InvalidRef(
                f"{ref!r} is {'an execution' if kind == 'execution' else 'a run'}, not an "
                f"artifact; `lineage show {ref}` shows it (its inputs and outputs); give one "
                "of its outputs (artifact:N) to ask for a lineage", ref=ref)
        _limits.check_ref(ref)  # too long, not text, an id beyond 64 bits
        if isinstance(ref, str) and ref.startswith("artifact:"):
            try:
                ref = int(ref.split(":", 1)[1])
            except ValueError:
                raise InvalidRef(f"{ref!r}: expected 'artifact:<id>'", ref=ref) from None
        if isinstance(ref, int):
            found = self._call("get_artifacts_by_id", [ref])
            if not found:
                raise NotFound(f"no artifact with id {ref} in {self.uri}", ref=ref)
            return found[0]
        if not ref:
            raise InvalidRef("an empty string is not a reference", ref=ref)
        type_name = type if isinstance(type, str) else (type.type_name if type else None)
        match = _REF.match(ref)
        if not match and "@" in ref:  # "clf@production": an alias (lineage.tags)
            from lineage.tags import resolve_alias

            if (aliased := resolve_alias(self, ref, type_name)) is not None:
                return aliased
        type_names = [type_name] if type_name else list(dict.fromkeys(
            t.name for t in self._all_artifact_types()))
        hits: list[pb.Artifact] = []
        for tname in type_names:
            if match:
                hit = _identity.by_name(self, tname, ref)
            else:  # the content most recently recorded under the name
                hit = _identity.current_of(self, tname, ref)
                if hit is None:  # a foreign artifact whose MLMD name is the plain name
                    hit = _identity.by_name(self, tname, ref)
            if hit is not None:
                hits.append(hit)
        if ref.isdigit() and 0 < int(ref) < 2**63:  # "2024": a name, or an id as in the CLI
            by_id = self._call("get_artifacts_by_id", [int(ref)])
            if by_id and hits:
                raise AmbiguousRef(
                    f"{ref!r} is both the name of artifact:{hits[0].id} and the id of "
                    f"artifact:{by_id[0].id}; write 'artifact:{ref}' for the id, or "
                    f"'{ref}@{_identity.stored_value(hits[0], 'version') or 1}' for the name",
                    ref=ref)
            if by_id and (type_name is None or self._types("artifact", [by_id[0].type_id]).get(
                    by_id[0].type_id, pb.ArtifactType()).name == type_name):
                return by_id[0]
        if not hits and match:  # name@7: say which versions there are
            logical = match.group("name")
            have = [(tname, _identity.latest_version(self, tname, logical))
                    for tname in type_names]
            have = [(t, p) for t, p in have if p is not None]
            if have:
                versions = "; ".join(
                    f"{t} {logical!r} has versions 1 to "
                    f"{_identity.stored_value(p, 'version')} ({logical}@1 … "
                    f"{logical}@{_identity.stored_value(p, 'version')})" for t, p in have)
                raise NotFound(f"no {ref!r} in {self.uri}: {versions}", ref=ref)
        if not hits:
            scope = f" of type {type_name}" if type_name else ""
            raise NotFound(
                f"no artifact{scope} named {ref!r} in {self.uri}; `lineage ls` lists what is "
                "recorded",
                ref=ref,
            )
        if len(hits) > 1:
            types = self._types("artifact", (h.type_id for h in hits))
            options = ", ".join(f"artifact:{h.id} ({types[h.type_id].name})" for h in hits)
            raise AmbiguousRef(
                f"{ref!r} names artifacts of several types: {options}; pass one of these ids, "
                "or the type: type='Model' in Python, --type Model on the command line",
                ref=ref,
            )
        return hits[0]

    def which(self, path: str | os.PathLike[str]) -> list[Artifact]:
        """The records whose content equals the file's or folder's bytes at ``path`` (any
        name, any type), the ones seen at this location first; each lists every location
        it was seen at (``locations``). Reads every artifact once (MLMD cannot look a
        property up by value).

        Raises:
            FingerprintError: ``path`` cannot be read.

        Example:
            >>> import lineage, tempfile, pathlib
            >>> store = lineage.connect(":memory:")
            >>> f = pathlib.Path(tempfile.mkdtemp()) / "m.pkl"; _ = f.write_bytes(b"w")
            >>> _ = store.put(lineage.Model(f, name="clf"))
            >>> [(a.name, a.version) for a in store.which(f)]
            [('clf', 1)]
        """
        return _identity.which(self, path)

    def get(self, ref: Ref, *, type: str | type[Artifact] | None = None) -> Artifact:
        """Return the recorded artifact a reference names.

        Args:
            ref: an :class:`Artifact`, an int id, ``"name"`` (latest version), ``"name@3"``
                or ``"artifact:12"``.
            type: restrict name lookups to one artifact type.

        Raises:
            NotFound: nothing matches. AmbiguousRef: the name exists in several types.

        Example:
            >>> import lineage
            >>> store = lineage.connect(":memory:")
            >>> m = store.put(lineage.Metrics({"acc": 0.9}, name="eval"))
            >>> store.get("eval@1").values, store.get(f"artifact:{m.id}").name
            ({'acc': 0.9}, 'eval')
        """
        return self._artifacts_from_protos([self._resolve(ref, type=type)])[0]

    def artifacts(
        self, type: str | type[Artifact] | None = None, name: str | None = None
    ) -> list[Artifact]:
        """Return artifacts, oldest first, optionally of one type and/or one logical name.

        Example:
            >>> import lineage
            >>> store = lineage.connect(":memory:")
            >>> _ = store.put(lineage.Metrics({"acc": 0.9}, name="eval"))
            >>> [a.name for a in store.artifacts(type="Metrics")]
            ['eval']
        """
        if type is not None:
            type_name = type if isinstance(type, str) else type.type_name
            if self._type_named("artifact", type_name) is None:
                return []
            protos = self._artifact_protos_of_type(type_name)
        else:
            protos = list(self._call("get_artifacts"))
        arts = self._artifacts_from_protos(protos)
        if name is not None:
            arts = [a for a in arts if a.name == name]
        return sorted(arts, key=lambda a: (a.create_time or 0, a.id or 0))

    # --- executions and runs -----------------------------------------------------------

    def executions(
        self, step: str | None = None, state: str | None = None, run: str | int | None = None
    ) -> list[Execution]:
        """Return executions, oldest first, filtered by step name, state and run.

        Args:
            step: the step (execution type) name.
            state: ``"RUNNING"``, ``"COMPLETE"``, ``"FAILED"``, ``"CACHED"``, ``"CANCELED"``.
            run: a run name or context id.

        Example:
            >>> import lineage
            >>> lineage.connect(":memory:").executions(state="RUNNING")
            []
        """
        if state is not None and state.upper() not in list(pb.Execution.State.keys()):
            raise InvalidRef(
                f"unknown state {state!r}; use one of {list(pb.Execution.State.keys())}",
                ref=state,
            )
        if run is not None:
            protos = list(self._call("get_executions_by_context", self._resolve_run(run).id))
            if step is not None:
                ids = {p.id for p in self._step_executions(step)}
                protos = [p for p in protos if p.id in ids]
        elif step is not None:
            protos = self._step_executions(step)
        else:
            protos = list(self._call("get_executions"))
        if state is not None:
            wanted = pb.Execution.State.Value(state.upper())
            protos = [p for p in protos if p.last_known_state == wanted]
        execs = self._executions_from_protos(protos)
        return sorted(execs, key=lambda e: (e.create_time or 0, e.id))

    def _step_executions(self, step: str) -> list[pb.Execution]:
        """The executions of a step: of the execution type named ``step``, of the types
        whose short name it is (TFX's ``...trainer.component.Trainer``), and of TFX
        ``node`` contexts named ``<pipeline>.<step>`` (a component id such as
        ``Trainer_2``)."""
        found: dict[int, pb.Execution] = {}
        for t in self._call("get_execution_types"):
            if step in (t.name, t.name.rsplit(".", 1)[-1]):
                found.update((e.id, e) for e in self._call("get_executions_by_type", t.name))
        if self._type_named("context", "node") is not None:
            for node in self._call("get_contexts_by_type", "node"):
                if node.name == step or node.name.endswith("." + step):
                    found.update((e.id, e) for e in self._call(
                        "get_executions_by_context", node.id, missing=[]))
        return [found[i] for i in sorted(found)]

    def _context_type_ids(self) -> dict[str, int]:
        types = list(self._call("get_context_types"))
        self._context_types.update({t.id: t for t in types})
        return {t.name: t.id for t in types}

    def _ensure_run_types(self) -> tuple[int, int]:
        exp = pb.ContextType(name=EXPERIMENT_TYPE)
        for k, v in EXPERIMENT_PROPERTIES.items():
            exp.properties[k] = v
        run = pb.ContextType(name=RUN_TYPE)
        for k, v in RUN_PROPERTIES.items():
            run.properties[k] = v
        return self._register_type("context", exp), self._register_type("context", run)

    def _runs_from_protos(self, protos: Sequence[pb.Context]) -> list[Run]:
        """Records of contexts, with their experiments (see :mod:`lineage._runref`)."""
        return _runref.records(self, protos)

    def runs(self, experiment: str | None = None, name: str | None = None) -> list[Run]:
        """Return the runs, oldest first: our ``Run`` contexts, and the runs of other tools
        the queries understand (TFX ``pipeline_run``, Kubeflow ``system.PipelineRun``).

        Args:
            experiment: only runs of this experiment (for TFX: of this pipeline).
            name: only runs the user gave this name (several runs may share one; each has
                a unique ``name`` of its own).

        Example:
            >>> import lineage
            >>> lineage.connect(":memory:").runs()
            []
        """
        return _runref.list_runs(self, experiment=experiment, name=name)

    def _context_named(self, type_name: str, name: str) -> pb.Context | None:
        if self._type_named("context", type_name) is None:
            return None
        got = self._call("get_context_by_type_and_name", type_name, name, missing=None)
        return got if got is not None and got.id else None

    def _resolve_run(self, ref: str | int | Run) -> pb.Context:
        """The context a run reference names: its unique name, its id (``context:N`` or
        ``N``), or ``experiment/name``; never another run (see :mod:`lineage._runref`)."""
        if not isinstance(ref, Run):
            _limits.check_ref(ref)  # too long, not text, an id beyond 64 bits
        return _runref.resolve_run(self, ref)

    def run(self, ref: str | int | Run) -> Run:
        """The run a reference names: its unique name, ``context:N`` (or ``N``), or
        ``experiment/name``.

        Raises:
            NotFound: no such run. AmbiguousRef: the reference could mean several runs
                (the message lists them).

        Example:
            >>> import lineage
            >>> store = lineage.connect(":memory:")
            >>> for _ in range(2):
            ...     with lineage.run("baseline", experiment="iris", store=store):
            ...         pass
            >>> [store.run(r).name for r in ("baseline", "baseline-2", "iris/baseline-2")]
            ['baseline', 'baseline-2', 'baseline-2']
        """
        return _runref.records(self, [self._resolve_run(ref)])[0]

    # --- queries (implemented in their own modules) ------------------------------------

    def graph(
        self, *, run: str | int | None = None, experiment: str | None = None,
        contexts: bool = False,
    ) -> LineageGraph:
        """The lineage graph of the store (see :func:`lineage.graph.load_graph`)."""
        from lineage.graph import load_graph

        return load_graph(self, run=run, experiment=experiment, contexts=contexts)

    def provenance(self, ref: Ref) -> Provenance:
        """Which data, code and parameters produced ``ref`` (see :mod:`lineage.queries`)."""
        from lineage.queries import provenance

        return provenance(self, ref)

    def impact(self, ref: Ref) -> Impact:
        """Everything downstream of ``ref`` (see :mod:`lineage.queries`)."""
        from lineage.queries import impact

        return impact(self, ref)

    def diff(self, ref_a: Ref, ref_b: Ref) -> LineageDiff:
        """How the lineages of two artifacts differ (see :mod:`lineage.queries`)."""
        from lineage.queries import diff

        return diff(self, ref_a, ref_b)

    def verify(
        self, ref: Ref | None = None, *, map: Mapping[str, str] | None = None,
        restore: bool = False,
    ) -> Verification:
        """Re-fingerprint recorded content at every location it was seen at and report what
        changed; ``map`` reads path prefixes elsewhere; ``restore`` puts back kept copies of
        changed or missing files (see :func:`lineage.queries.verify`)."""
        from lineage.queries import verify

        return verify(self, ref, map=map, restore=restore)

    def compare(self, runs: Sequence[str | int | Run]) -> Comparison:
        """Runs side by side with params and final metrics (see :mod:`lineage.queries`)."""
        from lineage.queries import compare

        return compare(self, runs)

    def search_runs(
        self,
        *,
        experiment: str | None = None,
        where: str | Sequence[str] = (),
        sort: str | None = None,
        limit: int | None = None,
        offset: int = 0,
        step_params: bool = True,
    ) -> RunSearch:
        """Find runs: status, times, params and final metrics, filtered and sorted (see
        :func:`lineage.search.search_runs`).

        Example:
            >>> import lineage
            >>> lineage.connect(":memory:").search_runs(where="f1>0.9", sort="-f1").runs
            []
        """
        from lineage.search import search_runs

        return search_runs(self, experiment=experiment, where=where, sort=sort, limit=limit,
                           offset=offset, step_params=step_params)

    def plot(
        self,
        runs: Sequence[str | int | Run],
        metrics: Sequence[str] | None = None,
        path: str | os.PathLike[str] | None = None,
        *,
        format: str | None = None,
        title: str | None = None,
    ) -> Chart | Path:
        """Metric curves of runs (or steps, ``"execution:12"``) overlaid: one line per run and
        metric (see :func:`lineage.plot.plot_runs`). Needs matplotlib (the ``plot`` extra).

        Example:
            >>> import lineage
            >>> store = lineage.connect(":memory:")
            >>> with lineage.run("r", store=store):
            ...     lineage.log_metrics({"loss": 0.5}, step=0)
            >>> store.plot(["r"]).title
            'loss'
        """
        from lineage.plot import plot_runs

        return plot_runs(self, runs, metrics, path, format=format, title=title)

    def metrics(self, run: str | int | Run) -> RunMetrics:
        """A run's final metrics and per-step series (see :func:`lineage.run_metrics`).

        Example:
            >>> import lineage
            >>> store = lineage.connect(":memory:")
            >>> with lineage.run("r", store=store):
            ...     lineage.log_metrics({"loss": 0.5}, step=0)
            >>> store.metrics("r").series
            {'loss': [(0, 0.5)]}
        """
        from lineage.metrics import run_metrics

        return run_metrics(self, run)

    def export(
        self, ref: Ref, format: str = "bundle", path: str | os.PathLike[str] | None = None
    ) -> Exported:
        """Export the provenance of ``ref``: ``bundle``, ``openlineage`` or ``prov`` (see
        :func:`lineage.export.export`)."""
        from lineage.export import export

        return export(self, ref, format, path)

    def import_bundle(self, source: str | os.PathLike[str] | bytes | Any) -> ImportResult:
        """Import a bundle written by :meth:`export` (see :func:`lineage.export.import_bundle`)."""
        from lineage.export import import_bundle

        return import_bundle(self, source)

    def doctor(self, *, fix: bool = False, stale_after: float = 600.0) -> DoctorReport:
        """RUNNING steps and runs whose process is gone; ``fix=True`` marks them FAILED
        (see :func:`lineage.doctor.doctor`).

        Example:
            >>> import lineage
            >>> lineage.connect(":memory:").doctor().abandoned
            []
        """
        from lineage.doctor import doctor

        return doctor(self, fix=fix, stale_after=stale_after)

    # --- kept content (implemented in lineage.keeping, checkout, remotes, housekeeping) ---

    @property
    def objects(self) -> ObjectStore:
        """Where this store keeps the content of recorded versions (see
        :mod:`lineage.keeping`)."""
        from lineage.keeping import objects_of

        return objects_of(self)

    def checkout(self, ref: Ref, path: str | os.PathLike[str] | None = None) -> Checkout:
        """Give back the exact content of a version, verified against its fingerprint (see
        :func:`lineage.checkout.checkout`)."""
        from lineage.checkout import checkout

        return checkout(self, ref, path)

    def push(self, remote: str | None = None, refs: Sequence[Ref] | None = None) -> Transfer:
        """Copy the kept objects that ``refs`` (and their provenance; default: every
        artifact) need to a remote object store (see :func:`lineage.remotes.push`)."""
        from lineage.remotes import push

        return push(self, remote, refs)

    def pull(self, remote: str | None = None, refs: Sequence[Ref] | None = None) -> Transfer:
        """Copy the kept objects that ``refs`` need from a remote object store into this
        store's (see :func:`lineage.remotes.pull`)."""
        from lineage.remotes import pull

        return pull(self, remote, refs)

    def gc(self, *, dry_run: bool = True, min_age: float = 600.0) -> Collection:
        """Remove the objects no recorded artifact references (a dry run by default; see
        :func:`lineage.housekeeping.gc`)."""
        from lineage.housekeeping import gc

        return gc(self, dry_run=dry_run, min_age=min_age)

    def du(self) -> Usage:
        """What the kept objects take, per name and version (see
        :func:`lineage.housekeeping.du`)."""
        from lineage.housekeeping import du

        return du(self)

    def audit(self, ref: Ref, path: str | os.PathLike[str] | None = None) -> str | Path:
        """An audit report of ``ref`` (see :mod:`lineage.report`)."""
        from lineage.report import audit

        return audit(self, ref, path)
