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
