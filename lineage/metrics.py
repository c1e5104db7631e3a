"""Metrics: ``log_metrics`` on the current step or run, and reading them back.

A step's metrics are typed properties of its execution (``metrics``: name → last value,
``metric_series``: name → ``[[step, value], ...]``); a run's are the same properties of its
context, over the metrics logged on the run and in its steps.
"""

from __future__ import annotations

import typing
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

import attrs

from lineage import _convert, _params
from lineage._active import _CALL, current_run
from lineage.errors import StepError
from lineage.records import Run

if TYPE_CHECKING:
    from lineage.store import Store

__all__ = ["RunMetrics", "log_metrics", "run_metrics"]

# --- runs --------------------------------------------------------------------------------


@attrs.define(eq=False)
class RunMetrics:
    """The metrics of a run or step: final values and the series logged with ``step=``.

    Example:
        >>> RunMetrics(final={"loss": 0.1}, series={"loss": [(0, 0.5), (1, 0.1)]}).to_dict()
        {'final': {'loss': 0.1}, 'series': {'loss': [[0, 0.5], [1, 0.1]]}}
    """

    final: dict[str, Any]
    """Metric → the last value logged."""
    series: dict[str, list[tuple[int, Any]]]
    """Metric → ``[(step, value), ...]`` in logging order."""

    def to_dict(self) -> dict[str, Any]:
        """JSON shape."""
        return {"final": self.final, "series": {k: [list(p) for p in v] for k, v in self.series.items()}}

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


def run_metrics(store: Store, ref: str | int | Run) -> RunMetrics:
    """The final metrics and metric series of a run.

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
    final = _convert.from_value(ctx.properties["metrics"]) if "metrics" in ctx.properties else {}
    raw = (
        _convert.from_value(ctx.properties["metric_series"])
        if "metric_series" in ctx.properties else {}
    )
    series = {k: [(int(s), v) for s, v in points] for k, points in (raw or {}).items()}
    return RunMetrics(final=dict(final or {}), series=series)


def _number(name: str, value: Any) -> float | int:
    ok, scalar = _params._scalar(value)
    if not ok or isinstance(scalar, (bool, str)) or scalar is None:
        raise StepError(
            f"metric {name!r} is {value!r}; metrics are numbers (log text with log_params)"
        )
    return typing.cast(float | int, scalar)


def _check_metrics(values: Any, step_index: Any) -> dict[str, float | int]:
    if not isinstance(values, Mapping):
        raise StepError(
            f"log_metrics takes a dict of name → number, got {type(values).__name__}; "
            "e.g. log_metrics({'acc': 0.93})"
        )
    if step_index is not None and (isinstance(step_index, bool) or not isinstance(step_index, int)):
        ok, scalar = _params._scalar(step_index)
        if not ok or not isinstance(scalar, int) or isinstance(scalar, bool):
            raise StepError(f"step={step_index!r}: the step of a metric is an int (the epoch)")
    return {str(k): _number(str(k), v) for k, v in values.items()}
def log_metrics(values: Mapping[str, Any], step: int | None = None) -> None:
    """Record metric values on the current step or, outside steps, on the run.

    Each call sets the metric's final value; with ``step=`` (an epoch, a batch) it also
    appends ``(step, value)`` to the metric's series, so the whole curve is kept. Metrics
    of a step are added to its run too.

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
        >>> store.executions(step="fit")[0].properties["metric_series"]
        {'loss': [[0, 1], [1, 0.5]]}
    """
    checked = _check_metrics(values, step)
    call = _CALL.get()
    if call is not None:
        with call.lock:
            call.metrics.update(checked)
            if step is not None:
                for key, value in checked.items():
                    call.series.setdefault(key, []).append([int(step), value])
        return
    active = current_run()
    if active is None:
        raise StepError(
            "log_metrics() records on the current step or run; call it inside a "
            "@lineage.step function or a `with lineage.run(...)` block"
        )
    active.log_metrics(checked, step)
