"""Limits on names, URIs, references and ids, checked before anything reaches MLMD.

MLMD's MySQL and PostgreSQL schemas keep names in ``VARCHAR(255)`` columns and index
URIs (PostgreSQL refuses index rows over about 2.7 kB), and its ids are 64-bit. A name of
10 MB once kept a ``put`` busy on PostgreSQL for over five minutes before failing; a lone
surrogate or an id beyond 2**63 raised Python errors from deep inside protobuf. These
checks refuse such input at once, with the limit in the message, on every backend alike
(SQLite would take what PostgreSQL refuses).

Callers pass the error class to raise (``ArtifactError`` for an artifact's name,
``StepError`` for a step's, ``InvalidRef`` for a reference).
"""

from __future__ import annotations

import contextlib
from typing import TypeVar

from lineage.errors import InvalidRef, LineageError

__all__ = ["ID_MAX", "NAME_MAX", "REF_MAX", "URI_MAX", "check_id", "check_name",
           "check_ref", "check_uri", "name_problem"]

#: Longest name (artifact, step, run, experiment, parameter, property) in characters:
#: MLMD's columns hold 255, and lineage adds ``@<version>`` or ``:<32 hex>`` to some.
NAME_MAX = 200
#: Longest URI or path of an artifact, in UTF-8 bytes (MLMD indexes it; PostgreSQL's index
#: rows hold about 2.7 kB).
URI_MAX = 2048
#: Longest reference string (``name@version``, ``artifact:<id>``, a run name).
REF_MAX = NAME_MAX + 32
#: Largest MLMD id (ids are signed 64-bit integers).
ID_MAX = 2**63 - 1

E = TypeVar("E", bound=LineageError)


def _text_problem(text: str, what: str, limit: int, *, in_bytes: bool = False) -> str | None:
    size = len(text)
    if in_bytes and size * 4 > limit:  # ASCII-only text is checked without encoding
        with contextlib.suppress(UnicodeEncodeError):  # reported below
            size = len(text.encode("utf-8"))
    if size > limit:
        unit = "bytes (UTF-8)" if in_bytes else "characters"
        return (f"the {what} is {size:,} {unit} long; the limit is {limit:,} {unit} "
                "(MLMD's MySQL and PostgreSQL columns and indexes)")
    if not text.isascii():
        try:
            text.encode("utf-8")
        except UnicodeEncodeError as exc:
            return (f"the {what} holds a lone surrogate ({text[exc.start]!r} at position "
                    f"{exc.start}), which is not text; decode bytes with a real encoding")
    if "\0" in text:
        return f"the {what} holds a NUL character at position {text.index(chr(0))}, which MLMD cuts"
    return None


def name_problem(name: str, what: str = "name") -> str | None:
    """What is wrong with a name, or ``None``: its length, lone surrogates, NUL.

    Example:
        >>> name_problem("clf") is None
        True
        >>> print(name_problem("x" * 201, "step name"))
        the step name is 201 characters long; the limit is 200 characters (MLMD's MySQL and PostgreSQL columns and indexes)
    """
    return _text_problem(name, what, NAME_MAX)


def check_name(name: str, what: str, error: type[E]) -> str:
    """``name``, or ``error`` saying what is wrong with it (see :func:`name_problem`)."""
    problem = name_problem(name, what)
    if problem is not None:
        raise error(f"{problem}; {_shown(name)}")
    return name


def check_uri(uri: str, error: type[E]) -> str:
    """``uri``, or ``error`` if it is over :data:`URI_MAX` bytes or not encodable text.

    Example:
        >>> check_uri("s3://bucket/data.csv", ValueError)
        's3://bucket/data.csv'
    """
    problem = _text_problem(uri, "URI", URI_MAX, in_bytes=True)
    if problem is not None:
        raise error(f"{problem}; {_shown(uri)}")
    return uri


def check_id(value: int, what: str = "id") -> int:
    """``value``, or :class:`InvalidRef` if it cannot be an MLMD id (beyond 64 bits).

    Example:
        >>> check_id(12)
        12
        >>> check_id(2**64)  # doctest: +ELLIPSIS
        Traceback (most recent call last):
        lineage.errors.InvalidRef: ... ids are at most 9223372036854775807 ...
    """
    if not -ID_MAX <= value <= ID_MAX:
        raise InvalidRef(
            f"{what} {value} cannot exist: MLMD ids are at most {ID_MAX} (64 bits)", ref=value)
    return value


def check_ref(ref: object) -> None:
    """Refuse a reference that is too long, not text, or an id beyond 64 bits
    (:class:`InvalidRef`); anything else is left to the lookup.

    Example:
        >>> check_ref("clf@2")
        >>> check_ref("artifact:99999999999999999999")  # doctest: +ELLIPSIS
        Traceback (most recent call last):
        lineage.errors.InvalidRef: ... ids are at most ...
    """
    if isinstance(ref, bool):
        return
    if isinstance(ref, int):
        check_id(ref)
        return
    if not isinstance(ref, str):
        return
    problem = _text_problem(ref, "reference", REF_MAX)
    if problem is not None:
        raise InvalidRef(f"{problem}; {_shown(ref)}", ref=_shown(ref))
    for prefix in ("artifact:", "execution:", "context:"):
        if ref.startswith(prefix):
            digits = ref[len(prefix):]
            if digits.isdigit() and digits.isascii():
                check_id(int(digits), f"{prefix[:-1]} id")


def parse_id(ref: str, prefix: str) -> int:
    """The id of ``"<prefix>:<id>"``, or :class:`InvalidRef` saying the form.

    Example:
        >>> parse_id("context:12", "context")
        12
    """
    digits = ref[len(prefix) + 1:]
    if not (digits.isdigit() and digits.isascii()):
        raise InvalidRef(f"{_shown(ref)}: expected '{prefix}:<id>' with a number", ref=ref)
    return check_id(int(digits), f"{prefix} id")


def refused_value(exc: BaseException, method: str, uri: str) -> LineageError:
    """The error for a value protobuf refused while building an MLMD request: an
    :class:`InvalidRef` for a read (a reference's id or name), a :class:`StoreError`
    for a write.

    Example:
        >>> print(refused_value(ValueError("Value out of range: 99999999999999999999"),
        ...                     "get_artifacts_by_id", ":memory:"))
        could not get artifacts by id on store :memory:: Value out of range: 99999999999999999999 (MLMD ids and integers are at most 9223372036854775807, 64 bits)
    """
    from lineage.errors import StoreError

    detail = str(exc)
    if isinstance(exc, RecursionError):
        detail = "a value is nested too deeply"
    elif "out of range" in detail:
        detail += f" (MLMD ids and integers are at most {ID_MAX}, 64 bits)"
    elif isinstance(exc, UnicodeError):
        detail += " (a lone surrogate is not text: decode bytes with a real encoding)"
    detail = " ".join(detail.split())[:300]
    action = method.replace("_", " ")
    message = f"could not {action} on store {uri}: {detail}"
    if method.startswith("get_"):
        return InvalidRef(message, ref=None)
    return StoreError(message, uri=uri)


def _shown(text: str, limit: int = 60) -> str:
    """A short, printable rendering of a (possibly huge or hostile) text for a message."""
    shown = text if len(text) <= limit else f"{text[:limit // 2]}…{text[-(limit // 2):]}"
    return repr(shown)
