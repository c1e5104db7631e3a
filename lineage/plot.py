"""Pictures of experiments: metric curves and confusion matrices, drawn with matplotlib.

- :func:`plot_runs` draws the curves of runs (and of single steps, ``"execution:12"``)
  from the store: one panel per metric, one line per run, a legend naming the runs, the
  logged step on the x axis. ``lineage plot RUN... [--metric NAME]... -o FILE`` is the
  same from the shell.
- :func:`curves` draws the same from series you hold (run label → metric → points), so
  anything that yields ``(step, value)`` points can be overlaid.
- :func:`confusion_matrix` draws a confusion matrix (a square of counts and its labels)
  as a heatmap.

Each returns a :class:`Chart` (``.to_svg()``, ``.to_png()``, ``.save(path)``, displayed
in Jupyter). Drawing uses matplotlib's Agg-family backends and never pyplot (no global
figure state, safe in a server's threads). The SVG is deterministic: ids are salted with a
fixed ``svg.hashsalt``, no date is written and text stays text (``svg.fonttype`` none), so
the same store gives byte-identical files. Run names are drawn as given: ``$`` does not
start matplotlib's math mode and a leading ``_`` does not hide a legend entry.

matplotlib is the ``plot`` extra (``pip install 'mlmd-lineage[plot]'``); without it these
functions raise :class:`~lineage.errors.RenderError` saying so.
"""

from __future__ import annotations

import io
import math
import os
import threading
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import attrs

from lineage.errors import InvalidRef, RenderError

if TYPE_CHECKING:
    from matplotlib.figure import Figure

    from lineage.records import Run
    from lineage.store import Store

__all__ = ["FORMATS", "Chart", "confusion_matrix", "curves", "plot_runs", "series_of"]

#: File formats a chart can be saved as.
FORMATS = ("svg", "png", "pdf")
#: Metric → points, as ``RunMetrics.series``.
Series = Mapping[str, Sequence[Sequence[Any]]]

_SALT = "lineage"
_RC = {
    "svg.hashsalt": _SALT,
    "svg.fonttype": "none",
    "font.family": "DejaVu Sans",
    "font.size": 9.0,
    "axes.grid": True,
    "grid.alpha": 0.3,
    "axes.spines.top": False,
    "axes.spines.right": False,
    "text.usetex": False,
}
_METADATA = {"svg": {"Date": None}, "pdf": {"CreationDate": None, "ModDate": None},
             "png": {}}
_LOCK = threading.Lock()  # rcParams are global: one save at a time
_INSTALL = ("curves need matplotlib, the 'plot' extra: pip install 'mlmd-lineage[plot]' "
            "(or pip install matplotlib)")


def _matplotlib() -> Any:
    try:
        import matplotlib
        from matplotlib.figure import Figure  # noqa: F401  (imported for its side effect check)
    except ImportError as exc:
        raise RenderError(_INSTALL) from exc
    return matplotlib


def _ticker() -> Any:
    from matplotlib import ticker

    return ticker


def _new_figure(width: float, height: float) -> Figure:
    _matplotlib()
    from matplotlib.figure import Figure

    with _LOCK:
        import matplotlib

        with matplotlib.rc_context(_RC):
            return Figure(figsize=(width, height), layout="constrained")


def _safe_text(text: Any) -> str:
    """A label drawn literally: ``$`` escaped (no math mode), a leading ``_`` kept visible."""
    out = str(text).replace("$", r"\$")
    out = "".join(c if c.isprintable() else "\ufffd" for c in out)
    if len(out) > 80:
        out = out[:39] + "\u2026" + out[-40:]
    return "\u200b" + out if out.startswith("_") else out


@attrs.define(eq=False)
class Chart:
    """A picture: a matplotlib ``Figure`` with deterministic file output.

    Example:
        >>> chart = curves({"baseline": {"loss": [(0, 1.0), (1, 0.5)]}})
        >>> svg = chart.to_svg()
        >>> svg.startswith("<?xml") and "baseline" in svg and svg == chart.to_svg()
        True
    """

    figure: Figure
    """The matplotlib figure (change it freely before saving)."""
    title: str | None = None
    """What the chart shows."""

    def _bytes(self, fmt: str, dpi: int | None = None) -> bytes:
        import matplotlib

        buf = io.BytesIO()
        with _LOCK, matplotlib.rc_context(_RC):
            self.figure.savefig(buf, format=fmt, metadata=_METADATA[fmt],
                                dpi=dpi or (100 if fmt == "png" else "figure"))
        return buf.getvalue()

    def to_svg(self) -> str:
        """The chart as SVG text (the same data gives the same bytes)."""
        return self._bytes("svg").decode("utf-8")

    def to_png(self, dpi: int = 100) -> bytes:
        """The chart as PNG bytes."""
        return self._bytes("png", dpi)

    def to_pdf(self) -> bytes:
        """The chart as PDF bytes (no creation date)."""
        return self._bytes("pdf")

    def save(self, path: str | os.PathLike[str], format: str | None = None) -> Path:
        """Write the chart; the format comes from the suffix (``.svg``, ``.png``, ``.pdf``).

        Raises:
            RenderError: an unknown format, or the file cannot be written.
        """
        target = Path(path)
        fmt = (format or target.suffix.lstrip(".")).lower()
        if fmt not in FORMATS:
            raise RenderError(f"unknown chart format {fmt or '(none)'!r} for {target}: use a "
                              ".svg, .png or .pdf file name")
        data = self._bytes(fmt)
        try:
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(data)
        except OSError as exc:
            raise RenderError(f"cannot write the chart to {target}: {exc}") from exc
        return target

    def _repr_svg_(self) -> str:
        return self.to_svg()

    def __repr__(self) -> str:
        return f"<Chart {self.title or ''}>".replace(" >", ">")


def _points(raw: Sequence[Sequence[Any]]) -> tuple[list[float], list[float]]:
    xs: list[float] = []
    ys: list[float] = []
    for point in raw:
        if len(point) != 2:
            continue
        step, value = point
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            continue
        if isinstance(step, bool) or not isinstance(step, (int, float)):
            continue
        xs.append(float(step))
        ys.append(float(value) if math.isfinite(value) else math.nan)
    return xs, ys


def curves(
    series: Mapping[str, Series],
    metrics: Sequence[str] | None = None,
    *,
    title: str | None = None,
    width: float = 6.4,
) -> Chart:
    """Draw metric curves: one panel per metric, one line per label (a run, a step).

    Args:
        series: label → metric → ``[(step, value), ...]`` (``RunMetrics.series``).
        metrics: which metrics, in this order; default every metric of any label, sorted.
        title: a caption over the panels.
        width: figure width in inches (each panel is 2.6 inches high).

    Raises:
        RenderError: matplotlib is missing, or a metric asked for is in no series.

    Example:
        >>> chart = curves({"a": {"loss": [(0, 1.0), (1, 0.4)]},
        ...                 "b": {"loss": [(0, 0.9), (1, 0.3)], "acc": [(1, 0.8)]}})
        >>> [ax.get_title(loc="left") for ax in chart.figure.axes]
        ['acc', 'loss']
    """
    available = sorted({m for per in series.values() for m in per})
    if metrics:
        unknown = [m for m in metrics if m not in available]
        if unknown:
            raise RenderError(
                f"no series for metric(s) {', '.join(map(repr, unknown))}; the runs have "
                f"{', '.join(available) or 'no series (metrics logged with step=)'}")
        chosen = list(dict.fromkeys(metrics))
    else:
        chosen = available
    panels = max(len(chosen), 1)
    figure = _new_figure(width, 0.6 + 2.6 * panels)
    if not chosen:
        ax = figure.add_subplot(1, 1, 1)
        ax.set_axis_off()
        ax.text(0.5, 0.5, "no metric series (log metrics with step=)", ha="center",
                va="center", color="#6b7280")
    axes = [figure.add_subplot(panels, 1, i + 1) for i in range(len(chosen))]
    for ax, metric in zip(axes, chosen, strict=True):
        ax.set_title(_safe_text(metric), loc="left", fontsize=10)
        ax.set_xlabel("step")
        ax.xaxis.set_major_locator(_ticker().MaxNLocator(integer=True))
        drawn = 0
        for index, (label, per) in enumerate(series.items()):
            if metric not in per:
                continue
            xs, ys = _points(per[metric])
            if not xs:
                continue
            ax.plot(xs, ys, label=_safe_text(label), linewidth=1.4,
                    marker="o" if len(xs) <= 30 else None, markersize=3,
                    gid=f"curve_{chosen.index(metric)}_{index}")  # <g id="curve_m_r"> in SVG
            drawn += 1
        if drawn:
            ax.legend(loc="best", fontsize=8, frameon=False)
    if title:
        figure.suptitle(_safe_text(title), fontsize=11)
    return Chart(figure=figure, title=title or ", ".join(chosen))


def _labels_of(refs: Sequence[Any], names: Sequence[str]) -> list[str]:
    """Legend labels: each run's name, with its ref when two runs share a name."""
    seen: dict[str, int] = {}
    for name in names:
        seen[name] = seen.get(name, 0) + 1
    return [name if seen[name] == 1 else f"{name} ({ref})"
            for ref, name in zip(refs, names, strict=True)]


def series_of(store: Store, ref: str | int | Run) -> tuple[str, dict[str, list[tuple[int, Any]]]]:
    """The label and metric series of a run, or of one step (``"execution:12"``).

    Raises:
        NotFound: nothing has that reference. InvalidRef: a malformed ``execution:`` ref.

    Example:
        >>> import lineage
        >>> store = lineage.connect(":memory:")
        >>> with lineage.run("r", store=store):
        ...     lineage.log_metrics({"loss": 0.5}, step=0)
        >>> series_of(store, "r")
        ('r', {'loss': [(0, 0.5)]})
    """
    if isinstance(ref, str) and ref.startswith("execution:"):
        try:
            eid = int(ref.split(":", 1)[1])
        except ValueError:
            raise InvalidRef(f"{ref!r}: expected execution:<id>", ref=ref) from None
        found = store.executions_by_id([eid])
        if eid not in found:
            from lineage.errors import NotFound

            raise NotFound(f"no execution with id {eid} in {store.uri}", ref=ref)
        ex = found[eid]
        from lineage.metrics import step_metrics  # its chunks and its last points

        return f"{ex.name} ({ex.ref})", step_metrics(store, eid).series
    from lineage.metrics import run_metrics

    ctx = store._resolve_run(ref)
    return ctx.name, run_metrics(store, ctx.id).series


def plot_runs(
    store: Store,
    runs: Sequence[str | int | Run],
    metrics: Sequence[str] | None = None,
    path: str | os.PathLike[str] | None = None,
    *,
    format: str | None = None,
    title: str | None = None,
) -> Chart | Path:
    """Draw the metric curves of runs (and steps) overlaid, one line per run and metric.

    Args:
        store: the store to read.
        runs: run references (a name, ``context:12``, an id) or steps (``execution:12``).
        metrics: which metrics; default all that any of them logged with ``step=``.
        path: write the chart there (``.svg``, ``.png``, ``.pdf``); else return the Chart.
        format: the file format, overriding the suffix.
        title: a caption.

    Raises:
        NotFound: a run names nothing. RenderError: matplotlib is missing, a metric is
        in no series, or the file cannot be written.

    Example:
        >>> import lineage
        >>> store = lineage.connect(":memory:")
        >>> for lr in (0.1, 0.2):
        ...     with lineage.run(f"lr-{lr}", store=store):
        ...         for epoch in range(3):
        ...             lineage.log_metrics({"loss": lr / (epoch + 1)}, step=epoch)
        >>> chart = lineage.plot.plot_runs(store, ["lr-0.1", "lr-0.2"])
        >>> [t.get_text() for t in chart.figure.axes[0].get_legend().get_texts()]
        ['lr-0.1', 'lr-0.2']
    """
    if isinstance(runs, (str, int)):
        raise InvalidRef("plot_runs() takes a list of runs, e.g. ['baseline', 'tuned']", ref=runs)
    if not runs:
        raise InvalidRef("plot_runs() needs at least one run", ref=runs)
    named = [series_of(store, ref) for ref in runs]
    labels = _labels_of([str(r) for r in runs], [name for name, _ in named])
    chart = curves({label: s for label, (_, s) in zip(labels, named, strict=True)}, metrics,
                   title=title)
    if path is None:
        return chart
    return chart.save(path, format)


def confusion_matrix(
    matrix: Sequence[Sequence[float]],
    labels: Sequence[Any] | None = None,
    *,
    title: str | None = None,
    normalize: bool = False,
) -> Chart:
    """Draw a confusion matrix as a heatmap: true class by row, predicted class by column.

    Args:
        matrix: a square of counts, ``matrix[i][j]`` = examples of class i predicted as j
            (a list of lists or a 2-D numpy array).
        labels: the class names, in row order; default ``0, 1, ...``.
        title: a caption (default ``"confusion matrix"``).
        normalize: colour and label each row as fractions of its total.

    Raises:
        RenderError: not a square of numbers, labels of another length, or no matplotlib.

    Example:
        >>> chart = confusion_matrix([[5, 1], [2, 7]], labels=["cat", "dog"])
        >>> "cat" in chart.to_svg()
        True
    """
    rows = [list(r) for r in (matrix.tolist() if hasattr(matrix, "tolist") else matrix)]
    n = len(rows)
    if n == 0 or any(len(r) != n for r in rows) or any(
            isinstance(v, bool) or not isinstance(v, (int, float)) for r in rows for v in r):
        raise RenderError("a confusion matrix is a non-empty square of numbers "
                          "(matrix[true][predicted])")
    names = [str(x) for x in labels] if labels is not None else [str(i) for i in range(n)]
    if len(names) != n:
        raise RenderError(f"{len(names)} labels for a {n}x{n} confusion matrix")
    values = rows
    if normalize:
        values = [[v / sum(r) if sum(r) else 0.0 for v in r] for r in rows]
    size = min(2.4 + 0.45 * n, 12.0)
    figure = _new_figure(size + 1.0, size)
    ax = figure.add_subplot(1, 1, 1)
    image = ax.imshow(values, cmap="Blues", interpolation="nearest")
    figure.colorbar(image, ax=ax, shrink=0.8)
    ticks = list(range(n))
    ax.set_xticks(ticks, [_safe_text(x) for x in names], rotation=45, ha="right")
    ax.set_yticks(ticks, [_safe_text(x) for x in names])
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    ax.grid(False)
    top = max((v for r in values for v in r), default=0) or 1
    if n <= 30:
        for i, r in enumerate(values):
            for j, v in enumerate(r):
                text = f"{v:.2f}" if normalize else (f"{v:g}" if isinstance(v, float) else str(v))
                ax.text(j, i, text, ha="center", va="center", fontsize=8,
                        color="white" if v > top / 2 else "#111827")
    caption = title or "confusion matrix"
    ax.set_title(_safe_text(caption), loc="left", fontsize=10)
    return Chart(figure=figure, title=caption)
