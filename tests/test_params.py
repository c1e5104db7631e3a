"""Step params round-trip through real stores: every kind of value the issue lists."""

from __future__ import annotations

import argparse
import dataclasses
import math
from typing import Any

import attrs
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import lineage
from lineage._params import flatten, load_config, normalise, same


def _record(store: lineage.Store, **kwargs: Any) -> dict[str, Any]:
    """Call a step taking **kwargs on ``store`` and return the params read back."""

    @lineage.step(name="params_probe", store=store)
    def probe(**kw: Any) -> None:
        return None

    probe(**kwargs)
    execs = store.executions(step="params_probe")
    return execs[-1].params


def test_scalars_round_trip_including_nan_and_inf(store: lineage.Store) -> None:
    values = {
        "i": 3, "neg": -7, "big": 2**62, "f": 0.1, "nan": math.nan, "inf": math.inf,
        "ninf": -math.inf, "t": True, "f0": False, "s": "héllo 'quoted' \"x\"", "empty": "",
        "none": None, "zero": 0.0,
    }
    back = _record(store, **values)
    assert back.keys() == values.keys()
    assert same(back, values)
    assert math.isnan(back["nan"]) and back["inf"] == math.inf and back["ninf"] == -math.inf
    assert type(back["t"]) is bool and type(back["i"]) is int and type(back["f"]) is float


def test_nested_dicts_and_lists_round_trip(store: lineage.Store) -> None:
    values = {
        "layers": [64, 32, [1, 2.5, None]],
        "optim": {"name": "adam", "betas": [0.9, 0.999], "sched": {"warmup": 10, "gamma": math.nan}},
        "empty_list": [],
        "empty_dict": {},
        "mixed": [{"a": None}, "x", True, math.inf],
        "tuple": (1, 2),
    }
    back = _record(store, **values)
    expected = dict(values, tuple=[1, 2])
    assert same(back, expected)
    assert back["empty_list"] == [] and back["empty_dict"] == {}


@dataclasses.dataclass
class Optim:
    lr: float = 0.01
    betas: tuple[float, float] = (0.9, 0.99)


@dataclasses.dataclass
class TrainConfig:
    epochs: int = 3
    optim: Optim = dataclasses.field(default_factory=Optim)


@attrs.define
class DataConfig:
    path: str = "data.csv"
    shuffle: bool = True


def test_dataclass_attrs_and_namespace_are_flattened_with_dotted_keys(store: lineage.Store) -> None:
    args = argparse.Namespace(batch_size=32, lr=0.5, tags=["a", "b"])
    back = _record(store, cfg=TrainConfig(), data=DataConfig(), args=args)
    assert back == {
        "cfg.epochs": 3, "cfg.optim.lr": 0.01, "cfg.optim.betas": [0.9, 0.99],
        "data.path": "data.csv", "data.shuffle": True,
        "args.batch_size": 32, "args.lr": 0.5, "args.tags": ["a", "b"],
    }


def test_pydantic_model_is_flattened(store: lineage.Store) -> None:
    pydantic = pytest.importorskip("pydantic")

    class Hyper(pydantic.BaseModel):  # type: ignore[misc, name-defined]
        lr: float = 0.1
        layers: list[int] = pydantic.Field(default_factory=lambda: [8, 8])

    assert _record(store, hp=Hyper(lr=0.3)) == {"hp.lr": 0.3, "hp.layers": [8, 8]}


def test_sklearn_estimator_is_recorded_via_get_params(store: lineage.Store) -> None:
    from sklearn.linear_model import LogisticRegression

    back = _record(store, model=LogisticRegression(C=0.5, max_iter=50))
    assert back["model.__class__"] == "sklearn.linear_model._logistic.LogisticRegression"
    assert back["model.C"] == 0.5 and back["model.max_iter"] == 50
    assert back["model.class_weight"] is None
    expected = LogisticRegression(C=0.5, max_iter=50).get_params(deep=False)
    for key, value in expected.items():
        assert same(back[f"model.{key}"], value), key


def test_unknown_object_is_recorded_as_repr_with_a_warning(store: lineage.Store) -> None:
    class Opaque:
        def __repr__(self) -> str:
            return "<Opaque thing>"

    with pytest.warns(lineage.ParamWarning, match="'thing' is recorded as its repr"):
        back = _record(store, thing=Opaque(), n=1)
    assert back == {"thing": "<Opaque thing>", "n": 1}


def test_numpy_values_become_plain_numbers(store: lineage.Store) -> None:
    np = pytest.importorskip("numpy")
    back = _record(store, a=np.int64(3), b=np.float32(0.5), c=np.array([1, 2]), d=np.bool_(True))
    assert back == {"a": 3, "b": 0.5, "c": [1, 2], "d": True}
    assert type(back["a"]) is int and type(back["d"]) is bool


def test_flatten_and_normalise_helpers() -> None:
    assert flatten("x", {"a": 1}) == {"x": {"a": 1}}
    assert normalise({1: (2, 3)}, "x") == {"1": [2, 3]}
    with pytest.warns(lineage.ParamWarning):
        assert normalise([object], "x")[0].startswith("<class")


@pytest.mark.parametrize(
    ("suffix", "text"),
    [
        (".yaml", "train:\n  lr: 0.1\n  layers: [8, 8]\nseed: 3\n"),
        (".json", '{"train": {"lr": 0.1, "layers": [8, 8]}, "seed": 3}'),
        (".toml", "seed = 3\n[train]\nlr = 0.1\nlayers = [8, 8]\n"),
    ],
)
def test_config_files_flatten_to_dotted_keys(write_file: Any, suffix: str, text: str) -> None:
    path = write_file(f"params{suffix}", text)
    assert load_config(path) == {"train.lr": 0.1, "train.layers": [8, 8], "seed": 3}


@pytest.mark.parametrize(
    ("name", "text", "match"),
    [
        ("p.ini", "[a]\nb=1\n", "unknown suffix"),
        ("p.yaml", "a: [1, 2\n", "cannot parse"),
        ("p.json", "[1, 2]", "top level"),
    ],
)
def test_bad_config_files_raise_step_error(write_file: Any, name: str, text: str, match: str) -> None:
    with pytest.raises(lineage.StepError, match=match):
        load_config(write_file(name, text))
    with pytest.raises(lineage.StepError, match="cannot read"):
        load_config("/nonexistent/params.yaml")


_scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**53), max_value=2**53),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(st.characters(blacklist_categories=("Cs",), blacklist_characters="\x00"), max_size=20),
)
_values = st.recursive(
    _scalars,
    lambda inner: st.one_of(
        st.lists(inner, max_size=4),
        st.dictionaries(  # no NUL in keys: refused before writing (tests/test_values.py)
            st.text(st.characters(blacklist_categories=("Cs",), blacklist_characters="\x00"),
                    min_size=1, max_size=8),
            inner, max_size=4),
    ),
    max_leaves=12,
)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(value=_values)
def test_any_json_like_value_round_trips(sqlite_store: lineage.Store, value: Any) -> None:
    back = _record(sqlite_store, v=value)
    assert same(back["v"], value)


def test_long_strings_and_big_dicts_round_trip_on_every_backend(store: lineage.Store) -> None:
    # MLMD indexes string and struct values; PostgreSQL refuses index rows over ~2.7 kB.
    noise = "".join(chr(0x4E00 + (i * 7919) % 20000) for i in range(6000))  # incompressible
    big = {f"k{i}": noise[i * 10:(i + 1) * 10] for i in range(500)}

    @lineage.step(store=store)
    def describe(text: str, table: dict[str, Any]) -> int:
        return len(text)

    assert describe(noise, big) == 6000
    [execution] = store.executions(step="describe")
    assert execution.state == "COMPLETE"
    assert execution.params == {"text": noise, "table": big}


def test_a_step_failing_with_a_huge_message_is_recorded_failed(store: lineage.Store) -> None:
    noise = "".join(chr(0x4E00 + (i * 7919) % 20000) for i in range(20000))

    @lineage.step(store=store)
    def explode() -> None:
        raise ValueError(noise)

    with pytest.raises(ValueError):
        explode()
    [execution] = store.executions(step="explode")
    assert execution.state == "FAILED"
    assert execution.error is not None and execution.error.startswith("ValueError: " + noise[:100])
    assert len(execution.error.encode()) <= 2000


def test_a_long_metric_series_is_kept_whole_on_every_backend(store: lineage.Store) -> None:
    @lineage.step(store=store)
    def fit(epochs: int = 3000) -> None:
        for epoch in range(epochs):
            lineage.log_metrics({"loss": 1 / (epoch + 1), "acc": epoch / epochs}, step=epoch)

    with lineage.run("long", store=store):
        fit()
    [execution] = store.executions(step="fit")
    series = execution.properties["metric_series"]
    assert len(series["loss"]) == 3000 and series["loss"][-1] == [2999, 1 / 3000]
