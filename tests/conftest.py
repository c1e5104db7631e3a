"""Shared fixtures: stores on SQLite files, in memory, and on a throw-away PostgreSQL.

The PostgreSQL fixture starts its own cluster in a temporary folder on 127.0.0.1 (as the
``postgres`` user when running as root). When the server binaries are missing the
PostgreSQL tests skip, except under ``CI=true``, where they fail: CI must run them.
"""

from __future__ import annotations

import contextlib
import glob
import os
import pwd
import shutil
import socket
import subprocess
import tempfile
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

import lineage

PG_PASSWORD = "pg-s3cret-Pw"
IN_CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _pg_bindir() -> Path | None:
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"))
    if found:
        return Path(found[-1]).parent
    initdb = shutil.which("initdb")
    return Path(initdb).parent if initdb else None


class PostgresServer:
    """A throw-away PostgreSQL cluster on 127.0.0.1 with password authentication."""

    def __init__(self) -> None:
        bindir = _pg_bindir()
        if bindir is None:
            raise RuntimeError("PostgreSQL server binaries not found (Debian: apt-get install postgresql)")
        self.bindir = bindir
        self.root = Path(tempfile.mkdtemp(prefix="lineage-pg-"))
        self.data = self.root / "data"
        self.port = _free_port()
        self.user = "postgres"
        self._as: list[str] = []
        if os.geteuid() == 0:
            pw = pwd.getpwnam("postgres")
            os.chown(self.root, pw.pw_uid, pw.pw_gid)
            self._as = ["runuser", "-u", "postgres", "--"]
        pwfile = self.root / "pw"
        pwfile.write_text(PG_PASSWORD + "\n")
        if self._as:
            pw = pwd.getpwnam("postgres")
            os.chown(pwfile, pw.pw_uid, pw.pw_gid)
        self._run(
            str(bindir / "initdb"), "-D", str(self.data), "-U", self.user, "--pwfile", str(pwfile),
            "--auth-host=scram-sha-256", "--auth-local=trust", "-E", "UTF8", "--no-sync",
        )
        self._run(
            str(bindir / "pg_ctl"), "-D", str(self.data), "-l", str(self.root / "log"), "-w",
            "-o", f"-p {self.port} -k {self.root} -c listen_addresses=127.0.0.1 -c fsync=off "
            "-c max_connections=200",
            "start",
        )

    def _run(self, *cmd: str) -> None:
        subprocess.run([*self._as, *cmd], check=True, capture_output=True, timeout=120)

    def uri(self, dbname: str | None = None) -> str:
        """A URI for a database that does not exist yet (MLMD creates it)."""
        dbname = dbname or f"t_{uuid.uuid4().hex[:12]}"
        return f"postgresql://{self.user}:{PG_PASSWORD}@127.0.0.1:{self.port}/{dbname}"

    def stop(self) -> None:
        with contextlib.suppress(Exception):
            self._run(str(self.bindir / "pg_ctl"), "-D", str(self.data), "-m", "immediate", "stop")
        shutil.rmtree(self.root, ignore_errors=True)


@pytest.fixture(scope="session")
def postgres() -> Iterator[PostgresServer]:
    """A running PostgreSQL server for the whole test session."""
    try:
        server = PostgresServer()
    except Exception as exc:
        if IN_CI:
            pytest.fail(f"CI=true but PostgreSQL could not be started: {exc}")
        pytest.skip(f"PostgreSQL not available: {exc}")
    yield server
    server.stop()


@pytest.fixture
def pg_uri(postgres: PostgresServer) -> str:
    """The URI of a fresh (not yet created) PostgreSQL database."""
    return postgres.uri()


@pytest.fixture
def sqlite_uri(tmp_path: Path) -> str:
    """The path of a fresh SQLite store under a not yet existing folder."""
    return str(tmp_path / "store" / "metadata.sqlite")


@pytest.fixture(params=["sqlite", "memory", pytest.param("postgresql", marks=pytest.mark.postgres)])
def store_uri(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """A fresh store URI of each backend: a SQLite file, ``:memory:`` and PostgreSQL."""
    if request.param == "sqlite":
        return str(tmp_path / "store" / "metadata.sqlite")
    if request.param == "memory":
        return ":memory:"
    server: PostgresServer = request.getfixturevalue("postgres")
    return server.uri()


@pytest.fixture
def store(store_uri: str) -> Iterator[lineage.Store]:
    """A fresh store on each backend."""
    s = lineage.connect(store_uri)
    yield s
    s.close()


@pytest.fixture
def sqlite_store(sqlite_uri: str) -> lineage.Store:
    """A fresh store in a SQLite file."""
    return lineage.connect(sqlite_uri)


@pytest.fixture
def write_file(tmp_path: Path) -> Callable[..., Path]:
    """Write text or bytes to a file under the test's temp folder and return its path."""

    def write(relpath: str, data: str | bytes) -> Path:
        path = tmp_path / "files" / relpath
        path.parent.mkdir(parents=True, exist_ok=True)
        if isinstance(data, bytes):
            path.write_bytes(data)
        else:
            path.write_text(data)
        return path

    return write
