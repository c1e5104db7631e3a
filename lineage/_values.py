"""Values as lineage records them: numpy and pandas scalars made plain, and values MLMD
could not give back refused before anything is written.

Every writer of a value (artifact properties, step and run params, metrics, tags) goes
through :func:`plain` (via :func:`lineage._convert.set_value`), which

- turns numpy and pandas scalars into Python ones: ``np.bool_`` → bool, ``np.integer`` →
  int, ``np.float64`` → the same float, smaller or larger numpy floats (``np.float32``,
  ``np.float16``, ``np.longdouble``) → the float numpy prints (``np.float32(0.9)`` → 0.9,
  not 0.8999999761581421: the shortest decimal that reads back as the same float32),
  ``pd.NA``/``pd.NaT``/``np.datetime64("NaT")`` → None, ``pd.Timestamp`` and
  ``np.datetime64`` → their ISO 8601 text, ``np.str_`` → str; tuples become lists and
  mapping keys become strings;
- refuses, with the caller's error class and the key path and limit in the message: text
  holding a NUL character (MLMD's SQL cuts text there) or a lone surrogate (not encodable
  text), dicts and lists nested deeper than :data:`VALUE_DEPTH_MAX`, and values larger
  than :data:`VALUE_BYTES_MAX`.

Objects of other types are left as they are (the writer decides: a param becomes its
``repr``, a property is refused).

Nesting: MLMD parses a ``struct_value`` with protobuf's default recursion limit of 100
messages, and a ``google.protobuf.Struct`` spends three per dict level: on SQLite a struct
property 33 dicts deep is refused by MLMD ("Could not parse proto"), and a packed value
150 levels deep is written but cannot be parsed back by Python's protobuf. 30 levels is
below both, for every encoding lineage uses.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any, TypeVar

from lineage.errors import LineageError

__all__ = ["VALUE_BYTES_MAX", "VALUE_DEPTH_MAX", "check_text", "numpy_or_pandas", "plain"]

#: Deepest nesting of dicts and lists in one value (a scalar is depth 0, ``[1]`` depth 1).
VALUE_DEPTH_MAX = 30
#: Largest value, in bytes (UTF-8 text, 8 bytes per number): MLMD's MySQL schema keeps
#: values in MEDIUMTEXT/MEDIUMBLOB columns (16 MB) and a whole write must fit one packet;
#: a metadata store is not the place for bigger values (log them as artifacts).
VALUE_BYTES_MAX = 1_000_000

E = TypeVar("E", bound=LineageError)
_PLAIN_SCALARS = (str, int, float, bool, type(None))


def check_text(text: str, where: str, error: type[E]) -> str:
    """``text``, or ``error`` if it holds a NUL character or a lone surrogate.

    Example:
        >>> check_text("ok", "param 'x'", ValueError)
        'ok'
    """
    if "\0" in text:
        raise error(f"{where} holds a NUL character at position {text.index(chr(0))}, which "
                    "MLMD's SQL cuts the text at; remove it (or log binary data as an artifact)")
    if not text.isascii():
        try:
            text.encode("utf-8")
        except UnicodeEncodeError as exc:
            raise error(f"{where} holds a lone surrogate ({text[exc.start]!r} at position "
                        f"{exc.start}), which is not text; decode bytes with a real "
                        "encoding") from None
    return text


def numpy_or_pandas(value: Any) -> tuple[bool, Any]:
    """(True, plain value) for a numpy or pandas scalar, else (False, None)."""
    module = type(value).__module__
    if module == "numpy" or module.startswith("numpy."):
        import numpy as np

        if isinstance(value, np.bool_):
            return True, bool(value)
        if isinstance(value, np.integer):
            return True, int(value)
        if isinstance(value, np.floating):
            if isinstance(value, np.float64):
                return True, float(value)
            return True, float(str(value))  # what numpy prints: float32(0.9) -> 0.9
        if isinstance(value, np.str_):
            return True, str(value)
        if isinstance(value, np.datetime64):
            return True, None if np.isnat(value) else str(value)
        if isinstance(value, np.ndarray) and value.shape == ():
            return numpy_or_pandas(value[()])
        return False, None
    if module.startswith("pandas"):
        import pandas as pd

        if value is pd.NA or value is pd.NaT:
            return True, None
        if isinstance(value, pd.Timestamp):
            return True, value.isoformat()
    return False, None


def plain(value: Any, where: str, error: type[E]) -> Any:
    """``value`` with numpy/pandas scalars, tuples and keys made plain, checked (see the
    module docstring); ``where`` names the field in messages (``"parameter 'cfg'"``).

    Raises:
        error: text with NUL or a lone surrogate, nesting deeper than
            :data:`VALUE_DEPTH_MAX`, a value larger than :data:`VALUE_BYTES_MAX`.

    Example:
        >>> import numpy as np
        >>> plain({"acc": np.float32(0.9), "n": (np.int64(3), np.bool_(True))}, "x", ValueError)
        {'acc': 0.9, 'n': [3, True]}
    """
    kind = type(value)
    if kind is str:
        if len(value) > VALUE_BYTES_MAX // 4:
            _check_size(value, where, error)
        return check_text(value, where, error)
    if kind in _PLAIN_SCALARS:
        return value
    size = [0]
    return _walk(value, where, error, 0, size)


def _check_size(text: str, where: str, error: type[E]) -> None:
    size = len(text.encode("utf-8", "surrogatepass"))
    if size > VALUE_BYTES_MAX:
        raise error(f"{where} is {size:,} bytes long; the limit for one value is "
                    f"{VALUE_BYTES_MAX:,} bytes (log bigger data as an artifact)")


def _walk(value: Any, where: str, error: type[E], depth: int, size: list[int]) -> Any:
    kind = type(value)
    if kind is str:
        size[0] += len(value) if value.isascii() else len(value.encode("utf-8", "surrogatepass"))
        if size[0] > VALUE_BYTES_MAX:
            raise error(f"{where}: the value is over {VALUE_BYTES_MAX:,} bytes, the limit "
                        "for one value (log bigger data as an artifact)")
        return check_text(value, where, error)
    if kind in _PLAIN_SCALARS:
        size[0] += 8
        if kind is int and value.bit_length() > 64:
            size[0] += value.bit_length() // 8
        return value
    if isinstance(value, bool):
        return bool(value)
    if isinstance(value, int):  # IntEnum, ...
        return _walk(int(value), where, error, depth, size)
    if isinstance(value, float):
        return _walk(float(value), where, error, depth, size)
    if isinstance(value, str):
        return _walk(str(value), where, error, depth, size)
    if isinstance(value, (Mapping, list, tuple)):
        if depth >= VALUE_DEPTH_MAX:
            raise error(f"{where} nests dicts and lists deeper than {VALUE_DEPTH_MAX} levels, "
                        "the limit (MLMD cannot read deeper structs back)")
        size[0] += 2
        if isinstance(value, Mapping):
            out: dict[str, Any] = {}
            for key, item in value.items():
                ok, converted = numpy_or_pandas(key)
                text = str(converted if ok else key)
                check_text(text, f"{where} key {_short(text)}", error)
                size[0] += len(text)
                out[text] = _walk(item, f"{where}[{_short(text)}]", error, depth + 1, size)
            return out
        return [_walk(item, f"{where}[{i}]", error, depth + 1, size)
                for i, item in enumerate(value)]
    ok, converted = numpy_or_pandas(value)
    if ok:
        return _walk(converted, where, error, depth, size)
    return value


def _short(text: str, limit: int = 40) -> str:
    return repr(text if len(text) <= limit else text[:limit] + "…")


def is_float_exact_in_struct(x: float) -> bool:
    """Whether a ``google.protobuf.Value`` number read back by lineage gives ``x`` again
    (readers turn integral numbers below 2**53 into ints, as stores written before
    exact values hold them).

    Example:
        >>> is_float_exact_in_struct(0.5), is_float_exact_in_struct(2.0), is_float_exact_in_struct(-0.0)
        (True, False, False)
    """
    return not (x.is_integer() and abs(x) < 2**53) if math.isfinite(x) else True
