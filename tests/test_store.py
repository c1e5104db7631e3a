"""connect() and its URI forms, read-only stores, WAL, concurrent creation, refs, redaction."""

from __future__ import annotations

import hashlib
import multiprocessing
import os
import re
import socket
import sqlite3
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from ml_metadata.metadata_store import metadata_store
from ml_metadata.proto import metadata_store_pb2 as pb

import lineage
from lineage._backends import parse_uri

ROOT = Path(__file__).resolve().parent.parent
SECRET = "hunter2-Zq9"


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])  # closed again when the socket is


# --- URI forms ---------------------------------------------------------------------------


def test_path_creates_missing_folders_and_the_file(tmp_path: Path) -> None:
    path = tmp_path / "a" / "b" / "meta.sqlite"
    store = lineage.connect(path)
    assert path.is_file()
    assert (store.kind, store.uri, store.folder) == ("sqlite", str(path), path.parent)
    store.put(lineage.Metrics({"acc": 1.0}, name="m"))
    assert [a.name for a in lineage.connect(str(path)).artifacts()] == ["m"]


def test_relative_path_is_resolved_against_the_working_folder(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    store = lineage.connect("runs/meta.sqlite")
    assert store.uri == str(tmp_path / "runs" / "meta.sqlite")
    assert (tmp_path / "runs" / "meta.sqlite").is_file()


def test_sqlite_uri_with_absolute_path(tmp_path: Path) -> None:
    path = tmp_path / "x" / "abs.sqlite"
    store = lineage.connect(f"sqlite://{path}")
    assert store.kind == "sqlite" and store.uri == str(path)
    assert path.is_file()


def test_default_store_is_dot_lineage_in_the_working_folder(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("LINEAGE_URI", raising=False)
    monkeypatch.chdir(tmp_path)
    store = lineage.connect()
    assert store.uri == str(tmp_path / ".lineage" / "metadata.sqlite")
    store.put(lineage.Metrics({"acc": 1.0}, name="m"))
    assert (tmp_path / ".lineage" / "metadata.sqlite").is_file()


def test_lineage_uri_environment_variable_wins_over_the_default(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("LINEAGE_URI", str(tmp_path / "env" / "m.sqlite"))
    store = lineage.connect()
    assert store.uri == str(tmp_path / "env" / "m.sqlite")
    assert not (tmp_path / ".lineage").exists()
    monkeypatch.setenv("LINEAGE_URI", ":memory:")
    assert lineage.connect().kind == "memory"


def test_memory_store_is_private_to_each_connection() -> None:
    a, b = lineage.connect(":memory:"), lineage.connect(":memory:")
    a.put(lineage.Metrics({"acc": 1.0}, name="m"))
    assert a.kind == "memory" and repr(a) == "<lineage.Store :memory:>"
    assert len(a.artifacts()) == 1 and b.artifacts() == []


@pytest.mark.postgres
def test_postgresql_store_creates_its_database_and_records(pg_uri: str) -> None:
    store = lineage.connect(pg_uri)
    assert store.kind == "postgresql"
    m = store.put(lineage.Metrics({"acc": 0.5}, name="m"))
    again = lineage.connect(pg_uri)
    assert again.get("m").id == m.id
    assert "pg-s3cret" not in repr(store) and "***" in store.uri


def test_postgresql_uri_builds_the_connection_config() -> None:
    backend = parse_uri("postgresql://me:p%40ss@db.example:5433/meta?sslmode=require")
    cfg = backend.config.postgresql  # type: ignore[union-attr]
    assert (cfg.host, cfg.port, cfg.user, cfg.password, cfg.dbname) == (
        "db.example", "5433", "me", "p@ss", "meta")
    assert cfg.ssloption.sslmode == "require"
    assert backend.display == "postgresql://me:***@db.example:5433/meta?sslmode=require"


def test_mysql_uri_builds_the_connection_config() -> None:
    backend = parse_uri(f"mysql://alice:{SECRET}@10.0.0.5:3307/lineage_db")
    assert backend.kind == "mysql"
    cfg = backend.config.mysql  # type: ignore[union-attr]
    assert (cfg.host, cfg.port, cfg.user, cfg.password, cfg.database) == (
        "10.0.0.5", 3307, "alice", SECRET, "lineage_db")
    assert backend.display == "mysql://alice:***@10.0.0.5:3307/lineage_db"
    assert parse_uri("mysql://u@h/d").config.mysql.port == 3306  # type: ignore[union-attr]
    sock = parse_uri("mysql://u@localhost/d?socket=/run/mysqld.sock")
    assert sock.config.mysql.socket == "/run/mysqld.sock"  # type: ignore[union-attr]


def test_grpc_uri_builds_the_client_config() -> None:
    backend = parse_uri("grpc://metadata.internal:9090")
    assert backend.kind == "grpc"
    assert isinstance(backend.config, pb.MetadataStoreClientConfig)
    assert (backend.config.host, backend.config.port) == ("metadata.internal", 9090)
    assert not backend.config.HasField("ssl_config")
    assert parse_uri("grpc://h").config.port == 8080  # type: ignore[union-attr]
    assert parse_uri("grpcs://h:1").config.HasField("ssl_config")  # type: ignore[union-attr]


@pytest.mark.parametrize(
    "template",
    [
        "mysql://alice:{pw}@127.0.0.1:{port}/db",
        "postgresql://alice:{pw}@127.0.0.1:{port}/db",
        "grpc://127.0.0.1:{port}",
    ],
)
def test_closed_port_fails_with_connection_failed_without_the_password(template: str) -> None:
    uri = template.format(pw=SECRET, port=_closed_port())
    with pytest.raises(lineage.ConnectionFailed) as info:
        lineage.connect(uri)
    assert SECRET not in str(info.value)
    assert SECRET not in repr(info.value)
    assert info.value.uri is not None and SECRET not in info.value.uri
    assert "127.0.0.1" in str(info.value)


@pytest.mark.parametrize("uri", ["ftp://host/x", "s3://bucket/meta.sqlite", "redis://h:1"])
def test_unknown_scheme_is_an_invalid_ref(uri: str) -> None:
    with pytest.raises(lineage.InvalidRef, match="unknown store URI scheme"):
        lineage.connect(uri)


def test_bad_port_is_an_invalid_ref_without_the_password() -> None:
    with pytest.raises(lineage.InvalidRef) as info:
        lineage.connect(f"postgresql://u:{SECRET}@h:notaport/db")
    assert SECRET not in str(info.value) and SECRET not in repr(info.value.ref)


# --- password redaction ------------------------------------------------------------------


def test_password_is_not_in_any_repr() -> None:
    for uri in (f"postgresql://u:{SECRET}@h:5432/d", f"mysql://u:{SECRET}@h:3306/d"):
        backend = parse_uri(uri)
        assert SECRET not in repr(backend)
        assert SECRET not in backend.display
        assert backend.password == SECRET


@pytest.mark.postgres
def test_wrong_postgres_password_is_redacted_from_the_error(pg_uri: str) -> None:
    wrong = pg_uri.replace("pg-s3cret-Pw", SECRET)
    assert wrong != pg_uri
    with pytest.raises(lineage.ConnectionFailed) as info:
        lineage.connect(wrong)
    text = f"{info.value} {info.value!r} {info.value.uri}"
    assert SECRET not in text
    assert "***" in text


@pytest.mark.postgres
def test_store_errors_after_connecting_do_not_leak_the_password(pg_uri: str) -> None:
    store = lineage.connect(pg_uri)
    password = pg_uri.split(":")[2].split("@")[0]
    with pytest.raises(lineage.StoreError) as info:
        # MLMD's message quotes the name it did not find: here, the password
        store._call("get_artifact_type", password)
    assert password in str(info.value.__cause__)
    assert password not in str(info.value)
    assert "***" in str(info.value)


# --- SQLite: WAL, read-only --------------------------------------------------------------


def _journal_mode(path: Path) -> str:
    db = sqlite3.connect(path)
    try:
        return str(db.execute("PRAGMA journal_mode").fetchone()[0])
    finally:
        db.close()


def test_new_sqlite_store_is_in_wal_mode(sqlite_uri: str) -> None:
    lineage.connect(sqlite_uri).put(lineage.Metrics({"a": 1}, name="m"))
    assert _journal_mode(Path(sqlite_uri)) == "wal"


def test_existing_sqlite_store_keeps_its_journal_mode(tmp_path: Path) -> None:
    path = tmp_path / "old.sqlite"
    cfg = pb.ConnectionConfig(sqlite=pb.SqliteMetadataSourceConfig(filename_uri=str(path)))
    raw = metadata_store.MetadataStore(cfg)  # a store made by plain MLMD: rollback journal
    del raw
    assert _journal_mode(path) == "delete"
    store = lineage.connect(path)
    store.put(lineage.Metrics({"a": 1}, name="m"))
    assert _journal_mode(path) == "delete"


def _digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _filled_sqlite(path: Path, write_file: Callable[..., Path]) -> None:
    store = lineage.connect(path)
    store.put(lineage.Dataset(write_file("d.csv", "a\n1\n"), name="d"))
    store.put(lineage.Metrics({"acc": 0.5}, name="m"))
    store.close()
    del store
    db = sqlite3.connect(path)  # fold the WAL into the main file, so its bytes say it all
    db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    db.close()


def test_read_only_sqlite_is_opened_readonly_and_refuses_every_write(
    tmp_path: Path, write_file: Callable[..., Path]
) -> None:
    path = tmp_path / "ro" / "meta.sqlite"
    _filled_sqlite(path, write_file)
    before = _digest(path)

    store = lineage.connect(path, read_only=True)
    assert store.read_only and "read-only" in repr(store)
    sqlite_cfg = store._backend.config.sqlite  # type: ignore[union-attr]
    assert sqlite_cfg.connection_mode == pb.SqliteMetadataSourceConfig.READONLY

    # reads work
    assert [a.name for a in store.artifacts()] == ["d", "m"]
    assert store.get("m@1").values == {"acc": 0.5}
    assert store.executions() == [] and store.runs() == []

    # the public write method refuses, before touching anything
    new = write_file("e.csv", "b\n2\n")
    for artifact in (lineage.Dataset(new, name="e"), lineage.Dataset(new, name="d"),
                     lineage.Metrics({"x": 1}, name="m2")):
        with pytest.raises(lineage.ReadOnlyStore, match="read_only=True"):
            store.put(artifact)

    # every MLMD write (they are all put_*) is refused at the boundary
    writes = sorted(m for m in dir(metadata_store.MetadataStore) if m.startswith("put_"))
    assert "put_execution" in writes and "put_artifact_type" in writes
    for method in writes:
        with pytest.raises(lineage.ReadOnlyStore):
            store._call(method, [])

    # and the MLMD connection itself is read-only: a raw write fails in SQLite
    with pytest.raises(Exception, match=r"(?i)readonly|read-only|read only"):
        store.mlmd.put_artifacts([pb.Artifact(type_id=1, uri="x")])

    store.close()
    del store
    assert _digest(path) == before
    assert [a.name for a in lineage.connect(path).artifacts()] == ["d", "m"]


def test_read_only_refuses_run_and_step_writes(tmp_path: Path) -> None:
    path = tmp_path / "meta.sqlite"
    lineage.connect(path).put(lineage.Metrics({"a": 1}, name="m"))
    store = lineage.connect(path, read_only=True)

    with pytest.raises(lineage.ReadOnlyStore), lineage.run("r", store=store):
        pass

    @lineage.step(store=store)
    def produce(x: int = 1) -> lineage.Metrics:
        return lineage.Metrics({"x": x}, name="out")

    with pytest.raises(lineage.ReadOnlyStore):
        produce()
    assert store.runs() == [] and store.executions() == []
    assert [a.name for a in store.artifacts()] == ["m"]


@pytest.mark.postgres
def test_read_only_postgres_refuses_writes(pg_uri: str) -> None:
    lineage.connect(pg_uri).put(lineage.Metrics({"a": 1}, name="m"))
    store = lineage.connect(pg_uri, read_only=True)
    with pytest.raises(lineage.ReadOnlyStore):
        store.put(lineage.Metrics({"a": 2}, name="m"))
    assert [a.version for a in lineage.connect(pg_uri).artifacts()] == [1]


def test_read_only_on_a_missing_file_fails_and_creates_nothing(tmp_path: Path) -> None:
    path = tmp_path / "nope" / "meta.sqlite"
    with pytest.raises(lineage.ConnectionFailed, match="no such file"):
        lineage.connect(path, read_only=True)
    assert not path.parent.exists()


# --- concurrent creation of a new store ------------------------------------------------

WORKERS = 4
PUTS = 5


def _worker(uri: str, index: int, barrier: Any, queue: Any) -> None:
    try:
        barrier.wait(timeout=120)
        store = lineage.connect(uri)
        for i in range(PUTS):
            store.put(lineage.Metrics({"i": i, "w": index}, name=f"w{index}-{i}"))
        queue.put((index, "ok"))
    except BaseException as exc:
        queue.put((index, f"{type(exc).__name__}: {exc}"))


def _open_new_store_at_once(uri: str) -> None:
    # forkserver children are forked from a server that has lineage imported already, so
    # they pass the barrier within a fraction of a millisecond of each other: raw MLMD
    # loses this race in roughly one round of ten here (with spawn, almost never).
    ctx = multiprocessing.get_context("forkserver")
    ctx.set_forkserver_preload(["lineage"])
    barrier = ctx.Barrier(WORKERS)
    queue = ctx.Queue()
    procs = [ctx.Process(target=_worker, args=(uri, i, barrier, queue)) for i in range(WORKERS)]
    for p in procs:
        p.start()
    results = dict(queue.get(timeout=300) for _ in procs)
    for p in procs:
        p.join(timeout=60)
    assert results == {i: "ok" for i in range(WORKERS)}
    names = sorted(a.name for a in lineage.connect(uri).artifacts())
    assert names == sorted(f"w{w}-{i}" for w in range(WORKERS) for i in range(PUTS))


@pytest.mark.slow
@pytest.mark.parametrize("round_", range(5))
def test_processes_creating_a_new_sqlite_store_at_once_all_succeed(
    tmp_path: Path, round_: int
) -> None:
    _open_new_store_at_once(str(tmp_path / f"new{round_}" / "meta.sqlite"))


@pytest.mark.slow
@pytest.mark.postgres
@pytest.mark.parametrize("round_", range(3))
def test_processes_creating_a_new_postgres_database_at_once_all_succeed(
    pg_uri: str, round_: int
) -> None:
    _open_new_store_at_once(pg_uri)


@pytest.mark.mysql
@pytest.mark.parametrize("round_", range(3))
def test_processes_creating_a_new_mysql_database_at_once_all_succeed(
    mysql_uri: str, round_: int
) -> None:
    # MariaDB answers colliding schema creations with "Deadlock found": retried too.
    _open_new_store_at_once(mysql_uri)


# --- references ----------------------------------------------------------------------------


def test_every_ref_form_names_the_same_artifact(
    store: lineage.Store, write_file: Callable[..., Path]
) -> None:
    f = write_file("iris.csv", "a\n1\n")
    v1 = store.put(lineage.Dataset(f, name="iris"))
    f.write_text("a\n2\n")
    v2 = store.put(lineage.Dataset(f, name="iris"))
    assert v1.id is not None and v2.id is not None
    assert store.get("iris").id == v2.id  # latest
    assert store.get("iris@1").id == v1.id
    assert store.get("iris@2").id == v2.id
    assert store.get(v1.id).id == v1.id
    assert store.get(f"artifact:{v1.id}").id == v1.id
    assert store.get(v1).id == v1.id
    assert store.get("iris", type="Dataset").id == v2.id
    assert store.get("iris", type=lineage.Dataset).id == v2.id
    unsaved = lineage.Dataset(f, name="iris")
    assert store.get(unsaved).id == v2.id  # an unrecorded artifact names its latest version


def test_not_found_messages_name_the_ref_and_what_to_do(store: lineage.Store) -> None:
    store.put(lineage.Metrics({"a": 1}, name="m"))
    for ref in ("nothing", "m@7", 99999, "artifact:99999"):
        with pytest.raises(lineage.NotFound) as info:
            store.get(ref)
        assert info.value.ref is not None
        assert str(ref).split(":")[-1] in str(info.value)
    with pytest.raises(lineage.NotFound, match="lineage ls"):
        store.get("nothing")
    with pytest.raises(lineage.NotFound, match="of type Model"):
        store.get("m", type="Model")


def test_same_name_in_two_types_is_ambiguous(store: lineage.Store) -> None:
    d = store.put(lineage.Dataset(content=b"x", name="shared"))
    m = store.put(lineage.Model(content=b"y", name="shared"))
    with pytest.raises(lineage.AmbiguousRef) as info:
        store.get("shared")
    message = str(info.value)
    assert f"artifact:{d.id}" in message and f"artifact:{m.id}" in message
    assert "Dataset" in message and "Model" in message and "type=" in message
    assert store.get("shared", type="Model").id == m.id


@pytest.mark.parametrize("ref", ["artifact:abc", "", 3.5, True, None, ["x"]])
def test_malformed_refs_are_invalid(ref: Any) -> None:
    store = lineage.connect(":memory:")
    with pytest.raises(lineage.InvalidRef):
        store.get(ref)


def test_artifacts_filters_by_type_and_name_oldest_first(store: lineage.Store) -> None:
    a = store.put(lineage.Metrics({"a": 1}, name="m"))
    b = store.put(lineage.Metrics({"a": 2}, name="m"))
    c = store.put(lineage.Dataset(content=b"d", name="d"))
    assert [x.id for x in store.artifacts()] == [a.id, b.id, c.id]
    assert [x.id for x in store.artifacts(type="Metrics")] == [a.id, b.id]
    assert [x.id for x in store.artifacts(type=lineage.Dataset)] == [c.id]
    assert [x.id for x in store.artifacts(name="m")] == [a.id, b.id]
    assert store.artifacts(type="NoSuchType") == []


def test_batched_reads_return_only_existing_ids(store: lineage.Store) -> None:
    ids = [store.put(lineage.Metrics({"i": i}, name=f"m{i}")).id for i in range(3)]
    got = store.artifacts_by_id([*ids, 424242])
    assert sorted(got) == sorted(ids)
    assert got[ids[1]].name == "m1"


# --- rules of the codebase ---------------------------------------------------------------


def test_library_never_uses_filter_query_or_lineage_subgraph() -> None:
    offenders = []
    for path in sorted((ROOT / "lineage").rglob("*.py")):
        if "_proto" in path.parts:
            continue
        for n, line in enumerate(path.read_text().splitlines(), 1):
            code = line.split("#", 1)[0]
            if "filter_query" in code or "get_lineage_subgraph" in code:
                offenders.append(f"{path.relative_to(ROOT)}:{n}: {line.strip()}")
    assert not offenders, "banned MLMD calls (see MLMD-FACTS.md):\n" + "\n".join(offenders)


def test_library_calls_mlmd_only_through_the_boundary() -> None:
    offenders = []
    for path in sorted((ROOT / "lineage").rglob("*.py")):
        if "_proto" in path.parts:
            continue
        for n, line in enumerate(path.read_text().splitlines(), 1):
            if re.search(r"\.mlmd\.[a-z_]+\(", line.split("#", 1)[0]) and ">>>" not in line:
                offenders.append(f"{path.relative_to(ROOT)}:{n}: {line.strip()}")
    assert not offenders, "call MLMD through store._call:\n" + "\n".join(offenders)


def test_store_is_a_context_manager(tmp_path: Path) -> None:
    with lineage.connect(tmp_path / "m.sqlite") as store:
        store.put(lineage.Dataset(content=b"x", name="x"))
    assert os.path.exists(tmp_path / "m.sqlite")


def test_uncreatable_sqlite_folder_is_a_connection_failure(tmp_path: Path) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    with pytest.raises(lineage.ConnectionFailed, match="cannot create the folder"):
        lineage.connect(blocker / "meta.sqlite")


def test_reading_runs_leaves_the_context_protos_as_they_were(sqlite_store: lineage.Store) -> None:
    # Indexing a protobuf map (`props["x"]`) inserts an empty entry; reading must not.
    store = sqlite_store
    with lineage.run("r", store=store):
        pass
    ctx = store.mlmd.get_contexts_by_type("Run")[0]
    del ctx.properties["experiment"]
    before = ctx.SerializeToString()
    [run] = store._runs_from_protos([ctx])
    assert ctx.SerializeToString() == before and run.run_name == "r"
