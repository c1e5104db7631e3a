"""Metrics: ``log_metrics`` and ``log_confusion_matrix`` on the current step or run, and
reading them back with :func:`run_metrics`.

Final values (metric → the last value logged) are the typed ``metrics`` property of the
step's execution and of the run's context (a run's over the metrics logged on the run and
in its steps). Series (``step=``) and confusion matrices are buffered and written in
chunks (:mod:`lineage._series`): a call costs the same at any length of the series, and
what was logged is in the store at most about 5 seconds later, at the end of the step or
run, or when the process is told to stop. The series of each step call is kept on its own.
"""

from __future__ import annotations

import math
import time
import typing
from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING, Any

import attrs
from ml_metadata.proto import metadata_store_pb2 as pb

from lineage import _convert, _limits, _params, _series
from lineage._active import _CALL, _Call
from lineage._proto.lineage.v1 import metrics_pb2
from lineage.errors import StepError
from lineage.records import Run

if TYPE_CHECKING:
    from lineage.plot import Chart
    from lineage.store import Store

__all__ = [
    "ConfusionMatrix",
    "RunMetrics",
    "TrainingFigures",
    "confusion_chart",
    "confusion_matrices",
    "log_confusion_matrix",
    "log_metrics",
    "run_metrics",
    "step_metrics",
    "training_figures",
]

Points = list[tuple[int, Any]]
"""``[(step, value), ...]`` in logging order."""

# --- records ------------------------------------------------------------------------------


@attrs.define(eq=False)
class ConfusionMatrix:
    """One confusion matrix logged with :func:`log_confusion_matrix`.

    Example:
        >>> m = ConfusionMatrix(labels=[0, 1], matrix=[[5, 1], [0, 4]], step=3)
        >>> m.total, m.accuracy
        (10, 0.9)
        >>> print(m)
        true\\pred  0  1
        0          5  1
        1          0  4
    """

    labels: list[Any]
    """The class labels, in row and column order."""
    matrix: list[list[int]]
    """``matrix[i][j]``: how many of true label ``labels[i]`` were predicted ``labels[j]``."""
    step: int | None = None
    """The step (epoch) it was logged at, if any."""
    source: str = "run"
    """Who logged it: ``"run"``, or the step (``"train"``, ``"train#2"`` for its second call)."""
    name: str = ""
    """Its name when several are logged per step (``"val"``, ``"test"``)."""
    wall_time: float | None = None
    """When it was logged (seconds since the epoch)."""

    @property
    def total(self) -> int:
        """How many predictions it counts."""
        return sum(sum(row) for row in self.matrix)

    @property
    def accuracy(self) -> float:
        """The share on the diagonal (NaN when empty)."""
        total = self.total
        return sum(self.matrix[i][i] for i in range(len(self.matrix))) / total if total else math.nan

    def to_dict(self) -> dict[str, Any]:
        """JSON shape."""
        return {"labels": list(self.labels), "matrix": [list(r) for r in self.matrix],
                "step": self.step, "source": self.source, "name": self.name,
                "wall_time": self.wall_time}

    def chart(self, *, title: str | None = None, normalize: bool = False) -> Chart:
        """The matrix as a heatmap (:func:`lineage.plot.confusion_matrix`; needs the ``plot``
        extra): true labels by row, predicted by column."""
        from lineage.plot import confusion_matrix

        if title is None:
            title = "confusion matrix" + (f" {self.name}" if self.name else "") + (
                f" at step {self.step}" if self.step is not None else "") + (
                f" ({self.source})" if self.source not in ("", "run") else "")
        return confusion_matrix(self.matrix, self.labels, title=title, normalize=normalize)

    def _repr_svg_(self) -> str | None:
        """The heatmap in Jupyter; nothing without matplotlib."""
        from lineage.errors import RenderError

        try:
            return self.chart().to_svg()
        except RenderError:
            return None

    def to_pandas(self) -> Any:
        """A DataFrame: rows are true labels, columns predicted labels."""
        import pandas as pd

        return pd.DataFrame(self.matrix, index=pd.Index(self.labels, name="true"),
                            columns=pd.Index(self.labels, name="predicted"))

    def __str__(self) -> str:
        head = ["true\\pred", *(str(x) for x in self.labels)]
        rows = [[str(label), *(str(c) for c in row)]
                for label, row in zip(self.labels, self.matrix, strict=True)]
        widths = [max(len(r[i]) for r in [head, *rows]) for i in range(len(head))]
        return "\n".join("  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip()
                         for r in [head, *rows])


@attrs.define(eq=False)
class RunMetrics:
    """The metrics of a run (or of one step call): final values, series, confusion matrices.

    ``series`` has one curve per name, never two spliced together: a metric logged by one
    source (the run, or one step call) keeps its name; when several log the same name, the
    run's keeps it and each step's is named ``"<step>.<metric>"`` (``"train#2.loss"`` for the
    second call of ``train``). ``steps`` has every step call's series on its own.

    Example:
        >>> m = RunMetrics(final={"loss": 0.1}, series={"loss": [(0, 0.5), (1, 0.1)]})
        >>> m.to_dict()["series"]
        {'loss': [[0, 0.5], [1, 0.1]]}
    """

    final: dict[str, Any]
    """Metric → the last value logged (the run's and its steps')."""
    series: dict[str, Points]
    """Metric → ``[(step, value), ...]`` in logging order (see above for the names)."""
    steps: dict[str, dict[str, Points]] = attrs.field(factory=dict)
    """Step call (``"train"``, ``"train#2"``) → metric → its own series."""
    executions: dict[str, int] = attrs.field(factory=dict)
    """Step call label → its execution id."""
    matrices: list[ConfusionMatrix] = attrs.field(factory=list)
    """The confusion matrices, in logging order (run's first, then each step's)."""
    run_series: dict[str, Points] = attrs.field(factory=dict)
    """The series logged on the run itself (outside steps)."""

    def confusion_matrix(
        self, step: int | None = None, *, source: str | None = None, name: str | None = None
    ) -> ConfusionMatrix | None:
        """The latest confusion matrix (highest step, then last logged), or the one at
        ``step``; optionally only those of ``source`` (``"run"``, a step label) or ``name``."""
        found = [m for m in self.matrices
                 if (source is None or m.source == source) and (name is None or m.name == name)]
        if step is not None:
            found = [m for m in found if m.step == step]
        if not found:
            return None
        return max(enumerate(found), key=lambda p: (p[1].step if p[1].step is not None
                                                    else -math.inf, p[0]))[1]

    def _repr_svg_(self) -> str | None:
        """The curves in Jupyter (:func:`lineage.plot.curves`); nothing without series or
        without matplotlib."""
        if not self.series:
            return None
        from lineage.errors import RenderError
        from lineage.plot import curves

        try:
            return curves({"run": self.series}).to_svg()
        except RenderError:
            return None

    def _repr_html_(self) -> str | None:
        """In Jupyter: the curves and the latest confusion matrix as a heatmap."""
        parts = []
        curves_svg = self._repr_svg_()
        if curves_svg is not None:
            parts.append(curves_svg)
        latest = self.confusion_matrix()
        if latest is not None:
            matrix_svg = latest._repr_svg_()
            if matrix_svg is not None:
                parts.append(matrix_svg)
        return "".join(f"<div>{_svg_body(p)}</div>" for p in parts) if parts else None

    def to_dict(self) -> dict[str, Any]:
        """JSON shape: ``final``, ``series``, ``steps``, ``executions``, ``matrices``."""
        return {
            "final": self.final,
            "series": {k: [list(p) for p in v] for k, v in self.series.items()},
            "steps": {label: {k: [list(p) for p in v] for k, v in s.items()}
                      for label, s in self.steps.items()},
            "executions": dict(self.executions),
            "matrices": [m.to_dict() for m in self.matrices],
        }


def _svg_body(svg: str) -> str:
    """An SVG document without its XML prolog and doctype, to inline in HTML."""
    start = svg.find("<svg")
    return svg[start:] if start >= 0 else svg


# --- reading ------------------------------------------------------------------------------


def _points(series: Mapping[str, list[tuple[int, float]]]) -> dict[str, Points]:
    return {k: [(int(s), _number_out(v)) for s, v in pts] for k, pts in series.items()}


def _number_out(value: float) -> Any:
    return int(value) if value.is_integer() and abs(value) < 2**53 else value


def _matrices(raw: Iterable[metrics_pb2.ConfusionMatrix], source: str) -> list[ConfusionMatrix]:
    out = []
    for m in raw:
        labels = [_series.label_value(t) for t in m.labels]
        n = len(labels)
        counts = list(m.counts)
        out.append(ConfusionMatrix(
            labels=labels, matrix=[counts[i * n:(i + 1) * n] for i in range(n)],
            step=m.step if m.HasField("step") else None, source=source, name=m.name,
            wall_time=m.wall_time or None))
    return out


def _inline(proto: pb.Execution | pb.Context) -> list[metrics_pb2.MetricChunk]:
    value = proto.properties.get("metric_series")
    chunk = _series.unpack_value(value) if value is not None else None
    return [chunk] if chunk is not None else []


def _final_of(proto: pb.Execution | pb.Context) -> dict[str, Any]:
    value = proto.properties.get(_convert.METRICS_PACKED) or proto.properties.get("metrics")
    found = _convert.from_value(value) if value is not None else None
    return dict(found) if isinstance(found, dict) else {}


def _step_chunks(
    store: Store, execution: pb.Execution, type_id: int | None,
    by_parent: dict[int, dict[str, list[pb.Context]]],
) -> list[metrics_pb2.MetricChunk]:
    """The chunks and inline tail of one step call (a CACHED call: those of the call whose
    outputs it reused, whose tail it carries)."""
    source = execution.id
    cached = execution.properties.get("cached_from")
    if cached is not None and cached.int_value:
        source = cached.int_value
    owner = _series.owner_of_execution(source)
    run_value = execution.properties.get("run_context")
    if source != execution.id:
        original = store._call("get_executions_by_id", [source])
        run_value = original[0].properties.get("run_context") if original else None
    if run_value is not None and run_value.int_value:
        parent = run_value.int_value
        if parent not in by_parent:
            by_parent[parent] = _series.read_children(store, parent, type_id)
        contexts = by_parent[parent].get(owner, [])
    else:
        contexts = _series.holder_chunks(store, owner, type_id)
    return [*_series.chunks_of(contexts), *_inline(execution)]


def run_metrics(store: Store, ref: str | int | Run) -> RunMetrics:
    """The final metrics, series and confusion matrices of a run, each step's on its own.

    A few batched reads whatever the length of the series: the run, its chunk records (one
    call for the run and its steps) and its executions.

    Example:
        >>> import lineage
        >>> store = lineage.connect(":memory:")
        >>> with lineage.run("r", store=store):
        ...     for epoch in range(3):
        ...         lineage.log_metrics({"loss": 1 / (epoch + 1)}, step=epoch)
        >>> m = lineage.run_metrics(store, "r")
        >>> m.final["loss"], [s for s, _v in m.series["loss"]]
        (0.3333333333333333, [0, 1, 2])
    """
    ctx = store._resolve_run(ref)
    type_id = _series.chunk_type_id(store)
    by_parent = {ctx.id: _series.read_children(store, ctx.id, type_id)}
    run_owner = _series.owner_of_run(ctx.id)
    run_raw, run_mats = _series.decode(
        [*_series.chunks_of(by_parent[ctx.id].get(run_owner, [])), *_inline(ctx)])
    result = RunMetrics(final=_final_of(ctx), series={}, run_series=_points(run_raw),
                        matrices=_matrices(run_mats, "run"))
    executions = sorted(store._call("get_executions_by_context", ctx.id, missing=[]),
                        key=lambda e: e.id)
    types = store._types("execution", {e.type_id for e in executions})
    seen: dict[str, int] = {}
    for execution in executions:
        etype = types.get(execution.type_id)
        name = etype.name if etype is not None else f"type#{execution.type_id}"
        chunks = _step_chunks(store, execution, type_id, by_parent)
        if not chunks:
            continue
        raw, mats = _series.decode(chunks)
        seen[name] = seen.get(name, 0) + 1
        label = name if seen[name] == 1 else f"{name}#{seen[name]}"
        if raw:
            result.steps[label] = _points(raw)
        result.executions[label] = int(execution.id)
        result.matrices.extend(_matrices(mats, label))
    result.series = _merged(result.run_series, result.steps)
    return result


def confusion_matrices(store: Store, ref: str | int | Run) -> list[ConfusionMatrix]:
    """The confusion matrices a run and its steps logged, oldest first (what the web UI and
    ``lineage plot --confusion-matrix`` draw).

    Example:
        >>> import lineage
        >>> store = lineage.connect(":memory:")
        >>> with lineage.run("r", store=store):
        ...     for epoch in range(2):
        ...         _ = lineage.log_confusion_matrix([0, 1], [0, epoch], step=epoch)
        >>> [(m.step, m.matrix) for m in confusion_matrices(store, "r")]
        [(0, [[1, 0], [1, 0]]), (1, [[1, 0], [0, 1]])]
    """
    found = run_metrics(store, ref).matrices
    return sorted(found, key=lambda m: m.wall_time or 0.0)


def confusion_chart(
    store: Store, ref: str | int | Run, step: int | None = None, *, name: str | None = None,
    normalize: bool = False,
) -> Chart:
    """The latest confusion matrix of a run (or the one of ``step``) as a heatmap.

    Raises:
        NotFound: the run logged none (at that step). RenderError: no matplotlib.

    Example:
        >>> import lineage
        >>> store = lineage.connect(":memory:")
        >>> with lineage.run("r", store=store):
        ...     _ = lineage.log_confusion_matrix(["cat", "dog"], ["cat", "cat"], step=3)
        >>> confusion_chart(store, "r").title
        'confusion matrix at step 3'
    """
    found = run_metrics(store, ref).confusion_matrix(step, name=name)
    if found is None:
        from lineage.errors import NotFound

        at = f" at step {step}" if step is not None else ""
        raise NotFound(f"run {ref!r} logged no confusion matrix{at}", ref=ref)
    return found.chart(normalize=normalize)


@attrs.define(eq=False)
class TrainingFigures:
    """What an audit report shows of a run's training: its curves and latest matrix."""

    run: str
    """The run's name."""
    final: dict[str, Any]
    """Its final metrics."""
    curves_svg: str | None = None
    """The curves (inline SVG), None without series or without matplotlib."""
    matrix: ConfusionMatrix | None = None
    """The latest confusion matrix."""
    matrix_svg: str | None = None
    """It as a heatmap (inline SVG), None without matplotlib."""


def training_figures(store: Store, runs: Iterable[int], *, limit: int = 3) -> list[TrainingFigures]:
    """The curves and latest confusion matrix of each run (context ids) that logged any
    (at most ``limit`` runs): what the audit report of a model shows of the runs that
    trained it.

    Example:
        >>> import lineage
        >>> training_figures(lineage.connect(":memory:"), [])
        []
    """
    from lineage.errors import RenderError

    out: list[TrainingFigures] = []
    for run_id in dict.fromkeys(runs):
        if len(out) >= limit:
            break
        m = run_metrics(store, run_id)
        if not m.series and not m.matrices:
            continue
        [ctx] = store._call("get_contexts_by_id", [run_id])
        figures = TrainingFigures(run=ctx.name, final=dict(m.final),
                                  matrix=m.confusion_matrix())
        try:
            from lineage.plot import curves

            if m.series:
                figures.curves_svg = _svg_body(curves({ctx.name: m.series}).to_svg())
            if figures.matrix is not None:
                figures.matrix_svg = _svg_body(figures.matrix.chart().to_svg())
        except (RenderError, ImportError):
            pass
        out.append(figures)
    return out


def step_metrics(store: Store, execution_id: int) -> RunMetrics:
    """The metrics of one step call (its ``final`` values, ``series`` and matrices).

    Example:
        >>> import lineage
        >>> store = lineage.connect(":memory:")
        >>> @lineage.step(store=store)
        ... def fit(epochs: int = 2) -> None:
        ...     for epoch in range(epochs):
        ...         lineage.log_metrics({"loss": 1.0 / (epoch + 1)}, step=epoch)
        >>> fit()
        >>> step_metrics(store, store.executions(step="fit")[0].id).series
        {'loss': [(0, 1), (1, 0.5)]}
    """
    found = store._call("get_executions_by_id", [execution_id])
    if not found:
        from lineage.errors import NotFound

        raise NotFound(f"no execution with id {execution_id} in {store.uri}", ref=execution_id)
    execution = found[0]
    types = store._types("execution", [execution.type_id])
    etype = types.get(execution.type_id)
    label = etype.name if etype is not None else f"type#{execution.type_id}"
    raw, mats = _series.decode(_step_chunks(store, execution, _series.chunk_type_id(store), {}))
    series = _points(raw)
    return RunMetrics(final=_final_of(execution), series=series,
                      steps={label: series} if series else {},
                      executions={label: int(execution.id)},
                      matrices=_matrices(mats, label))


def _merged(run_series: dict[str, Points], steps: dict[str, dict[str, Points]]) -> dict[str, Points]:
    sources: dict[str, int] = {}
    for name in run_series:
        sources[name] = sources.get(name, 0) + 1
    for series in steps.values():
        for name in series:
            sources[name] = sources.get(name, 0) + 1
    out = dict(run_series)
    for label, series in steps.items():
        for name, points in series.items():
            out[name if sources[name] == 1 else f"{label}.{name}"] = points
    return out


# --- logging ------------------------------------------------------------------------------


def _number(name: str, value: Any) -> float | int:
    ok, scalar = _params._scalar(value)
    if not ok or isinstance(scalar, (bool, str)) or scalar is None:
        raise StepError(
            f"metric {name!r} is {value!r}; metrics are numbers (log text with log_params)"
        )
    if isinstance(scalar, int) and not -_SAFE_INT < scalar < _SAFE_INT:
        raise StepError(
            f"metric {name!r} is {scalar}, an int beyond 2**53: metric series keep doubles, "
            "which would not hold it exactly; log it with log_params"
        )
    return typing.cast(float | int, scalar)


_SAFE_INT = 2**53


def _check_step(step_index: Any) -> int | None:
    if step_index is None or type(step_index) is int:
        return step_index
    ok, scalar = _params._scalar(step_index)
    if not ok or not isinstance(scalar, int) or isinstance(scalar, bool):
        raise StepError(f"step={step_index!r}: the step of a metric is an int (the epoch)")
    return scalar


def _check_metrics(values: Any, step_index: Any) -> dict[str, float | int]:
    if type(values) is not dict and not isinstance(values, Mapping):
        raise StepError(
            f"log_metrics takes a dict of name → number, got {type(values).__name__}; "
            "e.g. log_metrics({'acc': 0.93})"
        )
    if step_index is not None and type(step_index) is not int:
        _check_step(step_index)
    out: dict[str, float | int] = {}
    for key, value in values.items():
        name = key if type(key) is str else str(key)
        _limits.check_name(name, "metric name", StepError)
        kind = type(value)
        if kind is float or (kind is int and -_SAFE_INT < value < _SAFE_INT):  # common case
            out[name] = value
        else:
            out[name] = _number(name, value)
    return out


def step_buffer(call: _Call) -> _series.Buffer:
    """The buffer of a step call's series (made on its first point)."""
    buffer: _series.Buffer | None = call.buffer
    if buffer is None:
        with call.lock:  # threads of one step call share its buffer
            buffer = call.buffer
            if buffer is None:
                run = call.run
                buffer = _series.Buffer(
                    call.store, _series.owner_of_execution(int(call.proto.id)),
                    step=call.spec.name,
                    run_context_id=int(run.context.id) if run is not None and run.context.id
                    else None,
                )
                call.buffer = buffer
        _series.watch(buffer)
    return buffer


def log_metrics(values: Mapping[str, Any], step: int | None = None) -> None:
    """Record metric values on the current step or, outside steps, on the run.

    Each call sets the metric's final value; with ``step=`` (an epoch, a batch) it also adds
    ``(step, value)`` to the metric's series, so the whole curve is kept. A call costs the
    same however long the series: points are buffered and written at least every 5 seconds,
    at the end of the step or run, and on SIGTERM/SIGINT. The final values of a step are
    added to its run's.

    Raises:
        StepError: not numbers, or called outside any step and run.

    Example:
        >>> import lineage
        >>> store = lineage.connect(":memory:")
        >>> @lineage.step(store=store)
        ... def fit(epochs: int = 2) -> None:
        ...     for epoch in range(epochs):
        ...         lineage.log_metrics({"loss": 1.0 / (epoch + 1)}, step=epoch)
        >>> fit()
        >>> store.executions(step="fit")[0].properties["metrics"]
        {'loss': 0.5}
    """
    checked = _check_metrics(values, step)
    if step is not None and type(step) is not int:
        step = _check_step(step)
    call = _CALL.get()
    if call is not None:
        with call.lock:
            call.metrics.update(checked)
        if step is not None and checked:
            step_buffer(call).add(step, checked)
        return
    from lineage.runs import run_for_logging

    active = run_for_logging()
    if active is None:
        raise StepError(
            "log_metrics() records on the current step or run; call it inside a "
            "@lineage.step function or a `with lineage.run(...)` block (or set $LINEAGE_RUN)"
        )
    active._log_checked(checked, step)


def _labels_of(y_true: list[Any], y_pred: list[Any]) -> list[Any]:
    found = set(y_true) | set(y_pred)
    try:
        return sorted(found)
    except TypeError:
        raise StepError(
            "log_confusion_matrix: the labels mix types that cannot be sorted "
            f"({sorted({type(x).__name__ for x in found})}); pass labels=[...] in the order "
            "wanted"
        ) from None


def _plain(values: Any, what: str) -> list[Any]:
    if isinstance(values, (str, bytes)) or not isinstance(values, Iterable):
        raise StepError(f"log_confusion_matrix: {what} is a sequence of labels, got "
                        f"{type(values).__name__}")
    out = []
    for v in (values.tolist() if hasattr(values, "tolist") else values):
        ok, scalar = _params._scalar(v)
        out.append(scalar if ok else v)
    return out


#: The largest confusion matrix accepted (cells): 500 classes. A matrix is kept whole in one
#: record (about 1 MB at most here, far below MariaDB's 16 MB packets and columns).
MAX_CELLS = 250_000


def log_confusion_matrix(
    y_true: Iterable[Any], y_pred: Iterable[Any], labels: Iterable[Any] | None = None,
    step: int | None = None, *, name: str = "",
) -> ConfusionMatrix:
    """Record the confusion matrix of predictions on the current step or run.

    One matrix per call (per epoch with ``step=``), kept in MLMD with the metric series and
    read back with :func:`run_metrics` (``.matrices``, ``.confusion_matrix(step)``). Rows are
    true labels, columns predicted ones, in the order of ``labels`` (default: every label
    seen, sorted, as scikit-learn's ``confusion_matrix``); pairs with a label not in
    ``labels`` are not counted.

    Raises:
        StepError: lengths differ, labels that cannot be sorted, or outside steps and runs.

    Example:
        >>> import lineage
        >>> store = lineage.connect(":memory:")
        >>> with lineage.run("cm", store=store):
        ...     _ = lineage.log_confusion_matrix([0, 1, 1, 0], [0, 1, 0, 0], step=1)
        >>> print(lineage.run_metrics(store, "cm").confusion_matrix())
        true\\pred  0  1
        0          2  0
        1          1  1
    """
    truth = _plain(y_true, "y_true")
    predicted = _plain(y_pred, "y_pred")
    if len(truth) != len(predicted):
        raise StepError(f"log_confusion_matrix: y_true has {len(truth)} labels and y_pred "
                        f"{len(predicted)}; give one prediction per true label")
    order = _plain(labels, "labels") if labels is not None else _labels_of(truth, predicted)
    if len(set(order)) != len(order):
        raise StepError(f"log_confusion_matrix: labels={order!r} repeats a label")
    if len(order) ** 2 > MAX_CELLS:
        raise StepError(f"log_confusion_matrix: {len(order)} labels is too many to keep "
                        f"(at most {math.isqrt(MAX_CELLS)})")
    checked_step = _check_step(step)
    index = {label: i for i, label in enumerate(order)}
    n = len(order)
    counts = [0] * (n * n)
    for t, p in zip(truth, predicted, strict=True):
        i, j = index.get(t), index.get(p)
        if i is not None and j is not None:
            counts[i * n + j] += 1
    record = metrics_pb2.ConfusionMatrix(
        labels=[_series.label_text(x) for x in order], counts=counts, wall_time=time.time(),
        name=str(name))
    if checked_step is not None:
        record.step = checked_step
    call = _CALL.get()
    if call is not None:
        step_buffer(call).add_matrix(record)
        source = call.spec.name
    else:
        from lineage.runs import run_for_logging

        active = run_for_logging()
        if active is None:
            raise StepError(
                "log_confusion_matrix() records on the current step or run; call it inside a "
                "@lineage.step function or a `with lineage.run(...)` block (or set "
                "$LINEAGE_RUN)"
            )
        active._buffer().add_matrix(record)
        source = "run"
    return _matrices([record], source)[0]
