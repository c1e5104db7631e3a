"""Caching is never wrong: the key covers the whole content of every argument, the object a
method is called on, the project's own code a step refers to; what cannot be keyed or
given back runs, and says why."""

from __future__ import annotations

import dataclasses
import importlib
import sys
import textwrap
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

import lineage


def _counted(store: lineage.Store) -> tuple[list[Any], Any]:
    calls: list[Any] = []

    @lineage.step(store=store, cache=True)
    def fit_on_array(X: Any, scale: float = 1.0) -> lineage.Metrics:
        calls.append(1)
        return lineage.Metrics({"total": float(np.asarray(X).sum()) * scale}, name="fit")

    return calls, fit_on_array


def test_arrays_and_frames_are_keyed_by_their_whole_content(store: lineage.Store) -> None:
    calls, fit = _counted(store)
    x1 = np.zeros((100, 100))
    x2 = x1.copy()
    x2[50, 50] = 1.0  # the same shortened repr, other content
    assert repr(x1) == repr(x2)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", lineage.ParamWarning)
        assert fit(x1).values["total"] == 0.0
        assert fit(x2).values["total"] == 1.0
        assert fit(x2).values["total"] == 1.0  # a hit
        frame = pd.DataFrame({"a": range(1000)})
        other = frame.copy()
        other.loc[500, "a"] = -1
        fit(frame)
        fit(other)
    assert len(calls) == 4
    assert fit(2).values == fit(2.0).values and len(calls) == 6  # 2 and 2.0 are different


@dataclasses.dataclass
class Trainer:
    lr: float

    @lineage.step(cache=True)
    def fit(self, data: lineage.Dataset) -> lineage.Metrics:
        CALLS.append(self.lr)
        return lineage.Metrics({"lr": self.lr}, name="trained")


CALLS: list[float] = []


def test_a_method_keys_the_state_of_its_object(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)  # the default store of the decorated method
    CALLS.clear()
    data = tmp_path / "d.csv"
    data.write_text("1\n")
    assert Trainer(lr=0.1).fit(lineage.Dataset(data, name="d")).values == {"lr": 0.1}
    assert Trainer(lr=0.5).fit(lineage.Dataset(data, name="d")).values == {"lr": 0.5}
    assert Trainer(lr=0.1).fit(lineage.Dataset(data, name="d")).values == {"lr": 0.1}
    assert CALLS == [0.1, 0.5]


class Opaque:
    """An object with no fields to read: its repr says nothing about its state."""

    def __init__(self, seed: int) -> None:
        self._rng = np.random.default_rng(seed)

    def __repr__(self) -> str:
        return "<Opaque>"


def test_what_cannot_be_keyed_runs_and_says_why(store: lineage.Store) -> None:
    calls: list[int] = []

    @lineage.step(store=store, cache=True)
    def sample(source: Any) -> lineage.Metrics:
        calls.append(1)
        return lineage.Metrics({"x": 1}, name="sample")

    with pytest.warns(lineage.CacheWarning, match="cannot be keyed exactly"), \
            warnings.catch_warnings():
        warnings.simplefilter("ignore", lineage.ParamWarning)
        sample(Opaque(1))
        sample(Opaque(2))
    assert calls == [1, 1]
    assert store.executions(state="CACHED") == []


@pytest.mark.parametrize("keep", [None, False])
def test_in_memory_outputs_are_given_back_or_the_step_runs(
    store: lineage.Store, keep: bool | None
) -> None:
    calls: list[int] = []

    @lineage.step(store=store, cache=True, keep=keep)
    def make(n: int = 3) -> lineage.Dataset:
        calls.append(n)
        return lineage.Dataset(content=np.arange(n), name="made")

    first = make()
    second = make()
    assert second.content is not None and list(second.content) == [0, 1, 2]
    assert first.id == second.id
    if keep is None:  # kept (the default): the hit gives its bytes back
        assert len(calls) == 1 and len(store.executions(state="CACHED")) == 1
    else:  # its bytes are not kept: the call ran again
        assert len(calls) == 2


def test_a_mixed_return_says_why_it_is_not_cached(store: lineage.Store) -> None:
    calls: list[int] = []

    @lineage.step(store=store, cache=True)
    def train() -> tuple[lineage.Model, float]:
        calls.append(1)
        return lineage.Model(content=b"w", name="m"), 0.93

    with pytest.warns(lineage.CacheWarning, match="mixes artifacts with other values"):
        assert train()[1] == 0.93
    assert train()[1] == 0.93
    assert calls == [1, 1]


def test_cache_version_bumps_by_hand(store: lineage.Store) -> None:
    calls: list[int] = []

    def make(version: int) -> Any:
        @lineage.step(name="bumped", store=store, cache=True, cache_version=version)
        def bumped() -> lineage.Metrics:
            calls.append(version)
            return lineage.Metrics({"v": 1}, name="bumped")

        return bumped

    make(1)()
    make(1)()
    make(2)()
    assert calls == [1, 2]
    with pytest.raises(lineage.StepError, match="cache_version"):
        lineage.step(cache=True, cache_version=[1])(lambda: None)  # type: ignore[arg-type]


def test_changing_a_helper_is_a_code_change(tmp_path: Path, store: lineage.Store) -> None:
    project = tmp_path / "project"
    project.mkdir()
    (project / "helpers.py").write_text("def scale(x):\n    return x * 2\n")
    (project / "pipeline.py").write_text(textwrap.dedent("""
        import lineage
        from helpers import scale

        CALLS = []

        def make(store):
            @lineage.step(store=store, cache=True)
            def compute(x: int = 1) -> lineage.Metrics:
                CALLS.append(x)
                return lineage.Metrics({"y": scale(x)}, name="y")
            return compute
    """))
    sys.path.insert(0, str(project))
    try:
        import pipeline  # type: ignore[import-not-found]

        assert pipeline.make(store)().values == {"y": 2}
        assert pipeline.make(store)().values == {"y": 2}  # a hit
        (project / "helpers.py").write_text("def scale(x):\n    return x * 3\n")
        importlib.reload(sys.modules["helpers"])
        pipeline = importlib.reload(pipeline)
        assert pipeline.make(store)().values == {"y": 3}  # the helper changed: it ran
        assert pipeline.CALLS == [1]
        d = store.diff("y@1", "y@2")
        assert "code_hash" in d.code["compute"] and "source_hash" not in d.code["compute"]
    finally:
        sys.path.remove(str(project))
        sys.modules.pop("pipeline", None)
        sys.modules.pop("helpers", None)


def test_a_remote_input_without_a_fingerprint_is_never_a_hit(store: lineage.Store) -> None:
    calls: list[int] = []

    @lineage.step(store=store, cache=True)
    def read(data: lineage.Dataset) -> lineage.Metrics:
        calls.append(1)
        return lineage.Metrics({"n": 1}, name="n")

    with pytest.warns(lineage.LineageWarning) as seen:
        read(lineage.Dataset("s3://bucket/data.csv", name="remote"))
        read(lineage.Dataset("s3://bucket/data.csv", name="remote"))
    assert calls == [1, 1]
    messages = [str(w.message) for w in seen]
    assert any("recorded without a fingerprint" in m for m in messages)  # when recorded
    assert any(w.category is lineage.CacheWarning and "no fingerprint" in str(w.message)
               for w in seen)
