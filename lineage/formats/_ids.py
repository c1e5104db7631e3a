"""Content identities of records that have no ``external_id`` (TFX's, Kubeflow's, our
executions and contexts): what never changes about a record, never where its store lives.

The importer gives a record without an ``external_id`` its identity as ``external_id``
(:mod:`lineage.formats.bundle_import`), and OpenLineage run ids are derived from the same
identity, so both survive a copy of the store and an import.

- an artifact: its type, name, uri and creation time;
- an execution: its type, name, creation time and what it read (the identities of its
  INPUT artifacts, with the event paths);
- a context: its type, name and creation time.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from typing import Any

__all__ = ["artifact_identity", "context_identity", "digest", "execution_identity",
           "path_text"]


def digest(*parts: str) -> str:
    """32 hex digits of the sha256 of ``parts`` (NUL-separated)."""
    return hashlib.sha256("\0".join(parts).encode()).hexdigest()[:32]


def artifact_identity(type_name: str, name: str, uri: str, create_time: int) -> str:
    """The identity of an artifact without an ``external_id``.

    Example:
        >>> a = artifact_identity("Examples", "", "/data/x", 1700000000000)
        >>> a.startswith("bundle:artifact:"), a == artifact_identity("Examples", "", "/data/x",
        ...                                                          1700000000000)
        (True, True)
    """
    return "bundle:artifact:" + digest("artifact", type_name, name, uri, str(create_time))


def context_identity(type_name: str, name: str, create_time: int) -> str:
    """The identity of a context without an ``external_id``."""
    return "bundle:context:" + digest("context", type_name, name, str(create_time))


def execution_identity(type_name: str, name: str, create_time: int,
                       reads: Iterable[tuple[str, str]]) -> str:
    """The identity of an execution without an ``external_id``; ``reads``: (identity of an
    INPUT artifact, the event's path) pairs, in any order."""
    return "bundle:execution:" + digest("execution", type_name, name, str(create_time),
                                        *sorted(f"{a}:{p}" for a, p in reads))


def path_text(steps: Iterable[Any]) -> str:
    """An event path's steps (MLMD's or the bundle's) as ``key.key.0``."""
    return ".".join(s.key if s.WhichOneof("value") == "key" else str(s.index) for s in steps)
