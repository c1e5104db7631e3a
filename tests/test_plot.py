"""Curves and confusion matrices: deterministic SVG, one line per run and metric, errors."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

import lineage
from lineage.cli import main
from lineage.plot import confusion_matrix, curves


def _runs(store: lineage.Store) -> None:
    @lineage.step(store=store)
    def fit(lr: float = 0.1) -> None:
        for epoch in range(4):
            lineage.log_metrics({"loss": lr / (epoch + 1), "acc": 0.5 + lr * epoch}, step=epoch)

    for name, lr in (("slow", 0.1), ("fast", 0.3), ("$math$ <b>", 0.2)):
        with lineage.run(name, experiment="e", store=store):
            fit(lr=lr)


def _lines(svg: str) -> int:
    """Drawn curves: each is a <g id="curve_<metric>_<run>"> (the line's gid)."""
    return len(re.findall(r'<g id="curve_\d+_\d+">', svg))


def test_one_line_per_run_and_metric_and_a_legend_naming_runs(sqlite_store: lineage.Store) -> None:
    _runs(sqlite_store)
    chart = sqlite_store.plot(["slow", "fast", "$math$ <b>"])
    assert not isinstance(chart, Path)
    svg = chart.to_svg()
    axes = chart.figure.axes
    assert [ax.get_title(loc="left") for ax in axes] == ["acc", "loss"]
    for ax in axes:
        assert len(ax.get_lines()) == 3
        assert [t.get_text() for t in ax.get_legend().get_texts()] == \
            ["slow", "fast", r"\$math\$ <b>"]  # drawn literally: no math mode
    assert ">slow<" in svg and ">fast<" in svg and "$math$ &lt;b&gt;" in svg
    assert "<b>" not in svg
    assert _lines(svg) == 6
    only_loss = sqlite_store.plot(["slow", "fast"], ["loss"])
    assert not isinstance(only_loss, Path)
    assert len(only_loss.figure.axes) == 1 and len(only_loss.figure.axes[0].get_lines()) == 2
    # a line's points are the logged (step, value) pairs
    xs, ys = only_loss.figure.axes[0].get_lines()[1].get_data()
    assert list(xs) == [0, 1, 2, 3] and list(ys) == pytest.approx([0.3, 0.15, 0.1, 0.075])


def test_svg_and_pdf_are_byte_identical_for_the_same_store(sqlite_store: lineage.Store,
                                                           tmp_path: Path) -> None:
    _runs(sqlite_store)
    a = sqlite_store.plot(["slow", "fast"], path=tmp_path / "a.svg")
    reopened = lineage.connect(sqlite_store.uri, read_only=True)
    b = reopened.plot(["slow", "fast"], path=tmp_path / "b.svg")
    assert Path(a).read_bytes() == Path(b).read_bytes()
    assert b"<dc:date>" not in Path(a).read_bytes()
    p1 = sqlite_store.plot(["slow"], path=tmp_path / "a.pdf")
    p2 = reopened.plot(["slow"], path=tmp_path / "b.pdf")
    assert Path(p1).read_bytes() == Path(p2).read_bytes()
    png = reopened.plot(["slow"], path=tmp_path / "c.png")
    assert Path(png).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_steps_and_runs_overlay(sqlite_store: lineage.Store) -> None:
    _runs(sqlite_store)
    step = sqlite_store.executions(step="fit")[0]
    chart = sqlite_store.plot([f"execution:{step.id}", "fast"], ["loss"])
    assert not isinstance(chart, Path)
    labels = [t.get_text() for t in chart.figure.axes[0].get_legend().get_texts()]
    assert labels == [f"fit (execution:{step.id})", "fast"]


def test_errors(sqlite_store: lineage.Store, tmp_path: Path) -> None:
    _runs(sqlite_store)
    with pytest.raises(lineage.RenderError, match=r"no series for metric.*'f1'.*acc, loss"):
        sqlite_store.plot(["slow"], ["f1"])
    with pytest.raises(lineage.NotFound):
        sqlite_store.plot(["nope"])
    with pytest.raises(lineage.InvalidRef):
        sqlite_store.plot("slow")  # type: ignore[arg-type]
    with pytest.raises(lineage.RenderError, match="unknown chart format"):
        sqlite_store.plot(["slow"], path=tmp_path / "x.txt")
    with pytest.raises(lineage.RenderError, match="square"):
        confusion_matrix([[1, 2, 3], [4, 5, 6]])
    with pytest.raises(lineage.RenderError, match="3 labels"):
        confusion_matrix([[1, 2], [3, 4]], labels=["a", "b", "c"])


def test_confusion_matrix_heatmap_labels_and_counts() -> None:
    chart = confusion_matrix([[50, 2, 0], [3, 40, 7], [0, 1, 44]], labels=["cat", "dog", "_bird"])
    svg = chart.to_svg()
    ax = chart.figure.axes[0]
    assert [t.get_text() for t in ax.get_xticklabels()] == ["cat", "dog", "\u200b_bird"]
    assert ax.get_xlabel() == "predicted" and ax.get_ylabel() == "true"
    assert [t.get_text() for t in ax.texts] == ["50", "2", "0", "3", "40", "7", "0", "1", "44"]
    assert svg == confusion_matrix([[50, 2, 0], [3, 40, 7], [0, 1, 44]],
                                   labels=["cat", "dog", "_bird"]).to_svg()
    normal = confusion_matrix([[1, 3], [0, 2]], normalize=True)
    assert [t.get_text() for t in normal.figure.axes[0].texts] == ["0.25", "0.75", "0.00", "1.00"]


def test_curves_without_series_draw_a_note() -> None:
    chart = curves({"r": {}})
    assert "no metric series" in chart.to_svg()


def test_cli_plot(sqlite_uri: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    store = lineage.connect(sqlite_uri)
    _runs(store)
    out = tmp_path / "curves.svg"
    assert main(["--store", sqlite_uri, "plot", "slow", "fast", "--metric", "loss", "-o",
                 str(out)]) == 0
    svg = out.read_text()
    assert ">slow<" in svg and ">fast<" in svg and _lines(svg) == 2
    capsys.readouterr()
    assert main(["--store", sqlite_uri, "plot", "slow", "--metric", "f1", "-o", str(out)]) == 1
    assert "no series for metric" in capsys.readouterr().err


def test_run_metrics_display_their_curves_in_notebooks(sqlite_store: lineage.Store) -> None:
    _runs(sqlite_store)
    svg = lineage.run_metrics(sqlite_store, "fast")._repr_svg_()
    assert svg is not None and _lines(svg) == 2
    assert lineage.RunMetrics(final={"f1": 1.0}, series={})._repr_svg_() is None
