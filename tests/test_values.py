"""Values round-trip exactly through a real store, or are refused before anything is written.

Every writer (artifact properties, declared properties, step params, run params, final
metrics, tags) takes numpy and pandas scalars, keeps int apart from float (2.0 stays a
float, ints beyond 2**53 and 2**64 keep every digit) and refuses NUL, lone surrogates,
nesting beyond ``VALUE_DEPTH_MAX`` and values over ``VALUE_BYTES_MAX`` with a
``LineageError`` naming the field, before the store changes.
"""

from __future__ import annotations

import math
import uuid
from collections.abc import Callable
from typing import Any

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st
from ml_metadata.proto import metadata_store_pb2 as pb

import lineage
from lineage import _convert
from lineage._values import VALUE_BYTES_MAX, VALUE_DEPTH_MAX

# --- helpers ---------------------------------------------------------------------------------


def exactly(a: Any, b: Any) -> bool:
    """Equality that tells int from float and bool, -0.0 from 0.0, and where NaN == NaN."""
    if type(a) is not type(b):
        return False
    if isinstance(a, float):
        if math.isnan(a) or math.isnan(b):
            return math.isnan(a) and math.isnan(b)
        return a == b and math.copysign(1.0, a) == math.copysign(1.0, b)
    if isinstance(a, dict):
        return a.keys() == b.keys() and all(exactly(a[k], b[k]) for k in a)
    if isinstance(a, list):
        return len(a) == len(b) and all(exactly(x, y) for x, y in zip(a, b, strict=True))
    return bool(a == b)


def test_exactly_tells_what_plain_equality_does_not() -> None:
    assert exactly({"a": [1, 2.0, math.nan]}, {"a": [1, 2.0, math.nan]})
    assert not exactly(2, 2.0)
    assert not exactly(True, 1)
    assert not exactly(-0.0, 0.0)
    assert not exactly([{"a": 1}], [{"a": 1.0}])


def counts(store: lineage.Store) -> tuple[int, int, int]:
    """How many artifacts, executions and contexts the store holds."""
    m = store.mlmd
    return len(m.get_artifacts()), len(m.get_executions()), len(m.get_contexts())


def via_artifact(store: lineage.Store, value: Any) -> Any:
    art = store.put(lineage.Artifact(content=uuid.uuid4().bytes, name="probe", v=value))
    return store.get(f"artifact:{art.id}").properties["v"]


def via_step_param(store: lineage.Store, value: Any) -> Any:
    @lineage.step(name="probe_step", store=store)
    def probe(v: Any) -> None:
        return None

    probe(value)
    return store.executions(step="probe_step")[-1].params["v"]


def via_run_param(store: lineage.Store, value: Any) -> Any:
    name = f"r-{uuid.uuid4().hex[:8]}"
    with lineage.run(name, store=store, params={"v": value}):
        pass
    return store.run(name).params["v"]


def via_log_params(store: lineage.Store, value: Any) -> Any:
    name = f"r-{uuid.uuid4().hex[:8]}"
    with lineage.run(name, store=store):
        lineage.log_params(v=value)
    return store.run(name).params["v"]


WRITERS: dict[str, Callable[[lineage.Store, Any], Any]] = {
    "artifact property": via_artifact,
    "step param": via_step_param,
    "run param": via_run_param,
    "log_params": via_log_params,
}


def round_trips_or_is_refused(store: lineage.Store, value: Any) -> None:
    for name, writer in WRITERS.items():
        if name == "log_params":
            continue  # below: the run is written before log_params is called
        before = counts(store)
        try:
            back = writer(store, value)
        except lineage.LineageError:
            assert counts(store) == before, "refused, but something was written"
            event(f"{name}: refused")
            continue
        assert exactly(back, value), (name, value, back)
        event(f"{name}: round-trip")
    with lineage.run(f"r-{uuid.uuid4().hex[:8]}", store=store) as run:
        before = counts(store)
        try:
            lineage.log_params(v=value)
        except lineage.LineageError:
            assert counts(store) == before
            assert "v" not in store.run(run.id).params
            return
    assert exactly(store.run(run.id).params["v"], value), ("log_params", value)


# --- hypothesis: anything either round-trips exactly or is refused before writing --------------

_floats = st.one_of(
    st.floats(allow_nan=True, allow_infinity=True),
    st.sampled_from([2.0, -0.0, 0.0, 1e-7, 1e300, 2.0**53, -(2.0**60), 0.1, 3.14159265358979]),
)
_ints = st.one_of(
    st.integers(min_value=-(2**31), max_value=2**31),
    st.integers(),  # unbounded: beyond 2**53 and 64 bits
    st.sampled_from([2**53, 2**53 + 1, -(2**53) - 1, 2**63 - 1, -(2**63), 2**63, 2**64, -(2**100)]),
)
_text = st.one_of(
    st.text(max_size=12),  # NUL and every plane (hypothesis excludes surrogates by default)
    st.text(st.characters(blacklist_categories=("Cs",), blacklist_characters="\x00"), max_size=12),
    st.sampled_from(["héllo", "日本語", "\U0001f600", "a\x00b", "\ud800", ""]),
)
_scalars = st.one_of(st.none(), st.booleans(), _ints, _floats, _text)
VALUES = st.recursive(
    _scalars,
    lambda inner: st.one_of(
        st.lists(inner, max_size=4),
        st.dictionaries(_text, inner, max_size=4),
    ),
    max_leaves=12,
)


@settings(max_examples=120, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(value=VALUES)
def test_any_value_round_trips_exactly_or_is_refused_before_writing(
    sqlite_store: lineage.Store, value: Any
) -> None:
    round_trips_or_is_refused(sqlite_store, value)


_numbers = st.one_of(st.integers(min_value=-(2**53) + 1, max_value=2**53 - 1), _floats)


@settings(max_examples=60, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(values=st.dictionaries(st.text(min_size=1, max_size=10), _numbers, min_size=1, max_size=5))
def test_final_metrics_round_trip_exactly_or_are_refused(
    sqlite_store: lineage.Store, values: dict[str, float | int]
) -> None:
    name = f"m-{uuid.uuid4().hex[:8]}"
    before = counts(sqlite_store)
    with lineage.run(name, store=sqlite_store):
        try:
            lineage.log_metrics(values)
        except lineage.LineageError:
            refused = True
        else:
            refused = False
    final = lineage.run_metrics(sqlite_store, name).final
    if refused:
        assert final == {}
        assert counts(sqlite_store)[:2] == before[:2]
    else:
        assert exactly(final, values)


# --- the same on every backend (smaller) --------------------------------------------------------

EXAMPLES = [
    {"lr": 2.0, "seed": 2**70, "neg": -(2**63) - 1, "tiny": 1e-7, "z": -0.0},
    [1, 2.0, None, True, "x", [], {}],
    2**64, -(2**80), 2**53 + 1, 2.0, -0.0, 1e-7, 1234567890123456.0, math.inf, math.nan,
    {"nested": {"deep": [[{"x": 1.0}]]}}, "日本語 \U0001f600",
]


@pytest.mark.parametrize("value", EXAMPLES, ids=range(len(EXAMPLES)))
def test_values_round_trip_on_every_backend(store: lineage.Store, value: Any) -> None:
    for writer in WRITERS.values():
        back = writer(store, value)
        assert exactly(back, value), (writer.__name__, back)


def test_final_metrics_keep_floats_on_every_backend(store: lineage.Store) -> None:
    values = {"acc": 1.0, "loss": 0.0, "n": 3, "tiny": 1e-7, "neg0": -0.0}
    with lineage.run("m", store=store):
        lineage.log_metrics(values)

    @lineage.step(store=store)
    def evaluate() -> None:
        lineage.log_metrics({"f1": 1.0, "k": 2})

    with lineage.run("s", store=store):
        evaluate()
    assert exactly(lineage.run_metrics(store, "m").final, values)
    [execution] = store.executions(step="evaluate")
    assert exactly(lineage.metrics.step_metrics(store, execution.id).final, {"f1": 1.0, "k": 2})
    assert exactly(execution.properties["metrics"], {"f1": 1.0, "k": 2})
    # the plain STRUCT stays beside the exact copy, for other MLMD tools and queries
    [raw] = store.mlmd.get_executions_by_id([execution.id])
    assert "metrics" in raw.properties and _convert.METRICS_PACKED in raw.properties


# --- numpy and pandas ------------------------------------------------------------------------


def test_numpy_metrics_artifact_from_a_step_is_recorded(sqlite_store: lineage.Store) -> None:
    @lineage.step(store=sqlite_store)
    def evaluate() -> lineage.Metrics:
        return lineage.Metrics({"acc": np.float32(0.9), "n": np.int64(3), "ok": np.bool_(True),
                                "f64": np.float64(0.1)}, name="eval")

    m = evaluate()
    [execution] = sqlite_store.executions(step="evaluate")
    assert execution.state == "COMPLETE"
    back = sqlite_store.get("eval")
    assert exactly(back.properties, {"acc": 0.9, "n": 3, "ok": True, "f64": 0.1})
    assert exactly(m.values, {"acc": 0.9, "n": 3, "ok": True, "f64": 0.1})


def test_numpy_and_pandas_scalars_everywhere(sqlite_store: lineage.Store) -> None:
    given = {"f32": np.float32(0.9), "f16": np.float16(0.1), "i8": np.int8(-3),
             "u64": np.uint64(2**64 - 1), "b": np.bool_(False), "s": np.str_("x"),
             "nested": {"a": [np.float32(2.0), np.int32(7)]}, "nat": pd.NaT, "na": pd.NA,
             "ts": pd.Timestamp("2024-05-01 12:30:00", tz="UTC"),
             "dt": np.datetime64("2024-05-01T12:30:00"), "zero_d": np.array(1.5)}
    plain = {"f32": 0.9, "f16": 0.1, "i8": -3, "u64": 2**64 - 1, "b": False, "s": "x",
             "nested": {"a": [2.0, 7]}, "nat": None, "na": None,
             "ts": "2024-05-01T12:30:00+00:00", "dt": "2024-05-01T12:30:00", "zero_d": 1.5}
    for key, value in given.items():
        for name, writer in WRITERS.items():
            back = writer(sqlite_store, value)
            assert exactly(back, plain[key]), (key, name, back)
    with lineage.run("np-metrics", store=sqlite_store):
        lineage.log_metrics({"acc": np.float32(0.9), "n": np.int64(4)}, step=np.int64(1))
    final = lineage.run_metrics(sqlite_store, "np-metrics").final
    assert exactly(final, {"acc": 0.9, "n": 4})
    a = sqlite_store.put(lineage.Dataset(content={"x": np.float32(0.5)}, name="np-content"))
    b = sqlite_store.put(lineage.Dataset(content={"x": 0.5}, name="plain-content"))
    assert a.fingerprint == b.fingerprint


def test_tags_take_numpy_scalars(sqlite_store: lineage.Store) -> None:
    sqlite_store.put(lineage.Dataset(content=b"x", name="d"))
    tagged = lineage.tag(sqlite_store, "d", {"score": np.float32(0.9), "n": np.int64(2)})
    assert exactly(tagged.tags, {"score": 0.9, "n": 2})


# --- declared (typed) properties ----------------------------------------------------------------


class Probe(lineage.Artifact):
    x: float
    n: int
    cfg: dict
    items: list
    label: str
    maybe: float | None


def test_declared_properties_keep_every_digit(store: lineage.Store) -> None:
    long_text = "é" * 3000  # over the 2,000 bytes an index row of PostgreSQL holds
    given = {"x": 3.14159265358979, "n": 2**40, "cfg": {"lr": 2.0, "big": 2**60},
             "items": [1, 2.0], "label": long_text, "maybe": None}
    art = store.put(Probe(content=b"p", name="p", **given))
    back = store.get(f"artifact:{art.id}")
    assert exactly(back.properties, given)
    assert back.x == 3.14159265358979
    # the declared property keeps the closest value its type holds, for other tools
    [raw] = store.mlmd.get_artifacts_by_id([art.id])
    assert raw.properties["x"].double_value == pytest.approx(3.14159265358979, abs=1e-6)
    assert raw.properties["cfg"].struct_value.fields["lr"].number_value == 2.0


def test_declared_float_takes_an_int_as_float(sqlite_store: lineage.Store) -> None:
    art = sqlite_store.put(Probe(content=b"q", name="q", x=3, n=1))
    assert exactly(sqlite_store.get(f"artifact:{art.id}").properties, {"x": 3.0, "n": 1})


def test_declared_property_of_another_type_is_refused(sqlite_store: lineage.Store) -> None:
    before = counts(sqlite_store)
    with pytest.raises(lineage.ArtifactError, match=r"property 'n' is declared int.*str"):
        sqlite_store.put(Probe(content=b"r", name="r", n="three"))
    assert counts(sqlite_store) == before


# --- refused before writing --------------------------------------------------------------------


def nested(depth: int) -> Any:
    value: Any = 1
    for i in range(depth):
        value = {"k": value} if i % 2 else [value]
    return value


def nested_dicts(depth: int, leaf: Any = 1.5) -> Any:
    value: Any = leaf
    for _ in range(depth):
        value = {"k": value}
    return value


def nested_exact(depth: int) -> Any:
    """Nested dicts and lists around 2.0: packed as an ExactValue, not a plain struct."""
    value: Any = 2.0
    for i in range(depth):
        value = {"k": value, "n": 2**60} if i % 2 else [value]
    return value


@pytest.mark.parametrize("make", [nested, nested_dicts, nested_exact])
def test_nesting_up_to_the_limit_round_trips_and_beyond_is_refused(
    sqlite_store: lineage.Store, make: Callable[[int], Any]
) -> None:
    deepest = make(VALUE_DEPTH_MAX)
    for writer in WRITERS.values():
        assert exactly(writer(sqlite_store, deepest), deepest)
    before = counts(sqlite_store)
    for name, writer in WRITERS.items():
        if name == "log_params":
            continue  # the run is written before log_params is called (checked below)
        with pytest.raises(lineage.LineageError, match=f"deeper than {VALUE_DEPTH_MAX}"):
            writer(sqlite_store, make(VALUE_DEPTH_MAX + 1))
    assert counts(sqlite_store) == before


def test_mlmd_itself_refuses_structs_a_little_deeper_than_the_limit(
    sqlite_store: lineage.Store,
) -> None:
    """Why the limit is 30: MLMD parses struct values with protobuf's recursion limit."""
    art = pb.Artifact(type_id=sqlite_store.mlmd.put_artifact_type(pb.ArtifactType(name="raw")))
    art.custom_properties["v"].struct_value.CopyFrom(
        _convert._to_pb_value(nested_dicts(33)).struct_value)
    with pytest.raises(Exception, match="parse"):
        sqlite_store.mlmd.put_artifacts([art])


BAD = [
    ("a\x00b", "NUL"),
    ("\ud800x", "lone surrogate"),
    ({"k": ["ok", "a\x00"]}, "NUL"),
    ({"bad\x00key": 1}, "NUL"),
    ({"k": "\udcff"}, "lone surrogate"),
    ("x" * (VALUE_BYTES_MAX + 1), "limit"),
    (["x" * 1000] * (VALUE_BYTES_MAX // 1000 + 1), "limit"),
]


@pytest.mark.parametrize(("value", "why"), BAD, ids=[w for _v, w in BAD])
def test_bad_values_are_refused_before_anything_is_written(
    sqlite_store: lineage.Store, value: Any, why: str
) -> None:
    before = counts(sqlite_store)
    for writer in (via_artifact, via_step_param, via_run_param):
        with pytest.raises(lineage.LineageError, match=why) as info:
            writer(sqlite_store, value)
        assert "'v'" in str(info.value)  # names the field
    assert counts(sqlite_store) == before
    with lineage.run("bad-log", store=sqlite_store) as run, \
            pytest.raises(lineage.StepError, match=why):
        lineage.log_params(v=value, other=1)
    assert "v" not in sqlite_store.run(run.id).params


def test_refusal_names_the_key_path(sqlite_store: lineage.Store) -> None:
    with pytest.raises(lineage.ArtifactError, match=r"property 'cfg'\['a'\]\[1\] holds a NUL"):
        lineage.Dataset(content=b"x", name="d", cfg={"a": ["ok", "x\x00"]})
    with pytest.raises(lineage.StepError, match=r"parameter 'opt'\['lr'\] holds a NUL"), \
            lineage.run("kp", store=sqlite_store):
        lineage.log_params(opt={"lr": "0.1\x00"})


def test_step_refused_param_writes_no_execution(sqlite_store: lineage.Store) -> None:
    ran = []

    @lineage.step(store=sqlite_store)
    def train(note: str) -> None:
        ran.append(note)

    with pytest.raises(lineage.StepError, match="parameter 'note' holds a NUL"):
        train("a\x00b")
    assert ran == []
    assert sqlite_store.executions(step="train") == []


NAMES = [("a\x00b", "NUL"), ("\ud800", "surrogate"), ("n" * 201, "limit is 200")]


@pytest.mark.parametrize(("name", "why"), NAMES, ids=[w for _n, w in NAMES])
def test_bad_names_are_refused_everywhere(
    sqlite_store: lineage.Store, name: str, why: str
) -> None:
    before = counts(sqlite_store)
    with pytest.raises(lineage.ArtifactError, match=why):
        lineage.Dataset(content=b"x", name=name)
    with pytest.raises(lineage.ArtifactError, match=why):
        lineage.Dataset(content=b"x", name="d", **{name: 1})
    with pytest.raises(lineage.StepError, match=why):
        lineage.step(name=name, store=sqlite_store)(lambda: None)
    with pytest.raises(lineage.StepError, match=why):
        lineage.run(name, store=sqlite_store)
    with pytest.raises(lineage.StepError, match=why):
        lineage.run("ok", experiment=name, store=sqlite_store)
    with pytest.raises(lineage.StepError, match=why):
        lineage.run("ok", store=sqlite_store, params={name: 1})
    assert counts(sqlite_store) == before
    with lineage.run("names", store=sqlite_store) as run:
        with pytest.raises(lineage.StepError, match=why):
            lineage.log_params(**{name: 1})
        with pytest.raises(lineage.StepError, match=why):
            lineage.log_metrics({name: 1.0})
    assert sqlite_store.run(run.id).params == {}
    assert lineage.run_metrics(sqlite_store, "names").final == {}


def test_metric_ints_beyond_2_53_are_refused(sqlite_store: lineage.Store) -> None:
    with lineage.run("big", store=sqlite_store):
        with pytest.raises(lineage.StepError, match=r"beyond 2\*\*53"):
            lineage.log_metrics({"n": 2**60})
        lineage.log_metrics({"n": 2**53 - 1})
    assert exactly(lineage.run_metrics(sqlite_store, "big").final, {"n": 2**53 - 1})


# --- stores written before exact values --------------------------------------------------------


def test_plain_structs_written_before_read_as_before(sqlite_store: lineage.Store) -> None:
    """An integral number in a plain struct (what earlier versions wrote for 2.0) reads as int."""
    art = sqlite_store.put(lineage.Dataset(content=b"old", name="old"))
    [raw] = sqlite_store.mlmd.get_artifacts_by_id([art.id])
    raw.custom_properties["cfg"].struct_value.CopyFrom(
        _convert._to_pb_value({"lr": 2.0, "xs": [1.0, 0.5]}).struct_value)
    raw.custom_properties["xs"].proto_value.Pack(_convert._to_pb_value([3.0, 0.25]))
    sqlite_store.mlmd.put_artifacts([raw])
    back = lineage.connect(sqlite_store.uri).get("old").properties
    assert exactly(back["cfg"], {"lr": 2, "xs": [1, 0.5]})
    assert exactly(back["xs"], [3, 0.25])


def test_exact_values_are_only_used_when_needed() -> None:
    """Values a plain Struct keeps exactly stay plain, readable by any MLMD tool."""
    assert _convert.to_value({"a": 1, "b": 0.5}).WhichOneof("value") == "struct_value"
    packed = _convert.to_value([1, "x", None])
    assert packed.proto_value.type_url.endswith("google.protobuf.Value")
    exact = _convert.to_value({"a": 2.0})
    assert exact.proto_value.type_url.endswith("google.protobuf.BytesValue")
    assert _convert.from_value(exact) == {"a": 2.0}
