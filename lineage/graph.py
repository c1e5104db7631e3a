"""The lineage graph of a store: a ``networkx.MultiDiGraph`` read with batched MLMD calls.

Nodes are ``"artifact:<id>"`` and ``"execution:<id>"`` (and ``"context:<id>"`` with
``contexts=True``). Every node has the attributes ``kind``, ``id``, ``type_name``,
``base_type``, ``name``, ``uri``, ``version``, ``state``, ``fingerprint``, ``properties``
and ``create_time``; executions also have ``params``, ``error`` and ``runs`` (the names of
the contexts the execution belongs to, except ``execution_cache`` contexts: those group
executions by cache key and are no run; they are nodes with ``contexts=True``).

Every MLMD event is an edge: artifact → execution for input-like events (INPUT,
DECLARED_INPUT, INTERNAL_INPUT), execution → artifact for output-like events (OUTPUT,
DECLARED_OUTPUT, INTERNAL_OUTPUT, PENDING_OUTPUT). Edge attributes are ``event_type``
(``"INPUT"``, ``"OUTPUT"``, …), ``path`` (``"examples[0]"``) and ``time`` (ms since the
epoch); the edge key is ``"<event_type>:<path>"``, so a MultiDiGraph keeps distinct events
apart and two loads of the same store give the same keys.

With ``contexts=True`` contexts are nodes too, with edges context → execution
(``event_type="ASSOCIATION"``), context → artifact (``"ATTRIBUTION"``) and parent →
child context (``"PARENT"``).

Loading the whole store reads artifacts, executions and events in batches (a constant
number of MLMD calls per batch of ids). Which run an execution belongs to costs no call
for executions our steps recorded in a run (their ``run_context`` property names it);
the others are looked up per execution when they are few, else with one call per context
(contexts are far fewer than executions). The graph is cached on the ``Store`` object: a
later call reads only what was added since (MLMD ids only grow) and re-reads the
executions that were still running (their state and outputs change). Artifacts and
finished executions already read are not read again: MLMD has no change feed, and
neither our steps nor TFX rewrite them.
"""

from __future__ import annotations

import contextlib
import gc
import operator
from collections.abc import Callable, Collection, Iterable, Iterator, Sequence
from itertools import islice
from typing import TYPE_CHECKING, Any

import attrs
import networkx as nx
from ml_metadata.metadata_store import metadata_store
from ml_metadata.proto import metadata_store_pb2 as pb

from lineage import _convert, _runref, _timeline
from lineage._schema import (
    CACHE_CONTEXT_TYPE,
    HIDDEN_CONTEXT_TYPES,
    OUTPUT_EVENTS,
)
from lineage.errors import InvalidRef, NotFound

if TYPE_CHECKING:
    from lineage.store import Store

__all__ = [
    "EVENT_TYPES",
    "LineageGraph",
    "artifact_attrs",
    "artifact_node",
    "build_graph",
    "context_attrs",
    "context_node",
    "contexts_by_execution",
    "downstream",
    "event_edge",
    "execution_attrs",
    "execution_node",
    "load_graph",
    "node_id",
    "upstream",
]

_BATCH = 1000
#: Event type value → name (``pb.Event.INPUT`` → ``"INPUT"``).
EVENT_TYPES: dict[int, str] = {v: k for k, v in pb.Event.Type.items()}
_ARTIFACT_STATES = {v: k for k, v in pb.Artifact.State.items()}
_ARTIFACT_BASE = {v: k for k, v in pb.ArtifactType.SystemDefinedBaseType.items()}
_EXECUTION_BASE = {v: k for k, v in pb.ExecutionType.SystemDefinedBaseType.items()}
_EXECUTION_STATES = {v: k for k, v in pb.Execution.State.items()}
_SCALARS = frozenset({"int_value", "double_value", "string_value", "bool_value"})
_OPEN_STATES = frozenset({pb.Execution.NEW, pb.Execution.RUNNING, pb.Execution.UNKNOWN})


class LineageGraph(nx.MultiDiGraph):  # type: ignore[misc]  # networkx is untyped
    """A ``networkx.MultiDiGraph`` of lineage that draws itself in Jupyter.

    What ``store.graph()`` and the ``graph`` of query results are. It is a plain
    MultiDiGraph otherwise: networkx's ``copy()``, ``subgraph()``, ``reverse()`` and
    ``nx.compose`` keep the class. The diagram (:func:`lineage.render.to_svg`, large
    graphs collapsed to ``max_nodes``) is drawn only when a notebook asks for it.

    Example:
        >>> import lineage
        >>> store = lineage.connect(":memory:")
        >>> _ = store.put(lineage.Dataset(content=b"x", name="raw"))
        >>> g = store.graph()
        >>> type(g).__name__, type(g.subgraph(["artifact:1"])).__name__
        ('LineageGraph', 'LineageGraph')
        >>> g
        <LineageGraph: 1 artifact, 0 executions>
        >>> g._repr_svg_().lstrip().startswith("<?xml")
        True
    """

    def __repr__(self) -> str:
        """What the graph holds: ``<LineageGraph: 12 artifacts, 7 executions, 2 runs>``
        (contexts: the distinct ``runs`` of its executions, and context nodes if any)."""
        kinds: dict[str, int] = {}
        runs: set[str] = set()
        foreign = False
        for data in self._node.values():
            kind = data.get("kind", "artifact")
            kinds[kind] = kinds.get(kind, 0) + 1
            if kind == "execution" and data.get("runs"):
                runs.update(map(str, data["runs"]))
                foreign = foreign or not data.get("ours", True)
        parts = [f"{kinds.get(k, 0)} {k}{'' if kinds.get(k, 0) == 1 else 's'}"
                 for k in ("artifact", "execution")]
        if runs:
            word = "context" if foreign else "run"  # foreign: pipelines, nodes, runs
            parts.append(f"{len(runs)} {word}{'' if len(runs) == 1 else 's'}")
        if kinds.get("context"):
            parts.append(f"{kinds['context']} context node{'' if kinds['context'] == 1 else 's'}")
        return f"<{type(self).__name__}: {', '.join(parts)}>"

    def _repr_svg_(self) -> str:
        from lineage.render import to_svg

        return to_svg(self)

    def _repr_html_(self) -> str:
        return self._repr_svg_()


def artifact_node(artifact_id: int) -> str:
    """The graph key of an artifact.

    Example:
        >>> artifact_node(12)
        'artifact:12'
    """
    return f"artifact:{artifact_id}"


def execution_node(execution_id: int) -> str:
    """The graph key of an execution.

    Example:
        >>> execution_node(3)
        'execution:3'
    """
    return f"execution:{execution_id}"


def context_node(context_id: int) -> str:
    """The graph key of a context.

    Example:
        >>> context_node(1)
        'context:1'
    """
    return f"context:{context_id}"


def node_id(node: str) -> tuple[str, int]:
    """Split a node key into its kind and MLMD id.

    Example:
        >>> node_id("execution:7")
        ('execution', 7)
    """
    kind, _, num = node.partition(":")
    return kind, int(num)


# --- node and edge attributes -----------------------------------------------------------


def _base(table: dict[int, str], ptype: Any) -> str | None:
    if ptype is None or not ptype.HasField("base_type"):
        return None
    name = table.get(ptype.base_type)
    return None if name in (None, "UNSET") else name


def _props(props: Any) -> dict[str, Any]:
    """A properties map decoded, keys sorted (``_convert.props_to_dict``, fast for 0 or 1 key).

    Keys are iterated and looked up rather than read with ``items()``: a protobuf map's
    ``items()`` is the generic ``Mapping`` one, a Python generator (twice as slow).
    """
    n = len(props)
    if n == 0:
        return {}
    out = {}
    for key in sorted(props) if n > 1 else props:
        value = props[key]
        kind = value.WhichOneof("value")
        # int, double, string and bool values inline (most of them); the rest decoded by
        # _convert (structs, packed values, unset)
        out[key] = getattr(value, kind) if kind in _SCALARS else _convert.from_value(value)
    if _convert.METRICS_PACKED in out:
        out["metrics"] = out.pop(_convert.METRICS_PACKED)
    return out


def artifact_attrs(proto: pb.Artifact, atype: pb.ArtifactType | None) -> dict[str, Any]:
    """The node attributes of an artifact (the same fields as :class:`~lineage.Artifact`)."""
    type_name = atype.name if atype is not None else f"type#{proto.type_id}"
    return _artifact_attrs(proto, type_name, _base(_ARTIFACT_BASE, atype))


def _artifact_attrs(proto: pb.Artifact, type_name: str, base: str | None) -> dict[str, Any]:
    typed = proto.properties
    props = _props(typed) if typed else {}
    custom = proto.custom_properties
    if custom:
        if props:
            props.update(_props(custom))
        else:
            props = _props(custom)
    name = proto.name
    version = fingerprint = None
    if props:
        version = props.pop("version", None)
        fingerprint = props.pop("fingerprint", None)
        props.pop("previous_version", None)
        if isinstance(version, int):
            if name:
                suffix = f"@{version}"
                if name.endswith(suffix):
                    name = name[: -len(suffix)]
        else:
            version = None
        if not (isinstance(fingerprint, str) and fingerprint):
            fingerprint = None
    return {
        "kind": "artifact",
        "id": proto.id,
        "type_name": type_name,
        "base_type": base,
        "name": name or None,
        "uri": proto.uri,
        "version": version,
        "state": _ARTIFACT_STATES.get(proto.state, "UNKNOWN"),
        "fingerprint": fingerprint,
        "properties": props,
        "create_time": proto.create_time_since_epoch or None,
    }


def execution_attrs(
    proto: pb.Execution, etype: pb.ExecutionType | None, runs: Sequence[str] = ()
) -> dict[str, Any]:
    """The node attributes of an execution (the same fields as :class:`~lineage.Execution`)."""
    if _convert.is_ours(etype):
        assert etype is not None
        return _our_execution_attrs(proto, etype.name, _base(_EXECUTION_BASE, etype), runs)
    # foreign: _convert decodes TFX's JSON-string settings
    rec = _convert.execution_from_proto(proto, etype)
    return _execution_dict(proto, rec.type_name, rec.base_type, rec.name, rec.properties,
                           rec.params, rec.error, runs, False)


def _our_execution_attrs(
    proto: pb.Execution, type_name: str, base: str | None, runs: Sequence[str],
) -> dict[str, Any]:
    properties = _props(proto.properties)
    return _execution_dict(proto, type_name, base, type_name, properties,
                           _props(proto.custom_properties), properties.get("error") or None,
                           runs, True)


def _execution_dict(
    proto: pb.Execution, type_name: str, base: str | None, name: str,
    properties: dict[str, Any], params: dict[str, Any], error: Any, runs: Sequence[str],
    ours: bool,
) -> dict[str, Any]:
    return {
        "kind": "execution",
        "id": proto.id,
        "type_name": type_name,
        "base_type": base,
        "name": name,
        "uri": None,
        "version": None,
        "state": _convert.state_name(proto.last_known_state),
        "fingerprint": None,
        "properties": properties,
        "create_time": proto.create_time_since_epoch or None,
        "params": params,
        "error": error if isinstance(error, str) else None,
        "runs": list(runs),
        "ours": ours,
    }


def context_attrs(proto: pb.Context, ctype: pb.ContextType | None) -> dict[str, Any]:
    """The node attributes of a context (with ``contexts=True``)."""
    props = _props(proto.properties)
    props.update(_props(proto.custom_properties))
    return {
        "kind": "context",
        "id": proto.id,
        "type_name": ctype.name if ctype is not None else f"type#{proto.type_id}",
        "base_type": None,
        "name": proto.name,
        "uri": None,
        "version": None,
        "state": None,
        "fingerprint": None,
        "properties": props,
        "create_time": proto.create_time_since_epoch or None,
    }


def event_edge(ev: pb.Event) -> tuple[str, str, str, dict[str, Any]]:
    """``(source, target, key, attributes)`` of the edge for one MLMD event.

    Example:
        >>> from ml_metadata.proto import metadata_store_pb2 as pb
        >>> ev = pb.Event(artifact_id=1, execution_id=2, type=pb.Event.INPUT)
        >>> ev.path.steps.add().key = "data"
        >>> event_edge(ev)[:3]
        ('artifact:1', 'execution:2', 'INPUT:data')
    """
    kind = ev.type
    etype = EVENT_TYPES.get(kind, "UNKNOWN")
    steps = ev.path.steps
    # One key is the common case; it needs no join.
    one_key = len(steps) == 1 and steps[0].HasField("key")
    path = steps[0].key if one_key else _convert.event_path(ev)
    data = {"event_type": etype, "path": path, "time": ev.milliseconds_since_epoch or None}
    art, exe = f"artifact:{ev.artifact_id}", f"execution:{ev.execution_id}"
    if kind in OUTPUT_EVENTS:
        return exe, art, f"{etype}:{path}", data
    # Input-like events, and UNKNOWN ones (no direction recorded: drawn as a read).
    return art, exe, f"{etype}:{path}", data


# --- reading ----------------------------------------------------------------------------


def _chunks(ids: Sequence[int]) -> Iterator[list[int]]:
    for start in range(0, len(ids), _BATCH):
        yield list(ids[start:start + _BATCH])


def _batched(store: Store, method: str, ids: Iterable[int]) -> list[Any]:
    out: list[Any] = []
    for chunk in _chunks(sorted(set(ids))):
        out.extend(store._call(method, chunk))
    return out


def _newer_than(store: Store, method: str, watermark: int) -> list[Any]:
    """Rows with an id above ``watermark``, newest first pages, without a filter query.

    Reads the ``n`` newest rows by id (n = 1, 16, 256, …) until the oldest one read is at
    or below ``watermark``: the cost grows with what was added, not with the store (one
    row when nothing was added).
    """
    limit = 1
    while True:
        opts = metadata_store.ListOptions(
            limit=limit, order_by=metadata_store.OrderByField.ID, is_asc=False
        )
        rows = list(store._call(method, opts))
        if len(rows) < limit or rows[-1].id <= watermark:
            return [r for r in rows if r.id > watermark]
        limit *= 16


def build_graph(
    nodes: Iterable[tuple[str, dict[str, Any]]],
    edges: Iterable[tuple[str, str, str, dict[str, Any]]],
) -> LineageGraph:
    """A new :class:`LineageGraph` from node and edge attribute dicts (each dict copied).

    Fills networkx's adjacency dicts directly, the way ``MultiDiGraph.add_edge`` does,
    without its per-call overhead (a 200k-edge store graph would spend more time there
    than in MLMD). Nodes come first in the given order; an edge whose end is not among
    them adds a placeholder node (an event pointing at a row that was not read).

    Example:
        >>> g = build_graph([("artifact:1", {"kind": "artifact"})],
        ...                 [("artifact:1", "execution:2", "INPUT:x", {"event_type": "INPUT"})])
        >>> sorted(g), g.nodes["execution:2"]["kind"], list(g.edges(keys=True))
        (['artifact:1', 'execution:2'], 'execution', [('artifact:1', 'execution:2', 'INPUT:x')])
    """
    g = LineageGraph()
    node, succ, pred = g._node, g._succ, g._pred
    for key, data in nodes:
        node[key] = dict(data)
    succ.update({key: {} for key in node})
    pred.update({key: {} for key in node})
    for u, v, k, data in edges:
        try:
            out = succ[u]
            keydict = out.get(v)
            if keydict is None:
                keydict = out[v] = pred[v][u] = {}
        except KeyError:  # an end we did not read
            for end in (u, v):
                if end not in node:
                    succ[end], pred[end] = {}, {}
                    node[end] = _placeholder(end)
            keydict = succ[u].setdefault(v, {})
            pred[v][u] = keydict
        keydict[k] = dict(data)
    nx._clear_cache(g)
    return g


def _add_edges(
    cache: _GraphCache, events: Iterable[pb.Event], keys: _NodeKeys | None = None,
) -> None:
    """Add the edge of each event to ``cache`` (the edges of :func:`event_edge`).

    The same edges as ``map(event_edge, events)``, for a fraction of the time: an event's
    path is decoded once per distinct path (its serialized bytes are the cache key; field
    access on a protobuf path costs more than the rest of the event), node keys come from
    ``keys`` (the strings the nodes were stored under) when given, and no attribute dict
    is made: the cache keeps each edge's time, its key gives the event type and path.
    """
    keys = keys if keys is not None else _NodeKeys()
    akeys, ekeys = keys.artifacts, keys.executions
    edges, by_key = cache.edges, cache.edge_kinds
    # (event type, serialized path) → (edge key, is output-like)
    kinds: dict[tuple[int, bytes], tuple[str, bool]] = {}
    for ev in events:
        raw = ev.path.SerializeToString()
        kind = ev.type
        known = kinds.get((kind, raw))
        if known is None:
            etype = EVENT_TYPES.get(kind, "UNKNOWN")
            path = _convert.event_path(ev)
            key = f"{etype}:{path}"
            by_key.setdefault(key, (etype, path))
            known = kinds[kind, raw] = (key, kind in OUTPUT_EVENTS)
        key, out = known
        aid, eid = ev.artifact_id, ev.execution_id
        art = akeys.get(aid) or f"artifact:{aid}"
        exe = ekeys.get(eid) or f"execution:{eid}"
        if out:
            edges[exe, art, key] = ev.milliseconds_since_epoch or None
        else:  # input-like, and UNKNOWN ones (no direction recorded: drawn as a read)
            edges[art, exe, key] = ev.milliseconds_since_epoch or None


@attrs.define
class _NodeKeys:
    """MLMD id → node key of the rows read in one load, so that edges reuse the same
    string objects (no formatting per event, and dict lookups that hit by identity)."""

    artifacts: dict[int, str] = attrs.field(factory=dict)
    executions: dict[int, str] = attrs.field(factory=dict)


def _placeholder(node: str) -> dict[str, Any]:
    kind, num = node_id(node)
    data: dict[str, Any] = {
        "kind": kind, "id": num, "type_name": None, "base_type": None, "name": None,
        "uri": None, "version": None, "state": "UNKNOWN", "fingerprint": None,
        "properties": {}, "create_time": None,
    }
    if kind == "execution":
        data.update(params={}, error=None, runs=[], ours=False)
    return data


_KIND_ORDER = {"artifact": 0, "execution": 1, "context": 2}


def _node_order(item: tuple[str, dict[str, Any]]) -> tuple[int, int]:
    return (_KIND_ORDER.get(item[1]["kind"], 3), item[1]["id"])


@attrs.define
class _GraphCache:
    """What ``store.graph()`` read so far (kept on the Store as ``store._graph_cache``)."""

    nodes: dict[str, dict[str, Any]] = attrs.field(factory=dict)
    edges: dict[tuple[str, str, str], int | None] = attrs.field(factory=dict)
    """(source, target, key) → the event's time (see :func:`event_edge`)."""
    edge_kinds: dict[str, tuple[str, str]] = attrs.field(factory=dict)
    """Edge key → (event type, path): the rest of an edge's attributes."""
    max_artifact: int = 0
    max_execution: int = 0
    max_context: int = 0
    open_executions: set[int] = attrs.field(factory=set)
    members: dict[int, set[tuple[int, str]]] = attrs.field(factory=dict)
    """execution id → {(context id, context name)} of the contexts naming its run(s)
    (see :func:`_run_membership`; ``not_runs`` filters cache keys out of the names)."""
    contexts: dict[int, pb.Context] = attrs.field(factory=dict)
    not_runs: set[int] = attrs.field(factory=set)
    """Ids of the contexts that are not runs (``execution_cache``)."""
    run_contexts: set[str] = attrs.field(factory=set)
    """Names of the contexts that are runs (ours, TFX ``pipeline_run``, …): drawings
    cluster executions by these rather than by a pipeline or node context."""
    ordered: bool = True
    """Whether ``nodes`` is in graph order (artifacts, then executions, each by id)."""

    def runs(self, execution_id: int) -> list[str]:
        return _run_names(self.members.get(execution_id, ()), self.not_runs)

    def graph(self) -> LineageGraph:
        # Nodes by kind and id (sorted once after each load that added some); edges in the
        # order MLMD returned the events, which is stable for a given store.
        if not self.ordered:
            self.nodes = dict(sorted(self.nodes.items(), key=_node_order))
            self.ordered = True
        g = _copy_graph(self.nodes, self.edges, self.edge_kinds)
        g.graph["run_contexts"] = sorted(self.run_contexts)
        return g


def _copy_graph(
    nodes: dict[str, dict[str, Any]], edges: dict[tuple[str, str, str], int | None],
    kinds: dict[str, tuple[str, str]],
) -> LineageGraph:
    """:func:`build_graph` of the cache's nodes (each attribute dict copied) and edges
    (attribute dicts made from the edge key and time), without its generic input."""
    g = LineageGraph()
    node, succ, pred = g._node, g._succ, g._pred
    node.update({key: data.copy() for key, data in nodes.items()})
    succ.update({key: {} for key in nodes})
    pred.update({key: {} for key in nodes})
    try:
        for (u, v, k), time in edges.items():
            etype, path = kinds[k]
            out = succ[u]
            keydict = out.get(v)
            if keydict is None:
                keydict = out[v] = pred[v][u] = {}
            keydict[k] = {"event_type": etype, "path": path, "time": time}
    except KeyError:  # an end we did not read: the generic path adds a placeholder
        return build_graph(nodes.items(), (
            (u, v, k, {"event_type": kinds[k][0], "path": kinds[k][1], "time": time})
            for (u, v, k), time in edges.items()))
    nx._clear_cache(g)
    return g


def _artifact_nodes(
    store: Store, protos: Sequence[pb.Artifact], keys: _NodeKeys | None = None,
) -> Iterator[tuple[str, dict[str, Any]]]:
    types = store._types("artifact", {p.type_id for p in protos})
    # Type name and base type once per type, not per row.
    by_type = {tid: (t.name, _base(_ARTIFACT_BASE, t)) for tid, t in types.items()}
    akeys = keys.artifacts if keys is not None else {}
    for p in protos:
        known = by_type.get(p.type_id)
        attrs_ = (_artifact_attrs(p, *known) if known is not None
                  else artifact_attrs(p, None))
        pid = p.id
        key = akeys[pid] = f"artifact:{pid}"
        yield key, attrs_


def _read_executions(
    store: Store, cache: _GraphCache, protos: Sequence[pb.Execution], keys: _NodeKeys,
) -> None:
    """Add the nodes of newly read executions to ``cache`` with their run membership.

    What :func:`_execution_nodes` and :func:`_run_membership` do, in one pass: our
    executions name their run in ``run_context``, which is decoded with the node's
    properties anyway. The others are looked up afterwards (see :func:`_run_membership`).
    """
    types = store._types("execution", {p.type_id for p in protos})
    ours = {tid: (t.name, _base(_EXECUTION_BASE, t)) for tid, t in types.items()
            if _convert.is_ours(t)}
    nodes, members, contexts, not_runs = cache.nodes, cache.members, cache.contexts, cache.not_runs
    ekeys, opened, states = keys.executions, cache.open_executions, _EXECUTION_STATES
    # context id → ((context id, name), run names); run names are copied per node
    runs_of: dict[int, tuple[tuple[int, str], tuple[str, ...]]] = {}
    rest: list[int] = []
    for p in protos:
        pid = p.id
        key = ekeys[pid] = f"execution:{pid}"
        mine = ours.get(p.type_id)
        if mine is None:
            rest.append(pid)
            nodes[key] = execution_attrs(p, types.get(p.type_id))
        else:
            properties = _props(p.properties)
            cid = properties.get("run_context")
            run = runs_of.get(cid) if isinstance(cid, int) else None
            if run is None and isinstance(cid, int) and cid in contexts:
                name = contexts[cid].name
                run = runs_of[cid] = ((cid, name), () if cid in not_runs else (name,))
            if run is None:
                rest.append(pid)
                runs: list[str] = []
            else:
                members[pid] = {run[0]}
                runs = list(run[1])
            error = properties.get("error")
            type_name, base = mine
            nodes[key] = {
                "kind": "execution",
                "id": pid,
                "type_name": type_name,
                "base_type": base,
                "name": type_name,
                "uri": None,
                "version": None,
                "state": states.get(p.last_known_state, "UNKNOWN"),
                "fingerprint": None,
                "properties": properties,
                "create_time": p.create_time_since_epoch or None,
                "params": _props(p.custom_properties),
                "error": error if error and isinstance(error, str) else None,
                "runs": runs,
                "ours": True,
            }
        if p.last_known_state in _OPEN_STATES:
            opened.add(pid)
    if rest:
        _membership_of_others(store, rest, contexts, not_runs, members)
        for eid in rest:
            nodes[ekeys[eid]]["runs"] = cache.runs(eid)


def _execution_nodes(
    store: Store, protos: Sequence[pb.Execution], runs: Callable[[int], Sequence[str]],
) -> Iterator[tuple[str, dict[str, Any]]]:
    types = store._types("execution", {p.type_id for p in protos})
    ours = {tid: (t.name, _base(_EXECUTION_BASE, t)) for tid, t in types.items()
            if _convert.is_ours(t)}
    for p in protos:
        mine = ours.get(p.type_id)
        attrs_ = (_our_execution_attrs(p, mine[0], mine[1], runs(p.id)) if mine is not None
                  else execution_attrs(p, types.get(p.type_id), runs(p.id)))
        yield f"execution:{p.id}", attrs_


def _membership_by_context(
    store: Store, contexts: Iterable[pb.Context], into: dict[int, set[tuple[int, str]]],
) -> None:
    """Add execution id → (context id, name) for every execution of ``contexts``: one
    ``get_executions_by_context`` call per context (an indexed read in MLMD)."""
    for ctx in sorted(contexts, key=lambda c: c.id):
        for ex in store._call("get_executions_by_context", ctx.id, missing=[]):
            into.setdefault(ex.id, set()).add((ctx.id, ctx.name))


def _membership_by_execution(
    store: Store, execution_ids: Iterable[int], into: dict[int, set[tuple[int, str]]],
    not_runs: set[int],
) -> None:
    """Add the contexts of each execution: one ``get_contexts_by_execution`` call each
    (and the ids of the cache contexts among them to ``not_runs``)."""
    for eid in sorted(set(execution_ids)):
        ctxs = list(store._call("get_contexts_by_execution", eid, missing=[]))
        into[eid] = {(c.id, c.name) for c in ctxs}
        not_runs |= _not_runs(store, ctxs)


def contexts_by_execution(
    store: Store, executions: Iterable[pb.Execution],
) -> dict[int, list[pb.Context]]:
    """Execution id → the contexts a reader takes as its run(s), without scanning.

    An execution our steps recorded inside a run carries the run's context id in its typed
    ``run_context`` property: all of those cost ONE batched ``get_contexts_by_id``. The
    others (foreign executions, ours recorded outside a run or by an older version) cost
    one ``get_contexts_by_execution`` each, which MLMD answers by scanning its Association
    table (no index on ``execution_id``), so its cost grows with the store.
    For our executions this gives the run they were recorded in only: not their
    ``execution_cache`` context, nor a context another tool associated them with later.

    Example:
        >>> import lineage
        >>> contexts_by_execution(lineage.connect(":memory:"), [])
        {}
    """
    known, rest = _run_context_ids(store, executions)
    by_id = {c.id: c for c in _batched(store, "get_contexts_by_id", set(known.values()))}
    out = {eid: [by_id[cid]] if cid in by_id else [] for eid, cid in known.items()}
    for eid in sorted(rest):
        out[eid] = list(store._call("get_contexts_by_execution", eid, missing=[]))
    return out


def _run_context_ids(
    store: Store, executions: Iterable[pb.Execution],
) -> tuple[dict[int, int], set[int]]:
    """(execution id → ``run_context`` of our executions that carry it, ids of the others)."""
    protos = list(executions)
    etypes = store._types("execution", {p.type_id for p in protos})
    ours = {t for t, et in etypes.items() if _convert.is_ours(et)}
    known: dict[int, int] = {}
    rest: set[int] = set()
    for p in protos:
        props = p.properties
        if p.type_id in ours and "run_context" in props:
            known[p.id] = props["run_context"].int_value
        else:
            rest.add(p.id)
    return known, rest


def _run_membership(
    store: Store, executions: Sequence[pb.Execution], contexts: dict[int, pb.Context],
    not_runs: set[int], into: dict[int, set[tuple[int, str]]],
) -> None:
    """Set the run membership of ``executions`` (execution id → {(context id, name)}).

    Our executions name their run (``run_context``): no MLMD call. The others (foreign
    ones, ours from outside a run or from before the property) are looked up per
    execution when they are fewer than the contexts, else by reading every context's
    executions (one call per context, cache-key contexts skipped).
    """
    known, rest = _run_context_ids(store, executions)
    for eid, cid in known.items():
        ctx = contexts.get(cid)
        if ctx is None:
            rest.add(eid)
        else:
            into[eid] = {(cid, ctx.name)}
    _membership_of_others(store, rest, contexts, not_runs, into)


def _membership_of_others(
    store: Store, execution_ids: Collection[int], contexts: dict[int, pb.Context],
    not_runs: set[int], into: dict[int, set[tuple[int, str]]],
) -> None:
    """Set the run membership of executions that do not name their run: one call per
    execution when they are fewer than the contexts, else one call per context."""
    if execution_ids and len(execution_ids) < len(contexts):
        _membership_by_execution(store, execution_ids, into, not_runs)
    elif execution_ids:
        found: dict[int, set[tuple[int, str]]] = {}
        _membership_by_context(store, [c for c in contexts.values() if c.id not in not_runs],
                               found)
        for eid in execution_ids:
            into[eid] = found.get(eid, set())


def _not_runs(store: Store, contexts: Iterable[pb.Context]) -> set[int]:
    """Ids of the ``execution_cache`` contexts among ``contexts``: they group executions
    by cache key and are not "the run an execution belongs to" (no ``runs``, no cluster)."""
    contexts = list(contexts)
    types = store._types("context", {c.type_id for c in contexts})
    return {c.id for c in contexts
            if (t := types.get(c.type_id)) is not None
            and (t.name == CACHE_CONTEXT_TYPE or t.name in HIDDEN_CONTEXT_TYPES)}


def _run_context_names(store: Store, contexts: Iterable[pb.Context]) -> set[str]:
    """Names of the contexts among ``contexts`` that are runs (see
    :func:`lineage._runref.is_run_type`)."""
    contexts = list(contexts)
    types = store._types("context", {c.type_id for c in contexts})
    return {c.name for c in contexts
            if (t := types.get(c.type_id)) is not None and _runref.is_run_type(t.name)}


def _run_names(pairs: Iterable[tuple[int, str]], not_runs: set[int] | frozenset[int] = frozenset(),
               ) -> list[str]:
    return [name for cid, name in sorted(set(pairs)) if cid not in not_runs]


def _context_entries(
    store: Store, contexts: Sequence[pb.Context], members: dict[int, set[tuple[int, str]]],
    present: Callable[[str], bool],
) -> tuple[list[tuple[str, dict[str, Any]]], list[tuple[str, str, str, dict[str, Any]]]]:
    """Context nodes and their association, attribution and parent edges."""
    types = store._types("context", {c.type_id for c in contexts})
    nodes = [(context_node(c.id), context_attrs(c, types.get(c.type_id)))
             for c in sorted(contexts, key=lambda c: c.id)]
    ids = {c.id for c in contexts}
    edges: list[tuple[str, str, str, dict[str, Any]]] = []
    link = {"path": "", "time": None}
    for eid, pairs in sorted(members.items()):
        for cid, _name in sorted(pairs):
            if cid in ids and present(execution_node(eid)):
                edges.append((context_node(cid), execution_node(eid), "ASSOCIATION:",
                              {"event_type": "ASSOCIATION", **link}))
    for ctx in sorted(contexts, key=lambda c: c.id):
        for art in store._call("get_artifacts_by_context", ctx.id, missing=[]):
            if present(artifact_node(art.id)):
                edges.append((context_node(ctx.id), artifact_node(art.id), "ATTRIBUTION:",
                              {"event_type": "ATTRIBUTION", **link}))
        for parent in store._call("get_parent_contexts_by_context", ctx.id, missing=[]):
            if parent.id in ids:
                edges.append((context_node(parent.id), context_node(ctx.id), "PARENT:",
                              {"event_type": "PARENT", **link}))
    return nodes, edges


def _load_all(store: Store) -> _GraphCache:
    """The whole store, through the cache on ``store``."""
    cache: _GraphCache | None = store._graph_cache
    if cache is not None:
        _refresh(store, cache)
        return cache
    cache = _GraphCache()
    artifacts = list(store._call("get_artifacts"))
    executions = list(store._call("get_executions"))
    contexts = list(store._call("get_contexts"))
    cache.contexts = {c.id: c for c in contexts}
    cache.not_runs = _not_runs(store, contexts)
    cache.run_contexts = _run_context_names(store, contexts)
    keys = _NodeKeys()
    cache.nodes.update(_artifact_nodes(store, artifacts, keys))
    _read_executions(store, cache, executions, keys)
    artifact_ids, execution_ids = list(keys.artifacts), list(keys.executions)
    events = _batched(store, "get_events_by_execution_ids", execution_ids)
    _add_edges(cache, events, keys)
    cache.max_artifact = max(artifact_ids, default=0)
    cache.max_execution = max(execution_ids, default=0)
    cache.max_context = max((c.id for c in contexts), default=0)
    # MLMD lists rows by id; sort the nodes (once) only if it did not.
    cache.ordered = _ascending(artifact_ids) and _ascending(execution_ids)
    store._graph_cache = cache
    return cache


def _ascending(ids: Sequence[int]) -> bool:
    return all(map(operator.lt, ids, islice(ids, 1, None)))


def _refresh(store: Store, cache: _GraphCache) -> None:
    """Read what was added since the last load (ids only grow in MLMD)."""
    artifacts = _newer_than(store, "get_artifacts", cache.max_artifact)
    executions = _newer_than(store, "get_executions", cache.max_execution)
    contexts = _newer_than(store, "get_contexts", cache.max_context)
    # Executions that were still running may have changed state and gained outputs.
    reread = _batched(store, "get_executions_by_id", cache.open_executions)
    changed = executions + reread
    if not (artifacts or changed or contexts):
        return
    cache.contexts.update({c.id: c for c in contexts})
    cache.not_runs |= _not_runs(store, contexts)
    cache.run_contexts |= _run_context_names(store, contexts)
    touched: set[int] = set()
    if executions:  # new executions may belong to old contexts
        _run_membership(store, executions, cache.contexts, cache.not_runs, cache.members)
    if contexts:  # new contexts may group old executions (a tool associating them later)
        before = {eid: set(pairs) for eid, pairs in cache.members.items()}
        _membership_by_context(
            store, [c for c in contexts if c.id not in cache.not_runs], cache.members)
        touched.update(eid for eid, pairs in cache.members.items() if before.get(eid) != pairs)
    cache.nodes.update(_artifact_nodes(store, artifacts))
    cache.nodes.update(_execution_nodes(store, changed, cache.runs))
    if artifacts or executions:  # appended after the executions already read
        cache.ordered = False
    for eid in touched:
        node = cache.nodes.get(execution_node(eid))
        if node is not None:
            node["runs"] = cache.runs(eid)
    events = _batched(store, "get_events_by_execution_ids", [e.id for e in changed])
    _add_edges(cache, events)
    cache.max_artifact = max([cache.max_artifact, *(a.id for a in artifacts)])
    cache.max_execution = max([cache.max_execution, *(e.id for e in executions)])
    cache.max_context = max([cache.max_context, *(c.id for c in contexts)])
    for ex in changed:
        if ex.last_known_state in _OPEN_STATES:
            cache.open_executions.add(ex.id)
        else:
            cache.open_executions.discard(ex.id)


def _load_contexts(store: Store, roots: Sequence[pb.Context], with_contexts: bool) -> LineageGraph:
    """The executions of some contexts, every artifact they touch, and the artifacts
    attributed to the contexts; one call per context, then batched reads."""
    members: dict[int, set[tuple[int, str]]] = {}
    _membership_by_context(store, roots, members)
    executions = _batched(store, "get_executions_by_id", members)
    events = _batched(store, "get_events_by_execution_ids", members)
    artifact_ids = {ev.artifact_id for ev in events}
    for ctx in roots:
        artifact_ids.update(a.id for a in store._call("get_artifacts_by_context", ctx.id, missing=[]))
    artifacts = _batched(store, "get_artifacts_by_id", artifact_ids)
    # Name the run(s) of these executions, not only the contexts asked for: one batched
    # call for ours, one call per foreign execution (see contexts_by_execution).
    found = contexts_by_execution(store, executions)
    runs = {eid: {(c.id, c.name) for c in ctxs} for eid, ctxs in found.items()}
    not_runs = _not_runs(store, (c for ctxs in found.values() for c in ctxs))
    nodes = [*_artifact_nodes(store, sorted(artifacts, key=lambda a: a.id)),
             *_execution_nodes(store, sorted(executions, key=lambda e: e.id),
                               lambda eid: _run_names(runs.get(eid, ()), not_runs))]
    edges = sorted(map(event_edge, events), key=lambda e: e[:3])
    if with_contexts:
        present = {n for n, _ in nodes}.__contains__
        ctx_nodes, ctx_edges = _context_entries(store, roots, members, present)
        nodes += ctx_nodes
        edges += ctx_edges
    g = build_graph(nodes, edges)
    g.graph["run_contexts"] = sorted(_run_context_names(
        store, [*roots, *(c for ctxs in found.values() for c in ctxs)]))
    return g


@contextlib.contextmanager
def _bulk() -> Iterator[None]:
    """No cyclic garbage collection while hundreds of thousands of dicts are made: the
    collector would scan them again and again (a third of a 100k-node load).

    When it is turned back on, the objects made meanwhile are all in the youngest
    generation, and the next allocation would make the collector scan every one of them
    (about 5% of a load). They are long-lived (the cache and the caller's graph), so they
    go straight to the oldest generation instead: ``gc.freeze()`` then ``gc.unfreeze()``
    moves every tracked object there in constant time. Skipped when something else froze
    objects (unfreezing would undo that).
    """
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            if gc.get_freeze_count() == 0:
                gc.freeze()
                gc.unfreeze()
            gc.enable()


def load_graph(
    store: Store,
    *,
    run: str | int | None = None,
    experiment: str | None = None,
    contexts: bool = False,
) -> LineageGraph:
    """Read the lineage graph of a store (or of one run or experiment).

    Args:
        store: the store to read.
        run: only this run (a run name, a context id or ``"context:<id>"``; any context
            type, such as TFX's ``pipeline_run``): its executions, every artifact they
            read or wrote, and the artifacts attributed to it.
        experiment: only the runs of this experiment (our ``Experiment`` context, or any
            context whose children are runs, such as TFX's ``pipeline``).
        contexts: add contexts as nodes, with association, attribution and parent edges.

    Returns:
        A new :class:`LineageGraph` (a ``networkx.MultiDiGraph`` that draws itself in
        Jupyter): add or remove nodes, edges and attributes freely. As with networkx's
        own ``copy()``, the nested values of attributes (``properties``, ``params``,
        ``runs``) are shared with the store object's cache: treat them as read-only, or
        ``copy.deepcopy`` them before changing them in place.

    Raises:
        NotFound: ``run`` or ``experiment`` names nothing in the store.
        InvalidRef: both ``run`` and ``experiment`` were given.

    Example:
        >>> import lineage
        >>> store = lineage.connect(":memory:")
        >>> d = store.put(lineage.Dataset(content=b"x", name="raw"))
        >>> g = store.graph()
        >>> g.nodes[d.ref]["kind"], g.nodes[d.ref]["name"], g.nodes[d.ref]["version"]
        ('artifact', 'raw', 1)
    """
    if run is not None and experiment is not None:
        raise InvalidRef("give run= or experiment=, not both", ref=(run, experiment))
    if run is not None:
        return _load_contexts(store, [store._resolve_run(run)], contexts)
    if experiment is not None:
        exp = _runref.experiment_context(store, experiment)
        if exp is None:
            raise NotFound(
                f"no experiment named {experiment!r} in {store.uri}; `lineage ls runs` "
                "shows the experiments of the runs",
                ref=experiment,
            )
        children = list(store._call("get_children_contexts_by_context", exp.id, missing=[]))
        return _load_contexts(store, [exp, *children], contexts)
    with _bulk():
        cache = _load_all(store)
        g = cache.graph()
    if contexts:
        # Contexts are few and their properties change (a run's status and metrics):
        # read them again rather than from the cache, with every association (the cache
        # holds run membership only, much of it from the executions' run_context).
        all_contexts = list(store._call("get_contexts"))
        hidden = store._types("context", {c.type_id for c in all_contexts})
        all_contexts = [c for c in all_contexts  # metric chunks, tags: data, not groups
                        if getattr(hidden.get(c.type_id), "name", None) not in HIDDEN_CONTEXT_TYPES]
        members: dict[int, set[tuple[int, str]]] = {}
        _membership_by_context(store, all_contexts, members)
        ctx_nodes, ctx_edges = _context_entries(store, all_contexts, members, g.__contains__)
        for key, data in ctx_nodes:
            g.add_node(key, **data)
        g.add_edges_from(ctx_edges)
    return g


# --- traversals -------------------------------------------------------------------------

#: Edge types provenance and impact follow (see the README, "Asking questions").
FOLLOWED_EVENTS = frozenset({"INPUT", "OUTPUT"})


class _GraphEvents:
    """The INPUT/OUTPUT edges of a graph as :class:`lineage._timeline.Events`: the same
    rule as the store's queries, over what is in memory."""

    def __init__(self, graph: nx.MultiDiGraph) -> None:
        self.graph = graph

    def _place(self, execution: str, path: str) -> int:
        seq = (self.graph.nodes[execution].get("properties") or {}).get("output_seq")
        return _timeline.production_key(node_id(execution)[1],
                                        seq if isinstance(seq, dict) else None, path)

    def _edges(self, nodes: Iterable[str], out: bool, kind: str) -> list[tuple[int, int, int]]:
        found = []
        for node in nodes:
            if node not in self.graph:
                continue
            edges = self.graph.out_edges if out else self.graph.in_edges
            for u, v, data in edges(node, data=True):
                if data.get("event_type") != kind:
                    continue
                art, exe = (u, v) if kind == "INPUT" else (v, u)
                aid, eid = node_id(art)[1], node_id(exe)[1]
                place = (_timeline.read_key(eid) if kind == "INPUT"
                         else self._place(exe, data.get("path") or ""))
                found.append((aid, eid, place))
        return found

    def producers(self, artifacts: Collection[int]) -> list[tuple[int, int, int]]:
        return self._edges(map(artifact_node, artifacts), False, "OUTPUT")

    def consumers(self, artifacts: Collection[int]) -> list[tuple[int, int, int]]:
        return self._edges(map(artifact_node, artifacts), True, "INPUT")

    def inputs(self, executions: Collection[int]) -> list[tuple[int, int, int]]:
        return self._edges(map(execution_node, executions), False, "INPUT")

    def outputs(self, executions: Collection[int]) -> list[tuple[int, int, int]]:
        return self._edges(map(execution_node, executions), True, "OUTPUT")


def upstream(graph: nx.MultiDiGraph, node: str) -> Iterator[str]:
    """Yield the nodes upstream of an artifact node, nearest first, as provenance counts
    them: along INPUT and OUTPUT edges, a production only where it was recorded before
    the read (see :mod:`lineage._timeline`). From an execution node: its inputs and what
    is upstream of them, by the same rule.

    Example:
        >>> import networkx as nx
        >>> g = nx.MultiDiGraph()
        >>> g.add_node("execution:2", id=2)
        >>> _ = g.add_edge("artifact:1", "execution:2", event_type="INPUT")
        >>> _ = g.add_edge("execution:2", "artifact:3", event_type="OUTPUT", path="[0]")
        >>> list(upstream(g, "artifact:3"))
        ['execution:2', 'artifact:1']
    """
    return _traverse(graph, node, up=True)


def downstream(graph: nx.MultiDiGraph, node: str) -> Iterator[str]:
    """Yield the nodes downstream of an artifact node, nearest first, as impact counts
    them: a consumer only where it read an artifact after it was produced.

    Example:
        >>> import networkx as nx
        >>> g = nx.MultiDiGraph()
        >>> _ = g.add_edge("artifact:1", "execution:2", event_type="INPUT")
        >>> list(downstream(g, "artifact:1"))
        ['execution:2']
    """
    return _traverse(graph, node, up=False)


def _traverse(graph: nx.MultiDiGraph, node: str, *, up: bool) -> Iterator[str]:
    kind, num = node_id(node)
    source = _GraphEvents(graph)
    edges: set[tuple[str, str]] = set()
    if kind == "execution":  # what it read (or wrote), from the time it did
        if up:
            ends = source.inputs([num])
            closures = [_timeline.upstream(source, a, read=place) for a, _e, place in ends]
            edges = {(artifact_node(a), node) for a, _e, _p in ends}
        else:
            ends = source.outputs([num])
            closures = [_timeline.downstream(source, a, made=place) for a, _e, place in ends]
            edges = {(node, artifact_node(a)) for a, _e, _p in ends}
    else:
        closures = [(_timeline.upstream if up else _timeline.downstream)(source, num)]
    for c in closures:
        edges |= {(artifact_node(a), execution_node(e)) for a, e in c.inputs}
        edges |= {(execution_node(e), artifact_node(a)) for a, e in c.outputs}
    # nearest first, along the edges that counted
    step: dict[str, list[str]] = {}
    for u, v in edges:
        near, far = (v, u) if up else (u, v)
        step.setdefault(near, []).append(far)
    seen = {node}
    frontier = [node]
    while frontier:
        nxt: list[str] = []
        for current in frontier:
            for other in sorted(step.get(current, ())):
                if other not in seen:
                    seen.add(other)
                    nxt.append(other)
                    yield other
        frontier = nxt
