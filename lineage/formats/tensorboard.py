"""TensorBoard both ways: a run's series as event files, and event files into a run.

Needs the optional extra ``tensorboard`` (``pip install 'mlmd-lineage[tensorboard]'``): the
event files are written with TensorBoard's own ``EventFileWriter`` and read with its
``EventAccumulator``.

- **Export** (``lineage export RUN --format tensorboard -o LOGDIR``,
  ``store.export(run, "tensorboard", logdir)``): the series logged on the run go to event
  files in ``LOGDIR``, each step call's in ``LOGDIR/<step>`` (``train``, ``train#2``), so
  TensorBoard draws the same metric of several steps in one chart, one line each. Points
  keep their step and wall time; values are TensorBoard scalars (``simple_value``, 32-bit
  floats, as ``SummaryWriter.add_scalar`` writes them). Confusion matrices become text
  summaries (a Markdown table) at their step, tag ``confusion_matrix[/name]``.
- **Import** (``lineage.log_tensorboard(logdir)`` or ``run.log_tensorboard(logdir)`` inside a
  run): every scalar series of every event file under ``logdir`` becomes a series of the
  run, named ``<subfolder>/<tag>`` (Keras writes ``train/epoch_loss`` and
  ``validation/epoch_loss``), with its steps and wall times; TF2 scalar tensors are read
  too. The log dir is recorded as a ``TensorBoardLogs`` artifact of the run (its folder
  fingerprint says which logs these were).
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import attrs

from lineage import _series
from lineage.artifacts import Artifact
from lineage.errors import StepError

if TYPE_CHECKING:
    from lineage.metrics import ConfusionMatrix, RunMetrics
    from lineage.records import Run
    from lineage.runs import ActiveRun
    from lineage.store import Store

__all__ = ["TensorBoardLogs", "export_run", "log_tensorboard", "read_logdir", "write_logdir"]

_HINT = "pip install 'mlmd-lineage[tensorboard]' (TensorBoard's own reader and writer)"


class TensorBoardLogs(Artifact):
    """A TensorBoard log dir taken into a run by :func:`log_tensorboard`."""


def _tb() -> Any:
    try:
        from tensorboard.compat.proto import event_pb2  # noqa: F401
    except ImportError as exc:  # pragma: no cover - depends on the environment
        raise ImportError(f"TensorBoard support needs the tensorboard package: {_HINT}") from exc
    import tensorboard

    return tensorboard


@attrs.define(eq=False)
class TensorBoardRun:
    """What one TensorBoard run (one folder of event files) holds."""

    folder: str
    """Relative to the log dir (``""`` for the log dir itself)."""
    scalars: dict[str, list[tuple[int, float, float]]] = attrs.field(factory=dict)
    """Tag → ``[(step, value, wall_time), ...]``."""
    matrices: list[ConfusionMatrix] = attrs.field(factory=list)


def _folder(label: str) -> str:
    return label.replace("/", "_").replace(os.sep, "_")


def export_run(store: Store, ref: str | int | Run) -> dict[str, TensorBoardRun]:
    """Folder → what goes there, for the run ``ref`` (see the module docstring)."""
    from lineage.metrics import _step_chunks, run_metrics

    metrics: RunMetrics = run_metrics(store, ref)
    ctx = store._resolve_run(ref)
    type_id = _series.chunk_type_id(store)
    children = _series.read_children(store, ctx.id, type_id)
    run_chunks = _series.chunks_of(children.get(_series.owner_of_run(ctx.id), []))
    out: dict[str, TensorBoardRun] = {"": TensorBoardRun(folder="")}
    out[""].scalars = _with_times(run_chunks, metrics.run_series)
    executions = {e.id: e for e in store._call("get_executions_by_id",
                                               list(metrics.executions.values()))}
    for label, eid in metrics.executions.items():
        execution = executions.get(eid)
        chunks: list[Any] = []
        if execution is not None:
            chunks = _step_chunks(store, execution, type_id, {ctx.id: children})
        folder = _folder(label)
        out[folder] = TensorBoardRun(folder=folder,
                                     scalars=_with_times(chunks, metrics.steps.get(label, {})))
    for matrix in metrics.matrices:
        folder = "" if matrix.source == "run" else _folder(matrix.source)
        out.setdefault(folder, TensorBoardRun(folder=folder)).matrices.append(matrix)
    return out


def _with_times(chunks: list[Any], series: dict[str, list[tuple[int, Any]]]
                ) -> dict[str, list[tuple[int, float, float]]]:
    times: dict[str, list[float]] = {}
    for chunk in chunks:
        for pts in chunk.series:
            times.setdefault(pts.name, []).extend(pts.wall_times)
    out = {}
    for name, points in series.items():
        stamps = times.get(name, [])
        out[name] = [(int(s), float(v), stamps[i] if i < len(stamps) and stamps[i] else 0.0)
                     for i, (s, v) in enumerate(points)]
    return out


def _markdown(matrix: ConfusionMatrix) -> str:
    head = "| true \\ predicted | " + " | ".join(str(x) for x in matrix.labels) + " |"
    rule = "|---" * (len(matrix.labels) + 1) + "|"
    rows = [f"| {label} | " + " | ".join(str(c) for c in row) + " |"
            for label, row in zip(matrix.labels, matrix.matrix, strict=True)]
    return "\n".join([head, rule, *rows])


def write_logdir(runs: dict[str, TensorBoardRun], logdir: str | os.PathLike[str]) -> list[Path]:
    """Write event files (one per folder with something in it); return their paths."""
    _tb()
    from tensorboard.compat.proto import (
        event_pb2,
        summary_pb2,
        tensor_pb2,
        tensor_shape_pb2,
        types_pb2,
    )
    from tensorboard.summary.writer.event_file_writer import EventFileWriter

    root = Path(logdir)
    written: list[Path] = []
    for folder, run in sorted(runs.items()):
        if not run.scalars and not run.matrices:
            continue
        target = root / folder if folder else root
        target.mkdir(parents=True, exist_ok=True)
        before = set(target.glob("events.out.tfevents.*"))
        writer = EventFileWriter(str(target), max_queue_size=1024, flush_secs=3600)
        try:
            for tag, points in sorted(run.scalars.items()):
                for step, value, wall in points:
                    writer.add_event(event_pb2.Event(
                        wall_time=wall, step=step,
                        summary=summary_pb2.Summary(value=[
                            summary_pb2.Summary.Value(tag=tag, simple_value=value)])))
            for matrix in run.matrices:
                tensor = tensor_pb2.TensorProto(
                    dtype=types_pb2.DT_STRING, string_val=[_markdown(matrix).encode()],
                    tensor_shape=tensor_shape_pb2.TensorShapeProto())
                meta = summary_pb2.SummaryMetadata(
                    plugin_data=summary_pb2.SummaryMetadata.PluginData(plugin_name="text"))
                tag = "confusion_matrix" + (f"/{matrix.name}" if matrix.name else "")
                writer.add_event(event_pb2.Event(
                    wall_time=matrix.wall_time or 0.0, step=matrix.step or 0,
                    summary=summary_pb2.Summary(value=[summary_pb2.Summary.Value(
                        tag=tag, metadata=meta, tensor=tensor)])))
        finally:
            writer.close()
        written.extend(sorted(set(target.glob("events.out.tfevents.*")) - before))
    return written


# --- import -----------------------------------------------------------------------------------


def _event_folders(logdir: Path) -> Iterator[Path]:
    for folder, _dirs, files in sorted(os.walk(logdir)):
        if any(".tfevents." in f for f in files):
            yield Path(folder)


def read_logdir(logdir: str | os.PathLike[str]) -> dict[str, list[tuple[int, float, float]]]:
    """Every scalar series under ``logdir``: ``"<subfolder>/<tag>"`` → ``[(step, value,
    wall_time), ...]`` in step order (TF1 ``simple_value`` scalars and TF2 scalar tensors).

    Raises:
        StepError: ``logdir`` is not a folder, or holds no event file.
    """
    _tb()
    from tensorboard.backend.event_processing import event_accumulator as ea
    from tensorboard.util import tensor_util

    root = Path(logdir)
    if not root.is_dir():
        raise StepError(f"{root} is not a TensorBoard log dir (no such folder)")
    folders = list(_event_folders(root))
    if not folders:
        raise StepError(f"{root} holds no TensorBoard event file (events.out.tfevents.*)")
    out: dict[str, list[tuple[int, float, float]]] = {}
    for folder in folders:
        rel = folder.relative_to(root).as_posix()
        prefix = "" if rel == "." else rel + "/"
        acc = ea.EventAccumulator(str(folder), size_guidance={ea.SCALARS: 0, ea.TENSORS: 0})
        acc.Reload()
        tags = acc.Tags()
        for tag in tags.get(ea.SCALARS, []):
            out[prefix + tag] = [(int(e.step), float(e.value), float(e.wall_time))
                                 for e in acc.Scalars(tag)]
        for tag in tags.get(ea.TENSORS, []):
            meta = acc.SummaryMetadata(tag)
            if meta.plugin_data.plugin_name != "scalars":
                continue
            points = []
            for e in acc.Tensors(tag):
                value = tensor_util.make_ndarray(e.tensor_proto)
                if getattr(value, "size", 0) == 1:
                    points.append((int(e.step), float(value.reshape(())), float(e.wall_time)))
            if points:
                out[prefix + tag] = points
    for points in out.values():
        points.sort(key=lambda p: (p[0], p[2]))
    return out


def log_tensorboard(
    logdir: str | os.PathLike[str], *, name: str | None = None, run: ActiveRun | None = None,
) -> TensorBoardLogs:
    """Take an existing TensorBoard log dir into the current run: its scalars become the
    run's series (``"<subfolder>/<tag>"``), the log dir a ``TensorBoardLogs`` artifact.

    Args:
        logdir: the folder TensorBoard was pointed at (``SummaryWriter``'s, Keras'
            ``TensorBoard(log_dir=...)``).
        name: the artifact's name (default: the folder's name).
        run: the run (default: the current one).

    Raises:
        StepError: outside a run, or no event file under ``logdir``.
        ImportError: the ``tensorboard`` extra is missing.
    """
    from lineage._active import current_run

    active = run or current_run()
    if active is None:
        raise StepError("log_tensorboard() takes a log dir into the current run; call it inside "
                        "a `with lineage.run(...)` block")
    series = read_logdir(logdir)
    buffer = active._buffer()
    final: dict[str, float] = {}
    for tag, points in series.items():
        buffer.add_points(tag, [p[0] for p in points], [p[1] for p in points],
                          [p[2] for p in points])
        if points:
            final[tag] = points[-1][1]
    active._merge(final)
    folder = Path(logdir).resolve()
    logs = active.store.put(TensorBoardLogs(folder, name=name or folder.name))
    assert isinstance(logs, TensorBoardLogs)
    active.flush_metrics()
    return logs
