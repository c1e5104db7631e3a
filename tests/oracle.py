"""A brute-force oracle for time-respecting lineage: replay the recorded reads and writes
in the order they happened and follow the definition directly.

The definition (README, "What each answer means"): a production of an artifact counts for
a consumer only if it happened before the consumer read the artifact; every producer of
the artifact asked about counts. The oracle walks every (artifact, read time) state by
depth-first search: exponential in the worst case, and obviously the definition.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from typing import Any

import attrs
from ml_metadata.proto import metadata_store_pb2 as pb


@attrs.define
class History:
    """What happened, in order: ``(time, execution, artifact)`` of each read and write."""

    reads: list[tuple[float, int, int]] = attrs.field(factory=list)
    writes: list[tuple[float, int, int]] = attrs.field(factory=list)

    def read(self, time: float, execution: int, artifacts: Iterable[int]) -> None:
        self.reads.extend((time, execution, a) for a in artifacts)

    def write(self, time: float, execution: int, artifacts: Iterable[int]) -> None:
        self.writes.extend((time, execution, a) for a in artifacts)


def upstream(history: History, target: int) -> tuple[set[int], set[int]]:
    """(artifacts, executions) upstream of ``target``; ``target`` itself left out."""
    arts: set[int] = set()
    execs: set[int] = set()
    seen: set[tuple[int, float]] = set()
    stack: list[tuple[int, float]] = [(target, math.inf)]
    while stack:
        art, before = stack.pop()
        if (art, before) in seen:
            continue
        seen.add((art, before))
        for t_write, ex, written in history.writes:
            if written == art and (before == math.inf or t_write < before):
                execs.add(ex)
                for t_read, reader, read in history.reads:
                    if reader == ex:
                        if read != target:
                            arts.add(read)
                        stack.append((read, t_read))
    return arts, execs


def downstream(history: History, source: int) -> tuple[set[int], set[int]]:
    """(artifacts, executions) downstream of ``source``; ``source`` itself left out."""
    arts: set[int] = set()
    execs: set[int] = set()
    seen: set[tuple[int, float]] = set()
    stack: list[tuple[int, float]] = [(source, -math.inf)]
    while stack:
        art, after = stack.pop()
        if (art, after) in seen:
            continue
        seen.add((art, after))
        for t_read, ex, read in history.reads:
            if read == art and (after == -math.inf or t_read > after):
                execs.add(ex)
                for t_write, writer, written in history.writes:
                    if writer == ex:
                        if written != source:
                            arts.add(written)
                        stack.append((written, t_write))
    return arts, execs


def history_of(mlmd: Any) -> History:
    """The history of a store whose executions were each written in one go, in id order
    (hand-written MLMD code, TFX-shaped test stores): every event of execution ``e``
    happened at time ``e``. Only INPUT and OUTPUT events are reads and writes."""
    h = History()
    events = mlmd.get_events_by_execution_ids([e.id for e in mlmd.get_executions()])
    for ev in events:
        if ev.type == pb.Event.INPUT:
            h.read(ev.execution_id, ev.execution_id, [ev.artifact_id])
        elif ev.type == pb.Event.OUTPUT:
            h.write(ev.execution_id, ev.execution_id, [ev.artifact_id])
    return h
