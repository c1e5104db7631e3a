"""Store URIs → ml_metadata connection configs, and opening a store safely.

Opening is where MLMD is fragile: several processes creating the same new store at once
fail (SQLite: "There are a subset of tables in MLMD instance"; PostgreSQL: "duplicate key
value violates unique constraint"). We serialise SQLite creation with a lock file next to
the database and retry both, and we switch new SQLite files to WAL before MLMD opens them.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import random
import sqlite3
import time
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import parse_qs, unquote, urlsplit

import attrs
from ml_metadata.metadata_store import metadata_store
from ml_metadata.proto import metadata_store_pb2 as pb

from lineage.errors import ConnectionFailed, InvalidRef, translate

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


def _prepare_sqlite(backend: Backend) -> None:
    """Create the folder and switch a new database file to WAL before MLMD sees it."""
    assert backend.path is not None
    backend.path.parent.mkdir(parents=True, exist_ok=True)
    if backend.path.exists() and backend.path.stat().st_size > 0:
        return
    db = sqlite3.connect(backend.path)
    try:
        db.execute("PRAGMA journal_mode=WAL")
    finally:
        db.close()


def open_mlmd(backend: Backend, *, read_only: bool, retries: int = 30) -> metadata_store.MetadataStore:
    """Open (and if needed create) the MLMD store behind ``backend``.

    Raises:
        ConnectionFailed: the store cannot be opened; the message says why.
    """
    config = backend.config
    if isinstance(config, pb.ConnectionConfig) and backend.kind != "memory":
        # We retry aborted transactions ourselves, with short back-off (store._call).
        config = pb.ConnectionConfig()
        config.CopyFrom(backend.config)
        config.retry_options.max_num_retries = 1
    if backend.kind == "sqlite" and read_only:
        assert backend.path is not None
        if not backend.path.exists():
            raise ConnectionFailed(
                f"cannot open {backend.display} read-only: no such file; check the path",
                uri=backend.display,
            )
    lock_path: Path | None = None
    if backend.kind == "sqlite" and not read_only:
        assert backend.path is not None
        try:
            backend.path.parent.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise ConnectionFailed(
                f"cannot create the folder of the SQLite store {backend.display}: "
                f"{exc.strerror or exc}; check the path and its permissions",
                uri=backend.display,
            ) from exc
        lock_path = backend.path.with_name(backend.path.name + ".lock")
    secrets = [backend.password] if backend.password else []
    delay = 0.02
    for attempt in range(retries):
        try:
            with _file_lock(lock_path) if lock_path else contextlib.nullcontext():
                if lock_path is not None:
                    # Under the lock too: switching a new file to WAL while another
                    # process creates the schema fails with "database is locked".
                    _prepare_sqlite(backend)
                store = metadata_store.MetadataStore(config)
            if backend.kind == "grpc":
                # The gRPC client connects lazily; probe so a dead server fails here.
                store.get_context_types()
            return store
        except Exception as exc:
            race = any(text in str(exc).lower() for text in _CREATION_RACES)
            if race and attempt < retries - 1:
                time.sleep(delay * (1 + random.random()))
                delay = min(delay * 2, 1.0)
                continue
            raise translate(exc, uri=backend.display, action="open the store", secrets=secrets) from exc
    raise AssertionError("unreachable")  # pragma: no cover
