"""8 processes x 300 steps, starting together on a store that does not exist yet: nothing lost.

Raw MLMD loses steps here: the schema-creation race, SQLite's aborted transactions, and on
PostgreSQL ``deadlock detected`` / ``current transaction is aborted`` when two workers
attribute the same shared input to their run contexts. Every worker records into its own
run (all asking for the same run name) with the same shared input, created by whichever
worker gets there first.
"""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from ml_metadata.proto import metadata_store_pb2 as pb

import lineage

ROOT = Path(__file__).resolve().parents[1]
WORKERS = 8
STEPS = 300

_WORKER = textwrap.dedent(
    """
    import sys, time
    from pathlib import Path
    sys.path.insert(0, {root!r})
    import lineage

    uri, worker, steps, shared, out, barrier = (
        sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), sys.argv[4], Path(sys.argv[5]),
        Path(sys.argv[6]),
    )
    (barrier / f"ready-{{worker}}").touch()
    deadline = time.time() + 120
    while len(list(barrier.glob("ready-*"))) < {workers} and time.time() < deadline:
        time.sleep(0.001)

    @lineage.step(kind="train")
    def work(data: lineage.Dataset, worker: int, i: int) -> lineage.Model:
        path = out / f"w{{worker}}-{{i}}.bin"
        path.write_text(f"{{worker}}:{{i}}")
        return lineage.Model(path, name=f"model-w{{worker}}")

    store = lineage.connect(uri)  # the store does not exist yet: all workers create it
    with lineage.run("shared", experiment="concurrency", store=store):
        for i in range(steps):
            work(lineage.Dataset(shared, name="shared"), worker, i)
    print("done", worker)
    """
)


def _run_workers(uri: str, tmp_path: Path) -> None:
    shared = tmp_path / "shared.csv"
    shared.write_text("a,b\n1,2\n")
    out = tmp_path / "out"
    out.mkdir()
    barrier = tmp_path / "barrier"
    barrier.mkdir()
    script = _WORKER.format(root=str(ROOT), workers=WORKERS)
    _run_all(script, [uri, "{w}", str(STEPS), str(shared), str(out), str(barrier)])


def _run_all(script: str, argv: list[str]) -> list[str]:
    """Run ``script`` in WORKERS processes at once (``{w}`` in ``argv``: the worker's
    number); each must exit 0 after printing ``done <w>``. Their stderr, in order."""
    procs = [subprocess.Popen([sys.executable, "-c", script,
                               *(a.replace("{w}", str(w)) for a in argv)],
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
             for w in range(WORKERS)]
    failures, errors = [], []
    for w, proc in enumerate(procs):
        stdout, stderr = proc.communicate(timeout=900)
        errors.append(stderr)
        if proc.returncode != 0 or f"done {w}" not in stdout:
            failures.append(f"worker {w} exited {proc.returncode}:\n{stderr[-3000:]}")
    assert not failures, "\n".join(failures)
    return errors


def _check_nothing_lost(store: lineage.Store) -> None:
    execs = store.executions(step="work")
    assert len(execs) == WORKERS * STEPS
    assert {e.state for e in execs} == {"COMPLETE"}
    assert sorted((e.params["worker"], e.params["i"]) for e in execs) == [
        (w, i) for w in range(WORKERS) for i in range(STEPS)
    ]
    [shared] = store.artifacts(name="shared")
    assert all(e.inputs == [shared.id] for e in execs)
    assert all(len(e.outputs) == 1 for e in execs)
    for w in range(WORKERS):
        versions = [m.version for m in store.artifacts(type="Model", name=f"model-w{w}")]
        assert sorted(versions) == list(range(1, STEPS + 1))
    runs = store.runs(experiment="concurrency")
    assert sorted(r.name for r in runs) == sorted(
        ["shared"] + [f"shared-{n}" for n in range(2, WORKERS + 1)])
    assert {r.run_name for r in runs} == {"shared"}
    for r in runs:
        in_run = store.executions(run=r.id)
        assert len(in_run) == STEPS
        assert len({e.params["worker"] for e in in_run}) == 1
        assert r.properties["status"] == "COMPLETE"
        attributed = {a.id for a in store.mlmd.get_artifacts_by_context(r.id)}
        assert shared.id in attributed and len(attributed) == STEPS + 1
    _check_one_type_per_name(store)


def _check_one_type_per_name(store: lineage.Store) -> None:
    for kind in ("artifact", "execution", "context"):
        names = [t.name for t in getattr(store.mlmd, f"get_{kind}_types")()]
        assert sorted(names) == sorted(set(names)), f"duplicate {kind} types: {names}"


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres),
                        pytest.param("mysql", marks=pytest.mark.mysql)])
def writer_uri(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """A store that does not exist yet, on SQLite, PostgreSQL and MariaDB."""
    if request.param == "sqlite":
        return str(tmp_path / "store" / "metadata.sqlite")
    fixture = "pg_uri" if request.param == "postgresql" else "mysql_uri"
    return str(request.getfixturevalue(fixture))


@pytest.mark.slow
def test_eight_processes_on_a_new_store_lose_nothing(writer_uri: str, tmp_path: Path) -> None:
    _run_workers(writer_uri, tmp_path)
    _check_nothing_lost(lineage.connect(writer_uri))


# --- a new type, created by 8 processes at once, 10 times -----------------------------

RACES = 10

_RACER = textwrap.dedent(
    """
    import sys, time
    from pathlib import Path
    sys.path.insert(0, {root!r})
    import lineage

    uri, worker, barrier = sys.argv[1], int(sys.argv[2]), Path(sys.argv[3])
    store = lineage.connect(uri)
    for trial in range({races}):
        (barrier / f"{{trial}}-ready-{{worker}}").touch()
        deadline = time.time() + 120
        while len(list(barrier.glob(f"{{trial}}-ready-*"))) < {workers} and time.time() < deadline:
            time.sleep(0.0005)

        Weights = type("Weights", (lineage.Artifact,), {{}}, type_name=f"Weights{{trial}}")

        def body(worker: int) -> lineage.Artifact:
            return Weights(content=str(worker).encode(), name=f"w{{trial}}-{{worker}}")

        step = lineage.step(name=f"race{{trial}}", kind="train")(body)
        with lineage.run(f"race{{trial}}-{{worker}}", store=store):
            step(worker)
    print("done", worker)
    """
)


@pytest.mark.slow
def test_eight_processes_creating_a_new_step_type_make_one_type(
    writer_uri: str, tmp_path: Path
) -> None:
    """The race that made two ``race<n>`` execution types on PostgreSQL: every trial ends
    with one type per name, and every query by name sees all eight executions."""
    lineage.connect(writer_uri).close()  # the store exists; the race is on the types
    barrier = tmp_path / "barrier"
    barrier.mkdir()
    script = _RACER.format(root=str(ROOT), workers=WORKERS, races=RACES)
    for stderr in _run_all(script, [writer_uri, "{w}", str(barrier)]):
        # a lost race that was retried and won logs nothing
        assert "mlmd client" not in stderr, stderr[-3000:]
    store = lineage.connect(writer_uri)
    _check_one_type_per_name(store)
    for trial in range(RACES):
        execs = store.executions(step=f"race{trial}")
        assert sorted(e.params["worker"] for e in execs) == list(range(WORKERS))
        assert {e.state for e in execs} == {"COMPLETE"}
        made = store.artifacts(type=f"Weights{trial}")
        assert sorted(a.name for a in made) == sorted(f"w{trial}-{w}" for w in range(WORKERS))
        # (MLMD's get_execution_types(), and get_execution_type() on MySQL, leave external
        # ids out; the type read by id has it)
        [etype] = store.mlmd.get_execution_types_by_id([store.mlmd.get_execution_type(f"race{trial}").id])
        assert etype.external_id == f"lineage:execution:race{trial}"


# --- stores that already hold duplicate types -------------------------------------------


def _duplicate_type(uri: str, name: str, kind: int, request: pytest.FixtureRequest) -> int:
    """Add a second type named ``name`` (with the first one's properties) straight in SQL,
    as concurrent writers did before types carried an external id; return its id."""
    copy = ("INSERT INTO {t}(type_id, name, data_type) SELECT {new}, name, data_type "
            "FROM {t} WHERE type_id = {old}")
    if uri.startswith("postgresql://"):
        server = request.getfixturevalue("postgres")
        db = uri.rsplit("/", 1)[1]
        old = int(server.sql(f"SELECT MIN(id) FROM Type WHERE name = '{name}' "
                             f"AND type_kind = {kind}", db))
        new = int(server.sql(f"INSERT INTO Type(name, type_kind) VALUES ('{name}', {kind}) "
                             "RETURNING id", db).split()[0])
        server.sql(copy.format(t="TypeProperty", new=new, old=old), db)
        return new
    if uri.startswith("mysql://"):
        server = request.getfixturevalue("mariadb")
        db = uri.rsplit("/", 1)[1]
        old = int(server.sql(f"USE {db}; SELECT MIN(id) FROM Type WHERE name = '{name}' "
                             f"AND type_kind = {kind}"))
        server.sql(f"USE {db}; INSERT INTO Type(name, type_kind) VALUES ('{name}', {kind})")
        new = int(server.sql(f"USE {db}; SELECT MAX(id) FROM Type"))
        server.sql(f"USE {db}; " + copy.format(t="TypeProperty", new=new, old=old))
        return new
    # In another process: SQLite's POSIX locks are per process, and a write made here
    # through Python's own SQLite library would drop the locks of the MLMD connections
    # this process holds on the file (the long-lived reader of the test below).
    script = textwrap.dedent("""
        import sqlite3, sys
        uri, name, kind, copy = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4]
        db = sqlite3.connect(uri)
        with db:
            old = db.execute("SELECT MIN(id) FROM Type WHERE name = ? AND type_kind = ?",
                             (name, kind)).fetchone()[0]
            new = db.execute("INSERT INTO Type(name, type_kind) VALUES (?, ?)",
                             (name, kind)).lastrowid
            db.execute(copy.format(t="TypeProperty", new=new, old=old))
        db.close()
        print(new)
    """)
    done = subprocess.run([sys.executable, "-c", script, uri, name, str(kind), copy],
                          capture_output=True, text=True, check=True, timeout=120)
    new = int(done.stdout)
    assert new is not None
    return int(new)


def test_queries_by_type_name_see_every_duplicate_type(
    writer_uri: str, tmp_path: Path, request: pytest.FixtureRequest,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A store written while duplicates could still happen: the records of the second
    ``work`` step type and the second ``Data`` artifact type are all found."""

    class Data(lineage.Artifact):
        type_name = "Data"

    @lineage.step(kind="train")
    def work(i: int) -> Data:
        return Data(content=f"{i}".encode(), name="data")

    store = lineage.connect(writer_uri)
    with lineage.run("before", store=store):
        work(1)
    store.close()
    reader = lineage.connect(writer_uri, read_only=True)  # a long-lived reader
    assert len(reader.executions(step="work")) == 1
    exec_type = _duplicate_type(writer_uri, "work", 0, request)
    art_type = _duplicate_type(writer_uri, "Data", 1, request)
    store = lineage.connect(writer_uri)
    # a writer that used the second types (as the loser of a race did)
    [first] = store.executions(step="work")
    [data1] = store.artifacts(type="Data")
    other = pb.Artifact(type_id=art_type, name="data@2", uri=str(tmp_path / "d2"))
    other.properties["version"].int_value = 2
    [a2] = store.mlmd.put_artifacts([other])
    done = pb.Execution(type_id=exec_type, last_known_state=pb.Execution.COMPLETE)
    [e2] = store.mlmd.put_executions([done])
    store.close()

    monkeypatch.setattr(lineage._types, "DUPLICATES_TTL", 0.0)  # the minute has passed
    assert [e.id for e in reader.executions(step="work")] == [first.id, e2]
    reader.close()
    store = lineage.connect(writer_uri)
    assert [e.id for e in store.executions(step="work")] == [first.id, e2]
    assert sorted(a.id for a in store.artifacts(type="Data")) == [data1.id, a2]
    assert store.get("data@2", type="Data").id == a2
    assert store.get("data", type="Data").id == a2  # the newest version, from either type
    assert store.get("data@1").id == data1.id  # without a type: one answer, not two
    everything = [a.id for a in store.artifacts()]
    assert sorted(everything) == sorted(set(everything)) and a2 in everything
    assert [e.id for e in store.executions()].count(e2) == 1
    # the next version is numbered after both
    with lineage.run("after", store=store):
        work(3)
    assert [a.version for a in store.artifacts(type="Data")] == [1, 2, 3]
    assert len(store.executions(step="work")) == 3
    # a new writer adds no third type
    names = [t.name for t in store.mlmd.get_execution_types()]
    assert names.count("work") == 2


def test_mlmd_client_errors_reach_the_caller_not_the_log(tmp_path: Path) -> None:
    """MLMD logs each backend error through absl before raising it. Through the Store the
    error is the caller's (retried, or raised with MLMD's message) and logs nothing
    (the lost races of the 8-process test above log nothing either); direct calls on
    ``store.mlmd`` log as before."""
    uri = str(tmp_path / "s.sqlite")
    script = textwrap.dedent(f"""
        import sys
        sys.path.insert(0, {str(ROOT)!r})
        import lineage
        store = lineage.connect({uri!r})
        store.put(lineage.Dataset(content=b"0", name="d"))
        from ml_metadata.proto import metadata_store_pb2 as pb
        clash = pb.ExecutionType(name="clash", external_id="lineage:artifact:Dataset")
        try:
            store._call("put_execution_type", clash)
        except lineage.LineageError as exc:
            print("refused:", type(exc).__name__, "UNIQUE constraint failed" in str(exc))
        try:
            store.mlmd.put_execution_type(clash)
        except Exception as exc:
            print("raw:", type(exc).__name__)
    """)
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                          timeout=300)
    assert done.returncode == 0, done.stderr
    assert "refused: StoreError True" in done.stdout  # the failure says what failed
    assert "raw: InternalError" in done.stdout
    assert done.stderr.count("mlmd client InternalError") == 1


@pytest.mark.postgres
def test_connecting_to_a_server_prints_nothing(pg_uri: str) -> None:
    """MLMD's C++ client logs two glog INFO lines per PostgreSQL connection ("Connecting to
    database."); lineage turns glog's INFO off unless the user set GLOG_minloglevel."""
    code = f"import sys; sys.path.insert(0, {str(ROOT)!r}); import lineage; " \
           f"lineage.connect({pg_uri!r}).runs()"
    quiet = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                           timeout=300, env={k: v for k, v in os.environ.items()
                                             if k != "GLOG_minloglevel"})
    assert quiet.returncode == 0, quiet.stderr
    assert quiet.stderr == ""
    chosen = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                            timeout=300, env={**os.environ, "GLOG_minloglevel": "0"})
    assert "Connecting to database" in chosen.stderr  # the user's setting wins


def test_a_long_lived_reader_stays_right_while_others_write(tmp_path: Path) -> None:
    """Stores kept open (a notebook's, the web UI's read-only one) while this process
    opens the same file again and another program writes. SQLite's locks belong to the
    process: lineage once opened the file to check it on every connect, which dropped the
    open connections' locks, and the write-ahead log was then reset under them: the
    reader saw no executions at all, or "database disk image is malformed"."""
    uri = str(tmp_path / "store" / "metadata.sqlite")

    @lineage.step(kind="train")
    def work(i: int) -> lineage.Dataset:
        return lineage.Dataset(content=f"{i}".encode(), name="data")

    first = lineage.connect(uri)  # kept open, as a notebook keeps its stores
    with lineage.run("first", store=first):
        work(0)
    reader = lineage.connect(uri, read_only=True)
    assert len(reader.executions(step="work")) == 1
    other = textwrap.dedent(f"""
        import sqlite3
        db = sqlite3.connect({uri!r})  # another program, with its own SQLite library
        with db:
            db.execute("INSERT INTO Type(name, type_kind) VALUES ('other-tool', 0)")
        db.close()
    """)
    subprocess.run([sys.executable, "-c", other], check=True, timeout=120)
    writer = lineage.connect(uri)  # the same file, opened again in this process
    with lineage.run("second", store=writer):
        for i in range(1, 4):
            work(i)
    assert len(reader.executions(step="work")) == 4
    assert sorted(r.name for r in reader.runs()) == ["first", "second"]
    assert len(first.executions(step="work")) == 4
