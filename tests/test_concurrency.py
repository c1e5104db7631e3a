"""4 processes x 300 steps, starting together on a store that does not exist yet: nothing lost.

Raw MLMD loses steps here: the schema-creation race, SQLite's aborted transactions, and on
PostgreSQL ``deadlock detected`` / ``current transaction is aborted`` when two workers
attribute the same shared input to their run contexts. Every worker records into its own
run (all asking for the same run name) with the same shared input, created by whichever
worker gets there first.
"""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

import lineage

ROOT = Path(__file__).resolve().parents[1]
WORKERS = 4
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
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", script, uri, str(w), str(STEPS), str(shared), str(out),
             str(barrier)],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for w in range(WORKERS)
    ]
    failures = []
    for w, proc in enumerate(procs):
        stdout, stderr = proc.communicate(timeout=900)
        if proc.returncode != 0 or f"done {w}" not in stdout:
            failures.append(f"worker {w} exited {proc.returncode}:\n{stderr[-3000:]}")
    assert not failures, "\n".join(failures)


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
    assert sorted(r.name for r in runs) == ["shared", "shared-2", "shared-3", "shared-4"]
    assert {r.run_name for r in runs} == {"shared"}
    for r in runs:
        in_run = store.executions(run=r.id)
        assert len(in_run) == STEPS
        assert len({e.params["worker"] for e in in_run}) == 1
        assert r.properties["status"] == "COMPLETE"
        attributed = {a.id for a in store.mlmd.get_artifacts_by_context(r.id)}
        assert shared.id in attributed and len(attributed) == STEPS + 1


@pytest.mark.slow
def test_four_processes_on_a_new_sqlite_store_lose_nothing(tmp_path: Path) -> None:
    uri = str(tmp_path / "store" / "metadata.sqlite")
    _run_workers(uri, tmp_path)
    _check_nothing_lost(lineage.connect(uri))


@pytest.mark.slow
@pytest.mark.postgres
def test_four_processes_on_a_new_postgresql_store_lose_nothing(
    pg_uri: str, tmp_path: Path
) -> None:
    _run_workers(pg_uri, tmp_path)
    _check_nothing_lost(lineage.connect(pg_uri))
