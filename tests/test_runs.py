"""``lineage.run``: run contexts, experiments, config files, run params and metrics."""

from __future__ import annotations

import argparse
import threading
from collections.abc import Callable
from pathlib import Path

import pytest

import lineage
from lineage.metrics import run_metrics


def _step(store: lineage.Store, out: Path) -> object:
    @lineage.step(store=None)
    def make(data: lineage.Dataset, k: int = 1) -> lineage.Model:
        out.write_text(f"model {k} of {Path(data.uri).read_text()}")
        return lineage.Model(out, name="m")

    return make


def test_run_groups_executions_and_artifacts_under_an_experiment(
    store: lineage.Store, write_file: Callable[..., Path], tmp_path: Path
) -> None:
    make = _step(store, tmp_path / "m.bin")
    data = lineage.Dataset(write_file("d.csv", "1\n"), name="d")
    with lineage.run("baseline", experiment="iris", store=store, params={"seed": 7}) as r:
        model = make(data, k=2)  # type: ignore[operator]
        extra = store.put(lineage.Metrics({"acc": 0.5}, name="extra"))
        assert lineage.current_run() is r
    assert lineage.current_run() is None
    [recorded] = store.runs()
    assert (recorded.name, recorded.run_name, recorded.experiment) == ("baseline", "baseline", "iris")
    assert recorded.params == {"seed": 7}
    assert recorded.properties["status"] == "COMPLETE"
    assert recorded.properties["end_time"] >= recorded.properties["start_time"]
    [execution] = store.executions(run="baseline")
    assert execution.name == "make" and execution.params == {"k": 2}
    attributed = {a.id for a in store.mlmd.get_artifacts_by_context(r.id)}
    assert attributed == {data.id, model.id, extra.id}
    [exp] = store.mlmd.get_parent_contexts_by_context(r.id)
    assert exp.name == "iris" and store.mlmd.get_context_types_by_id([exp.type_id])[0].name == "Experiment"
    assert [x.name for x in store.runs(experiment="iris")] == ["baseline"]


def test_a_taken_run_name_gets_a_suffix_and_keeps_the_users_name(store: lineage.Store) -> None:
    names = []
    for _ in range(4):
        with lineage.run("baseline", experiment="e", store=store) as r:
            names.append(r.name)
    assert names == ["baseline", "baseline-2", "baseline-3", "baseline-4"]
    assert [x.run_name for x in store.runs(name="baseline")] == ["baseline"] * 4
    with lineage.run(store=store) as unnamed:
        pass
    assert unnamed.name.startswith("run-") and unnamed.experiment == "default"


def test_runs_do_not_nest(store: lineage.Store) -> None:
    inner = lineage.run("inner", store=store)
    with lineage.run("outer", store=store), pytest.raises(lineage.StepError, match="runs nest"):
        inner.__enter__()
    assert [r.name for r in store.runs()] == ["outer"]


@pytest.mark.parametrize(
    ("name", "text"),
    [
        ("params.yaml", "train:\n  lr: 0.1\n  layers: [8, 8]\nseed: 3\n"),
        ("params.json", '{"train": {"lr": 0.1, "layers": [8, 8]}, "seed": 3}'),
        ("params.toml", "seed = 3\n[train]\nlr = 0.1\nlayers = [8, 8]\n"),
    ],
)
def test_config_file_becomes_dotted_run_params_and_a_config_artifact(
    store: lineage.Store, write_file: Callable[..., Path], name: str, text: str
) -> None:
    path = write_file(name, text)
    with lineage.run("cfg", store=store, config=path, params={"seed": 4}) as r:
        pass
    [recorded] = store.runs()
    assert recorded.params == {"train.lr": 0.1, "train.layers": [8, 8], "seed": 4}
    [config] = store.artifacts(type="Config")
    assert config.name == name and config.fingerprint == lineage.fingerprint(path)
    assert recorded.properties["config"] == {name: config.id}
    assert [a.id for a in store.mlmd.get_artifacts_by_context(r.id)] == [config.id]


def test_several_config_files(store: lineage.Store, write_file: Callable[..., Path]) -> None:
    a = write_file("a.yaml", "x: 1\n")
    b = write_file("b.json", '{"y": {"z": 2}}')
    with lineage.run("two", store=store, config=[a, b]):
        pass
    [recorded] = store.runs()
    assert recorded.params == {"x": 1, "y.z": 2}
    assert set(recorded.properties["config"]) == {"a.yaml", "b.json"}


def test_a_bad_config_writes_nothing(store: lineage.Store, write_file: Callable[..., Path]) -> None:
    good = write_file("good.yaml", "x: 1\n")
    bad = write_file("bad.yaml", "x: [1\n")
    with pytest.raises(lineage.StepError, match="cannot parse"):
        lineage.run("r", store=store, config=[good, bad])
    with pytest.raises(lineage.StepError, match="cannot read"):
        lineage.run("r", store=store, config="missing.yaml")
    assert store.runs() == [] and store.artifacts() == []


def test_log_params_in_a_run_and_from_argparse(store: lineage.Store) -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--lr", type=float, default=0.01)
    parser.add_argument("--layers", type=int, nargs="+", default=[4])
    args = parser.parse_args(["--lr", "1e-7", "--layers", "8", "16"])
    with lineage.run("cli", store=store) as r:
        lineage.log_params(**vars(args))
        lineage.log_params(note="first try")
        assert r.params == {"lr": 1e-7, "layers": [8, 16], "note": "first try"}
    assert store.runs()[0].params == {"lr": 1e-7, "layers": [8, 16], "note": "first try"}


def test_run_metrics_keep_the_series_and_the_final_values(store: lineage.Store) -> None:
    @lineage.step
    def evaluate(threshold: float = 0.5) -> None:
        lineage.log_metrics({"f1": 0.8125})

    with lineage.run("curve", store=store) as r:
        for epoch in range(5):
            lineage.log_metrics({"loss": 1 / (epoch + 1), "lr": 0.1 * 0.5**epoch}, step=epoch)
        evaluate()
    metrics = run_metrics(store, "curve")
    assert metrics.final == {"loss": 0.2, "lr": 0.1 * 0.5**4, "f1": 0.8125}
    assert metrics.series["loss"] == [(e, 1 / (e + 1)) for e in range(5)]
    assert [s for s, _v in metrics.series["lr"]] == [0, 1, 2, 3, 4]
    assert "f1" not in metrics.series
    recorded = store.runs()[0]
    assert recorded.properties["metrics"] == metrics.final
    assert r.metrics.final == metrics.final
    assert metrics.to_dict()["series"]["loss"][0] == [0, 1]


def test_cached_steps_still_report_their_metrics_to_the_run(sqlite_store: lineage.Store) -> None:
    @lineage.step(cache=True)
    def score(n: int = 3) -> None:
        lineage.log_metrics({"acc": n / 4})

    for name in ("first", "second"):
        with lineage.run(name, store=sqlite_store):
            score()
    assert [e.state for e in sqlite_store.executions(step="score")] == ["COMPLETE", "CACHED"]
    assert run_metrics(sqlite_store, "second").final == {"acc": 0.75}
    [cached] = sqlite_store.executions(run="second")
    assert cached.state == "CACHED"


def test_a_failing_run_is_marked_failed_and_the_error_propagates(store: lineage.Store) -> None:
    with pytest.raises(ZeroDivisionError), lineage.run("bad", store=store):
        _ = 1 / 0
    with pytest.raises(KeyboardInterrupt), lineage.run("stopped", store=store):
        raise KeyboardInterrupt
    status = {r.name: r.properties["status"] for r in store.runs()}
    assert status == {"bad": "FAILED", "stopped": "CANCELED"}


def test_threads_started_inside_a_run_record_into_it(store: lineage.Store) -> None:
    @lineage.step
    def work(i: int) -> int:
        return i

    with lineage.run("threads", store=store):
        threads = [threading.Thread(target=work, args=(i,)) for i in range(4)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    assert sorted(e.params["i"] for e in store.executions(run="threads")) == [0, 1, 2, 3]


def test_step_store_option_wins_over_the_run_store(tmp_path: Path) -> None:
    run_store = lineage.connect(tmp_path / "run.sqlite")
    own_store = lineage.connect(tmp_path / "own.sqlite")

    @lineage.step(store=own_store)
    def mine() -> None:
        return None

    with lineage.run("r", store=run_store):
        mine()
    assert run_store.executions() == [] and len(own_store.executions()) == 1


def test_run_arguments_are_validated_before_anything_is_written(store: lineage.Store) -> None:
    with pytest.raises(lineage.StepError) as caught:
        lineage.run("", experiment="", store=store, params=[1, 2])  # type: ignore[arg-type]
    for fragment in ("name=''", "experiment=''", "params= takes a dict"):
        assert fragment in str(caught.value)
    assert store.runs() == []


def test_a_run_ref_never_means_another_run(store: lineage.Store) -> None:
    @lineage.step(store=store)
    def fit(seed: int = 0) -> int:
        return seed

    for seed in range(3):
        with lineage.run("baseline", experiment="exp", store=store):
            fit(seed)
    assert [(r.name, r.run_name) for r in store.runs(name="baseline")] == [
        ("baseline", "baseline"), ("baseline-2", "baseline"), ("baseline-3", "baseline")
    ]
    # a run is its unique name: "baseline" is the first run, not the latest
    assert [e.params for e in store.executions(run="baseline")] == [{"seed": 0}]
    assert [e.params for e in store.executions(run="baseline-2")] == [{"seed": 1}]
    run2 = store.run("baseline-2")
    assert store.run(run2.id).name == store.run(f"context:{run2.id}").name == "baseline-2"
    assert store.run(str(run2.id)).name == "baseline-2"  # "N" is the id, as in the CLI
    assert store.run("exp/baseline-3").name == "baseline-3"
    with pytest.raises(lineage.AmbiguousRef) as err:  # three runs of exp were named baseline
        store.run("exp/baseline")
    assert "baseline-2" in str(err.value) and "baseline-3" in str(err.value)
    c = store.compare(["baseline", "baseline-2"])
    assert [r.name for r in c.runs] == ["baseline", "baseline-2"]
    assert lineage.run_metrics(store, "baseline") is not None
    with pytest.raises(lineage.NotFound, match="ls runs"):
        store.run("nope")


def test_a_run_named_like_an_id_is_ambiguous(store: lineage.Store) -> None:
    with lineage.run("x", store=store) as first:
        pass
    with lineage.run(str(first.id + 1), store=store):  # a name that is also an id
        pass
    with lineage.run(str(first.id), store=store):  # a name that is another run's id
        pass
    with pytest.raises(lineage.AmbiguousRef, match="could mean several runs"):
        store.run(str(first.id))
    assert store.run(f"context:{first.id}").name == "x"
