"""The fast argument binding of ``@step`` agrees with ``inspect.Signature.bind``."""

from __future__ import annotations

import inspect
from typing import Any

import pytest

import lineage
from lineage.steps import _bind


def _reference(spec: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> dict[str, Any]:
    bound = spec.signature.bind(*args, **kwargs)
    bound.apply_defaults()
    return dict(bound.arguments)


CALLS = [((1,), {}), ((1, 5), {}), ((1,), {"c": 9}), ((), {"a": 1, "b": 4}), ((1, 2, 3), {}),
         ((), {"c": 0, "a": 8})]
BAD = [((), {}), ((1, 2, 3, 4), {}), ((1,), {"a": 1}), ((1,), {"zz": 1})]


def test_fast_binding_matches_signature_bind(store: lineage.Store) -> None:
    @lineage.step(store=store)
    def f(a: int, b: int = 2, c: int = 3) -> tuple[int, int, int]:
        return (a, b, c)

    spec = f.__lineage_step__  # type: ignore[attr-defined]
    assert spec._plain is not None
    for args, kwargs in CALLS:
        got = _bind(spec, args, kwargs)
        assert list(got.arguments.items()) == list(_reference(spec, args, kwargs).items())
        assert f(*args, **kwargs) == tuple(got.arguments.values())
    for args, kwargs in BAD:
        with pytest.raises(TypeError):
            _bind(spec, args, kwargs)
        with pytest.raises(TypeError):
            f(*args, **kwargs)
    params = sorted(tuple(sorted(e.params.items())) for e in store.executions(step="f"))
    assert params == sorted(
        tuple(sorted(_reference(spec, a, k).items())) for a, k in CALLS
    )


def test_other_signatures_bind_through_inspect(store: lineage.Store) -> None:
    @lineage.step(store=store)
    def g(a: int, /, *rest: int, k: int = 1, **more: int) -> int:
        return a + sum(rest) + k + sum(more.values())

    spec = g.__lineage_step__  # type: ignore[attr-defined]
    assert spec._plain is None
    assert isinstance(_bind(spec, (1, 2), {"z": 3}), inspect.BoundArguments)
    assert g(1, 2, k=3, z=4) == 10
    [execution] = store.executions(step="g")
    assert execution.params == {"a": 1, "rest": [2], "k": 3, "z": 4}
