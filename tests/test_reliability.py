"""Faults: a server restart, read-only opens that create nothing, read-only folders and
mounts, damaged and foreign files, schema versions. Every fault ends in one line naming
its cause, and nothing is created or changed that should not be."""

from __future__ import annotations

import contextlib
import gc
import hashlib
import os
import shutil
import sqlite3
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from conftest import IN_CI, MY_PASSWORD, MariaDBServer, PostgresServer, _start
from ml_metadata.metadata_store import metadata_store
from ml_metadata.proto import metadata_store_pb2 as pb
from ml_metadata.proto import metadata_store_service_pb2 as svc

import lineage
from lineage.cli import main

IS_ROOT = os.geteuid() == 0


def _digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _one_line(exc: BaseException) -> str:
    text = str(exc)
    assert "\n" not in text, text
    return text


def _filled_store(path: Path, n: int = 30) -> Path:
    store = lineage.connect(path)
    for i in range(n):
        store.put(lineage.Metrics({"i": i}, name=f"m{i}"))
    store.close()
    del store
    gc.collect()
    db = sqlite3.connect(path)  # fold the WAL into the file: its bytes are the whole store
    db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    db.close()
    return path


# --- PostgreSQL: a restart, a server that stays down ------------------------------------


@pytest.fixture(scope="module")
def own_postgres() -> Iterator[PostgresServer]:
    """A PostgreSQL server of this module's own: these tests stop and restart it."""
    server = _start(PostgresServer, "PostgreSQL")
    yield server
    server.stop()


@pytest.mark.postgres
def test_postgres_restart_reconnects_reads_and_writes_and_a_step_across_it_completes(
    own_postgres: PostgresServer,
) -> None:
    uri = own_postgres.uri()
    store = lineage.connect(uri)
    store.put(lineage.Metrics({"a": 1}, name="before"))

    own_postgres.restart()
    assert [a.name for a in store.artifacts(type="Metrics")] == ["before"]  # a read
    store.put(lineage.Metrics({"a": 2}, name="after"))  # and a write

    @lineage.step(store=store)
    def train(lr: float = 0.1) -> lineage.Metrics:
        own_postgres.restart()  # the server restarts while the step runs
        return lineage.Metrics({"acc": 0.9}, name="eval")

    with lineage.run("across-a-restart", store=store):
        train()
        own_postgres.restart()  # and again before the run ends

    fresh = lineage.connect(uri, read_only=True)
    [execution] = fresh.executions(step="train")
    assert execution.state == "COMPLETE" and execution.params == {"lr": 0.1}
    [run] = fresh.runs()
    assert run.properties["status"] == "COMPLETE"
    assert sorted(a.name for a in fresh.artifacts(type="Metrics")) == ["after", "before", "eval"]


@pytest.mark.postgres
def test_postgres_down_says_why_after_trying_to_reconnect(
    own_postgres: PostgresServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    uri = own_postgres.uri()
    store = lineage.connect(uri)
    store.put(lineage.Metrics({"a": 1}, name="m"))
    monkeypatch.setenv("LINEAGE_RECONNECT_SECONDS", "1")
    own_postgres.halt()
    try:
        with pytest.raises(lineage.ConnectionFailed) as info:
            store.artifacts()
        message = _one_line(info.value)
        assert "connection to the server was lost" in message
        assert "connection refused" in message and "is the server running" in message
        assert own_postgres.uri().split("@")[1].split("/")[0] in message  # host:port
        with pytest.raises(lineage.ConnectionFailed, match="connection refused"):
            lineage.connect(uri)
    finally:
        own_postgres.start()
    assert [a.name for a in store.artifacts()] == ["m"]  # back: the store carries on


@pytest.mark.postgres
def test_postgres_wrong_password_says_the_server_refused_the_login(
    own_postgres: PostgresServer,
) -> None:
    uri = own_postgres.uri().replace("pg-s3cret-Pw", "not-the-password")
    with pytest.raises(lineage.ConnectionFailed) as info:
        lineage.connect(uri)
    message = _one_line(info.value)
    assert "refused" in message and "password" in message
    assert "not-the-password" not in message


# --- read-only opens create nothing -----------------------------------------------------


def _databases(server: PostgresServer) -> set[str]:
    return set(server.sql("SELECT datname FROM pg_database").split())


@pytest.mark.postgres
def test_read_only_postgres_refuses_a_missing_database_and_creates_none(
    postgres: PostgresServer, capsys: pytest.CaptureFixture[str]
) -> None:
    uri = postgres.uri("no_such_store")
    with pytest.raises(lineage.ConnectionFailed) as info:
        lineage.connect(uri, read_only=True)
    assert "no such database" in _one_line(info.value)
    assert main(["--store", uri, "ls"]) == 1
    err = capsys.readouterr().err
    assert "no such database" in err and "(no artifacts)" not in err
    with pytest.raises(lineage.ConnectionFailed, match="no such database"):
        lineage.connect(uri, create=False)
    assert "no_such_store" not in _databases(postgres)


@pytest.mark.postgres
def test_read_only_postgres_refuses_a_database_without_mlmd_tables(
    postgres: PostgresServer,
) -> None:
    postgres.sql("CREATE DATABASE not_a_store")
    with pytest.raises(lineage.ConnectionFailed, match="no MLMD store"):
        lineage.connect(postgres.uri("not_a_store"), read_only=True)
    assert postgres.sql("SELECT count(*) FROM pg_tables WHERE schemaname = 'public'",
                        dbname="not_a_store").strip() == "0"


@pytest.mark.postgres
def test_read_only_postgres_session_is_enforced_by_the_server(pg_uri: str) -> None:
    lineage.connect(pg_uri).put(lineage.Metrics({"a": 1}, name="m"))
    store = lineage.connect(pg_uri, read_only=True)
    type_id = store.mlmd.get_artifact_type("Metrics").id
    with pytest.raises(lineage.ReadOnlyStore):  # the MetadataStore object refuses
        store.mlmd.put_artifacts([pb.Artifact(type_id=type_id, uri="x")])
    # ... and below it, the PostgreSQL session itself refuses any write
    request = svc.PutArtifactsRequest(artifacts=[pb.Artifact(type_id=type_id, uri="x")])
    with pytest.raises(Exception, match="read-only transaction"):
        metadata_store.MetadataStore._call(
            store.mlmd, "PutArtifacts", request, svc.PutArtifactsResponse())
    assert [a.uri for a in lineage.connect(pg_uri).artifacts()] == [""]


@pytest.mark.postgres
def test_postgres_password_with_spaces_and_quotes(postgres: PostgresServer) -> None:
    password = "a b'c\\d"
    postgres.sql("CREATE ROLE spacey LOGIN SUPERUSER PASSWORD 'a b''c\\d'")
    from urllib.parse import quote

    uri = f"postgresql://spacey:{quote(password, safe='')}@127.0.0.1:{postgres.port}/spacey_db"
    lineage.connect(uri).put(lineage.Metrics({"a": 1}, name="m"))
    assert [a.name for a in lineage.connect(uri, read_only=True).artifacts()] == ["m"]


@pytest.mark.mysql
def test_read_only_mysql_refuses_a_missing_database_and_a_reader_needs_select_only(
    mariadb: MariaDBServer,
) -> None:
    with pytest.raises(lineage.ConnectionFailed, match="no such database"):
        lineage.connect(mariadb.uri("no_such_store"), read_only=True)
    assert "no_such_store" not in mariadb.sql("SHOW DATABASES").split()

    uri = mariadb.uri("select_only")
    lineage.connect(uri).put(lineage.Metrics({"a": 1}, name="m"))
    mariadb.sql("CREATE USER 'reader'@'127.0.0.1' IDENTIFIED BY 'rpw'; "
                "GRANT SELECT ON select_only.* TO 'reader'@'127.0.0.1'; FLUSH PRIVILEGES;")
    reader_uri = uri.replace(f"lineage:{MY_PASSWORD}", "reader:rpw")
    reader = lineage.connect(reader_uri, read_only=True)  # no CREATE DATABASE attempted
    assert [a.name for a in reader.artifacts()] == ["m"]
    with pytest.raises(lineage.ReadOnlyStore):
        reader.mlmd.put_artifacts([pb.Artifact(type_id=1, uri="x")])


@pytest.mark.parametrize("backend", [
    "sqlite",
    pytest.param("postgres", marks=pytest.mark.postgres),
    pytest.param("mariadb", marks=pytest.mark.mysql),
])
def test_raw_mlmd_writes_are_refused_on_every_backend_when_read_only(
    backend: str, request: pytest.FixtureRequest, tmp_path: Path
) -> None:
    if backend == "sqlite":
        store_uri = str(tmp_path / "metadata.sqlite")
    else:
        store_uri = request.getfixturevalue(backend).uri()
    lineage.connect(store_uri).put(lineage.Metrics({"a": 1}, name="m"))
    store = lineage.connect(store_uri, read_only=True)
    type_id = store.mlmd.get_artifact_type("Metrics").id
    for write in (lambda: store.mlmd.put_artifacts([pb.Artifact(type_id=type_id, uri="x")]),
                  lambda: store.mlmd.put_contexts([pb.Context(type_id=type_id, name="c")]),
                  lambda: store.mlmd.put_execution_type(pb.ExecutionType(name="T"))):
        with pytest.raises(lineage.ReadOnlyStore, match="read-only"):
            write()
    assert len(lineage.connect(store_uri).artifacts()) == 1


# --- read-only folders and mounts -------------------------------------------------------


@contextlib.contextmanager
def _read_only_mount(source: Path, target: Path) -> Iterator[Path]:
    target.mkdir()
    subprocess.run(["mount", "--bind", str(source), str(target)], check=True)
    try:
        subprocess.run(["mount", "-o", "remount,ro,bind", str(target)], check=True)
        yield target
    finally:
        gc.collect()
        if subprocess.run(["umount", str(target)]).returncode != 0:
            subprocess.run(["umount", "-l", str(target)], check=True)


def test_store_on_a_read_only_mount_opens_for_reading_without_wal_or_shm(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    if not IS_ROOT:
        if IN_CI:
            pytest.fail("CI=true: this test mounts a folder read-only and must run as root")
        pytest.skip("mounting a folder read-only needs root")
    source = tmp_path / "store"
    _filled_store(source / "metadata.sqlite", n=3)
    before = sorted(os.listdir(source))
    with _read_only_mount(source, tmp_path / "ro") as ro:
        path = ro / "metadata.sqlite"
        store = lineage.connect(path, read_only=True)
        assert sorted(a.name for a in store.artifacts()) == ["m0", "m1", "m2"]
        assert main(["--store", str(path), "ls"]) == 0
        assert "m2" in capsys.readouterr().out
        with pytest.raises(lineage.ConnectionFailed) as info:
            lineage.connect(path)
        message = _one_line(info.value)
        assert "read_only=True" in message and "server" not in message
        assert "CREATE TABLE" not in message
        with pytest.raises(lineage.ConnectionFailed, match="folder cannot be written"):
            lineage.connect(ro / "new.sqlite")  # a new store cannot be made there either
        del store
    assert sorted(os.listdir(source)) == before  # no -wal, no -shm, nothing


def _unprivileged(code: str) -> subprocess.CompletedProcess[str]:
    """Run Python ``code`` in a child that folder permissions apply to (as root: without
    the capabilities that let root ignore them)."""
    cmd = [sys.executable, "-c", code]
    if IS_ROOT:
        drop = "-dac_override,-dac_read_search"
        cmd = ["setpriv", f"--inh-caps={drop}", f"--bounding-set={drop}", "--", *cmd]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=120,
                          env={**os.environ, "PYTHONPATH": str(Path(lineage.__file__).parents[1])})


def test_store_in_a_folder_that_cannot_be_written_opens_for_reading(tmp_path: Path) -> None:
    folder = tmp_path / "store"
    _filled_store(folder / "metadata.sqlite", n=2)
    before = sorted(os.listdir(folder))
    folder.chmod(0o555)
    try:
        done = _unprivileged(
            "import lineage\n"
            f"s = lineage.connect({str(folder / 'metadata.sqlite')!r}, read_only=True)\n"
            "print(sorted(a.name for a in s.artifacts()))\n"
            "try:\n"
            f"    lineage.connect({str(folder / 'metadata.sqlite')!r})\n"
            "except lineage.ConnectionFailed as e:\n"
            "    print('refused:', e)\n"
        )
    finally:
        folder.chmod(0o755)
    assert done.returncode == 0, done.stderr
    assert "['m0', 'm1']" in done.stdout
    assert "refused:" in done.stdout and "read_only=True" in done.stdout
    assert sorted(os.listdir(folder)) == before


# --- damaged and foreign files ----------------------------------------------------------


def test_an_empty_file_is_not_silently_a_new_store(tmp_path: Path) -> None:
    path = tmp_path / "metadata.sqlite"
    path.write_bytes(b"")
    for read_only in (True, False):
        with pytest.raises(lineage.ConnectionFailed) as info:
            lineage.connect(path, read_only=read_only)
        assert "empty file (0 bytes)" in _one_line(info.value)
        assert path.stat().st_size == 0
    store = lineage.connect(path, create=True)  # asked for: a new store in it
    store.put(lineage.Metrics({"a": 1}, name="m"))
    assert [a.name for a in lineage.connect(path, read_only=True).artifacts()] == ["m"]


def test_a_new_store_never_leaves_a_zero_byte_file(tmp_path: Path) -> None:
    path = tmp_path / "new" / "metadata.sqlite"
    lineage.connect(path)
    assert path.stat().st_size > 0
    assert sorted(p.name for p in path.parent.iterdir()) == [
        "metadata.sqlite", "metadata.sqlite.lock"]


@pytest.mark.parametrize("read_only", [True, False], ids=["read-only", "read-write"])
def test_a_zeroed_page_fails_at_once_naming_the_damage(tmp_path: Path, read_only: bool) -> None:
    path = _filled_store(tmp_path / "metadata.sqlite")
    with open(path, "r+b") as handle:  # page 2 holds the root of an MLMD table
        handle.seek(4096)
        handle.write(b"\0" * 4096)
    with pytest.raises(lineage.LineageError) as info:
        store = lineage.connect(path, read_only=read_only)
        store.artifacts()
    message = _one_line(info.value)
    assert "damaged" in message and "malformed" in message
    assert "concurren" not in message and "server" not in message
    assert len(message) < 400


def test_damage_found_while_reading_is_one_short_line(tmp_path: Path) -> None:
    path = _filled_store(tmp_path / "metadata.sqlite")
    size = path.stat().st_size
    with open(path, "r+b") as handle:  # zero every page after the schema: the data
        handle.seek(8 * 4096)
        handle.write(b"\0" * (size - 8 * 4096))
    with pytest.raises(lineage.LineageError) as info:
        lineage.connect(path, read_only=True).artifacts()
    message = _one_line(info.value)
    assert "damaged" in message
    assert "SELECT" not in message and "CREATE" not in message and len(message) < 400


def test_a_foreign_sqlite_database_is_never_changed_unless_asked(tmp_path: Path) -> None:
    path = tmp_path / "app.db"
    db = sqlite3.connect(path)
    db.execute("CREATE TABLE users (name TEXT)")
    db.execute("INSERT INTO users VALUES ('ada')")
    db.commit()
    db.close()
    before = _digest(path)
    for read_only in (True, False):
        with pytest.raises(lineage.ConnectionFailed) as info:
            lineage.connect(path, read_only=read_only)
        message = _one_line(info.value)
        assert "another program's SQLite database (tables: users)" in message
    assert _digest(path) == before
    assert sorted(os.listdir(tmp_path)) == ["app.db"]  # not even a lock file

    lineage.connect(path, create=True).put(lineage.Metrics({"a": 1}, name="m"))
    tables = {r[0] for r in sqlite3.connect(path).execute(
        "SELECT name FROM sqlite_master WHERE type='table'")}
    assert {"users", "Artifact", "MLMDEnv"} <= tables


def test_a_file_that_is_not_sqlite_is_named_as_such(tmp_path: Path) -> None:
    path = tmp_path / "data.csv"
    path.write_text("a,b\n1,2\n" * 100)
    before = _digest(path)
    for read_only in (True, False):
        with pytest.raises(lineage.ConnectionFailed) as info:
            lineage.connect(path, read_only=read_only)
        assert "not a SQLite database" in _one_line(info.value)
    assert _digest(path) == before


def test_a_folder_given_as_the_store_says_so(tmp_path: Path) -> None:
    with pytest.raises(lineage.ConnectionFailed, match="it is a folder"):
        lineage.connect(tmp_path)


@pytest.mark.parametrize("version", [7, 11])
def test_schema_version_refusals_say_what_to_do_without_a_server_hint(
    tmp_path: Path, version: int
) -> None:
    path = _filled_store(tmp_path / "metadata.sqlite", n=1)
    if version < 10:
        config = pb.ConnectionConfig(sqlite=pb.SqliteMetadataSourceConfig(filename_uri=str(path)))
        metadata_store.downgrade_schema(config, version)
    else:
        db = sqlite3.connect(path)
        db.execute("UPDATE MLMDEnv SET schema_version = ?", (version,))
        db.commit()
        db.close()
    for read_only in (True, False):
        with pytest.raises(lineage.ConnectionFailed) as info:
            lineage.connect(path, read_only=read_only)
        message = _one_line(info.value)
        assert f"schema is version {version}" in message
        assert ("older" if version < 10 else "newer") in message
        assert "server" not in message


def test_a_damaged_copy_in_a_read_only_place_keeps_the_original_untouched(tmp_path: Path) -> None:
    """The look before opening reads only: a damaged file's bytes stay as they were."""
    path = _filled_store(tmp_path / "metadata.sqlite", n=3)
    broken = tmp_path / "broken.sqlite"
    shutil.copy(path, broken)
    with open(broken, "r+b") as handle:
        handle.seek(4096)
        handle.write(b"\0" * 4096)
    before = _digest(broken)
    with pytest.raises(lineage.ConnectionFailed):
        lineage.connect(broken)
    assert _digest(broken) == before


# --- a full disk --------------------------------------------------------------------------


def test_a_full_disk_is_one_line_and_loses_nothing_recorded(tmp_path: Path) -> None:
    if not IS_ROOT:
        if IN_CI:
            pytest.fail("CI=true: this test mounts a small file system and must run as root")
        pytest.skip("mounting a small file system needs root")
    folder = tmp_path / "small"
    folder.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=2m", "tmpfs", str(folder)], check=True)
    try:
        path = folder / "metadata.sqlite"
        store = lineage.connect(path)
        for i in range(3):
            store.put(lineage.Metrics({"i": i}, name=f"before{i}"))
        filler = folder / "filler"
        with contextlib.suppress(OSError), open(filler, "wb", buffering=0) as handle:
            while True:  # fill what is left
                handle.write(b"\0" * 4096)
        with pytest.raises(lineage.StoreError) as info:
            for i in range(50):
                store.put(lineage.Metrics({"blob": "x" * 4000}, name=f"during{i}"))
        message = _one_line(info.value)
        assert "disk is full" in message and "server" not in message and len(message) < 400
        names = {a.name for a in lineage.connect(path, read_only=True).artifacts()}
        assert {"before0", "before1", "before2"} <= names
        filler.unlink()
        store.put(lineage.Metrics({"i": 9}, name="after"))  # space again: it carries on
        assert "after" in {a.name for a in store.artifacts()}
        del store
    finally:
        gc.collect()
        if subprocess.run(["umount", str(folder)]).returncode != 0:
            subprocess.run(["umount", "-l", str(folder)], check=True)
