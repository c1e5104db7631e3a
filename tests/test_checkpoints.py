"""Training loops publish checkpoints as they write them; an early stop or a crash keeps
them; a model resumed from a checkpoint in a new process has it as an input; a failure to
record after the body ran never leaves the step RUNNING and never loses its result."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

import lineage


class EarlyStop(Exception):
    pass


def test_checkpoints_survive_an_early_stop(store: lineage.Store, tmp_path: Path) -> None:
    data = tmp_path / "data.csv"
    data.write_text("1 2 3\n")

    @lineage.step(store=store, kind="train")
    def train(data: lineage.Dataset, epochs: int = 10) -> lineage.Model:
        for epoch in range(epochs):
            ckpt = tmp_path / "ckpt.txt"
            ckpt.write_text(f"weights after epoch {epoch}\n")
            lineage.log_artifact(lineage.Model(ckpt, name="checkpoint"))
            if epoch == 2:
                raise EarlyStop(f"no improvement after epoch {epoch}")
        return lineage.Model(ckpt, name="model")

    with pytest.raises(EarlyStop):
        train(str(data))
    [call] = store.executions(step="train")
    assert call.state == "FAILED" and "EarlyStop" in (call.error or "")
    versions = [a.version for a in store.artifacts(name="checkpoint")]
    assert versions == [1, 2, 3] and len(call.outputs) == 3
    p = store.provenance("checkpoint@3")
    assert [s.id for s in p.steps] == [call.id]
    assert [a.name for a in p.artifacts] == ["data.csv"]


def test_a_model_resumed_from_a_checkpoint_in_a_new_process(tmp_path: Path) -> None:
    db = tmp_path / "meta.sqlite"
    script = tmp_path / "train.py"
    script.write_text(textwrap.dedent('''
        import sys
        from pathlib import Path
        import lineage

        store = lineage.connect(sys.argv[1])
        work = Path(sys.argv[2])

        @lineage.step(store=store, kind="train")
        def train(data: lineage.Dataset, resume: lineage.Model | None = None,
                  epochs: int = 2) -> lineage.Model:
            start = int(Path(resume.uri).read_text()) if resume is not None else 0
            for epoch in range(start, start + epochs):
                (work / "ckpt.txt").write_text(str(epoch + 1))
                lineage.log_artifact(lineage.Model(work / "ckpt.txt", name="checkpoint"))
            (work / "model.txt").write_text(f"final {start + epochs}")
            return lineage.Model(work / "model.txt", name="model")

        data = work / "data.csv"
        if sys.argv[3] == "first":
            data.write_text("x\\n")
            train(str(data))
        else:
            train(str(data), resume=str(work / "ckpt.txt"))
    '''))
    for stage in ("first", "resumed"):
        subprocess.run([sys.executable, str(script), str(db), str(tmp_path), stage],
                       check=True, timeout=120)
    store = lineage.connect(db)
    first, resumed = store.executions(step="train")
    ckpt2 = store.get("checkpoint@2")
    assert ckpt2.id in resumed.inputs  # the checkpoint the new process started from
    p = store.provenance("model")
    assert first.id in {s.id for s in p.steps} and ckpt2.id in {a.id for a in p.artifacts}
    assert [a.name for a in p.datasets] == ["data.csv"]


def test_recording_that_fails_after_the_body_keeps_its_result(store: lineage.Store,
                                                              tmp_path: Path) -> None:
    @lineage.step(store=store)
    def train() -> tuple[lineage.Model, float]:
        return lineage.Model(tmp_path / "never-written.pkl", name="m"), 0.93

    with pytest.warns(lineage.RecordingWarning, match="recording its outputs failed"):
        model, score = train()
    assert score == 0.93 and isinstance(model, lineage.Model)
    [call] = store.executions(step="train")
    assert call.state == "FAILED" and "never-written" in (call.error or "")


def test_publishing_outside_a_step(store: lineage.Store) -> None:
    with lineage.run("r", store=store):
        rec = lineage.log_artifact(lineage.Dataset(content=b"x", name="side"))
    assert rec.id is not None and store.get("side").id == rec.id
    with pytest.raises(lineage.StepError, match=r"inside a @lineage\.step"):
        lineage.log_artifact(lineage.Dataset(content=b"y", name="lost"))
