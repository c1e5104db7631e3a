"""Pipelines across processes, run as real separate processes: process pools with each
start method after the parent has recorded (fork safety)."""

from __future__ import annotations

import sqlite3
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

import lineage

POOL_SCRIPT = textwrap.dedent('''
    import multiprocessing as mp
    import sys
    from concurrent.futures import ProcessPoolExecutor

    import lineage

    STORE, METHOD = sys.argv[1], sys.argv[2]
    store = lineage.connect(STORE)


    @lineage.step(store=store)
    def work(i: int) -> lineage.Metrics:
        return lineage.Metrics({"i": i}, name=f"m{i}")


    def task(i: int) -> int:
        work(i)
        return i


    if __name__ == "__main__":
        with lineage.run("pool", store=store):
            work(-1)  # the parent has an open connection (and a write) before the pool
            with ProcessPoolExecutor(4, mp_context=mp.get_context(METHOD)) as pool:
                assert sorted(pool.map(task, range(24))) == list(range(24))
            work(-2)
        print("done")
''')


def _run(script: Path, *args: str, timeout: float = 180) -> subprocess.CompletedProcess[str]:
    done = subprocess.run([sys.executable, str(script), *args], capture_output=True,
                          text=True, timeout=timeout)
    assert done.returncode == 0, done.stderr[-3000:]
    return done


@pytest.mark.parametrize("method", ["fork", "spawn", "forkserver"])
def test_process_pool_after_the_parent_recorded(tmp_path: Path, method: str) -> None:
    script = tmp_path / "pool.py"
    script.write_text(POOL_SCRIPT)
    db = tmp_path / "store" / "metadata.sqlite"
    for _ in range(2):  # twice: the second run finds a store with an open WAL
        assert "done" in _run(script, str(db), method).stdout
    with sqlite3.connect(db) as raw:
        assert raw.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    store = lineage.connect(db, read_only=True)
    execs = store.executions(step="work")
    assert len(execs) == 2 * 26
    assert {e.state for e in execs} == {"COMPLETE"}
    assert sorted(e.params["i"] for e in execs) == sorted(2 * [*range(-2, 24)])
    outputs = store.artifacts(type="Metrics")
    assert sorted(a.name for a in outputs) == sorted(f"m{i}" for i in range(-2, 24))


def test_a_memory_store_refuses_to_be_shared_with_a_child(tmp_path: Path) -> None:
    script = tmp_path / "memory.py"
    script.write_text(textwrap.dedent('''
        import os, sys
        import lineage
        store = lineage.connect(":memory:")
        store.put(lineage.Metrics({"a": 1}, name="m"))
        pid = os.fork()
        if pid == 0:
            try:
                store.put(lineage.Metrics({"a": 2}, name="m"))
            except lineage.StoreError as exc:
                print("refused:", exc, flush=True)
                os._exit(0)
            os._exit(3)
        _, status = os.waitpid(pid, 0)
        assert os.waitstatus_to_exitcode(status) == 0
        assert [a.version for a in store.artifacts()] == [1]  # the parent's store is intact
    '''))
    out = _run(script).stdout
    assert "refused:" in out and "SQLite file" in out


def test_a_store_pickles_for_spawned_workers(tmp_path: Path) -> None:
    import pickle

    store = lineage.connect(tmp_path / "s.sqlite")
    store.put(lineage.Metrics({"a": 1}, name="m"))
    copy = pickle.loads(pickle.dumps(store))
    assert copy is not store and copy.uri == store.uri
    assert [a.name for a in copy.artifacts()] == ["m"]
    with pytest.raises(lineage.StoreError, match="SQLite file"):
        pickle.dumps(lineage.connect(":memory:"))


@pytest.mark.postgres
def test_fork_pool_on_postgresql(tmp_path: Path, pg_uri: str) -> None:
    script = tmp_path / "pool.py"
    script.write_text(POOL_SCRIPT)
    _run(script, pg_uri, "fork")
    execs = lineage.connect(pg_uri).executions(step="work")
    assert len(execs) == 26 and {e.state for e in execs} == {"COMPLETE"}


# --- one pipeline, many processes -------------------------------------------------------

STAGES = {
    "prepare": '''
import sys
from pathlib import Path
import lineage

@lineage.step
def prepare(raw: lineage.Dataset) -> lineage.Dataset:
    rows = Path(raw.uri).read_text().split()
    out = Path("../../work/clean.csv")
    out.parent.mkdir(exist_ok=True)
    out.write_text("\\n".join(r for r in rows if r != "bad") + "\\n")
    return lineage.Dataset(out, name="clean")

prepare("../../data/raw.csv")
''',
    "train": '''
from pathlib import Path
import lineage

@lineage.step(kind="train")
def train(data: lineage.Dataset, scale: int = 2) -> lineage.Model:
    total = sum(int(x) for x in Path(data.uri).read_text().split()) * scale
    out = Path("../../work/model.txt")
    out.write_text(f"{total}\\n")
    lineage.log_metrics({"loss": 1 / total}, step=0)
    return lineage.Model(out, name="model")

train("../../work/clean.csv")  # the path the previous stage wrote: linked by its content
''',
    "evaluate": '''
import os
from pathlib import Path
import lineage

@lineage.step(kind="evaluate")
def evaluate(model: lineage.Model, data: lineage.Dataset) -> lineage.Metrics:
    if os.environ.get("FAIL"):
        raise RuntimeError("evaluation failed")
    return lineage.Metrics({"score": int(Path(model.uri).read_text())}, name="score")

evaluate("../../work/model.txt", "../../work/clean.csv")
''',
}


def _project(tmp_path: Path) -> Path:
    project = tmp_path / "project"
    (project / "data").mkdir(parents=True)
    (project / "data" / "raw.csv").write_text("1\n2\nbad\n3\n")
    subprocess.run(["git", "init", "-q", str(project)], check=True)
    for name, text in STAGES.items():
        folder = project / "stages" / name
        folder.mkdir(parents=True)
        (folder / f"{name}.py").write_text(textwrap.dedent(text))
    return project


def _cli(cwd: Path, *args: str) -> str:
    done = subprocess.run([sys.executable, "-m", "lineage", *args], cwd=cwd,
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    return done.stdout.strip()


def _stage(project: Path, name: str, ref: str, **env: str) -> subprocess.CompletedProcess[str]:
    import os

    return subprocess.run(
        [sys.executable, f"{name}.py"], cwd=project / "stages" / name, capture_output=True,
        text=True, timeout=120,
        env={**{k: v for k, v in os.environ.items() if k != "LINEAGE_URI"},
             "LINEAGE_RUN": ref, **env})


def test_three_scripts_make_one_run_and_one_chain(tmp_path: Path) -> None:
    project = _project(tmp_path)
    ref = _cli(project, "run", "start", "v1", "--experiment", "stages", "--param", "seed=3")
    assert ref.startswith("context:")
    for name in STAGES:  # each stage from its own folder: the same store, the same run
        done = _stage(project, name, ref)
        assert done.returncode == 0, done.stderr
    assert _cli(project / "stages", "run", "end", ref) == ref
    store = lineage.connect(project / ".lineage" / "metadata.sqlite")
    assert [r.name for r in store.runs()] == ["v1"]  # not v1, v1-2, v1-3
    run = store.run("v1")
    assert run.properties["status"] == "COMPLETE" and run.params == {"seed": 3}
    assert [e.name for e in store.executions(run="v1")] == ["prepare", "train", "evaluate"]
    p = store.provenance("score")
    assert {s.name for s in p.steps} == {"prepare", "train", "evaluate"}
    raw = store.get("raw.csv")
    assert p.roots == [raw.id]
    assert lineage.run_metrics(store, "v1").steps["train"]["loss"][0][0] == 0


def test_a_failed_stage_makes_the_run_failed_and_a_run_can_be_resumed(tmp_path: Path) -> None:
    project = _project(tmp_path)
    ref = _cli(project, "run", "start", "v2")
    for name in ("prepare", "train"):
        assert _stage(project, name, ref).returncode == 0
    assert _stage(project, "evaluate", ref, FAIL="1").returncode != 0
    _cli(project, "run", "end", ref)
    store = lineage.connect(project / ".lineage" / "metadata.sqlite")
    assert store.run(ref).properties["status"] == "FAILED"
    # a run that had ended is reopened by a stage that records into it, then closed again
    # with the status of what it holds
    done = _stage(project, "evaluate", ref)
    assert done.returncode == 0, done.stderr
    assert store.run(ref).properties["status"] == "FAILED"  # the failed call is still there
    with lineage.run(ref, store=store, resume=True) as again:
        assert again.name == "v2" and store.run(ref).properties["status"] == "RUNNING"
    assert store.run(ref).properties["status"] == "COMPLETE"
    assert len(store.runs()) == 1


TEAM_SCRIPT = '''
import os, socket, sys
from pathlib import Path
socket.gethostname = lambda: os.environ["FAKE_HOST"]  # two machines, in one test
import lineage

store = lineage.connect(sys.argv[1])

@lineage.step(store=store)
def count(data: lineage.Dataset) -> lineage.Metrics:
    print("read", data.uri)
    return lineage.Metrics({"n": len(Path(data.uri).read_text().split())}, name="n")

count(str(Path("data/x.csv").absolute()))
'''


@pytest.mark.postgres
def test_a_postgresql_team_store_with_two_clones(tmp_path: Path, pg_uri: str) -> None:
    import os

    script = tmp_path / "count.py"
    script.write_text(TEAM_SCRIPT)
    lineage.connect(pg_uri).close()  # the shared store exists
    seen = {}
    for who in ("alice", "bob"):
        home = tmp_path / who
        clone = home / "project"
        (clone / "data").mkdir(parents=True)
        (clone / "data" / "x.csv").write_text("5 6 7\n")  # the same bytes in both clones
        env = {**os.environ, "HOME": str(home), "FAKE_HOST": f"{who}-laptop"}
        done = subprocess.run([sys.executable, str(script), pg_uri], cwd=clone, env=env,
                              capture_output=True, text=True, timeout=120)
        assert done.returncode == 0, done.stderr[-2000:]
        seen[who] = done.stdout.split("read ", 1)[1].strip()
        if who == "alice":
            (clone / "data" / "x.csv").unlink()  # alice's copy is gone; bob has his
    assert seen["bob"] == str(tmp_path / "bob" / "project" / "data" / "x.csv")  # his own
    store = lineage.connect(pg_uri)
    [data] = store.artifacts(type="Dataset")
    assert {(loc["uri"].split("/")[-4], loc["host"]) for loc in data.locations} == {
        ("alice", "alice-laptop"), ("bob", "bob-laptop")}
    calls = store.executions(step="count")
    assert len(calls) == 2 and all(c.inputs == [data.id] for c in calls)
    [check] = store.verify(data.id).results
    assert check.status == "ok" and "bob" in check.detail  # bob's location holds the bytes
    # bob edits his data and runs again: the diff names the data, and no code change
    # although the two clones live in different folders
    bob = tmp_path / "bob" / "project"
    (bob / "data" / "x.csv").write_text("5 6 7 8\n")
    subprocess.run([sys.executable, str(script), pg_uri], cwd=bob, check=True, timeout=120,
                   env={**os.environ, "HOME": str(tmp_path / "bob"), "FAKE_HOST": "bob-laptop"})
    d = store.diff("n@1", "n@2")
    assert d.code == {} and [x["name"] for x in d.datasets] == ["x.csv"]
