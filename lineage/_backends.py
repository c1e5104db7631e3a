"""Store URIs → ml_metadata connection configs, and opening a store safely.

Opening is where MLMD is fragile: several processes creating the same new store at once
fail (SQLite: "There are a subset of tables in MLMD instance"; PostgreSQL: "duplicate key
value violates unique constraint"). We serialise SQLite creation with a lock file next to
the database and retry both, and we switch new SQLite files to WAL before MLMD opens them.

Opening never changes what it should not:

- A SQLite file is looked at before MLMD sees it (its size, header and table names, read
  with Python's ``sqlite3`` in ``mode=ro``): a 0-byte file, another program's database or
  a file that is not SQLite is refused with one line, unless ``create=True`` asks to add
  MLMD's tables; a damaged file is named as such at once. A new file is created under
  another name and moved into place, so a 0-byte file is never ours.
- ``read_only=True`` creates nothing: SQLite is opened ``READONLY`` (with ``immutable=1``
  in a folder or on a mount that cannot be written, so no ``-wal``/``-shm`` is made);
  PostgreSQL sessions are read-only (``default_transaction_read_only``, passed in the
  libpq connection string) and never create the database; MySQL never creates the
  database (MLMD's MySQL client takes no session options: a SELECT-only user makes the
  server enforce it). On every backend the ``MetadataStore`` object itself refuses
  ``put_*`` calls (:class:`ReadOnlyMetadataStore`).
"""

from __future__ import annotations

import contextlib
import fcntl
import logging
import os
import random
import sqlite3
import stat
import threading
import time
import weakref
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, quote, unquote, urlsplit

import attrs
from ml_metadata.metadata_store import metadata_store
from ml_metadata.proto import metadata_store_pb2 as pb

from lineage import _faults
from lineage.errors import ConnectionFailed, InvalidRef, ReadOnlyStore, translate

DEFAULT_URI = "./.lineage/metadata.sqlite"
ENV_URI = "LINEAGE_URI"

# RuntimeError texts of races MLMD loses while creating a schema; retrying them is safe.
_CREATION_RACES = (
    "subset of tables",
    "duplicate key value",
    "already exists",
    "database is locked",
    "concurrent",
    "deadlock",  # MySQL/MariaDB: two creators' CREATE TABLE/INSERT transactions collided
)


# MLMD's client logs every backend error through absl ("WARNING:absl:mlmd client
# InternalError: ... database is locked") before raising it, including the lost races that
# Store._call retries and wins. While a call is in Store._call its records are dropped:
# a retry that succeeds stays quiet, and a failure that is not retried reaches the caller
# as a StoreError carrying MLMD's message. Direct calls on ``store.mlmd`` still log.
_in_call = threading.local()
_MLMD_CLIENT_LOG = "mlmd client %s: %s"


class _QuietRetries(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        return not (record.msg == _MLMD_CLIENT_LOG and getattr(_in_call, "depth", 0))


logging.getLogger("absl").addFilter(_QuietRetries())


@contextlib.contextmanager
def quiet_mlmd_client() -> Iterator[None]:
    """Within this block, on this thread, MLMD's client does not log the errors it raises
    (the caller handles or reports them)."""
    _in_call.depth = getattr(_in_call, "depth", 0) + 1
    try:
        yield
    finally:
        _in_call.depth -= 1


@attrs.frozen
class Backend:
    """A parsed store URI."""

    kind: str
    """``sqlite``, ``memory``, ``postgresql``, ``mysql`` or ``grpc``."""
    config: pb.ConnectionConfig | pb.MetadataStoreClientConfig = attrs.field(repr=False)
    """What ``ml_metadata.MetadataStore`` is opened with (holds the password: no repr)."""
    display: str
    """The URI with the password replaced by ``***``."""
    password: str | None = attrs.field(default=None, repr=False)
    """The password, to redact from messages (never in the repr)."""
    path: Path | None = None
    """The SQLite file, for SQLite stores."""

    @property
    def folder(self) -> Path | None:
        """The folder of a SQLite store (where caches live), else ``None``."""
        return self.path.parent if self.path is not None else None


def _netloc_parts(uri: str, default_port: int) -> tuple[str, int, str, str]:
    parts = urlsplit(uri)
    try:
        port = parts.port or default_port
    except ValueError as exc:
        raise InvalidRef(f"bad port in store URI: {exc}", ref=_redacted(uri)) from None
    return (
        parts.hostname or "127.0.0.1",
        port,
        unquote(parts.username or ""),
        unquote(parts.password or ""),
    )


def _redacted(uri: str) -> str:
    parts = urlsplit(uri)
    if parts.password is None:
        return uri
    netloc = parts.netloc.replace(f":{parts.password}@", ":***@", 1)
    return parts._replace(netloc=netloc).geturl()


def default_path(start: str | os.PathLike[str] | None = None) -> str:
    """Where ``lineage.connect()`` finds the store of the project, as git and DVC find
    theirs: the nearest ``.lineage/`` folder in this folder or a parent; if there is none,
    ``.lineage/metadata.sqlite`` at the root of the git repository this folder is in; else
    in this folder.

    Example:
        >>> import tempfile, pathlib
        >>> root = pathlib.Path(tempfile.mkdtemp())
        >>> (root / ".lineage").mkdir(); (root / "src" / "deep").mkdir(parents=True)
        >>> default_path(root / "src" / "deep") == str(root / ".lineage" / "metadata.sqlite")
        True
    """
    here = Path(start if start is not None else os.getcwd()).absolute()
    for folder in (here, *here.parents):
        if (folder / ".lineage").is_dir():
            return str(folder / ".lineage" / "metadata.sqlite")
    for folder in (here, *here.parents):
        if (folder / ".git").exists():
            return str(folder / ".lineage" / "metadata.sqlite")
    return str(here / DEFAULT_URI)


def parse_uri(uri: str | os.PathLike[str] | None, *, read_only: bool = False) -> Backend:
    """Parse a store URI (see ``lineage.connect``) into a :class:`Backend`.

    Example:
        >>> parse_uri("postgresql://me:secret@db:5433/meta").display
        'postgresql://me:***@db:5433/meta'
        >>> parse_uri(":memory:").kind
        'memory'
    """
    if uri is None:
        uri = os.environ.get(ENV_URI) or default_path()
    text = os.fspath(uri)
    scheme = text.split("://", 1)[0].lower() if "://" in text else ""
    if text == ":memory:":
        return Backend("memory", pb.ConnectionConfig(fake_database=pb.FakeDatabaseConfig()), text)
    if scheme in ("postgresql", "postgres"):
        host, port, user, password = _netloc_parts(text, 5432)
        dbname = urlsplit(text).path.lstrip("/") or "mlmd"
        pg = pb.PostgreSQLDatabaseConfig(
            host=host, port=str(port), user=user, password=password, dbname=dbname
        )
        query = parse_qs(urlsplit(text).query)
        if "sslmode" in query:
            pg.ssloption.sslmode = query["sslmode"][0]
        return Backend(
            "postgresql", pb.ConnectionConfig(postgresql=pg), _redacted(text), password or None
        )
    if scheme == "mysql":
        host, port, user, password = _netloc_parts(text, 3306)
        database = urlsplit(text).path.lstrip("/") or "mlmd"
        my = pb.MySQLDatabaseConfig(
            host=host, port=port, user=user, password=password, database=database
        )
        query = parse_qs(urlsplit(text).query)
        if "socket" in query:
            my.socket = query["socket"][0]
        return Backend("mysql", pb.ConnectionConfig(mysql=my), _redacted(text), password or None)
    if scheme in ("grpc", "grpcs"):
        host, port, _user, _password = _netloc_parts(text, 8080)
        client = pb.MetadataStoreClientConfig(host=host, port=port)
        if scheme == "grpcs":
            client.ssl_config.SetInParent()
        return Backend("grpc", client, _redacted(text))
    if scheme == "sqlite":
        text = text[len("sqlite://"):]
    elif scheme:
        raise InvalidRef(
            f"unknown store URI scheme {scheme!r}: use a path, sqlite:///path, :memory:, "
            "postgresql://, mysql:// or grpc://",
            ref=_redacted(text),
        )
    path = Path(text).expanduser().absolute()
    mode = (
        pb.SqliteMetadataSourceConfig.READONLY
        if read_only
        else pb.SqliteMetadataSourceConfig.READWRITE_OPENCREATE
    )
    config = pb.ConnectionConfig(
        sqlite=pb.SqliteMetadataSourceConfig(filename_uri=str(path), connection_mode=mode)
    )
    return Backend("sqlite", config, str(path), path=path)


@contextlib.contextmanager
def _file_lock(path: Path) -> Iterator[None]:
    with open(path, "a+b") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


# SQLite's locks are POSIX record locks, which belong to the process: closing *any*
# descriptor of a file drops every lock the process holds on it, those of the MLMD
# connections it has open included (SQLite shares descriptors only among its own
# connections, and MLMD links its own SQLite). A connection that lost its locks no longer
# keeps other processes from deleting the write-ahead log under it, and then reads stale
# or wrong pages: a long-lived reader saw no executions, or "database disk image is
# malformed". So a file this process has open through MLMD is never opened again by
# lineage's checks (it was checked when first opened): only stat() is used on it.
_held: dict[tuple[int, int], weakref.WeakSet[Any]] = {}


def _held_here(st: os.stat_result) -> bool:
    holders = _held.get((st.st_dev, st.st_ino))
    return bool(holders)


def _hold(path: Path, store: Any) -> None:
    with contextlib.suppress(OSError):
        st = os.stat(path)
        _held.setdefault((st.st_dev, st.st_ino), weakref.WeakSet()).add(store)


#: MLMD's table names (schema 10); a SQLite file holding none of them is not an MLMD store.
MLMD_TABLES = frozenset({
    "Artifact", "ArtifactProperty", "Association", "Attribution", "Context",
    "ContextProperty", "Event", "EventPath", "Execution", "ExecutionProperty", "MLMDEnv",
    "ParentContext", "ParentType", "Type", "TypeProperty",
})
_SQLITE_HEADER = b"SQLite format 3\x00"


class ReadOnlyMetadataStore(metadata_store.MetadataStore):  # type: ignore[misc]
    """MLMD's ``MetadataStore`` that refuses every write (``put_*``, whatever the API
    calling it) before it reaches the database, raising :class:`ReadOnlyStore`."""

    lineage_uri = ""

    def _call(self, method_name: str, request: Any, response: Any,
              extra_options: Any = None) -> Any:
        if method_name.startswith("Put"):
            raise ReadOnlyStore(
                f"cannot {method_name}: the store {self.lineage_uri} was opened read-only "
                "(read_only=True); connect without read_only to record",
                uri=self.lineage_uri,
            )
        return super()._call(method_name, request, response, extra_options)


def _folder_writable(folder: Path) -> bool:
    """Whether files can be created in ``folder`` (not a read-only mount, and permitted)."""
    try:
        if os.statvfs(folder).f_flag & os.ST_RDONLY:
            return False
    except OSError:
        return False
    return os.access(folder, os.W_OK | os.X_OK)


def _file_uri(path: Path, **query: str) -> str:
    text = "file:" + quote(str(path), safe="/")
    if query:
        text += "?" + "&".join(f"{k}={v}" for k, v in query.items())
    return text


def _refuse(backend: Backend, why: str) -> ConnectionFailed:
    return ConnectionFailed(f"cannot open {backend.display}: {why}", uri=backend.display)


def _sqlite_target(backend: Backend, *, read_only: bool, create: bool | None) -> str:
    """The ``filename_uri`` to open a SQLite store with, after looking at the file.

    Raises:
        ConnectionFailed: a missing file (read-only, or ``create=False``), a folder, an
            empty or foreign file (unless ``create=True``), a damaged file, a store that
            cannot be read or written where it is.
    """
    path = backend.path
    assert path is not None
    try:
        st = os.stat(path)
    except FileNotFoundError:
        if read_only:
            raise _refuse(backend, "no such file; check the path (a read-only open creates "
                                   "nothing)") from None
        if create is False:
            raise _refuse(backend, "no such file, and create=False; check the path") from None
        if path.parent.is_dir() and not _folder_writable(path.parent):
            raise _refuse(backend, (
                "no such file, and its folder cannot be written (a read-only mount, or "
                "this user may not write there) to create the store; check the path"
            )) from None
        return str(path)
    except OSError as exc:
        raise _refuse(backend, f"{exc.strerror or exc}; check the path") from exc
    if stat.S_ISDIR(st.st_mode):
        raise _refuse(backend, "it is a folder; give the path of the store's file "
                               f"(e.g. {path / 'metadata.sqlite'})")
    if not stat.S_ISREG(st.st_mode):
        raise _refuse(backend, "it is not a regular file")
    folder_ok = _folder_writable(path.parent)
    if not read_only and not (folder_ok and os.access(path, os.R_OK | os.W_OK)):
        raise _refuse(backend, (
            "the store cannot be written there (the file, its folder or the mount is "
            "read-only, or this user may not write it); open it with read_only=True to "
            "read it (`lineage` read commands do)"))
    if st.st_size == 0:
        if read_only or create is not True:
            raise _refuse(backend, (
                "it is an empty file (0 bytes), not an MLMD store (a store cut short by a "
                "full disk or an interrupted copy?); restore it, or delete it (or pass "
                "create=True) to start a new store there"))
        return str(path)
    held = _held_here(st)
    if not held:
        try:
            with open(path, "rb") as handle:
                header = handle.read(len(_SQLITE_HEADER))
        except OSError as exc:
            raise _refuse(backend, f"cannot read it ({exc.strerror or exc})") from exc
        if header != _SQLITE_HEADER:
            raise _refuse(backend, "it is not a SQLite database (no SQLite header); check the path")
    target = str(path)
    if read_only and not folder_ok:
        # A reader cannot create -wal/-shm here. With both present SQLite reads them
        # read-only; with neither, the file is the whole store: open it immutable.
        wal, shm = Path(f"{path}-wal"), Path(f"{path}-shm")
        has_wal = wal.exists() and wal.stat().st_size > 0
        if has_wal and not shm.exists():
            raise _refuse(backend, (
                "its write-ahead log (-wal) holds changes, and without its -shm file they "
                "cannot be read in a folder that cannot be written; copy the store with its "
                "-wal file to a writable folder"))
        target = _file_uri(path, mode="ro") if has_wal else _file_uri(path, immutable="1")
    if held:
        return target
    tables = _sqlite_tables(backend, target)
    if not tables:
        if read_only:
            raise _refuse(backend, "it is an empty SQLite database, not an MLMD store")
        return target
    if not tables & MLMD_TABLES and (read_only or create is not True):
        shown = ", ".join(sorted(tables)[:5]) + (", …" if len(tables) > 5 else "")
        raise _refuse(backend, (
            f"it is another program's SQLite database (tables: {shown}), not an MLMD store; "
            "lineage adds MLMD's tables to it only when asked: connect(path, create=True)"))
    return target


def _python_uri(target: str) -> str:
    """What Python's ``sqlite3`` opens to look at ``target`` without writing anything."""
    if target.startswith("file:"):
        return target if "mode=ro" in target or "immutable=1" in target else target + "?mode=ro"
    return _file_uri(Path(target), mode="ro")


def _python_read(target: str, sql: str) -> list[Any]:
    """The rows of ``sql`` on ``target``, read with Python's ``sqlite3``, writing nothing."""
    db = sqlite3.connect(_python_uri(target), uri=True, timeout=10)
    try:
        return db.execute(sql).fetchall()
    finally:
        db.close()


def _sqlite_tables(backend: Backend, target: str) -> set[str]:
    try:
        rows = _python_read(target, "SELECT name FROM sqlite_master WHERE type = 'table'")
    except sqlite3.DatabaseError as exc:
        cause = _faults.known_cause(str(exc))
        why = cause.message if cause else f"SQLite cannot read it ({exc})"
        raise _refuse(backend, why) from exc
    return {str(r[0]) for r in rows if not str(r[0]).startswith("sqlite_")}


def _sqlite_damage(target: str) -> str | None:
    """SQLite's first complaint about the file (``PRAGMA quick_check``), else ``None``."""
    try:
        rows = _python_read(target, "PRAGMA quick_check(1)")
    except sqlite3.DatabaseError as exc:
        return str(exc)
    return None if not rows or rows[0][0] == "ok" else str(rows[0][0])


def _prepare_sqlite(backend: Backend) -> None:
    """Create a new database file in WAL mode before MLMD sees it: under another name,
    moved into place when ready, so that a crash never leaves a 0-byte file behind.
    A file given with ``create=True`` that is empty is switched to WAL where it is."""
    path = backend.path
    assert path is not None
    path.parent.mkdir(parents=True, exist_ok=True)
    if path.exists():
        if path.stat().st_size == 0:
            db = sqlite3.connect(path)
            try:
                db.execute("PRAGMA journal_mode=WAL")
            finally:
                db.close()
        return
    tmp = path.with_name(f".{path.name}.{os.getpid()}.new")
    try:
        db = sqlite3.connect(tmp)
        try:
            db.execute("PRAGMA journal_mode=WAL")
        finally:
            db.close()
        os.link(tmp, path)  # fails if another process created it meanwhile: keep theirs
    except FileExistsError:
        pass
    finally:
        with contextlib.suppress(OSError):
            os.unlink(tmp)


def _quote_conninfo(value: str) -> str:
    """A libpq connection-string value, quoted (MLMD pastes values in unquoted)."""
    return "'" + value.replace("\\", "\\\\").replace("'", "\\'") + "'"


def _server_config(backend: Backend, *, read_only: bool, create: bool | None,
                   probing: bool = False) -> pb.ConnectionConfig:
    """The connection config to open a server store with (a copy of ``backend.config``)."""
    config = pb.ConnectionConfig()
    config.CopyFrom(backend.config)
    config.retry_options.max_num_retries = 1  # we retry aborted transactions (store._call)
    if backend.kind == "postgresql":
        pg = config.postgresql
        # MLMD joins "key=value" pairs unquoted: quote ours (a password with a space), and
        # ask for a read-only session, which PostgreSQL enforces on every statement.
        host = _quote_conninfo(pg.host)
        if read_only:
            host += " options='-c default_transaction_read_only=on'"
        pg.host = host
        pg.user = _quote_conninfo(pg.user)
        if pg.password:
            pg.password = _quote_conninfo(pg.password)
        pg.skip_db_creation = (read_only or create is False) and not probing
    elif backend.kind == "mysql":
        config.mysql.skip_db_creation = read_only or create is False
    return config


def _endpoint(backend: Backend) -> tuple[str, int | None, str | None]:
    config = backend.config
    if backend.kind == "postgresql" and isinstance(config, pb.ConnectionConfig):
        return config.postgresql.host, int(config.postgresql.port or 5432), None
    if backend.kind == "mysql" and isinstance(config, pb.ConnectionConfig):
        my = config.mysql
        return my.host, int(my.port or 3306), (my.socket or None) if not my.host else None
    if isinstance(config, pb.MetadataStoreClientConfig):
        return config.host, int(config.port), None
    return "", None, None


def why_unreachable(backend: Backend) -> str:
    """Why a server store cannot be reached, as far as a TCP connection tells (see
    :func:`lineage._faults.probe`); for a PostgreSQL server that answers, whether the
    database exists (a read-only MLMD open, which can create nothing, is asked)."""
    host, port, sock = _endpoint(backend)
    found = _faults.probe(host, port, sock)
    if backend.kind != "postgresql" or not found.startswith("the server at"):
        return found
    config = _server_config(backend, read_only=True, create=None, probing=True)
    try:
        metadata_store.MetadataStore(config)
    except Exception as exc:
        cause = _faults.known_cause(str(exc))
        if cause is not None and cause.kind in ("missing", "empty"):
            return cause.message
    return found


def _open_once(backend: Backend, config: Any, read_only: bool) -> metadata_store.MetadataStore:
    store: metadata_store.MetadataStore
    if read_only:
        store = ReadOnlyMetadataStore(config)
        store.lineage_uri = backend.display
    else:
        store = metadata_store.MetadataStore(config)
    return store


def open_mlmd(
    backend: Backend, *, read_only: bool, create: bool | None = None, retries: int = 30
) -> metadata_store.MetadataStore:
    """Open (and if needed create) the MLMD store behind ``backend``.

    Args:
        backend: the parsed URI.
        read_only: open for reading; nothing is created or written (see the module doc).
        create: ``None``: create a missing store, refuse to add MLMD's tables to a file
            that is not an MLMD store; ``True``: add them to an empty or foreign SQLite
            file too; ``False``: never create anything (a missing store is an error).
        retries: attempts for races between processes creating the same new store.

    Raises:
        ConnectionFailed: the store cannot be opened; the message says why in one line.
    """
    config: Any = backend.config
    secrets = [backend.password] if backend.password else []
    if backend.kind in ("postgresql", "mysql"):
        config = _server_config(backend, read_only=read_only, create=create)
    lock_path: Path | None = None
    deadline = None
    if backend.kind == "sqlite":
        assert backend.path is not None
        if not read_only and not backend.path.parent.is_dir() and create is not False:
            try:
                backend.path.parent.mkdir(parents=True, exist_ok=True)
            except OSError as exc:
                raise ConnectionFailed(
                    f"cannot create the folder of the SQLite store {backend.display}: "
                    f"{exc.strerror or exc}; check the path and its permissions",
                    uri=backend.display,
                ) from exc
        if not read_only:
            lock_path = backend.path.with_name(backend.path.name + ".lock")
        # Creating a SQLite schema takes well under a second: a lasting "subset of tables"
        # is a damaged or foreign file, not a race.
        deadline = time.monotonic() + 5
    delay = 0.02
    checked = False
    target = ""
    if backend.kind == "sqlite":  # look before taking the lock (which writes a file)
        target = _sqlite_target(backend, read_only=read_only, create=create)
    for attempt in range(retries):
        try:
            with _file_lock(lock_path) if lock_path else contextlib.nullcontext():
                if backend.kind == "sqlite":
                    config = pb.ConnectionConfig()
                    config.CopyFrom(backend.config)
                    config.retry_options.max_num_retries = 1
                    if attempt or target == str(backend.path):  # it may have changed since
                        target = _sqlite_target(backend, read_only=read_only, create=create)
                    config.sqlite.filename_uri = target
                    if lock_path is not None:
                        # Under the lock too: switching a new file to WAL while another
                        # process creates the schema fails with "database is locked".
                        _prepare_sqlite(backend)
                store = _open_once(backend, config, read_only)
            if backend.kind == "sqlite" and backend.path is not None:
                _hold(backend.path, store)
            if backend.kind == "grpc":
                # The gRPC client connects lazily; probe so a dead server fails here.
                store.get_context_types()
            return store
        except ConnectionFailed:
            raise
        except Exception as exc:
            text = str(exc).lower()
            race = any(t in text for t in _CREATION_RACES)
            if race and backend.kind == "sqlite" and not checked:
                checked = True
                damage = _sqlite_damage(target or str(backend.path))
                if damage is not None:
                    cause = _faults.known_cause(damage)
                    detail = _faults.short_detail(damage.replace("*** in database main ***", ""))
                    raise _refuse(backend, cause.message if cause else (
                        f"the SQLite file is damaged (database disk image is malformed: "
                        f"{detail}); restore it from a backup (`sqlite3 FILE .recover` may "
                        "save what is left)")) from exc
            if race and attempt < retries - 1 and (deadline is None or time.monotonic() < deadline):
                time.sleep(delay * (1 + random.random()))
                delay = min(delay * 2, 1.0)
                continue
            error = translate(exc, uri=backend.display, action="open the store", secrets=secrets)
            if _is_silent(exc, backend):
                error = ConnectionFailed(
                    f"could not open the store {backend.display}: {why_unreachable(backend)}.",
                    uri=backend.display,
                )
            raise error from exc
    raise AssertionError("unreachable")  # pragma: no cover


def _is_silent(exc: BaseException, backend: Backend) -> bool:
    """Whether a server store failed to open without saying why (MLMD's PostgreSQL source
    logs the cause to stderr and raises an empty message or "connection pointer is NULL")."""
    if backend.kind not in ("postgresql", "mysql"):
        return False
    detail = _faults.short_detail(str(exc))
    if _faults.known_cause(detail) is not None:
        return False
    low = detail.lower()
    return (low.endswith("metadata source error") or "connection pointer is null" in low
            or "mysql_real_connect failed" in low or _faults.connection_lost(detail, backend.kind))


#: Environment variable: seconds a store keeps trying to reconnect to its server after the
#: connection was lost (a restart), before it gives up and says why.
RECONNECT_ENV = "LINEAGE_RECONNECT_SECONDS"
_RECONNECT_DEFAULT = 30.0


def reconnect_seconds() -> float:
    """How long to keep trying to reconnect (``$LINEAGE_RECONNECT_SECONDS``, default 30)."""
    try:
        return max(0.0, float(os.environ.get(RECONNECT_ENV, _RECONNECT_DEFAULT)))
    except ValueError:
        return _RECONNECT_DEFAULT


def reconnect(
    backend: Backend, *, read_only: bool, lost: BaseException, action: str
) -> metadata_store.MetadataStore:
    """A new MLMD connection to a server store whose connection was lost, retried with
    back-off for :func:`reconnect_seconds`. It never creates the database.

    Raises:
        ConnectionFailed: the server stayed unreachable; the message gives the lost
            connection's error and what a TCP probe of the server says.
    """
    budget = reconnect_seconds()
    deadline = time.monotonic() + budget
    delay = 0.1
    while True:
        try:
            return open_mlmd(backend, read_only=read_only, create=False, retries=1)
        except ConnectionFailed as exc:
            failed = exc
        if time.monotonic() + delay > deadline:
            break
        time.sleep(delay)
        delay = min(delay * 2, 2.0)
    secrets = [backend.password] if backend.password else []
    from lineage.errors import redact

    was = _faults.short_detail(redact(str(lost), secrets), 160) or "no message"
    why = why_unreachable(backend)
    raise ConnectionFailed(
        f"could not {action} on store {backend.display}: the connection to the server was "
        f"lost ({was}) and reconnecting failed for {budget:g} s: {why}",
        uri=backend.display,
    ) from failed
