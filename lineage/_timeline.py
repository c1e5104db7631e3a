"""Lineage respects time: the one rule every answer is built on.

**A production of an artifact counts for a consumer only if it was recorded before the
consumer read the artifact.** The artifact asked about is the exception: every one of its
own producers counts. So when run r2 re-produces, byte for byte, an artifact that run r1
had already used, r2's steps do not become part of the lineage of r1's model, and a model
trained before raw data v2 existed is not in the impact of raw v2.

Order is the store's own sequence of records, never a wall clock:

- a read (an INPUT event) happens when its execution is created: MLMD assigns execution
  ids in the order executions are created, so the read's place is the consumer's id
  (``read_key``). Our steps and TFX's components both record their inputs when they
  create the execution.
- a production (an OUTPUT event) of one of our executions carries its place in the
  execution's ``output_seq`` property: event path → the largest execution id in the store
  just before the outputs were written (:func:`stamp`). Outputs of other tools' executions
  (and of ours recorded before this property existed) are taken as written when their
  execution was created: their place is the execution's id.
- a production counts for a read iff its place is below the read's (``counts``).

Provenance and impact walk the events frontier by frontier with these two closures; the
same code runs over the store (batched MLMD reads, :mod:`lineage.queries`) and over an
in-memory graph (:func:`lineage.graph.upstream`), through the small :class:`Events`
interface.
"""

from __future__ import annotations

import sys
from collections.abc import Collection, Iterable, Mapping
from typing import TYPE_CHECKING, Any, Protocol

import attrs
from ml_metadata.metadata_store import metadata_store
from ml_metadata.proto import metadata_store_pb2 as pb

from lineage import _convert

if TYPE_CHECKING:
    from lineage.store import Store

__all__ = [
    "Closure",
    "Events",
    "counts",
    "downstream",
    "production_key",
    "read_key",
    "stamp",
    "upstream",
]

#: The read place of the artifact asked about: after everything.
_LAST = sys.maxsize
#: The production place of the artifact asked about: before everything.
_FIRST = -1


def read_key(execution_id: int) -> int:
    """The place of a read by execution ``execution_id`` (its INPUT events)."""
    return execution_id


def production_key(execution_id: int, output_seq: Mapping[str, Any] | None, path: str) -> int:
    """The place of the OUTPUT event ``path`` of an execution (see the module docstring)."""
    if output_seq:
        found = output_seq.get(path)
        if isinstance(found, int) and not isinstance(found, bool):
            return found
    return execution_id


def counts(production: int, read: int) -> bool:
    """Whether a production at place ``production`` counts for a read at place ``read``.

    Example:
        >>> counts(production_key(3, None, "[0]"), read_key(5)), counts(7, read_key(5))
        (True, False)
    """
    return production < read


def output_seq_of(proto: pb.Execution) -> dict[str, Any] | None:
    """The ``output_seq`` property of an execution proto, decoded (None if absent)."""
    if "output_seq" not in proto.properties:
        return None
    found = _convert.from_value(proto.properties["output_seq"])
    return found if isinstance(found, dict) else None


def stamp(store: Store) -> int:
    """The place to record for outputs written now: the largest execution id in the store
    (one indexed read, newest row first)."""
    opts = metadata_store.ListOptions(
        limit=1, order_by=metadata_store.OrderByField.ID, is_asc=False)
    newest = store._call("get_executions", opts)
    return int(newest[0].id) if newest else 0


class Events(Protocol):
    """Where a walk reads events from (the store, or a graph already in memory).

    Every method takes ids and returns the INPUT/OUTPUT events touching them as
    ``(artifact id, execution id, place)``; for inputs the place is the read key.
    """

    def producers(self, artifacts: Collection[int]) -> Iterable[tuple[int, int, int]]:
        """OUTPUT events into ``artifacts``, with their production places."""
        ...

    def consumers(self, artifacts: Collection[int]) -> Iterable[tuple[int, int, int]]:
        """INPUT events from ``artifacts``, with their read places."""
        ...

    def inputs(self, executions: Collection[int]) -> Iterable[tuple[int, int, int]]:
        """INPUT events of ``executions``, with their read places."""
        ...

    def outputs(self, executions: Collection[int]) -> Iterable[tuple[int, int, int]]:
        """OUTPUT events of ``executions``, with their production places."""
        ...


@attrs.define
class Closure:
    """What a walk found: the artifacts and executions, and the events that counted."""

    artifacts: set[int]
    """Every artifact reached, the one asked about included."""
    executions: set[int]
    """Every execution whose events counted."""
    inputs: set[tuple[int, int]] = attrs.field(factory=set)
    """(artifact, execution) of the INPUT events that counted."""
    outputs: set[tuple[int, int]] = attrs.field(factory=set)
    """(artifact, execution) of the OUTPUT events that counted."""


def upstream(events: Events, start: int, *, read: int = _LAST) -> Closure:
    """Everything ``start`` was made from: its producers (all of them), the artifacts they
    read, the productions of those that were recorded before the read, and so on.

    Each artifact is reached with the latest read through which it matters; when a later
    read reaches an artifact again, the productions between the two reads count too.
    ``read``: the place of the read of ``start`` to begin from (an execution's input);
    by default every producer of ``start`` counts.

    Example:
        >>> class Chain:  # execution 20 reads artifact 1 and makes 3; later, 30 re-makes 1
        ...     def producers(self, arts): return [(a, e, k) for a, e, k in
        ...         [(3, 20, 20), (1, 30, 30)] if a in arts]
        ...     def inputs(self, execs): return [(1, e, e) for e in execs if e == 20]
        ...     consumers = outputs = lambda self, ids: []
        >>> c = upstream(Chain(), 3)
        >>> sorted(c.artifacts), sorted(c.executions)  # 30 came after 20 read artifact 1
        ([1, 3], [20])
    """
    read_at: dict[int, int] = {start: read}
    producers: dict[int, list[tuple[int, int]]] = {}
    done: set[int] = set()
    out = Closure(artifacts={start}, executions=set())
    frontier = {start}
    while frontier:
        unread = frontier - producers.keys()
        for art in unread:
            producers[art] = []
        for art, exe, place in events.producers(unread):
            producers[art].append((exe, place))
        new: set[int] = set()
        for art in frontier:
            read = read_at[art]
            for exe, place in producers[art]:
                if (art == start and read == _LAST) or counts(place, read):
                    out.outputs.add((art, exe))
                    if exe not in done:
                        new.add(exe)
        done |= new
        frontier = set()
        for art, exe, place in events.inputs(new):
            out.inputs.add((art, exe))
            if read_at.get(art, _FIRST) < place:
                read_at[art] = place
                frontier.add(art)
    out.executions = done
    out.artifacts = set(read_at)
    return out


def downstream(events: Events, start: int, *, made: int = _FIRST) -> Closure:
    """Everything made from ``start``: its consumers (all of them), what they produced,
    the consumers that read those after they were produced, and so on. ``made``: the
    place of the production of ``start`` to begin from (an execution's output); by
    default every consumer of ``start`` counts.

    Example:
        >>> class Chain:  # 20 reads 1 and makes 3; 30 reads 3 after that, 10 read 3 before
        ...     def consumers(self, arts): return [(a, e, e) for a, e in
        ...         [(1, 20), (3, 30), (3, 10)] if a in arts]
        ...     def outputs(self, execs): return [(3, e, 20) for e in execs if e == 20]
        ...     producers = inputs = lambda self, ids: []
        >>> c = downstream(Chain(), 1)
        >>> sorted(c.artifacts), sorted(c.executions)
        ([1, 3], [20, 30])
    """
    made_at: dict[int, int] = {start: made}
    consumers: dict[int, list[tuple[int, int]]] = {}
    done: set[int] = set()
    out = Closure(artifacts={start}, executions=set())
    frontier = {start}
    while frontier:
        unread = frontier - consumers.keys()
        for art in unread:
            consumers[art] = []
        for art, exe, place in events.consumers(unread):
            consumers[art].append((exe, place))
        new: set[int] = set()
        for art in frontier:
            made = made_at[art]
            for exe, place in consumers[art]:
                if (art == start and made == _FIRST) or counts(made, place):
                    out.inputs.add((art, exe))
                    if exe not in done:
                        new.add(exe)
        done |= new
        frontier = set()
        for art, exe, place in events.outputs(new):
            out.outputs.add((art, exe))
            if place < made_at.get(art, _LAST):
                made_at[art] = place
                frontier.add(art)
    out.executions = done
    out.artifacts = set(made_at)
    return out
