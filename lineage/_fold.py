"""Which executions are the same call, and a lineage graph with repeats folded for pictures.

**The same call.** Two executions are the same call when they ran the same step with the
same params on the same input artifacts, produced the same output artifacts and ended
the same way (COMPLETE and CACHED count as one outcome: a cache hit *is* the call it
reused). A CACHED execution is also the same call as the execution its ``cached_from``
property names, whenever both are at hand, even if it read other records of the same
content. TFX's cached executions carry no ``cached_from`` but re-emit the outputs of the
original, so the first rule catches them. Of each group, the oldest execution that is not
CACHED stands for it (the one that did the work).

This one notion serves the text tree (``also produced by the same call: …``), the diff
(repeats say nothing about why two lineages differ) and the pictures, where
:func:`fold_graph` draws each call once:

- **repeats** (identical re-runs and cache hits) become one box with the executions as
  its members;
- **focus**: given targets, each box is placed in the run that made the target. Walking
  upstream from the targets, a box goes to the best-ranked run already chosen that holds
  one of its members (a cache hit in the target's run), else to the run of the execution
  that did the work, which is then chosen too. A box whose chosen member is a cache hit
  of a call made in another run names that run (``reused``): the other run appears
  only there, as a reference, not as a cluster of its own;
- **fan-out**: when one run calls a step ``fan_out`` times or more with other params or
  inputs (folds, shards), the calls become one box, and the artifacts only they produce
  or read, alike in type and path, one counted node.

Example:
    >>> import networkx as nx
    >>> g = nx.MultiDiGraph()
    >>> g.add_node("artifact:1", kind="artifact")
    >>> for i, state in ((2, "COMPLETE"), (3, "CACHED")):
    ...     g.add_node(f"execution:{i}", kind="execution", id=i, name="ingest",
    ...                state=state, params={})
    ...     _ = g.add_edge(f"execution:{i}", "artifact:1", event_type="OUTPUT", path="out")
    >>> folded = fold_graph(g, run_of=lambda node: None)
    >>> sorted(folded.graph), folded.graph.nodes["execution:2"]["fold"].members
    (['artifact:1', 'execution:2'], ['execution:2', 'execution:3'])
"""

from __future__ import annotations

import json
import re
from collections import defaultdict
from collections.abc import Callable, Collection, Hashable, Iterable, Mapping, Sequence
from typing import TYPE_CHECKING, Any, cast

import attrs
import networkx as nx

if TYPE_CHECKING:
    from lineage.records import Execution

__all__ = ["DEFAULT_FAN_OUT", "Call", "Fold", "Folded", "distinct", "fold_graph", "outcome",
           "same_calls"]

#: Pictures draw a step called this many times or more in one run as one box.
DEFAULT_FAN_OUT = 5

#: States that count as one outcome: the call was made (a cache hit reuses one that was).
_DONE = frozenset({"COMPLETE", "CACHED"})
_FOLLOWED = frozenset({"INPUT", "OUTPUT"})
_KEY = re.compile(r"^(artifact|execution|context):(\d+)$")
_DIGITS = re.compile(r"\d+")


def outcome(state: Any) -> str:
    """How a call ended, for deciding whether two executions are the same call.

    Example:
        >>> outcome("CACHED") == outcome("COMPLETE"), outcome("FAILED")
        (True, 'FAILED')
    """
    return "done" if state in _DONE else str(state or "UNKNOWN")


def _canonical(params: Any) -> str:
    try:
        return json.dumps(params or {}, sort_keys=True, default=repr)
    except (TypeError, ValueError):  # keys that do not sort together
        return repr(sorted((str(k), repr(v)) for k, v in dict(params or {}).items()))


@attrs.frozen
class Call:
    """One execution, as far as "the same call" is concerned."""

    key: Hashable
    """What the call is known by (an execution id, or a graph node key)."""
    name: str
    params: str
    """The params as canonical JSON."""
    inputs: tuple[Hashable, ...]
    """The input artifacts, sorted."""
    outputs: tuple[Hashable, ...]
    """The output artifacts, sorted."""
    state: str
    cached_from: Hashable | None = None
    """For a cache hit: the key of the call it reused."""
    order: tuple[Any, ...] = ()
    """Oldest first (the MLMD id)."""

    @property
    def signature(self) -> tuple[str, str, tuple[Hashable, ...], tuple[Hashable, ...], str]:
        """Equal for the same call."""
        return (self.name, self.params, self.inputs, self.outputs, outcome(self.state))


def same_calls(calls: Iterable[Call]) -> dict[Hashable, Hashable]:
    """Every call's key → the key of the call that stands for its group (itself included).

    Example:
        >>> a = Call(1, "prep", "{}", (7,), (8,), "COMPLETE", order=(1,))
        >>> b = Call(2, "prep", "{}", (7,), (8,), "CACHED", order=(2,))
        >>> c = Call(3, "prep", '{"k": 1}', (7,), (9,), "COMPLETE", order=(3,))
        >>> same_calls([b, a, c])
        {2: 1, 1: 1, 3: 3}
    """
    items = list(calls)
    parent: dict[Hashable, Hashable] = {c.key: c.key for c in items}

    def find(key: Hashable) -> Hashable:
        root = key
        while parent[root] != root:
            root = parent[root]
        while parent[key] != root:
            parent[key], key = root, parent[key]
        return root

    first: dict[tuple[Any, ...], Hashable] = {}
    for c in items:
        seen = first.setdefault(c.signature, c.key)
        if seen != c.key:
            parent[find(c.key)] = find(seen)
    for c in items:
        if c.state == "CACHED" and c.cached_from is not None and c.cached_from in parent:
            parent[find(c.key)] = find(c.cached_from)
    groups: dict[Hashable, list[Call]] = defaultdict(list)
    for c in items:
        groups[find(c.key)].append(c)
    stands: dict[Hashable, Hashable] = {}
    for members in groups.values():
        best = min(members, key=lambda c: (c.state == "CACHED", c.order, str(c.key)))
        stands.update((c.key, best.key) for c in members)
    return {c.key: stands[c.key] for c in items}


def distinct(steps: Sequence[Execution]) -> tuple[list[Execution], dict[int, int]]:
    """The steps without repeats of a call (order kept), and each dropped id → the id of
    the call it repeats.

    Example:
        >>> from lineage.records import Execution
        >>> steps = [Execution(1, "ingest", "ingest", "COMPLETE", outputs=[5]),
        ...          Execution(2, "ingest", "ingest", "CACHED", outputs=[5])]
        >>> kept, alias = distinct(steps)
        >>> [e.id for e in kept], alias
        ([1], {2: 1})
    """
    calls = []
    for e in steps:
        cached = e.properties.get("cached_from")
        calls.append(Call(
            e.id, e.name, _canonical(e.params), tuple(sorted(e.inputs)),
            tuple(sorted(e.outputs)), e.state,
            cached if isinstance(cached, int) and not isinstance(cached, bool) else None,
            (e.id,),
        ))
    stands = same_calls(calls)
    alias = {e.id: cast(int, stands[e.id]) for e in steps if stands[e.id] != e.id}
    return [e for e in steps if e.id not in alias], alias


# --- folding a graph for pictures ---------------------------------------------------------


@attrs.define(eq=False)
class Fold:
    """What one drawn node stands for (the node attribute ``fold``)."""

    kind: str
    """``repeat`` (one call, maybe several executions), ``fan_out`` (several calls of one
    step in one run) or ``artifacts`` (artifacts only a fan-out reads or writes)."""
    members: list[str]
    """The graph nodes drawn as this one, oldest first."""
    data: list[Mapping[str, Any]]
    """Their node attributes, aligned with ``members``."""
    calls: list[list[str]] = attrs.field(factory=list)
    """Executions: the members of each call (one list for a repeat)."""
    runs: list[str] = attrs.field(factory=list)
    """The runs of the members, in the order they first appear."""
    home: str | None = None
    """The run the node is drawn in."""
    reused: str | None = None
    """A cache hit of a call made in another run: that run."""
    run_of: dict[str, str | None] = attrs.field(factory=dict)
    """Member → its run."""


@attrs.define(eq=False)
class Folded:
    """A folded lineage graph and how it maps to the original."""

    graph: nx.MultiDiGraph
    where: dict[str, str]
    """Original node → the node drawn for it."""
    run_of: dict[str, str | None]
    """Drawn execution node → the run it is drawn in."""
    reused: dict[str, int]
    """Runs that appear only as the source of cache hits → how many drawn calls reuse them."""
    executions: int
    """Executions before folding."""
    boxes: int
    """Execution nodes after folding."""
    fanned: list[str] = attrs.field(factory=list)
    """Steps whose calls in a run were drawn as one node (fan-out), by name."""


def _kind(node: Any, data: Mapping[str, Any]) -> str:
    kind = data.get("kind")
    if kind in ("artifact", "execution", "context"):
        return str(kind)
    match = _KEY.match(str(node))
    return match.group(1) if match else "artifact"


def _node_order(node: Any) -> tuple[int, int, str]:
    match = _KEY.match(str(node))
    rank = {"context": 0, "artifact": 1, "execution": 2}
    if match:
        return (rank[match.group(1)], int(match.group(2)), str(node))
    return (3, 0, str(node))


def _call_of(graph: nx.MultiDiGraph, node: str, kinds: Mapping[str, str]) -> Call:
    data = graph.nodes[node]
    inputs = sorted({str(u) for u in graph.predecessors(node) if kinds.get(u) == "artifact"})
    outputs = sorted({str(v) for v in graph.successors(node) if kinds.get(v) == "artifact"})
    cached = (data.get("properties") or {}).get("cached_from")
    cached_key = f"execution:{cached}" if isinstance(cached, int) and not isinstance(
        cached, bool) else None
    return Call(node, str(data.get("name") or data.get("type_name") or ""),
                _canonical(data.get("params")), tuple(inputs), tuple(outputs),
                str(data.get("state") or "UNKNOWN"), cached_key, _node_order(node))


def _merged_diff(statuses: Collection[Any]) -> Any:
    """One diff status for executions drawn as one: the same call in both lineages is
    ``same``, whichever executions each side holds."""
    found = {s for s in statuses if s is not None}
    if not found:
        return None
    if "same" in found or {"only_a", "only_b"} <= found:
        return "same"
    if "changed" in found:
        return "changed"
    return sorted(found)[0]


def _homes(
    graph: nx.MultiDiGraph, groups: Mapping[str, list[str]], stands: Mapping[str, str],
    kinds: Mapping[str, str], run_of: Callable[[str], str | None], targets: Sequence[str],
) -> dict[str, str]:
    """Group → the member drawn for it: focused on the runs that made the targets."""
    home: dict[str, str] = {}
    chosen: dict[str, int] = {}
    cached = {n: graph.nodes[n].get("state") == "CACHED" for n in stands}
    frontier = sorted((t for t in targets if t in graph), key=_node_order)
    seen = set(frontier)
    while frontier:
        reached: list[str] = []
        for art in frontier:
            for producer, _a, et in graph.in_edges(art, data="event_type"):
                if et == "OUTPUT" and producer in stands:
                    group = stands[producer]
                    if group not in home and group not in reached:
                        reached.append(group)
        nxt: list[str] = []
        for group in sorted(reached, key=_node_order):
            members = groups[group]
            known = [m for m in members if run_of(m) in chosen]
            if known:
                pick = min(known, key=lambda m: (chosen[str(run_of(m))], cached[m],
                                                 _node_order(m)))
            else:
                pick = group
                run = run_of(pick)
                if run is not None:
                    chosen.setdefault(run, len(chosen))
            home[group] = pick
            for member in members:
                for art, _e, et in graph.in_edges(member, data="event_type"):
                    if et in _FOLLOWED and kinds.get(art) == "artifact" and art not in seen:
                        seen.add(art)
                        nxt.append(art)
        frontier = sorted(nxt, key=_node_order)
    for group in groups:
        home.setdefault(group, group)
    return home


def _distinct_runs(members: Iterable[str], run_of: Callable[[str], str | None]) -> list[str]:
    out: list[str] = []
    for member in members:
        run = run_of(member)
        if run is not None and run not in out:
            out.append(run)
    return out


def fold_graph(
    graph: nx.MultiDiGraph,
    *,
    run_of: Callable[[str], str | None],
    targets: Sequence[str] = (),
    fan_out: int | None = None,
    keep: Collection[str] = (),
) -> Folded:
    """Fold repeats of a call (and, from ``fan_out`` calls up, a step's calls within one
    run) into single nodes, and place them in runs focused on ``targets``.

    Args:
        graph: a lineage graph (``store.graph()`` or a query result's ``graph``).
        run_of: execution node → the run it belongs to (``None``: none).
        targets: artifacts to focus on (a provenance target); empty: every box is drawn
            in the run of the execution that did the work.
        fan_out: fold a step's calls within one run into one node from this many calls
            on; ``None`` or ``0`` never.
        keep: nodes never folded into a fan-out (highlighted ones).

    Returns:
        The folded graph: untouched nodes keep their key and attributes; a folded node
        takes the key and attributes of the member drawn for it, plus ``fold`` (a
        :class:`Fold`). Edges are the original events between the drawn nodes, each
        (ends, event type, path) once.
    """
    kinds = {str(n): _kind(n, d) for n, d in graph.nodes(data=True)}
    executions = sorted((n for n, k in kinds.items() if k == "execution"), key=_node_order)
    stands = {str(k): str(v) for k, v in
              same_calls(_call_of(graph, n, kinds) for n in executions).items()}
    groups: dict[str, list[str]] = defaultdict(list)
    for node in executions:
        groups[stands[node]].append(node)
    runs = {n: run_of(n) for n in executions}
    home = _homes(graph, groups, stands, kinds, runs.__getitem__, targets)

    def reused_run(group: str) -> str | None:
        pick = home[group]
        if graph.nodes[pick].get("state") != "CACHED":
            return None
        source = _call_of(graph, pick, kinds).cached_from
        source = source if source in stands and stands[str(source)] == group else group
        other = runs.get(str(source))
        return other if other is not None and other != runs[pick] else None

    # Fan-out: the calls of one step in one run, alike in state and param names.
    kept = set(keep)
    buckets: dict[tuple[Any, ...], list[str]] = defaultdict(list)
    if fan_out:
        for group, members in groups.items():
            pick = home[group]
            data = graph.nodes[pick]
            if runs[pick] is None or kept & set(members):
                continue
            buckets[(runs[pick], data.get("name"), data.get("state"),
                     tuple(sorted(map(str, data.get("params") or {}))),
                     _merged_diff([graph.nodes[m].get("diff") for m in members]),
                     reused_run(group))].append(group)
    fans = [sorted(b, key=_node_order) for b in buckets.values() if len(b) >= (fan_out or 0)]
    fan_of = {group: fan for fan in fans for group in fan}

    where: dict[str, str] = {}
    folds: dict[str, Fold] = {}
    drawn_run: dict[str, str | None] = {}
    reused: dict[str, set[str]] = defaultdict(set)
    for group in sorted(groups, key=_node_order):
        if group in fan_of and fan_of[group][0] != group:
            continue
        calls = fan_of.get(group, [group])
        members = sorted((m for g in calls for m in groups[g]), key=_node_order)
        key = home[calls[0]]
        fold = Fold(
            kind="fan_out" if group in fan_of else "repeat",
            members=members,
            data=[graph.nodes[m] for m in members],
            calls=[groups[g] for g in calls],
            runs=_distinct_runs(members, runs.__getitem__),
            home=runs[key],
            reused=reused_run(calls[0]),
            run_of={m: runs[m] for m in members},
        )
        folds[key] = fold
        drawn_run[key] = runs[key]
        if fold.reused is not None:
            reused[fold.reused].add(key)
        for member in members:
            where[member] = key

    # Artifacts only fan-outs read or write, alike in type and event path: one node.
    if fans:
        fan_nodes = {k for k, f in folds.items() if f.kind == "fan_out"}
        alike: dict[tuple[Any, ...], list[str]] = defaultdict(list)
        for node, kind in kinds.items():
            if kind != "artifact" or node in kept:
                continue
            data = graph.nodes[node]
            ins = frozenset((where.get(str(u), str(u)), et, _DIGITS.sub("#", str(p or "")))
                            for u, _v, et, p in _edges_in(graph, node))
            outs = frozenset((where.get(str(v), str(v)), et, _DIGITS.sub("#", str(p or "")))
                             for _u, v, et, p in _edges_out(graph, node))
            ends = {e[0] for e in ins | outs}
            if not ends & fan_nodes:
                continue
            alike[(data.get("type_name"), data.get("base_type"), data.get("state"),
                   data.get("diff"), data.get("verify"), ins, outs)].append(node)
        for nodes in alike.values():
            if len(nodes) < 2:
                continue
            nodes.sort(key=_node_order)
            folds[nodes[0]] = Fold("artifacts", nodes, [graph.nodes[n] for n in nodes])
            for node in nodes:
                where[node] = nodes[0]

    reused_runs = {run: len(keys) for run, keys in sorted(reused.items())
                   if run not in set(drawn_run.values())}
    if all(len(f.members) == 1 for f in folds.values()):  # nothing to fold
        return Folded(graph, {str(n): str(n) for n in graph}, drawn_run, reused_runs,
                      len(executions), len(drawn_run))
    order = {node: _node_order(node) for node in graph}
    out = type(graph)() if isinstance(graph, nx.MultiDiGraph) else nx.MultiDiGraph()
    for node in sorted(graph.nodes, key=order.__getitem__):
        node = str(node)
        if node in where and where[node] != node:
            continue
        data = dict(graph.nodes[node])
        info = folds.get(node)
        if info is not None:
            data["fold"] = info
            if "diff" in data:
                data["diff"] = _merged_diff([d.get("diff") for d in info.data])
        out.add_node(node, **data)
        where.setdefault(node, node)
    seen: set[tuple[str, str, str]] = set()
    for u, v, _key, data in sorted(graph.edges(keys=True, data=True),
                                   key=lambda e: (order[e[0]], order[e[1]], str(e[2]))):
        a, b = where[str(u)], where[str(v)]
        edge_key = f"{data.get('event_type')}:{data.get('path')}"
        if (a, b, edge_key) not in seen:
            seen.add((a, b, edge_key))
            out.add_edge(a, b, key=edge_key, **data)
    return Folded(
        graph=out,
        where=where,
        run_of=drawn_run,
        reused=reused_runs,
        executions=len(executions),
        boxes=len(drawn_run),
        fanned=sorted({str(f.data[0].get("name")) for f in folds.values()
                       if f.kind == "fan_out"}),
    )


def _edges_in(graph: nx.MultiDiGraph, node: str) -> Iterable[tuple[Any, Any, Any, Any]]:
    for u, v, data in graph.in_edges(node, data=True):
        yield u, v, data.get("event_type"), data.get("path")


def _edges_out(graph: nx.MultiDiGraph, node: str) -> Iterable[tuple[Any, Any, Any, Any]]:
    for u, v, data in graph.out_edges(node, data=True):
        yield u, v, data.get("event_type"), data.get("path")
