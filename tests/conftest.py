"""Shared fixtures: stores on SQLite files, in memory, and on throw-away PostgreSQL and MariaDB.

The PostgreSQL and MariaDB fixtures start their own server in a temporary folder on
127.0.0.1 (as the ``postgres`` / ``mysql`` user when running as root). When the server
binaries are missing those tests skip, except under ``CI=true``, where they fail: CI must
run them.
"""

from __future__ import annotations

import contextlib
import glob
import os
import pwd
import shutil
import signal
import socket
import subprocess
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TypeVar

import pytest

import lineage

PG_PASSWORD = "pg-s3cret-Pw"
MY_USER = "lineage"
MY_PASSWORD = "my-s3cret-Pw"
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
        self.start()

    def start(self) -> None:
        """Start the server (again) on the same port and data folder."""
        self._run(
            str(self.bindir / "pg_ctl"), "-D", str(self.data), "-l", str(self.root / "log"), "-w",
            "-o", f"-p {self.port} -k {self.root} -c listen_addresses=127.0.0.1 -c fsync=off "
            "-c max_connections=200",
            "start",
        )

    def halt(self) -> None:
        """Stop the server (fast shutdown: open connections are closed), keeping its data."""
        self._run(str(self.bindir / "pg_ctl"), "-D", str(self.data), "-m", "fast", "-w", "stop")

    def restart(self) -> None:
        """Stop and start the server: every open connection is dropped."""
        self.halt()
        self.start()

    def _run(self, *cmd: str) -> None:
        subprocess.run([*self._as, *cmd], check=True, capture_output=True, timeout=120)

    def uri(self, dbname: str | None = None) -> str:
        """A URI for a database that does not exist yet (MLMD creates it)."""
        dbname = dbname or f"t_{uuid.uuid4().hex[:12]}"
        return f"postgresql://{self.user}:{PG_PASSWORD}@127.0.0.1:{self.port}/{dbname}"

    def sql(self, statement: str, dbname: str = "postgres") -> str:
        """Run SQL as the superuser on the server's socket; return psql's unaligned output."""
        done = subprocess.run(
            [*self._as, str(self.bindir / "psql"), "-h", str(self.root), "-p", str(self.port),
             "-U", self.user, "-d", dbname, "-At", "-c", statement],
            check=True, capture_output=True, text=True, timeout=60,
        )
        return done.stdout

    def stop(self) -> None:
        with contextlib.suppress(Exception):
            self._run(str(self.bindir / "pg_ctl"), "-D", str(self.data), "-m", "immediate", "stop")
        shutil.rmtree(self.root, ignore_errors=True)


T = TypeVar("T")


def _start(server_class: Callable[[], T], name: str) -> T:
    """Start a throw-away server; skip the tests that need it when it cannot start,
    except under CI=true, where they must run."""
    try:
        return server_class()
    except Exception as exc:
        if IN_CI:
            pytest.fail(f"CI=true but {name} could not be started: {exc}")
        pytest.skip(f"{name} not available: {exc}")


@pytest.fixture(scope="session")
def postgres() -> Iterator[PostgresServer]:
    """A running PostgreSQL server for the whole test session."""
    server = _start(PostgresServer, "PostgreSQL")
    yield server
    server.stop()


@pytest.fixture
def pg_uri(postgres: PostgresServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    """The URI of a fresh (not yet created) PostgreSQL database."""
    monkeypatch.setenv("LINEAGE_OBJECTS", str(tmp_path / "objects"))  # not ./.lineage/objects
    return postgres.uri()


def _mariadb_binary(*names: str) -> str | None:
    for name in names:
        found = shutil.which(name) or shutil.which(name, path="/usr/sbin:/usr/bin")
        if found:
            return found
    return None


class MariaDBServer:
    """A throw-away MariaDB server on 127.0.0.1 with a password user (MLMD's MySQL client).

    Started with ``--no-defaults`` and Debian's server defaults (utf8mb4, case-insensitive
    ``utf8mb4_general_ci``). ``root`` has no password and is reachable only on the socket.
    """

    def __init__(self) -> None:
        server = _mariadb_binary("mariadbd", "mysqld")
        install = _mariadb_binary("mariadb-install-db", "mysql_install_db")
        self.client = _mariadb_binary("mariadb", "mysql") or ""
        if not (server and install and self.client):
            raise RuntimeError("MariaDB server binaries not found (Debian: apt-get install mariadb-server)")
        self.root = Path(tempfile.mkdtemp(prefix="lineage-mdb-"))
        self.data = self.root / "data"
        self.socket = self.root / "sock"
        self.port = _free_port()
        self._as: list[str] = []
        user = pwd.getpwuid(os.geteuid()).pw_name
        if os.geteuid() == 0:
            pw = pwd.getpwnam("mysql")
            os.chown(self.root, pw.pw_uid, pw.pw_gid)
            self._as = ["runuser", "-u", "mysql", "--"]
            user = "mysql"
        self._log = open(self.root / "server.log", "wb")  # noqa: SIM115 (closed in stop)
        self._proc: subprocess.Popen[bytes] | None = None
        try:
            subprocess.run(
                [*self._as, install, "--no-defaults", f"--user={user}", f"--datadir={self.data}",
                 "--auth-root-authentication-method=normal", "--skip-test-db"],
                check=True, capture_output=True, timeout=180,
            )
            self._proc = subprocess.Popen(
                [*self._as, server, "--no-defaults", f"--datadir={self.data}",
                 f"--port={self.port}", f"--socket={self.socket}", "--bind-address=127.0.0.1",
                 f"--pid-file={self.root / 'pid'}", "--skip-name-resolve",
                 "--character-set-server=utf8mb4", "--collation-server=utf8mb4_general_ci",
                 "--innodb-flush-log-at-trx-commit=0", "--innodb-doublewrite=0",
                 "--max-connections=300"],
                stdout=self._log, stderr=subprocess.STDOUT,
            )
            self._wait_ready()
            self.sql(
                f"CREATE USER '{MY_USER}'@'127.0.0.1' IDENTIFIED BY '{MY_PASSWORD}'; "
                f"GRANT ALL PRIVILEGES ON *.* TO '{MY_USER}'@'127.0.0.1'; FLUSH PRIVILEGES;"
            )
        except Exception:
            self.stop()
            raise

    def _wait_ready(self, timeout: float = 60.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            assert self._proc is not None
            if self._proc.poll() is not None:
                raise RuntimeError(f"mariadbd exited with {self._proc.returncode}: {self._log_tail()}")
            if self.socket.exists():
                probe = subprocess.run(
                    [self.client, "--no-defaults", "-S", str(self.socket), "-u", "root", "-e", "SELECT 1"],
                    capture_output=True, timeout=30,
                )
                if probe.returncode == 0:
                    return
            time.sleep(0.1)
        raise RuntimeError(f"mariadbd did not accept connections in {timeout:.0f} s: {self._log_tail()}")

    def _log_tail(self) -> str:
        text = (self.root / "server.log").read_text(errors="replace")
        return " | ".join(text.strip().splitlines()[-5:])

    def sql(self, statements: str) -> str:
        """Run SQL as root on the socket and return its tab-separated output."""
        done = subprocess.run(
            [self.client, "--no-defaults", "-S", str(self.socket), "-u", "root", "-N", "-B",
             "-e", statements],
            check=True, capture_output=True, text=True, timeout=60,
        )
        return done.stdout

    def uri(self, dbname: str | None = None) -> str:
        """A URI for a database that does not exist yet (MLMD creates it)."""
        dbname = dbname or f"t_{uuid.uuid4().hex[:12]}"
        return f"mysql://{MY_USER}:{MY_PASSWORD}@127.0.0.1:{self.port}/{dbname}"

    def stop(self) -> None:
        if self._proc is not None and self._proc.poll() is None:
            pid_file = self.root / "pid"
            with contextlib.suppress(Exception):
                os.kill(int(pid_file.read_text().strip()), signal.SIGTERM)
            try:
                self._proc.wait(timeout=60)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(Exception):
                    os.kill(int(pid_file.read_text().strip()), signal.SIGKILL)
                self._proc.kill()
                self._proc.wait(timeout=30)
        self._log.close()
        shutil.rmtree(self.root, ignore_errors=True)


@pytest.fixture(scope="session")
def mariadb() -> Iterator[MariaDBServer]:
    """A running MariaDB server for the whole test session."""
    server = _start(MariaDBServer, "MariaDB")
    yield server
    server.stop()


@pytest.fixture
def mysql_uri(mariadb: MariaDBServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    """The URI of a fresh (not yet created) MySQL database on MariaDB."""
    monkeypatch.setenv("LINEAGE_OBJECTS", str(tmp_path / "objects"))  # not ./.lineage/objects
    return mariadb.uri()


@pytest.fixture
def sqlite_uri(tmp_path: Path) -> str:
    """The path of a fresh SQLite store under a not yet existing folder."""
    return str(tmp_path / "store" / "metadata.sqlite")


@pytest.fixture(
    params=[
        "sqlite",
        "memory",
        pytest.param("postgresql", marks=pytest.mark.postgres),
        pytest.param("mysql", marks=pytest.mark.mysql),
    ]
)
def store_uri(
    request: pytest.FixtureRequest, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> str:
    """A fresh store URI of each backend: a SQLite file, ``:memory:``, PostgreSQL and MariaDB."""
    if request.param == "sqlite":
        return str(tmp_path / "store" / "metadata.sqlite")
    if request.param == "memory":
        return ":memory:"
    # server stores keep content in ./.lineage/objects by default: the test's own instead
    monkeypatch.setenv("LINEAGE_OBJECTS", str(tmp_path / "objects"))
    if request.param == "mysql":
        mysql_server: MariaDBServer = request.getfixturevalue("mariadb")
        return mysql_server.uri()
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
