"""Run search: filters, sort, pages, errors, the CLI (ls runs, compare --experiment/--best)."""

from __future__ import annotations

import json
import math

import pytest

import lineage
from lineage.cli import main
from lineage.search import parse_filter, parse_sort


def _record(store: lineage.Store) -> None:
    """Four runs in two experiments: a step param (train.lr), run params, final metrics."""

    @lineage.step(store=store, kind="train")
    def train(lr: float = 0.1, epochs: int = 3) -> lineage.Model:
        for epoch in range(epochs):
            lineage.log_metrics({"loss": lr / (epoch + 1)}, step=epoch)
        lineage.log_metrics({"f1": round(0.5 + lr, 3)})
        return lineage.Model(content=f"w{lr}".encode(), name="clf")

    for name, exp, lr in (("a", "iris", 0.05), ("b", "iris", 0.3), ("c", "iris", 0.2),
                          ("d", "wine", 0.4)):
        with lineage.run(name, experiment=exp, store=store, params={"seed": 7, "note": name}):
            train(lr=lr)


@pytest.fixture
def searched(store: lineage.Store) -> lineage.Store:
    _record(store)
    return store


def test_search_filters_sorts_and_limits_on_every_backend(searched: lineage.Store) -> None:
    store = searched
    found = store.search_runs(experiment="iris", where=["f1>0.6", "train.lr<=0.3"], sort="-f1")
    assert [r.name for r in found] == ["b", "c"]
    assert found.total == 2 and not found.more
    assert [r.metrics["f1"] for r in found] == [0.8, 0.7]
    assert found[0].params["train.lr"] == 0.3 and found[0].params["seed"] == 7
    best = store.search_runs(sort="-f1", limit=2)
    assert [r.name for r in best] == ["d", "b"] and best.more and best.total == 4
    assert [r.name for r in store.search_runs(sort="f1", limit=1, offset=1)] == ["c"]
    assert [r.name for r in store.search_runs(where="train.lr=0.05")] == ["a"]
    assert [r.name for r in store.search_runs(where="note!=a", sort="name")] == ["b", "c", "d"]
    assert [r.name for r in store.search_runs(where="status=COMPLETE", sort="-train.lr")] == \
        ["d", "b", "c", "a"]
    assert store.search_runs(where="f1>0.99").runs == []


def test_summaries_carry_status_times_params_and_final_metrics(searched: lineage.Store) -> None:
    [run] = searched.search_runs(where="name=a")
    record = searched.runs(name="a")[0]
    assert run.id == record.id and run.ref == f"context:{record.id}"
    assert run.status == "COMPLETE" and run.experiment == "iris"
    assert run.start_time is not None and run.end_time is not None
    assert run.duration == pytest.approx(run.end_time - run.start_time, abs=1e-3)
    assert run.metrics == lineage.run_metrics(searched, record.id).final
    d = run.to_dict()
    assert {k: d[k] for k in record.to_dict()} == {**record.to_dict(), "params": run.params}
    assert d["metrics"]["f1"] == 0.55 and d["status"] == "COMPLETE"


def test_newest_page_reads_in_id_order(searched: lineage.Store) -> None:
    newest = searched.search_runs(sort="-id", limit=3)
    assert [r.name for r in newest] == ["d", "c", "b"] and newest.more and newest.total is None
    oldest = searched.search_runs(limit=2)
    assert [r.name for r in oldest] == ["a", "b"] and oldest.more
    assert [r.name for r in searched.search_runs(sort="-id", limit=3, offset=3)] == ["a"]
    # step params are read for the page
    assert newest[0].params["train.lr"] == 0.4


def test_unknown_keys_and_malformed_expressions_are_clear_errors(searched: lineage.Store) -> None:
    with pytest.raises(lineage.SearchError, match=r"no run has the key 'acc'.*metrics: f1, loss"):
        searched.search_runs(where="acc>0.5")
    with pytest.raises(lineage.SearchError, match="no run has the key 'nope'"):
        searched.search_runs(sort="-nope")
    for bad in ("f1", "f1>", ">0.5", "f1>>0.5", "f1 => 2", ""):
        with pytest.raises(lineage.SearchError):
            searched.search_runs(where=bad)
    with pytest.raises(lineage.SearchError):
        searched.search_runs(sort="f1>2")
    with pytest.raises(lineage.SearchError, match="limit"):
        searched.search_runs(limit=-1)
    with pytest.raises(lineage.NotFound, match=r"no experiment named 'irsi'.*iris, wine"):
        searched.search_runs(experiment="irsi")


def test_filter_values() -> None:
    assert parse_filter("C=1").matches(1.0)
    assert parse_filter("flag=true").matches(True) and not parse_filter("flag=true").matches(1)
    assert parse_filter("name='x y'").matches("x y")
    assert parse_filter("lr=0.05").matches("0.05")  # text compared as written
    assert not parse_filter("f1>0.5").matches("high")  # no order between text and numbers
    assert not parse_filter("f1>0.5").matches(math.nan)
    assert parse_filter("start>=2020-01-01").value == pytest.approx(1577836800.0)
    assert parse_sort("-f1") == ("f1", True) and parse_sort("+f1") == ("f1", False)


def test_to_pandas_has_params_and_metrics_columns(searched: lineage.Store) -> None:
    df = searched.search_runs(experiment="iris", sort="name").to_pandas()
    assert list(df.index) == ["a", "b", "c"]
    assert df.loc["b", "metrics.f1"] == 0.8 and df.loc["a", "params.train.lr"] == 0.05
    assert {"status", "start", "duration"} <= set(df.columns)


def test_text_table_shows_the_searched_keys(searched: lineage.Store) -> None:
    text = str(searched.search_runs(where="train.lr>0.1", sort="-f1"))
    lines = text.splitlines()
    assert lines[0].split()[:6] == ["ref", "name", "experiment", "status", "start", "duration"]
    assert "train.lr" in lines[0] and "f1" in lines[0]
    assert [line.split()[1] for line in lines[2:5]] == ["d", "b", "c"]


def _cli(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def test_cli_ls_runs_and_compare(sqlite_uri: str, capsys: pytest.CaptureFixture[str]) -> None:
    store = lineage.connect(sqlite_uri)
    _record(store)
    code, out, _ = _cli(capsys, "--store", sqlite_uri, "ls", "runs", "--json", "--where", "f1>0.6",
                        "--where", "train.lr=0.2", "--sort", "-f1")
    assert code == 0
    assert json.loads(out) == store.search_runs(where=["f1>0.6", "train.lr=0.2"],
                                                sort="-f1").to_dict()
    code, out, _ = _cli(capsys, "--store", sqlite_uri, "ls", "runs", "--experiment", "iris",
                        "--sort", "-f1", "--limit", "2")
    assert code == 0 and [line.split()[1] for line in out.splitlines()[2:4]] == ["b", "c"]
    code, _, err = _cli(capsys, "--store", sqlite_uri, "ls", "runs", "--where", "acc>1")
    assert code == 1 and err.startswith("lineage ls: no run has the key 'acc'")
    assert len(err.strip().splitlines()) == 1
    code, _, err = _cli(capsys, "--store", sqlite_uri, "ls", "runs", "--where", "f1>>1")
    assert code == 1 and "OP one of" in err
    code, out, _ = _cli(capsys, "--store", sqlite_uri, "compare", "--best", "f1", "--limit", "2",
                        "--json")
    assert code == 0
    best = store.search_runs(sort="-f1", limit=2)
    assert json.loads(out) == json.loads(json.dumps(store.compare([r.ref for r in best]).to_dict()))
    assert [r["name"] for r in json.loads(out)["runs"]] == ["d", "b"]
    code, out, _ = _cli(capsys, "--store", sqlite_uri, "compare", "--experiment", "iris")
    assert code == 0 and out.splitlines()[0].split() == ["a", "b", "c"]
    code, _, err = _cli(capsys, "--store", sqlite_uri, "compare", "a", "--best", "f1")
    assert code == 2 and "not both" in err
    code, _, err = _cli(capsys, "--store", sqlite_uri, "compare")
    assert code == 2
