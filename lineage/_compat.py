"""The two ml-metadata lines ``lineage`` runs on, and everything that differs between them.

``lineage`` supports two lines of ml-metadata (MLMD). pip picks one from the Python version
and the system (see ``pyproject.toml`` and the README's "Supported versions"):

========  =============  ===============  =========  =================================
line      ml-metadata    protobuf         CPython    wheels (Linux x86_64)
========  =============  ===============  =========  =================================
``1.15``  1.15.0-1.17.x  4.25 (``<5``)    3.10-3.11  manylinux2014: glibc ≥ 2.17
``1.21``  1.21.x         ≥ 6.31.1, < 7    3.11-3.13  manylinux_2_39 only: glibc ≥ 2.39
========  =============  ===============  =========  =================================

(1.18 to 1.20 were never published.) What each line cannot do:

- **1.21** has no ZetaSQL filter queries: ``ListOptions`` carrying one, and the starting
  nodes of MLMD's lineage-subgraph read, are refused with ``UnimplementedError`` ("ZetaSQL
  dependency removed"). ``lineage`` uses neither (``tests/test_store.py`` checks every
  module), so every ``lineage`` feature works on both lines. Its wheels load only on
  glibc ≥ 2.39 with a libstdc++ that has ``GLIBCXX_3.4.32`` (Debian 13, Ubuntu 24.04 or
  newer); on older systems pip does not offer it.
- **1.15-1.17** need protobuf 4 (``<5``), so they cannot share an environment with
  packages that need protobuf 5 or 6, and have no wheels for Python 3.12 or newer.
  1.17 warns (``DeprecationWarning``) when a filter query is used.

Both lines write MLMD schema version 10 (1.11 through 1.21), so a store written by one is
read and extended by the other, in both directions, with no migration; ``make test-compat``
checks that. ``lineage``'s own generated protobuf code (``lineage/_proto``, protoc 25 from
grpcio-tools 1.62) loads under protobuf 4.25 and 6.x alike. Its code uses only the protobuf
and MLMD API the two lines share; when that stops being true, the difference goes here.

Example:
    >>> line().name in ("1.15", "1.21")
    True
    >>> line().filter_queries == (mlmd_version() < (1, 21))
    True
"""

from __future__ import annotations

import functools
import importlib.metadata
import os
import platform
import re
import sys

import attrs

__all__ = ["LINES", "Line", "glibc_version", "line", "line_for", "mlmd_version",
           "protobuf_version", "versions"]


@attrs.frozen
class Line:
    """One supported ml-metadata line: the versions it spans and what it needs."""

    name: str
    """Short name (the oldest ml-metadata version of the line)."""
    mlmd: tuple[tuple[int, int], tuple[int, int]]
    """Oldest and newest ml-metadata ``(major, minor)`` of the line, both included."""
    protobuf: tuple[int, ...]
    """The protobuf major versions it runs with."""
    pythons: tuple[tuple[int, int], ...]
    """The CPython versions it has wheels for, that ``lineage`` supports."""
    glibc: tuple[int, int]
    """The oldest glibc its Linux wheels load on."""
    filter_queries: bool
    """Whether MLMD's ZetaSQL filter queries work (``lineage`` never needs them)."""
    cannot: str
    """What this line cannot do, in one sentence."""


#: The supported lines, oldest first. ``pyproject.toml``'s pins follow this table
#: (``tests/test_compat.py`` checks it).
LINES: tuple[Line, ...] = (
    Line(
        name="1.15", mlmd=((1, 15), (1, 17)), protobuf=(4,),
        pythons=((3, 10), (3, 11)), glibc=(2, 17), filter_queries=True,
        cannot="no Python 3.12+, and protobuf 4 only (no packages that need protobuf 5 or 6 "
               "beside it)",
    ),
    Line(
        name="1.21", mlmd=((1, 21), (1, 21)), protobuf=(6,),
        pythons=((3, 11), (3, 12), (3, 13)), glibc=(2, 39), filter_queries=False,
        cannot="no ZetaSQL filter queries (removed upstream; lineage does not use them), "
               "and no systems older than glibc 2.39 (Debian 13, Ubuntu 24.04)",
    ),
)


def _version_tuple(text: str) -> tuple[int, ...]:
    return tuple(int(part) for part in re.findall(r"\d+", text)[:3])


@functools.cache
def mlmd_version() -> tuple[int, ...]:
    """The installed ml-metadata version, e.g. ``(1, 17, 1)``."""
    return _version_tuple(importlib.metadata.version("ml-metadata"))


@functools.cache
def protobuf_version() -> tuple[int, ...]:
    """The installed protobuf version, e.g. ``(4, 25, 9)``.

    Example:
        >>> protobuf_version()[0] in (4, 6)
        True
    """
    return _version_tuple(importlib.metadata.version("protobuf"))


def glibc_version() -> tuple[int, ...] | None:
    """The C library's version when it is glibc (``None`` elsewhere, e.g. musl, macOS)."""
    try:
        found = os.confstr("CS_GNU_LIBC_VERSION") or ""
    except (AttributeError, ValueError, OSError):
        found = ""
    name, _, version = found.partition(" ")
    return _version_tuple(version) if name == "glibc" and version else None


def line_for(mlmd: tuple[int, ...]) -> Line:
    """The line an ml-metadata version belongs to.

    Raises:
        LookupError: for a version outside both lines (say so, with what is supported).

    Example:
        >>> line_for((1, 16, 0)).name, line_for((1, 21, 0)).name
        ('1.15', '1.21')
    """
    for candidate in LINES:
        low, high = candidate.mlmd
        if low <= tuple(mlmd[:2]) <= high:
            return candidate
    supported = ", ".join(f"{a[0]}.{a[1]}-{b[0]}.{b[1]}" for a, b in (c.mlmd for c in LINES))
    raise LookupError(
        f"ml-metadata {'.'.join(map(str, mlmd))} is not supported by lineage "
        f"(supported: {supported}); reinstall with: pip install mlmd-lineage"
    )


def line() -> Line:
    """The line of the installed ml-metadata."""
    return line_for(mlmd_version())


def versions() -> dict[str, str]:
    """What this process runs with: Python, ml-metadata and its line, protobuf, glibc.

    Example:
        >>> sorted(versions())
        ['glibc', 'line', 'ml-metadata', 'protobuf', 'python']
    """
    glibc = glibc_version()
    return {
        "python": platform.python_version(),
        "ml-metadata": ".".join(map(str, mlmd_version())),
        "line": line().name,
        "protobuf": ".".join(map(str, protobuf_version())),
        "glibc": ".".join(map(str, glibc)) if glibc else "none",
    }


def _main() -> int:
    """``python -m lineage._compat``: print :func:`versions` on one line (for CI logs)."""
    facts = versions()
    print(", ".join(f"{key} {value}" for key, value in facts.items()))
    current = line()
    if sys.version_info[:2] not in current.pythons:
        print(f"note: Python {sys.version_info[0]}.{sys.version_info[1]} is outside the "
              f"{current.name} line's supported Pythons")
    return 0


if __name__ == "__main__":
    sys.exit(_main())
