"""The public surface: ``lineage.__all__`` (as httpx's tests/test_exported_members.py)."""

from __future__ import annotations
import __future__

import inspect

import lineage


def test_all_is_sorted_and_unique() -> None:
    assert list(lineage.__all__) == sorted(lineage.__all__)
    assert len(set(lineage.__all__)) == len(lineage.__all__)


def test_every_exported_name_exists() -> None:
    missing = [name for name in lineage.__all__ if not hasattr(lineage, name)]
    assert not missing


def test_public_names_in_the_namespace_are_exported() -> None:
    public = {
        name for name, value in vars(lineage).items()
        if not name.startswith("_") and not inspect.ismodule(value)
        and not isinstance(value, __future__._Feature)  # `from __future__ import annotations`
    }
    assert public <= set(lineage.__all__), sorted(public - set(lineage.__all__))


def test_exported_members_have_docstrings() -> None:
    for name in lineage.__all__:
        value = getattr(lineage, name)
        if inspect.isclass(value) or inspect.isfunction(value):
            assert value.__doc__, f"lineage.{name} needs a docstring"


def test_api_md_names_are_exported() -> None:
    for name in ("connect", "Store", "Artifact", "Dataset", "Model", "Metrics", "Config",
                 "Execution", "Run", "LineageError", "ReadOnlyStore", "NotFound",
                 "AmbiguousRef", "InvalidRef", "TypeConflict", "ConnectionFailed"):
        assert name in lineage.__all__, name
