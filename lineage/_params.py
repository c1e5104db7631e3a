"""Step and run parameters: flattening objects to dotted keys, and config files.

Values MLMD can hold natively (``None``, bool, int, float including NaN and inf, str)
and lists/dicts of them are kept as they are; configuration objects (dataclasses, attrs
classes, pydantic models, ``argparse.Namespace``) and scikit-learn estimators are flattened
to dotted keys (``cfg.lr``); anything else is recorded as its ``repr`` with a warning.
"""

from __future__ import annotations

import argparse
import dataclasses
import enum
import importlib
import json
import math
import os
import warnings
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import attrs

from lineage import _limits, _values
from lineage.errors import StepError

__all__ = ["ParamWarning", "flatten", "load_config", "normalise"]

_MAX_DEPTH = _values.VALUE_DEPTH_MAX  # deeper values are refused when written


class ParamWarning(UserWarning):
    """Warned when a parameter value can only be recorded as its ``repr``."""


def _is_estimator(value: object) -> bool:
    return callable(getattr(value, "get_params", None)) and not isinstance(value, type)


def _object_fields(value: object) -> dict[str, Any] | None:
    """The fields of a configuration object, or ``None`` if it is not one."""
    if isinstance(value, type):
        return None
    if dataclasses.is_dataclass(value):
        return {f.name: getattr(value, f.name) for f in dataclasses.fields(value)}
    cls: Any = type(value)
    if attrs.has(cls):
        return {a.name: getattr(value, a.name) for a in attrs.fields(cls)}
    if isinstance(value, argparse.Namespace):
        return dict(vars(value))
    dump = getattr(value, "model_dump", None)  # pydantic 2
    if callable(dump) and hasattr(cls, "model_fields"):
        return {k: getattr(value, k) for k in cls.model_fields}
    if callable(getattr(value, "dict", None)) and hasattr(cls, "__fields__"):  # pydantic 1
        return {k: getattr(value, k) for k in cls.__fields__}
    return None


def _scalar(value: object) -> tuple[bool, Any]:
    """(True, value as a plain Python scalar) for values MLMD holds natively."""
    if value is None or isinstance(value, (bool, int, float, str)):
        if type(value) in (bool, int, float, str) or value is None:
            return True, value
        # subclasses (IntEnum, numpy.float64 is a float subclass, ...)
        if isinstance(value, enum.Enum):
            return True, value.value if isinstance(value.value, (int, float, str)) else value.name
        for base in (bool, int, float, str):
            if isinstance(value, base):
                return True, base(value)
    if isinstance(value, enum.Enum):
        return True, value.name
    ok, converted = _values.numpy_or_pandas(value)  # np.float32(0.9) -> 0.9, pd.NA -> None
    if ok:
        return True, converted
    if type(value).__module__ == "numpy" and callable(getattr(value, "item", None)):
        shape = getattr(value, "shape", None)
        if shape == ():  # numpy scalar
            item = value.item()  # type: ignore[attr-defined]
            if item is None or isinstance(item, (bool, int, float, str)):
                return True, item
    if isinstance(value, os.PathLike):
        return True, os.fspath(value)
    return False, None


def normalise(value: Any, where: str, *, _depth: int = 0) -> Any:
    """``value`` as None/bool/int/float/str/list/dict that MLMD can store.

    Lists and tuples become lists, mappings get string keys, nested configuration objects
    become dicts; anything else becomes its ``repr`` with a :class:`ParamWarning`.

    Example:
        >>> normalise((1, {"a": (2.5, None)}), "x")
        [1, {'a': [2.5, None]}]
    """
    ok, scalar = _scalar(value)
    if ok:
        return scalar
    if _depth > _MAX_DEPTH:
        return _as_repr(value, where, "it is nested too deeply")
    if isinstance(value, Mapping):
        return {str(k): normalise(v, f"{where}.{k}", _depth=_depth + 1) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [normalise(v, f"{where}[{i}]", _depth=_depth + 1) for i, v in enumerate(value)]
    if isinstance(value, (set, frozenset)):
        items = [normalise(v, f"{where}[]", _depth=_depth + 1) for v in value]
        return sorted(items, key=repr)
    if type(value).__module__ == "numpy" and hasattr(value, "tolist"):
        size = getattr(value, "size", 0)
        if size <= 10_000:
            return normalise(value.tolist(), where, _depth=_depth + 1)
        return _as_repr(value, where, f"it is an array of {size} values")
    fields = _object_fields(value)
    if fields is not None:
        return {k: normalise(v, f"{where}.{k}", _depth=_depth + 1) for k, v in fields.items()}
    if _is_estimator(value):
        return {
            "__class__": _class_path(value),
            **{k: normalise(v, f"{where}.{k}", _depth=_depth + 1)
               for k, v in _estimator_params(value).items()},
        }
    return _as_repr(value, where, None)


def _class_path(value: object) -> str:
    cls = type(value)
    return f"{cls.__module__}.{cls.__qualname__}"


def _estimator_params(value: Any) -> dict[str, Any]:
    try:
        params = value.get_params(deep=False)
    except TypeError:
        params = value.get_params()
    return dict(params) if isinstance(params, Mapping) else {}


def _as_repr(value: object, where: str, why: str | None) -> str:
    text = repr(value)
    if len(text) > 2000:
        text = text[:1997] + "..."
    reason = why or f"a {type(value).__name__} is not a number, string, list, dict or config object"
    warnings.warn(
        f"parameter {where!r} is recorded as its repr ({reason}); pass plain values, a "
        "dataclass/attrs/pydantic object, or log_params() the values you want to compare",
        ParamWarning,
        stacklevel=4,
    )
    return text


def flatten(name: str, value: Any, *, _depth: int = 0) -> dict[str, Any]:
    """Record ``value`` under ``name``: one entry, or dotted entries for config objects.

    Dataclasses, attrs classes, pydantic models and ``argparse.Namespace`` objects are
    flattened recursively (``cfg.optim.lr``); a scikit-learn estimator (anything with
    ``get_params()``) becomes ``name.__class__`` plus one entry per parameter. Plain dicts
    and lists stay one (struct) entry.

    Example:
        >>> import argparse
        >>> flatten("args", argparse.Namespace(lr=0.1, layers=[64, 64]))
        {'args.lr': 0.1, 'args.layers': [64, 64]}
        >>> flatten("nan", float("nan"))
        {'nan': nan}
    """
    out = _flatten(name, value, _depth=_depth)
    if _depth == 0:
        for key, item in out.items():  # each becomes an MLMD property: checked before writing
            _limits.check_name(key, "parameter name", StepError)
            out[key] = _values.plain(item, f"parameter {key!r}", StepError)
    return out


def _flatten(name: str, value: Any, *, _depth: int = 0) -> dict[str, Any]:
    ok, scalar = _scalar(value)
    if ok:
        return {name: scalar}
    if _depth < _MAX_DEPTH:
        fields = _object_fields(value)
        if fields is not None:
            out: dict[str, Any] = {}
            for key, item in fields.items():
                out.update(_flatten(f"{name}.{key}", item, _depth=_depth + 1))
            return out
        if _is_estimator(value) and not isinstance(value, (Mapping, list, tuple)):
            out = {f"{name}.__class__": _class_path(value)}
            for key, item in _estimator_params(value).items():
                out.update(_flatten(f"{name}.{key}", item, _depth=_depth + 1))
            return out
    return {name: normalise(value, name, _depth=_depth)}


def flatten_mapping(values: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    """Flatten nested mappings to dotted keys (``{"a": {"b": 1}}`` → ``{"a.b": 1}``).

    Example:
        >>> flatten_mapping({"train": {"lr": 0.1, "layers": [1, 2]}, "seed": 3})
        {'train.lr': 0.1, 'train.layers': [1, 2], 'seed': 3}
    """
    out: dict[str, Any] = {}
    for key, value in values.items():
        dotted = f"{prefix}{key}"
        if isinstance(value, Mapping) and value:
            out.update(flatten_mapping(value, f"{dotted}."))
        else:
            out.update(flatten(dotted, value))
    return out


def _toml_loads(text: str) -> Any:
    try:
        import tomllib
    except ModuleNotFoundError:  # pragma: no cover - Python 3.10
        tomllib = importlib.import_module("tomli")
    return tomllib.loads(text)


def load_config(path: str | os.PathLike[str]) -> dict[str, Any]:
    """Read a YAML, JSON or TOML file into dotted params.

    Raises:
        StepError: the file is missing, has an unknown suffix, cannot be parsed, or does
            not hold a mapping at its top level.

    Example:
        >>> import tempfile, pathlib
        >>> f = pathlib.Path(tempfile.mkdtemp()) / "p.json"
        >>> _ = f.write_text('{"train": {"lr": 0.1}}')
        >>> load_config(f)
        {'train.lr': 0.1}
    """
    p = Path(path)
    suffix = p.suffix.lower()
    try:
        text = p.read_text(encoding="utf-8")
    except OSError as exc:
        raise StepError(f"cannot read the config file {p}: {exc.strerror or exc}") from exc
    try:
        if suffix in (".yaml", ".yml"):
            import yaml

            data = yaml.safe_load(text)
        elif suffix == ".json":
            data = json.loads(text)
        elif suffix == ".toml":
            data = _toml_loads(text)
        else:
            raise StepError(
                f"config file {p}: unknown suffix {suffix!r}; use .yaml, .yml, .json or .toml"
            )
    except StepError:
        raise
    except Exception as exc:
        raise StepError(f"cannot parse the config file {p}: {exc}") from exc
    if data is None:
        data = {}
    if not isinstance(data, Mapping):
        raise StepError(
            f"config file {p} holds a {type(data).__name__} at its top level; a config must "
            "be a mapping of names to values"
        )
    return flatten_mapping(data)


def same(a: Any, b: Any) -> bool:
    """Equality where NaN equals NaN (for comparing recorded params).

    Example:
        >>> same({"x": [float("nan")]}, {"x": [float("nan")]})
        True
    """
    if isinstance(a, float) and isinstance(b, float) and math.isnan(a) and math.isnan(b):
        return True
    if isinstance(a, Mapping) and isinstance(b, Mapping):
        return a.keys() == b.keys() and all(same(a[k], b[k]) for k in a)
    if isinstance(a, (list, tuple)) and isinstance(b, (list, tuple)):
        return len(a) == len(b) and all(same(x, y) for x, y in zip(a, b, strict=True))
    return bool(a == b)
