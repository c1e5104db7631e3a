"""Metrics: buffered series in chunks, kept apart per step, flushed on time, on exit and on
signals, read back in a few calls; confusion matrices."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

import lineage
from lineage import _series
from lineage.metrics import run_metrics, step_metrics

ROOT = Path(__file__).resolve().parent.parent


def _chunks(store: lineage.Store) -> list[object]:
    if store._type_named("context", _series.CHUNK_TYPE) is None:
        return []
    return sorted(store.mlmd.get_contexts_by_type(_series.CHUNK_TYPE), key=lambda c: c.id)


@pytest.mark.slow
def test_100k_points_of_several_metrics_round_trip(store: lineage.Store) -> None:
    n = 100_000
    with lineage.run("long", store=store):
        for i in range(n):
            lineage.log_metrics({"loss": 1.0 / (i + 1), "acc": i / n, "lr": 0.1}, step=i)
    m = run_metrics(store, "long")
    assert set(m.series) == {"loss", "acc", "lr"}
    assert m.series["loss"] == [(i, 1.0 / (i + 1)) for i in range(n)]
    assert m.series["acc"][12345] == (12345, 12345 / n)
    assert len(m.series["lr"]) == n and m.final == {"loss": 1.0 / n, "acc": (n - 1) / n, "lr": 0.1}
    # chunked: no record holds more than CHUNK_POINTS points
    chunks = _chunks(store)
    assert len(chunks) >= 3 * n // _series.CHUNK_POINTS
    assert all(c.properties["count"].int_value <= _series.CHUNK_POINTS for c in chunks)
    # and the run record does not carry the series
    [ctx] = store.mlmd.get_contexts_by_type("Run")
    assert "metric_series" not in ctx.properties


@pytest.mark.slow
def test_100k_points_in_a_step(store: lineage.Store) -> None:
    @lineage.step(store=store)
    def fit(n: int) -> None:
        for i in range(n):
            lineage.log_metrics({"loss": float(n - i), "step_no": i}, step=i)

    with lineage.run("r", store=store):
        fit(100_000)
    m = run_metrics(store, "r")
    assert m.steps["fit"]["loss"][-1] == (99_999, 1)
    assert m.series["step_no"] == [(i, i) for i in range(100_000)]
    [execution] = store.executions(step="fit")
    assert step_metrics(store, execution.id).series["loss"][:2] == [(0, 100_000), (1, 99_999)]


def test_series_of_steps_and_of_the_run_are_kept_apart(store: lineage.Store) -> None:
    @lineage.step(store=store)
    def train(offset: int) -> None:
        for epoch in range(3):
            lineage.log_metrics({"loss": offset + epoch, "grad": epoch}, step=epoch)

    @lineage.step(store=store)
    def evaluate() -> None:
        lineage.log_metrics({"f1": 0.75}, step=0)

    with lineage.run("apart", store=store):
        lineage.log_metrics({"loss": 100}, step=0)
        train(10)
        train(20)
        evaluate()
    m = run_metrics(store, "apart")
    assert m.run_series == {"loss": [(0, 100)]}
    assert m.steps == {
        "train": {"loss": [(0, 10), (1, 11), (2, 12)], "grad": [(0, 0), (1, 1), (2, 2)]},
        "train#2": {"loss": [(0, 20), (1, 21), (2, 22)], "grad": [(0, 0), (1, 1), (2, 2)]},
        "evaluate": {"f1": [(0, 0.75)]},
    }
    assert m.series == {
        "loss": [(0, 100)],
        "train.loss": [(0, 10), (1, 11), (2, 12)],
        "train#2.loss": [(0, 20), (1, 21), (2, 22)],
        "train.grad": [(0, 0), (1, 1), (2, 2)],
        "train#2.grad": [(0, 0), (1, 1), (2, 2)],
        "f1": [(0, 0.75)],
    }
    ids = {e.id for e in store.executions(step="train")}
    assert {m.executions["train"], m.executions["train#2"]} == ids
    assert m.final["loss"] == 22 and m.final["f1"] == 0.75
    assert m.to_dict()["steps"]["train"]["loss"][0] == [0, 10]


def test_a_flush_adds_to_the_last_chunk_until_it_is_full(
    store: lineage.Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(_series, "CHUNK_POINTS", 10)
    with lineage.run("small", store=store) as run:
        for i in range(3):
            lineage.log_metrics({"x": i}, step=i)
        run.flush_metrics()
        assert len(_chunks(store)) == 1
        for i in range(3, 7):
            lineage.log_metrics({"x": i}, step=i)
        run.flush_metrics()
        assert [c.properties["count"].int_value for c in _chunks(store)] == [7]
        assert run.metrics.series["x"] == [(i, i) for i in range(7)]
        for i in range(7, 35):
            lineage.log_metrics({"x": i}, step=i)
    assert [c.properties["count"].int_value for c in _chunks(store)] == [10, 10, 10, 5]
    assert run_metrics(store, "small").series["x"] == [(i, i) for i in range(35)]


def test_points_reach_the_store_while_the_run_goes_on(sqlite_store: lineage.Store) -> None:
    with lineage.run("live", store=sqlite_store):
        for i in range(50):
            lineage.log_metrics({"loss": i}, step=i)
        # the background flusher writes them within a few seconds (generous bound)
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            reader = lineage.connect(sqlite_store.uri.removeprefix("sqlite:///"), read_only=True)
            if len(run_metrics(reader, "live").series.get("loss", [])) == 50:
                break
            time.sleep(0.2)
        else:
            pytest.fail("the background flusher wrote nothing in 30 s")
        assert [r.properties["status"] for r in sqlite_store.runs()] == ["RUNNING"]


def test_a_failing_run_and_step_keep_their_points(store: lineage.Store) -> None:
    @lineage.step(store=store)
    def fit() -> None:
        for i in range(5):
            lineage.log_metrics({"loss": i}, step=i)
        raise ValueError("diverged")

    with pytest.raises(ValueError), lineage.run("bad", store=store):
        lineage.log_metrics({"lr": 0.1}, step=0)
        fit()
    m = run_metrics(store, "bad")
    assert m.series == {"lr": [(0, 0.1)], "loss": [(i, i) for i in range(5)]}
    assert store.runs()[0].properties["status"] == "FAILED"
    assert store.executions(step="fit")[0].state == "FAILED"


def test_cached_step_calls_show_the_series_of_the_call_they_reuse(
    sqlite_store: lineage.Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(_series, "CHUNK_POINTS", 4)

    @lineage.step(cache=True)
    def fit(n: int = 9) -> None:
        for i in range(n):
            lineage.log_metrics({"loss": i}, step=i)
            if i == 3:
                lineage.metrics.step_buffer(lineage._active._CALL.get()).flush()  # type: ignore[arg-type]

    for name in ("first", "second"):
        with lineage.run(name, store=sqlite_store):
            fit()
    assert [e.state for e in sqlite_store.executions(step="fit")] == ["COMPLETE", "CACHED"]
    expected = [(i, i) for i in range(9)]
    assert run_metrics(sqlite_store, "first").series["loss"] == expected
    assert run_metrics(sqlite_store, "second").series["loss"] == expected


def test_a_step_outside_any_run_keeps_its_chunks(
    store: lineage.Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(_series, "CHUNK_POINTS", 5)

    @lineage.step(store=store)
    def alone() -> None:
        for i in range(12):
            lineage.log_metrics({"x": i * 2}, step=i)

    alone()
    [execution] = store.executions(step="alone")
    assert step_metrics(store, execution.id).series == {"x": [(i, i * 2) for i in range(12)]}
    holders = store.mlmd.get_contexts_by_type(_series.HOLDER_TYPE)
    assert [h.name for h in holders] == [f"execution:{execution.id}"]


def test_log_metrics_rejects_what_is_not_a_number(store: lineage.Store) -> None:
    with lineage.run("checks", store=store):
        with pytest.raises(lineage.StepError, match="metrics are numbers"):
            lineage.log_metrics({"name": "x"}, step=1)
        with pytest.raises(lineage.StepError, match="the step of a metric is an int"):
            lineage.log_metrics({"x": 1}, step=1.5)  # type: ignore[arg-type]
        with pytest.raises(lineage.StepError, match="takes a dict"):
            lineage.log_metrics([1, 2])  # type: ignore[arg-type]
    assert run_metrics(store, "checks").series == {}
    with pytest.raises(lineage.StepError, match=r"inside a @lineage\.step"):
        lineage.log_metrics({"x": 1})


# --- confusion matrices ---------------------------------------------------------------------


def test_confusion_matrices_per_epoch_in_a_run_and_a_step(store: lineage.Store) -> None:
    @lineage.step(store=store)
    def evaluate() -> None:
        lineage.log_confusion_matrix(["cat", "dog", "dog"], ["cat", "cat", "dog"], name="test")

    with lineage.run("cm", store=store):
        for epoch in range(3):
            truth = [0, 0, 1, 1, 2]
            predicted = [0, 1, 1, 1, 2] if epoch < 2 else truth
            logged = lineage.log_confusion_matrix(truth, predicted, step=epoch)
        evaluate()
    assert logged.matrix == [[2, 0, 0], [0, 2, 0], [0, 0, 1]]
    m = run_metrics(store, "cm")
    assert [(x.source, x.step) for x in m.matrices] == [
        ("run", 0), ("run", 1), ("run", 2), ("evaluate", None)]
    first = m.confusion_matrix(step=0, source="run")
    assert first is not None and first.labels == [0, 1, 2]
    assert first.matrix == [[1, 1, 0], [0, 2, 0], [0, 0, 1]] and first.accuracy == 0.8
    latest = m.confusion_matrix(source="run")
    assert latest is not None and latest.step == 2 and latest.accuracy == 1.0
    test = m.confusion_matrix(name="test")
    assert test is not None and test.labels == ["cat", "dog"] and test.matrix == [[1, 0], [1, 1]]
    assert m.to_dict()["matrices"][3]["labels"] == ["cat", "dog"]


def test_confusion_matrix_with_given_labels_and_numpy_input(store: lineage.Store) -> None:
    np = pytest.importorskip("numpy")
    with lineage.run("np", store=store):
        got = lineage.log_confusion_matrix(np.array([1, 2, 3, 9]), np.array([1, 3, 3, 1]),
                                           labels=[3, 2, 1], step=np.int64(4))
    assert got.matrix == [[1, 0, 0], [1, 0, 0], [0, 0, 1]]  # 9 is not a label: not counted
    [stored] = run_metrics(store, "np").matrices
    assert stored.labels == [3, 2, 1] and stored.matrix == got.matrix and stored.step == 4


def test_confusion_matrix_bad_input_is_a_clear_error(store: lineage.Store) -> None:
    with lineage.run("bad-cm", store=store):
        with pytest.raises(lineage.StepError, match="y_true has 2 labels and y_pred 1"):
            lineage.log_confusion_matrix([0, 1], [0])
        with pytest.raises(lineage.StepError, match="pass labels="):
            lineage.log_confusion_matrix([0, "a"], [0, "a"])
        with pytest.raises(lineage.StepError, match="repeats a label"):
            lineage.log_confusion_matrix([0], [0], labels=[0, 0])
    assert run_metrics(store, "bad-cm").matrices == []


# --- killed processes -------------------------------------------------------------------------

_CHILD = textwrap.dedent("""
    import sys, time
    import lineage

    store = lineage.connect(sys.argv[1])

    @lineage.step(store=store)
    def train(n):
        for i in range(n):
            lineage.log_metrics({"loss": 1.0 / (i + 1)}, step=i)
        lineage.log_confusion_matrix([0, 1], [0, 0], step=n)
        print("logged", flush=True)
        time.sleep(600)

    with lineage.run("killed", store=store):
        for i in range(300):
            lineage.log_metrics({"lr": i / 1000}, step=i)
        train(500)
""")


def _spawn(uri: str, tmp_path: Path) -> subprocess.Popen[str]:
    script = tmp_path / "child.py"
    script.write_text(_CHILD)
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    return subprocess.Popen([sys.executable, str(script), uri], stdout=subprocess.PIPE,
                            text=True, env=env)


@pytest.fixture(
    params=[
        "sqlite",
        pytest.param("postgresql", marks=pytest.mark.postgres),
        pytest.param("mysql", marks=pytest.mark.mysql),
    ]
)
def disk_uri(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """A store another process can open: SQLite, PostgreSQL, MariaDB."""
    if request.param == "sqlite":
        return str(tmp_path / "store" / "metadata.sqlite")
    server = request.getfixturevalue("mariadb" if request.param == "mysql" else "postgres")
    return str(server.uri())


def test_a_sigkilled_process_keeps_its_flushed_points(disk_uri: str, tmp_path: Path) -> None:
    uri = disk_uri
    child = _spawn(uri, tmp_path)
    try:
        assert child.stdout is not None and child.stdout.readline().strip() == "logged"
        reader = lineage.connect(uri)
        deadline = time.monotonic() + 60
        m = None
        while time.monotonic() < deadline:  # the flusher writes within seconds
            m = run_metrics(reader, "killed")
            if (len(m.steps.get("train", {}).get("loss", [])) == 500 and m.matrices
                    and len(m.run_series.get("lr", [])) == 300):
                break
            time.sleep(0.3)
        child.send_signal(signal.SIGKILL)
        child.wait(timeout=60)
    finally:
        if child.poll() is None:
            child.kill()
            child.wait()
    assert child.returncode == -signal.SIGKILL
    m = run_metrics(lineage.connect(uri), "killed")
    assert m.run_series == {"lr": [(i, i / 1000) for i in range(300)]}
    assert m.steps["train"]["loss"] == [(i, 1.0 / (i + 1)) for i in range(500)]
    [matrix] = m.matrices
    assert (matrix.source, matrix.step, matrix.matrix) == ("train", 500, [[1, 0], [1, 0]])
    reader = lineage.connect(uri)
    assert [r.properties["status"] for r in reader.runs()] == ["RUNNING"]
    assert [e.state for e in reader.executions(step="train")] == ["RUNNING"]


def test_sigterm_flushes_before_the_process_dies(disk_uri: str, tmp_path: Path) -> None:
    uri = disk_uri
    child = _spawn(uri, tmp_path)
    try:
        assert child.stdout is not None and child.stdout.readline().strip() == "logged"
        child.send_signal(signal.SIGTERM)  # long before the flusher's turn
        child.wait(timeout=60)
    finally:
        if child.poll() is None:
            child.kill()
            child.wait()
    assert child.returncode == -signal.SIGTERM
    m = run_metrics(lineage.connect(uri), "killed")
    assert len(m.run_series["lr"]) == 300 and len(m.steps["train"]["loss"]) == 500
    assert len(m.matrices) == 1


def test_ctrl_c_flushes_and_records_the_run_canceled(disk_uri: str, tmp_path: Path) -> None:
    child = _spawn(disk_uri, tmp_path)
    try:
        assert child.stdout is not None and child.stdout.readline().strip() == "logged"
        child.send_signal(signal.SIGINT)
        child.wait(timeout=60)
    finally:
        if child.poll() is None:
            child.kill()
            child.wait()
    assert child.returncode != 0
    store = lineage.connect(disk_uri)
    m = run_metrics(store, "killed")
    assert len(m.run_series["lr"]) == 300 and len(m.steps["train"]["loss"]) == 500
    assert [r.properties["status"] for r in store.runs()] == ["CANCELED"]
    assert [e.state for e in store.executions(step="train")] == ["CANCELED"]


def test_series_written_by_older_versions_are_read(sqlite_store: lineage.Store) -> None:
    from lineage import _convert

    @lineage.step(store=sqlite_store)
    def fit() -> None:
        lineage.log_metrics({"acc": 0.5})

    with lineage.run("old", store=sqlite_store) as run:
        fit()
    # what earlier versions wrote: {name: [[step, value], ...]} packed in the records
    # (a plain google.protobuf.Value, 1.0 as the number 1: written before exact values)
    old = {"loss": [[0, 1.0], [1, 0.5]]}
    [ctx] = sqlite_store.mlmd.get_contexts_by_id([run.id])
    ctx.properties["metric_series"].proto_value.Pack(_convert._to_pb_value(old))
    sqlite_store.mlmd.put_contexts([ctx])
    [execution] = sqlite_store.mlmd.get_executions_by_context(run.id)
    execution.properties["metric_series"].proto_value.Pack(
        _convert._to_pb_value({"f1": [[3, 0.25]]}))
    sqlite_store.mlmd.put_executions([execution])
    m = run_metrics(sqlite_store, "old")
    assert m.run_series == {"loss": [(0, 1), (1, 0.5)]}
    assert m.steps == {"fit": {"f1": [(3, 0.25)]}}


def test_metric_records_are_not_graph_nodes(sqlite_store: lineage.Store) -> None:
    @lineage.step(store=sqlite_store)
    def fit() -> None:
        for i in range(3):
            lineage.log_metrics({"loss": i}, step=i)
        lineage.metrics.step_buffer(lineage._active._CALL.get()).flush()  # type: ignore[arg-type]

    with lineage.run("g", store=sqlite_store):
        lineage.log_metrics({"lr": 1}, step=0)
        fit()
    assert _chunks(sqlite_store)
    g = sqlite_store.graph(contexts=True)
    kinds = {d.get("type_name") for _n, d in g.nodes(data=True)}
    assert "Run" in kinds and not kinds & {"MetricChunk", "MetricSeries"}
    runs = [e.properties.get("run_context") for e in sqlite_store.executions()]
    assert runs == [sqlite_store.runs()[0].id]


# --- pictures of confusion matrices (lineage.plot, lineage plot, the web UI, Jupyter) ----------


def _matrices_run(store: lineage.Store) -> None:
    @lineage.step(store=store)
    def train() -> None:
        for epoch in range(3):
            lineage.log_metrics({"loss": 1 / (epoch + 1)}, step=epoch)
            lineage.log_confusion_matrix(["cat", "dog", "dog"], ["cat", "dog", ["cat", "dog",
                                         "dog"][epoch]], step=epoch)

    with lineage.run("pics", store=store):
        train()


def test_confusion_matrices_are_drawn_as_heatmaps(sqlite_uri: str, tmp_path: Path,
                                                  capsys: pytest.CaptureFixture[str]) -> None:
    pytest.importorskip("matplotlib")
    from lineage.cli import main
    from lineage.metrics import confusion_chart, confusion_matrices

    store = lineage.connect(sqlite_uri)
    _matrices_run(store)
    assert [m.step for m in confusion_matrices(store, "pics")] == [0, 1, 2]
    chart = confusion_chart(store, "pics")
    assert chart.title == "confusion matrix at step 2 (train)"
    svg = chart.to_svg()
    assert "cat" in svg and "dog" in svg
    assert confusion_chart(store, "pics", 0).title == "confusion matrix at step 0 (train)"
    with pytest.raises(lineage.NotFound, match="at step 9"):
        confusion_chart(store, "pics", 9)
    out = tmp_path / "cm.svg"
    assert main(["--store", sqlite_uri, "plot", "pics", "--confusion-matrix", "--step", "1",
                 "-o", str(out)]) == 0
    assert "at step 1" in out.read_text() and str(out) in capsys.readouterr().out
    # in Jupyter: the curves and the latest matrix
    html = run_metrics(store, "pics")._repr_html_()
    assert html is not None and html.count("<svg") == 2 and "step 2" in html
    # the web UI draws them too
    client_mod = pytest.importorskip("starlette.testclient")
    from lineage.ui import create_app

    client = client_mod.TestClient(create_app(lineage.connect(sqlite_uri, read_only=True)))
    page = client.get("/runs/pics/confusion.svg")
    assert page.status_code == 200 and "dog" in page.text


def test_a_long_step_is_plotted_from_its_chunks(sqlite_store: lineage.Store,
                                                monkeypatch: pytest.MonkeyPatch) -> None:
    pytest.importorskip("matplotlib")
    from lineage.plot import series_of

    monkeypatch.setattr(_series, "CHUNK_POINTS", 5)

    @lineage.step(store=sqlite_store)
    def fit() -> None:
        for i in range(12):
            lineage.log_metrics({"x": i}, step=i)
            if i == 6:
                lineage.metrics.step_buffer(lineage._active._CALL.get()).flush()  # type: ignore[arg-type]

    with lineage.run("long-step", store=sqlite_store):
        fit()
    [execution] = sqlite_store.executions(step="fit")
    _label, series = series_of(sqlite_store, f"execution:{execution.id}")
    assert series == {"x": [(i, i) for i in range(12)]}


def test_the_audit_report_of_a_model_shows_its_training(sqlite_store: lineage.Store,
                                                        tmp_path: Path) -> None:
    pytest.importorskip("matplotlib")
    weights = tmp_path / "model.bin"

    @lineage.step(store=sqlite_store, kind="train")
    def train() -> lineage.Model:
        for epoch in range(4):
            lineage.log_metrics({"loss": 1 / (epoch + 1)}, step=epoch)
            lineage.log_confusion_matrix([0, 1, 1], [0, 1, epoch % 2], step=epoch)
        weights.write_bytes(b"w")
        return lineage.Model(weights, name="clf")

    with lineage.run("trainer <b>", store=sqlite_store):
        train()
    html = sqlite_store.audit("clf", tmp_path / "audit.html").read_text()
    section = html.split('<section id="training-section">')[1].split("</section>")[0]
    assert "Run trainer &lt;b&gt;" in section and "<b>" not in section.replace("<b>loss</b>", "")
    assert section.count("<svg") == 2 and "at step 3" in section
    md = sqlite_store.audit("clf", tmp_path / "audit.md").read_text()
    assert "## Training" in md and "Latest confusion matrix (step 3)" in md
    assert lineage.report.check(tmp_path / "audit.html").ok


def test_a_large_confusion_matrix_round_trips(store: lineage.Store) -> None:
    n = 300
    truth = [i % n for i in range(3 * n)]
    predicted = [(i * 7) % n for i in range(3 * n)]
    with lineage.run("wide", store=store):
        for epoch in range(2):
            lineage.log_confusion_matrix(truth, predicted, step=epoch)
        lineage.log_metrics({"x": 1}, step=0)
        with pytest.raises(lineage.StepError, match="too many"):
            lineage.log_confusion_matrix([0], [0], labels=range(501))
    m = run_metrics(store, "wide")
    latest = m.confusion_matrix()
    assert latest is not None and latest.step == 1 and latest.labels == list(range(n))
    assert latest.total == 3 * n and latest.matrix[1][7] == 3
    assert len(m.matrices) == 2 and m.series == {"x": [(0, 1)]}


def test_a_step_logs_hundreds_of_metrics_on_every_backend(store: lineage.Store) -> None:
    """PostgreSQL indexes property values (btree rows stop at ~2.7 kB) and MariaDB has
    column limits: a step logging 300 metrics must still finish COMPLETE."""

    @lineage.step(store=store)
    def evaluate() -> None:
        lineage.log_metrics({f"class_{i:03d}_recall_at_k": i / 300 for i in range(300)})

    with lineage.run("many", store=store):
        evaluate()
        lineage.log_metrics({f"run_metric_{i:03d}": i for i in range(300)})
    [call] = store.executions(step="evaluate")
    assert call.state == "COMPLETE"
    assert len(call.properties["metrics"]) == 300
    run = store.run("many")
    assert run.properties["status"] == "COMPLETE"
    assert lineage.run_metrics(store, "many").final["run_metric_299"] == 299
