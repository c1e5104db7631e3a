"""Stale work: real child processes that record a step in a run, ended by SIGTERM, SIGHUP
and SIGKILL; the liveness facts and heartbeat they record; and ``lineage doctor``, which
finds and closes what a killed process left RUNNING, beside live writers."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from ml_metadata.proto import metadata_store_pb2 as pb

import lineage
from lineage.cli import main

ROOT = Path(__file__).resolve().parents[1]

CHILD = textwrap.dedent("""
    import pathlib, signal, sys, time
    import lineage

    store = lineage.connect(sys.argv[1])
    ready, mode = pathlib.Path(sys.argv[2]), sys.argv[3]
    handled = []
    if mode == "handler":  # the program's own handler: finish the step, then stop
        def handler(signum, frame):
            print("handled", signum, flush=True)
            handled.append(signum)
        signal.signal(signal.SIGTERM, handler)
    elif mode == "exit-handler":
        def handler(signum, frame):
            raise SystemExit(3)
        signal.signal(signal.SIGTERM, handler)
    elif mode == "nohup":
        signal.signal(signal.SIGHUP, signal.SIG_IGN)

    @lineage.step(store=store)
    def long(x: int = 1) -> lineage.Metrics:
        ready.write_text("ready")
        deadline = time.time() + 300
        while time.time() < deadline and not handled:
            time.sleep(0.02)
        return lineage.Metrics({"x": x}, name="out")

    if mode == "joined":  # a stage of a pipeline run: $LINEAGE_RUN names the run
        long()
    else:
        with lineage.run("r", store=store):
            long()
    print("finished", flush=True)
""")


@pytest.fixture
def spawn(tmp_path: Path) -> Iterator[Callable[..., tuple[subprocess.Popen[str], Path]]]:
    """Start a child that records a long step in a run; return it once the step runs."""
    script = tmp_path / "child.py"
    script.write_text(CHILD)
    children: list[subprocess.Popen[str]] = []

    def start(uri: str, mode: str = "plain", env: dict[str, str] | None = None,
              ) -> tuple[subprocess.Popen[str], Path]:
        ready = tmp_path / f"ready-{len(children)}"
        child = subprocess.Popen(
            [sys.executable, str(script), uri, str(ready), mode],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
            env={**os.environ, "PYTHONPATH": str(ROOT), **(env or {})},
        )
        children.append(child)
        deadline = time.monotonic() + 120
        while not ready.exists():
            if child.poll() is not None:
                pytest.fail(f"the child exited early: {child.communicate()[1][-2000:]}")
            if time.monotonic() > deadline:
                pytest.fail("the child's step did not start within 120 s")
            time.sleep(0.05)
        return child, ready

    yield start
    for child in children:
        if child.poll() is None:
            child.kill()
        child.communicate()


def _ended(child: subprocess.Popen[str]) -> tuple[int, str]:
    out, err = child.communicate(timeout=120)
    return child.returncode, out + err


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGHUP], ids=["SIGTERM", "SIGHUP"])
def test_sigterm_and_sighup_end_the_step_as_canceled_and_close_the_run(
    spawn: Callable[..., tuple[subprocess.Popen[str], Path]], tmp_path: Path, signum: int
) -> None:
    uri = str(tmp_path / "meta.sqlite")
    child, _ = spawn(uri)
    child.send_signal(signum)
    code, output = _ended(child)
    assert code == -signum, output  # it still dies of the signal, after recording
    assert "finished" not in output
    store = lineage.connect(uri, read_only=True)
    [execution] = store.executions()
    assert execution.state == "CANCELED"
    assert execution.error == f"Terminated: received {signal.Signals(signum).name}"
    [run] = store.runs()
    assert run.properties["status"] == "CANCELED" and run.properties.get("end_time")


def test_a_handler_the_program_had_is_called_instead(
    spawn: Callable[..., tuple[subprocess.Popen[str], Path]], tmp_path: Path
) -> None:
    uri = str(tmp_path / "meta.sqlite")
    child, _ = spawn(uri, "handler")
    child.send_signal(signal.SIGTERM)
    code, output = _ended(child)
    assert code == 0 and "handled 15" in output and "finished" in output, output
    store = lineage.connect(uri, read_only=True)
    assert [e.state for e in store.executions()] == ["COMPLETE"]
    assert [r.properties["status"] for r in store.runs()] == ["COMPLETE"]


def test_a_handler_that_exits_records_canceled_on_its_way_out(
    spawn: Callable[..., tuple[subprocess.Popen[str], Path]], tmp_path: Path
) -> None:
    uri = str(tmp_path / "meta.sqlite")
    child, _ = spawn(uri, "exit-handler")
    child.send_signal(signal.SIGTERM)
    code, output = _ended(child)
    assert code == 3, output
    store = lineage.connect(uri, read_only=True)
    assert [e.state for e in store.executions()] == ["CANCELED"]
    assert [r.properties["status"] for r in store.runs()] == ["CANCELED"]


def test_an_ignored_sighup_stays_ignored(
    spawn: Callable[..., tuple[subprocess.Popen[str], Path]], tmp_path: Path
) -> None:
    uri = str(tmp_path / "meta.sqlite")
    child, _ = spawn(uri, "nohup")
    child.send_signal(signal.SIGHUP)
    store = lineage.connect(uri, read_only=True)
    deadline = time.monotonic() + 2  # the child keeps running: nothing to wait for but time
    while time.monotonic() < deadline:
        assert child.poll() is None
        time.sleep(0.1)
    assert [e.state for e in store.executions()] == ["RUNNING"]
    child.send_signal(signal.SIGTERM)
    code, _output = _ended(child)
    assert code == -signal.SIGTERM
    assert [e.state for e in store.executions()] == ["CANCELED"]


def test_running_records_carry_host_pid_process_and_a_heartbeat(
    spawn: Callable[..., tuple[subprocess.Popen[str], Path]], tmp_path: Path
) -> None:
    uri = str(tmp_path / "meta.sqlite")
    child, _ = spawn(uri, env={"LINEAGE_HEARTBEAT_SECONDS": "0.2"})
    store = lineage.connect(uri, read_only=True)
    [execution] = store.executions(state="RUNNING")
    [run] = store.runs()
    for props in (execution.properties, run.properties):
        assert props["pid"] == child.pid and props["hostname"]
        assert str(props["process_id"]).endswith(f":{child.pid}:{props['process_id'].split(':')[-1]}")
        assert props["process_start"] > 0 and props["heartbeat"] > 0
    first = (execution.properties["heartbeat"], run.properties["heartbeat"])
    deadline = time.monotonic() + 60
    while True:  # the heartbeat is renewed while the step runs
        [execution] = store.executions(state="RUNNING")
        [run] = store.runs()
        now = (execution.properties["heartbeat"], run.properties["heartbeat"])
        if now[0] > first[0] and now[1] > first[1]:
            break
        assert time.monotonic() < deadline, "no heartbeat renewed within 60 s"
        time.sleep(0.1)
    assert execution.params == {"x": 1}  # the whole record was rewritten, not a stub
    assert execution.properties["function"].endswith("long")
    child.kill()


@pytest.mark.parametrize("backend", ["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def test_doctor_finds_and_closes_what_sigkill_left_running_beside_a_live_writer(
    spawn: Callable[..., tuple[subprocess.Popen[str], Path]], tmp_path: Path,
    capsys: pytest.CaptureFixture[str], request: pytest.FixtureRequest, backend: str,
) -> None:
    uri = str(tmp_path / "meta.sqlite") if backend == "sqlite" else (
        request.getfixturevalue("postgres").uri())
    killed, _ = spawn(uri)
    killed.send_signal(signal.SIGKILL)
    assert _ended(killed)[0] == -signal.SIGKILL
    live, _ = spawn(uri)  # a second writer, alive while the doctor works

    store = lineage.connect(uri, read_only=True)
    assert sorted(e.state for e in store.executions()) == ["RUNNING", "RUNNING"]
    report = store.doctor()
    assert {(a.kind, a.pid) for a in report.abandoned} == {("execution", killed.pid),
                                                           ("run", killed.pid)}
    assert all(f"process {killed.pid} on host" in a.reason and "is gone" in a.reason
               for a in report.abandoned)
    assert report.running == 4 and not report.ok

    assert main(["--store", uri, "doctor"]) == 1
    out = capsys.readouterr().out
    assert "2 abandoned of 4 running" in out and f"{killed.pid}" in out
    assert main(["--store", uri, "doctor", "--fix", "--json"]) == 0
    fixed = capsys.readouterr().out
    assert '"fixed": true' in fixed

    dead = next(e for e in store.executions() if e.properties["pid"] == killed.pid)
    alive = next(e for e in store.executions() if e.properties["pid"] == live.pid)
    assert dead.state == "FAILED" and (dead.error or "").startswith(
        f"abandoned: process {killed.pid} on host")
    assert alive.state == "RUNNING"  # the live writer's step is untouched
    runs = {r.properties["pid"]: r for r in store.runs()}
    assert runs[killed.pid].properties["status"] == "FAILED"
    assert str(runs[killed.pid].properties["error"]).startswith("abandoned: ")
    assert runs[live.pid].properties["status"] == "RUNNING"

    assert main(["--store", uri, "doctor", "--fix"]) == 0  # idempotent: nothing more
    assert "nothing abandoned: 2 running, all alive" in capsys.readouterr().out

    live.send_signal(signal.SIGTERM)  # and the live one still ends its own way
    assert _ended(live)[0] == -signal.SIGTERM
    assert sorted(e.state for e in store.executions()) == ["CANCELED", "FAILED"]


def _forge(store: lineage.Store, execution: lineage.Execution, **props: object) -> int:
    """A copy of a recorded execution, RUNNING, with other liveness facts (as a process
    on another host would have written it)."""
    [proto] = store.mlmd.get_executions_by_id([execution.id])
    proto.ClearField("id")
    proto.name = f"forged-{time.time_ns()}"
    proto.last_known_state = pb.Execution.RUNNING
    for key, value in props.items():
        if isinstance(value, str):
            proto.properties[key].string_value = value
        elif isinstance(value, int):
            proto.properties[key].int_value = value
        else:
            proto.properties[key].double_value = float(value)  # type: ignore[arg-type]
    [new_id] = store.mlmd.put_executions([proto])
    return int(new_id)


def test_doctor_judges_other_hosts_by_heartbeat_age(tmp_path: Path) -> None:
    store = lineage.connect(tmp_path / "meta.sqlite")

    @lineage.step(store=store)
    def done() -> None:
        return None

    done()
    [template] = store.executions()
    elsewhere = {"hostname": "gpu-node-7", "pid": 4242,
                 "process_id": "other-boot:4026531836:4242:99"}
    stale = _forge(store, template, heartbeat=time.time() - 3600, **elsewhere)
    fresh = _forge(store, template, heartbeat=time.time(), **elsewhere)
    report = store.doctor()
    assert [a.id for a in report.abandoned] == [stale]
    [found] = report.abandoned
    assert "no heartbeat from process 4242 on host gpu-node-7 for 3,6" in found.reason
    assert "threshold is 600 s" in found.reason
    assert store.doctor(stale_after=7200).abandoned == []
    store.doctor(fix=True)
    states = {e.id: e.state for e in store.executions()}
    assert states[stale] == "FAILED" and states[fresh] == "RUNNING"
    with pytest.raises(lineage.LineageError, match="positive number"):
        store.doctor(stale_after=-1)
    with pytest.raises(lineage.ReadOnlyStore):
        lineage.connect(tmp_path / "meta.sqlite", read_only=True).doctor(fix=True)


def test_a_reused_pid_is_not_mistaken_for_the_process(tmp_path: Path) -> None:
    store = lineage.connect(tmp_path / "meta.sqlite")

    @lineage.step(store=store)
    def done() -> None:
        return None

    done()
    [template] = store.executions()
    mine = str(template.properties["process_id"])
    scope, pid, _ticks = mine.rsplit(":", 2)
    reused = _forge(store, template, process_id=f"{scope}:{pid}:1")  # this pid, older start
    live = _forge(store, template, process_id=mine)  # this very process: alive
    report = store.doctor()
    assert [a.id for a in report.abandoned] == [reused]
    assert "its pid now belongs to another process" in report.abandoned[0].reason
    assert live not in [a.id for a in report.abandoned]


def test_a_run_open_across_processes_is_judged_by_its_steps(
    spawn: Callable[..., tuple[subprocess.Popen[str], Path]], tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """`lineage run start` leaves a run RUNNING for the stages of a pipeline: no process
    holds it, so its starter's exit does not make it abandoned; a stage killed in one of
    its steps does."""
    uri = str(tmp_path / "meta.sqlite")
    assert main(["--store", uri, "run", "start", "pipeline"]) == 0
    ref = capsys.readouterr().out.strip()
    store = lineage.connect(uri, read_only=True)
    [run] = store.runs()
    assert "pid" not in run.properties and "heartbeat" not in run.properties
    assert store.doctor().abandoned == []  # its starter is gone, and that is fine

    stage, _ = spawn(uri, "joined", env={"LINEAGE_RUN": ref})
    assert store.doctor().abandoned == []  # a live stage records into it
    stage.send_signal(signal.SIGKILL)
    assert _ended(stage)[0] == -signal.SIGKILL
    report = store.doctor()
    assert sorted(a.kind for a in report.abandoned) == ["execution", "run"]
    run_reason = next(a.reason for a in report.abandoned if a.kind == "run")
    assert run_reason.startswith("its step execution:")
    lineage.connect(uri).doctor(fix=True)
    [run] = store.runs()
    assert run.properties["status"] == "FAILED"
    assert str(run.properties["error"]).startswith("abandoned: its step execution:")
