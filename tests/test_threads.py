"""Parallel runs in threads: a step records into the run of the thread running it,
including the workers of pools created inside that run; where the library cannot tell, it
says so instead of guessing (never the default store by surprise)."""

from __future__ import annotations

import gc
import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

import lineage


def test_a_sweep_of_runs_in_threads_with_pools_for_their_folds(
    store: lineage.Store, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)  # the default store would be here: it must stay empty

    @lineage.step
    def fold(k: int, lr: float) -> lineage.Metrics:
        return lineage.Metrics({"k": k, "lr": lr}, name=f"fold-{lr}-{k}")

    def sweep(lr: float) -> None:
        with lineage.run(f"lr-{lr}", experiment="sweep", store=store), \
                ThreadPoolExecutor(3) as pool:  # the pool is made inside the run
            list(pool.map(lambda k: fold(k, lr), range(5)))

    threads = [threading.Thread(target=sweep, args=(lr,)) for lr in (0.1, 0.2, 0.3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    for lr in (0.1, 0.2, 0.3):
        calls = store.executions(run=f"lr-{lr}")
        assert sorted(e.params["k"] for e in calls) == [0, 1, 2, 3, 4]
        assert {e.params["lr"] for e in calls} == {lr}
    assert len(store.executions(step="fold")) == 15
    assert not (tmp_path / ".lineage").exists()


def test_a_thread_in_no_run_while_several_run_is_refused(store: lineage.Store) -> None:
    @lineage.step
    def work() -> None:
        pass

    outside = ThreadPoolExecutor(1)  # made outside any run: its workers are in no run
    outside.submit(lambda: None).result()
    started, release = threading.Barrier(3), threading.Event()

    def hold(name: str) -> None:
        with lineage.run(name, store=store):
            started.wait()
            release.wait()

    holders = [threading.Thread(target=hold, args=(n,)) for n in ("a", "b")]
    for t in holders:
        t.start()
    started.wait()
    try:
        with pytest.raises(lineage.StepError, match="cannot tell which run"):
            # a thread started by the pool before any run: it carries no run
            outside.submit(work).result()
    finally:
        release.set()
        for t in holders:
            t.join()
        outside.shutdown()


def test_attach_records_a_worker_into_a_run(store: lineage.Store) -> None:
    @lineage.step
    def work(i: int) -> None:
        pass

    pool = ThreadPoolExecutor(2)
    pool.submit(lambda: None).result()  # workers exist before the run
    with lineage.run("attached", store=store) as run:
        def task(i: int) -> None:
            with run.attach():
                work(i)

        list(pool.map(task, range(3)))
    pool.shutdown()
    assert len(store.executions(run="attached")) == 3


def test_a_run_without_with_starts_and_ends_or_warns(store: lineage.Store) -> None:
    @lineage.step(store=store)
    def work() -> None:
        pass

    r = lineage.run("manual", store=store).start()
    work()
    r.end("FAILED")
    assert store.run("manual").properties["status"] == "FAILED"
    assert len(store.executions(run="manual")) == 1
    with pytest.warns(RuntimeWarning, match="never started"):
        lineage.run("forgotten", store=store)
        gc.collect()
    with pytest.raises(lineage.StepError, match="not started"):
        lineage.run("x", store=store).end()
