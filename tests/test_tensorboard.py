"""TensorBoard both ways: export a run as event files read back with TensorBoard's own
EventAccumulator; take event files written by tensorboardX into a run."""

from __future__ import annotations

import struct
from pathlib import Path

import pytest

import lineage
from lineage.cli import main
from lineage.metrics import run_metrics

ea = pytest.importorskip("tensorboard.backend.event_processing.event_accumulator")
tensorboardX = pytest.importorskip("tensorboardX")


def _f32(x: float) -> float:
    """What TensorBoard keeps of a double (scalars are 32-bit floats)."""
    return float(struct.unpack("f", struct.pack("f", x))[0])


def _read(folder: Path) -> ea.EventAccumulator:
    acc = ea.EventAccumulator(str(folder), size_guidance={ea.SCALARS: 0, ea.TENSORS: 0})
    acc.Reload()
    return acc


def _record(store: lineage.Store) -> None:
    @lineage.step(store=store)
    def train(offset: float) -> None:
        for epoch in range(5):
            lineage.log_metrics({"loss": offset / (epoch + 1)}, step=epoch)
        lineage.log_confusion_matrix([0, 1, 1], [0, 1, 0], step=4)

    with lineage.run("tb", store=store):
        for i in range(300):
            lineage.log_metrics({"lr": 0.1 * 0.99**i, "batch_loss": 1 / (i + 1)}, step=i)
        train(1.0)
        train(2.0)


def test_export_a_run_as_event_files_tensorboard_reads(store: lineage.Store, tmp_path: Path
                                                       ) -> None:
    _record(store)
    logdir = tmp_path / "logs"
    exported = store.export("tb", "tensorboard", logdir)
    assert exported.to_dict()["train#2"] == {"scalars": {"loss": 5}, "confusion_matrices": 1}
    root = _read(logdir)
    assert sorted(root.Tags()["scalars"]) == ["batch_loss", "lr"]
    lr = root.Scalars("lr")
    assert [(e.step, e.value) for e in lr] == [(i, _f32(0.1 * 0.99**i)) for i in range(300)]
    assert all(e.wall_time > 1e9 for e in lr)  # the time each point was logged
    for folder, offset in (("train", 1.0), ("train#2", 2.0)):
        acc = _read(logdir / folder)
        assert [(e.step, e.value) for e in acc.Scalars("loss")] == [
            (epoch, _f32(offset / (epoch + 1))) for epoch in range(5)]
        [text] = acc.Tensors("confusion_matrix")
        assert text.step == 4 and b"| 1 | 1 | 1 |" in text.tensor_proto.string_val[0]


def test_cli_export_tensorboard(sqlite_uri: str, tmp_path: Path,
                                capsys: pytest.CaptureFixture[str]) -> None:
    _record(lineage.connect(sqlite_uri))
    assert main(["--store", sqlite_uri, "export", "tb", "--format", "tensorboard",
                 "-o", str(tmp_path / "tb")]) == 0
    assert "(tensorboard)" in capsys.readouterr().out
    assert len(_read(tmp_path / "tb").Scalars("lr")) == 300


def test_a_tensorboard_log_dir_becomes_series_and_an_artifact_of_the_run(
    store: lineage.Store, tmp_path: Path
) -> None:
    logdir = tmp_path / "keras-logs"
    for split, scale in (("train", 1.0), ("validation", 1.5)):
        writer = tensorboardX.SummaryWriter(str(logdir / split))
        for epoch in range(20):
            writer.add_scalar("epoch_loss", scale / (epoch + 1), epoch)
        writer.close()
    top = tensorboardX.SummaryWriter(str(logdir))
    top.add_scalar("lr", 0.5, 0)
    top.close()
    with lineage.run("keras", store=store) as run:
        logs = run.log_tensorboard(logdir)
    m = run_metrics(store, "keras")
    assert sorted(m.series) == ["lr", "train/epoch_loss", "validation/epoch_loss"]
    assert m.series["validation/epoch_loss"] == [
        (epoch, _f32(1.5 / (epoch + 1))) for epoch in range(20)]
    assert m.final["train/epoch_loss"] == _f32(1 / 20)
    assert logs.type_name == "TensorBoardLogs" and logs.name == "keras-logs"
    assert logs.fingerprint == lineage.fingerprint(logdir)
    attributed = {a.id for a in store.mlmd.get_artifacts_by_context(run.id)}
    assert logs.id in attributed
    # and back out: the round trip keeps every point
    store.export("keras", "tensorboard", tmp_path / "again")
    again = _read(tmp_path / "again")
    assert [(e.step, e.value) for e in again.Scalars("validation/epoch_loss")] == \
        m.series["validation/epoch_loss"]


def test_log_tensorboard_needs_a_run_and_event_files(store: lineage.Store, tmp_path: Path
                                                     ) -> None:
    with pytest.raises(lineage.StepError, match="inside"):
        lineage.log_tensorboard(tmp_path)
    with lineage.run("empty", store=store), pytest.raises(lineage.StepError, match="no TensorBoard event file"):
        lineage.log_tensorboard(tmp_path)
