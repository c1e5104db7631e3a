"""What went wrong with a store, in one line: the faults MLMD reports at length or not at all.

MLMD's messages name the SQL it was running (470-860 characters of ``CREATE TABLE …``), say
"concurrent connection" for a damaged file, and say nothing for a lost PostgreSQL
connection (``PostgreSQL metadata source error:`` and no cause). This module turns them
into one line naming the cause, for :func:`lineage.errors.translate`:

- :func:`short_detail`: MLMD's text without the SQL it quotes, at most a few hundred
  characters.
- :func:`known_cause`: the cause and what to do, for the faults we know (schema versions,
  damaged or foreign files, read-only places, a full disk, a missing database).
- :func:`connection_lost`: whether an error means the server connection is gone (a
  restart), which :meth:`lineage.Store._call` answers by reconnecting.
- :func:`probe`: why a server cannot be reached, found with a plain TCP connection when the
  database client says nothing.

Nothing here touches a store.
"""

from __future__ import annotations

import contextlib
import re
import socket
from importlib import metadata

__all__ = ["Cause", "connection_lost", "known_cause", "probe", "short_detail"]

#: Longest MLMD detail kept in a message (the rest is cut in the middle).
DETAIL_MAX = 300

# MLMD appends the failing SQL ("… query:  CREATE TABLE …", "… for query SELECT …") and, for
# a partial schema, the list of every table it checked. (Bounded whitespace: linear time.)
_SQL_TAIL = re.compile(
    r"\s(?:for\s)?query:?\s{1,4}(?:SELECT|INSERT|UPDATE|DELETE|CREATE|ALTER|DROP|PRAGMA|BEGIN|"
    r"COMMIT|ROLLBACK|WITH|REPLACE|SET|USE|SHOW)\b",
    re.IGNORECASE,
)

# Texts of a server connection that is gone (PostgreSQL restarted, MySQL dropped us).
_LOST = (
    "server closed the connection",
    "terminating connection",
    "no connection to the server",
    "connection pointer is null",
    "could not receive data from server",
    "could not send data to server",
    "lost connection to mysql server",
    "lost connection to server",
    "server has gone away",
    "can't connect to mysql server",
    "can't connect to server",
    "ssl syscall error",
    "connection reset by peer",
    "broken pipe",
)


class Cause:
    """A known fault: what it is, and whether it is a refusal to write."""

    __slots__ = ("kind", "message")

    def __init__(self, kind: str, message: str) -> None:
        self.kind = kind
        """``schema``, ``damaged``, ``read_only``, ``disk_full``, ``missing`` or ``empty``."""
        self.message = message
        """The cause and what to do, one line."""

    def __repr__(self) -> str:
        return f"Cause({self.kind!r}, {self.message!r})"


def short_detail(text: str, limit: int = DETAIL_MAX) -> str:
    """MLMD's message on one line, without the SQL it quotes, cut to ``limit`` characters.

    Example:
        >>> short_detail("Error when executing query: file is not a database query:  "
        ...              "CREATE TABLE IF NOT EXISTS `Type` (`id` INTEGER)")
        'Error when executing query: file is not a database'
    """
    found = _SQL_TAIL.search(text)
    if found:
        text = text[: found.start()]
    checks = text.find(" checks: ")
    if checks >= 0:
        text = text[:checks]
    text = " ".join(text.split()).rstrip(" .:")
    if len(text) > limit:
        half = (limit - 1) // 2
        text = f"{text[:half]}…{text[-half:]}"
    return text


def _mlmd_version() -> str:
    with contextlib.suppress(metadata.PackageNotFoundError):
        return metadata.version("ml-metadata")
    return "unknown"  # pragma: no cover - ml-metadata is a dependency


_SCHEMA = re.compile(
    r"MLMD database version (?P<db>-?\d+) is (?P<how>older|greater) than library version "
    r"(?P<lib>\d+)"
)


def known_cause(detail: str) -> Cause | None:
    """The cause of a store error we know, with what to do; ``None`` for others.

    Example:
        >>> known_cause("MLMD database version 11 is greater than library version 10.").kind
        'schema'
        >>> known_cause("database disk image is malformed").message.split(";")[0]
        'the SQLite file is damaged (database disk image is malformed)'
    """
    low = detail.lower()
    schema = _SCHEMA.search(detail)
    if schema:
        db, lib, version = schema["db"], schema["lib"], _mlmd_version()
        if schema["how"] == "older":
            return Cause("schema", (
                f"the store's MLMD schema is version {db}, older than the version {lib} that "
                f"ml-metadata {version} reads; read it with the ml-metadata that wrote it, or "
                "upgrade the store (ml_metadata MetadataStore(config, "
                "enable_upgrade_migration=True)) after a backup: older readers cannot read "
                "it after that"))
        return Cause("schema", (
            f"the store's MLMD schema is version {db}, newer than the version {lib} that "
            f"ml-metadata {version} reads; upgrade ml-metadata (pip install -U ml-metadata) "
            "to read it"))
    for text in ("database disk image is malformed", "malformed database schema",
                 "disk i/o error"):
        if text in low:
            return Cause("damaged", (
                f"the SQLite file is damaged ({text}); restore it from a backup "
                "(`sqlite3 FILE .recover` may save what is left)"))
    if "file is not a database" in low:
        return Cause("damaged", (
            "the file is not a SQLite database (file is not a database); check the path"))
    if "database or disk is full" in low or "no space left" in low:
        return Cause("disk_full", "the disk is full (database or disk is full); free space "
                                  "and retry: nothing of the failed write was kept")
    if "attempt to write a readonly database" in low or "unable to open database file" in low:
        return Cause("read_only", (
            "SQLite cannot write there (the file, its folder or the mount is read-only, or "
            "the folder is missing); open it with read_only=True to read it"))
    if "cannot execute create database in a read-only transaction" in low:
        return Cause("missing", "no such database on the server, and a read-only open "
                                "creates nothing; check the database name in the URI")
    if "unknown database" in low:
        return Cause("missing", "no such database on the server (Unknown database), and this "
                                "open creates nothing; check the database name in the URI")
    if "in a read-only transaction" in low and "create table" in low:
        return Cause("empty", "the database holds no MLMD store (it has no MLMD tables), and "
                              "a read-only open creates nothing; check the database name")
    if "in a read-only transaction" in low or "command denied" in low:
        return Cause("read_only", (
            "the database refused the write: the session is read-only (read_only=True) or "
            "the user may only read"))
    return None


def connection_lost(detail: str, kind: str) -> bool:
    """Whether an error from a ``kind`` store means its server connection is gone.

    PostgreSQL's MLMD source reports a dead connection with an empty message.

    Example:
        >>> connection_lost("PostgreSQL metadata source error: ", "postgresql")
        True
        >>> connection_lost("deadlock detected", "postgresql")
        False
    """
    if kind not in ("postgresql", "mysql"):
        return False
    low = detail.lower()
    if any(text in low for text in _LOST):
        return True
    return kind == "postgresql" and low.strip().rstrip(" .:").endswith(
        "postgresql metadata source error"
    )


def probe(host: str, port: int | None, socket_path: str | None = None, timeout: float = 3.0) -> str:
    """Why a database server may be unreachable, from a plain TCP (or Unix socket) connection.

    Returns one clause for a message: nothing listens, no answer, an unknown host, or the
    server answers (then the login or the database name is the likely cause).

    Example:
        >>> import socket
        >>> s = socket.socket(); s.bind(("127.0.0.1", 0)); port = s.getsockname()[1]; s.close()
        >>> probe("127.0.0.1", port)  # doctest: +ELLIPSIS
        'nothing accepts connections at 127.0.0.1:... (connection refused): is the server running?'
    """
    where = socket_path if socket_path else f"{host}:{port}"
    try:
        if socket_path:
            with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
                sock.settimeout(timeout)
                sock.connect(socket_path)
        else:
            with socket.create_connection((host, port or 0), timeout=timeout):
                pass
    except ConnectionRefusedError:
        return f"nothing accepts connections at {where} (connection refused): is the server running?"
    except FileNotFoundError:
        return f"no socket at {where}: is the server running?"
    except socket.gaierror as exc:
        return f"the host {host!r} cannot be resolved ({exc.strerror or exc})"
    except TimeoutError:
        return f"{where} did not answer within {timeout:g} s (a firewall, or the server is stuck)"
    except OSError as exc:
        return f"cannot reach {where} ({exc.strerror or exc})"
    return (f"the server at {where} accepts connections but refused this one: check the "
            "user, the password and the database name")
