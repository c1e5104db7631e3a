"""The lineage graph of a store: a ``networkx.MultiDiGraph`` read with batched MLMD calls.

Nodes are ``"artifact:<id>"`` and ``"execution:<id>"`` (and ``"context:<id>"`` with
``contexts=True``). Every node has the attributes ``kind``, ``id``, ``type_name``,
``base_type``, ``name``, ``uri``, ``version``, ``state``, ``fingerprint``, ``properties``
and ``create_time``; executions also have ``params``, ``error`` and ``runs`` (the names of
the contexts the execution belongs to).

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
number of MLMD calls per batch of ids) and the run membership with one call per context
(contexts are far fewer than executions). The graph is cached on the ``Store`` object: a
later call reads only what was added since (MLMD ids only grow) and re-reads the
executions that were still running.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from typing import TYPE_CHECKING, Any

import attrs
import networkx as nx
from ml_metadata.metadata_store import metadata_store
from ml_metadata.proto import metadata_store_pb2 as pb

from lineage import _convert
from lineage._schema import EXPERIMENT_TYPE, INPUT_EVENTS, OUTPUT_EVENTS

if TYPE_CHECKING:
    from lineage.store import Store

__all__ = [
    "EVENT_TYPES",
    "artifact_node",
    "context_node",
    "downstream",
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
_OPEN_STATES = frozenset({pb.Execution.NEW, pb.Execution.RUNNING, pb.Execution.UNKNOWN})
_INCREMENTAL_PER_EXECUTION = 200


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


def artifact_attrs(proto: pb.Artifact, atype: pb.ArtifactType | None) -> dict[str, Any]:
    """The node attributes of an artifact (the same fields as :class:`~lineage.Artifact`)."""
    props = _convert.props_to_dict(proto.properties)
    if proto.custom_properties:
        props.update(_convert.props_to_dict(proto.custom_properties))
    version = props.pop("version", None)
    fingerprint = props.pop("fingerprint", None)
    props.pop("previous_version", None)
    name = proto.name
    if isinstance(version, int) and name.endswith(f"@{version}"):
        name = name[: -len(f"@{version}")]
    return {
        "kind": "artifact",
        "id": proto.id,
        "type_name": atype.name if atype is not None else f"type#{proto.type_id}",
        "base_type": _base(_ARTIFACT_BASE, atype),
        "name": name or None,
        "uri": proto.uri,
        "version": version if isinstance(version, int) else None,
        "state": _ARTIFACT_STATES.get(proto.state, "UNKNOWN"),
        "fingerprint": fingerprint if isinstance(fingerprint, str) and fingerprint else None,
        "properties": props,
        "create_time": proto.create_time_since_epoch or None,
    }


def execution_attrs(
    proto: pb.Execution, etype: pb.ExecutionType | None, runs: Sequence[str] = ()
) -> dict[str, Any]:
    """The node attributes of an execution (the same fields as :class:`~lineage.Execution`)."""
    rec = _convert.execution_from_proto(proto, etype)
    return {
        "kind": "execution",
        "id": rec.id,
        "type_name": rec.type_name,
        "base_type": rec.base_type,
        "name": rec.name,
        "uri": None,
        "version": None,
        "state": rec.state,
        "fingerprint": None,
        "properties": rec.properties,
        "create_time": rec.create_time,
        "params": rec.params,
        "error": rec.error,
        "runs": list(runs),
        "ours": rec.ours,
    }


def context_attrs(proto: pb.Context, ctype: pb.ContextType | None) -> dict[str, Any]:
    """The node attributes of a context (with ``contexts=True``)."""
    props = _convert.props_to_dict(proto.properties)
    props.update(_convert.props_to_dict(proto.custom_properties))
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
    etype = EVENT_TYPES.get(ev.type, "UNKNOWN")
    path = _convert.event_path(ev)
    attrs_ = {"event_type": etype, "path": path, "time": ev.milliseconds_since_epoch or None}
    art, exe = artifact_node(ev.artifact_id), execution_node(ev.execution_id)
    if ev.type in INPUT_EVENTS:
        return art, exe, f"{etype}:{path}", attrs_
    if ev.type in OUTPUT_EVENTS:
        return exe, art, f"{etype}:{path}", attrs_
    # UNKNOWN events: no direction is recorded; draw them as the artifact being read.
    return art, exe, f"{etype}:{path}", attrs_


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


@attrs.define
class _GraphCache:
    """What ``store.graph()`` read so far (kept on the Store as ``store._graph_cache``)."""

    graph: nx.MultiDiGraph
    max_artifact: int = 0
    max_execution: int = 0
    max_context: int = 0
    open_executions: set[int] = attrs.field(factory=set)
    runs: dict[int, list[str]] = attrs.field(factory=dict)
    members: dict[int, list[tuple[int, str]]] = attrs.field(factory=dict)
    contexts: dict[int, pb.Context] = attrs.field(factory=dict)


def _add_artifacts(store: Store, g: nx.MultiDiGraph, protos: Sequence[pb.Artifact]) -> None:
    types = store._types("artifact", {p.type_id for p in protos})
    g.add_nodes_from(
        (artifact_node(p.id), artifact_attrs(p, types.get(p.type_id)))
        for p in sorted(protos, key=lambda p: p.id)
    )


def _add_executions(
    store: Store, g: nx.MultiDiGraph, protos: Sequence[pb.Execution],
    runs: dict[int, list[str]],
) -> None:
    types = store._types("execution", {p.type_id for p in protos})
    g.add_nodes_from(
        (execution_node(p.id), execution_attrs(p, types.get(p.type_id), runs.get(p.id, ())))
        for p in sorted(protos, key=lambda p: p.id)
    )


def _add_events(g: nx.MultiDiGraph, events: Iterable[pb.Event]) -> None:
    edges = [event_edge(ev) for ev in events]
    edges.sort(key=lambda e: (e[0], e[1], e[2]))
    for u, v, _key, _attrs in edges:  # events may point at rows we did not read
        for node in (u, v):
            if node not in g:
                kind, num = node_id(node)
                g.add_node(node, kind=kind, id=num, type_name=None, base_type=None, name=None,
                           uri=None, version=None, state="UNKNOWN", fingerprint=None,
                           properties={}, create_time=None,
                           **({"params": {}, "error": None, "runs": []}
                              if kind == "execution" else {}))
    g.add_edges_from(edges)


def _membership_by_context(
    store: Store, contexts: Sequence[pb.Context]
) -> dict[int, list[tuple[int, str]]]:
    """execution id → [(context id, context name)], one call per context."""
    member: dict[int, list[tuple[int, str]]] = {}
    for ctx in sorted(contexts, key=lambda c: c.id):
        for ex in store._call("get_executions_by_context", ctx.id, missing=[]):
            member.setdefault(ex.id, []).append((ctx.id, ctx.name))
    return member


def _run_names(pairs: Iterable[tuple[int, str]]) -> list[str]:
    return [name for _cid, name in sorted(set(pairs))]


def _add_context_nodes(
    store: Store, g: nx.MultiDiGraph, contexts: Sequence[pb.Context],
    members: dict[int, list[tuple[int, str]]],
) -> None:
    """Context nodes and their association, attribution and parent edges."""
    types = store._types("context", {c.type_id for c in contexts})
    for ctx in sorted(contexts, key=lambda c: c.id):
        g.add_node(context_node(ctx.id), **context_attrs(ctx, types.get(ctx.type_id)))
    for eid, pairs in members.items():
        for cid, _name in pairs:
            if context_node(cid) in g and execution_node(eid) in g:
                g.add_edge(context_node(cid), execution_node(eid), key="ASSOCIATION:",
                           event_type="ASSOCIATION", path="", time=None)
    for ctx in sorted(contexts, key=lambda c: c.id):
        for art in store._call("get_artifacts_by_context", ctx.id, missing=[]):
            if artifact_node(art.id) in g:
                g.add_edge(context_node(ctx.id), artifact_node(art.id), key="ATTRIBUTION:",
                           event_type="ATTRIBUTION", path="", time=None)
        for parent in store._call("get_parent_contexts_by_context", ctx.id, missing=[]):
            if context_node(parent.id) in g:
                g.add_edge(context_node(parent.id), context_node(ctx.id), key="PARENT:",
                           event_type="PARENT", path="", time=None)


def _load_all(store: Store) -> nx.MultiDiGraph:
    """The whole store, through the cache on ``store``."""
    cache: _GraphCache | None = store._graph_cache
    if cache is None:
        g = nx.MultiDiGraph()
        artifacts = list(store._call("get_artifacts"))
        executions = list(store._call("get_executions"))
        contexts = list(store._call("get_contexts"))
        cache = _GraphCache(graph=g)
        cache.members = _membership_by_context(store, contexts)
        cache.runs = {eid: _run_names(pairs) for eid, pairs in cache.members.items()}
        _add_artifacts(store, g, artifacts)
        _add_executions(store, g, executions, cache.runs)
        _add_events(g, _batched(store, "get_events_by_execution_ids", [e.id for e in executions]))
        cache.max_artifact = max((a.id for a in artifacts), default=0)
        cache.max_execution = max((e.id for e in executions), default=0)
        cache.max_context = max((c.id for c in contexts), default=0)
        cache.open_executions = {
            e.id for e in executions if e.last_known_state in _OPEN_STATES
        }
        cache.contexts = {c.id: c for c in contexts}
        store._graph_cache = cache
        return g
    _refresh(store, cache)
    return cache.graph


def _refresh(store: Store, cache: _GraphCache) -> None:
    """Read what was added since the last load (ids only grow in MLMD)."""
    g = cache.graph
    artifacts = _newer_than(store, "get_artifacts", cache.max_artifact)
    executions = _newer_than(store, "get_executions", cache.max_execution)
    contexts = _newer_than(store, "get_contexts", cache.max_context)
    # Executions that were still running may have changed state and gained outputs.
    reread = _batched(store, "get_executions_by_id", cache.open_executions)
    changed = executions + reread
    if not (artifacts or changed or contexts):
        return
    cache.contexts.update({c.id: c for c in contexts})
    if executions or contexts:
        if contexts or len(executions) > _INCREMENTAL_PER_EXECUTION:
            cache.members = _membership_by_context(store, list(cache.contexts.values()))
            cache.runs = {eid: _run_names(pairs) for eid, pairs in cache.members.items()}
            for eid, names in cache.runs.items():
                node = execution_node(eid)
                if node in g:
                    g.nodes[node]["runs"] = list(names)
        else:
            for ex in executions:  # grows with what was added, not with the store
                ctxs = store._call("get_contexts_by_execution", ex.id, missing=[])
                cache.members[ex.id] = [(c.id, c.name) for c in ctxs]
                cache.runs[ex.id] = _run_names(cache.members[ex.id])
    _add_artifacts(store, g, artifacts)
    _add_executions(store, g, changed, cache.runs)
    _add_events(g, _batched(store, "get_events_by_execution_ids", [e.id for e in changed]))
    cache.max_artifact = max([cache.max_artifact, *(a.id for a in artifacts)])
    cache.max_execution = max([cache.max_execution, *(e.id for e in executions)])
    cache.max_context = max([cache.max_context, *(c.id for c in contexts)])
    for ex in changed:
        if ex.last_known_state in _OPEN_STATES:
            cache.open_executions.add(ex.id)
        else:
            cache.open_executions.discard(ex.id)


def _load_contexts(store: Store, roots: Sequence[pb.Context], with_contexts: bool) -> nx.MultiDiGraph:
    """The executions of some contexts, every artifact they touch, and the artifacts
    attributed to the contexts; read with one call per context and batched reads."""
    g = nx.MultiDiGraph()
    members = _membership_by_context(store, roots)
    executions = _batched(store, "get_executions_by_id", members)
    events = _batched(store, "get_events_by_execution_ids", members)
    artifact_ids = {ev.artifact_id for ev in events}
    for ctx in roots:
        artifact_ids.update(a.id for a in store._call("get_artifacts_by_context", ctx.id, missing=[]))
    artifacts = _batched(store, "get_artifacts_by_id", artifact_ids)
    # Name every context of these executions, not only the ones asked for.
    runs: dict[int, list[str]] = {}
    for ex in executions:  # grows with the run, not with the store
        ctxs = store._call("get_contexts_by_execution", ex.id, missing=[])
        runs[ex.id] = _run_names((c.id, c.name) for c in ctxs)
    _add_artifacts(store, g, artifacts)
    _add_executions(store, g, executions, runs)
    _add_events(g, events)
    if with_contexts:
        _add_context_nodes(store, g, roots, members)
    return g


def load_graph(
    store: Store,
    *,
    run: str | int | None = None,
    experiment: str | None = None,
    contexts: bool = False,
) -> nx.MultiDiGraph:
    """Read the lineage graph of a store (or of one run or experiment).

    Args:
        store: the store to read.
        run: only this run (a run name, a context id or ``"context:<id>"``; any context
            type, such as TFX's ``pipeline_run``): its executions, every artifact they
            read or wrote, and the artifacts attributed to it.
        experiment: only the runs of this experiment (our ``Experiment`` context, or any
            context whose children are runs).
        contexts: add contexts as nodes, with association, attribution and parent edges.

    Returns:
        A new ``networkx.MultiDiGraph`` the caller may change freely.

    Raises:
        NotFound: ``run`` or ``experiment`` names nothing in the store.

    Example:
        >>> import lineage
        >>> store = lineage.connect(":memory:")
        >>> d = store.put(lineage.Dataset(content=b"x", name="raw"))
        >>> g = store.graph()
        >>> g.nodes[d.ref]["kind"], g.nodes[d.ref]["name"], g.nodes[d.ref]["version"]
        ('artifact', 'raw', 1)
    """
    from lineage.errors import NotFound

    if run is not None and experiment is not None:
        from lineage.errors import InvalidRef

        raise InvalidRef("give run= or experiment=, not both", ref=(run, experiment))
    if run is not None:
        return _load_contexts(store, [store._resolve_run(run)], contexts)
    if experiment is not None:
        exp = store._context_named(EXPERIMENT_TYPE, experiment)
        if exp is None:
            try:
                exp = store._resolve_run(experiment)
            except NotFound:
                raise NotFound(
                    f"no experiment named {experiment!r} in {store.uri}; `lineage ls runs` "
                    "shows the experiments of the runs",
                    ref=experiment,
                ) from None
        children = list(store._call("get_children_contexts_by_context", exp.id, missing=[]))
        return _load_contexts(store, [exp, *children], contexts)
    g = _load_all(store)
    out: nx.MultiDiGraph = g.copy()
    if contexts:
        cache: _GraphCache = store._graph_cache
        _add_context_nodes(store, out, list(cache.contexts.values()), cache.members)
    return out


# --- traversals -------------------------------------------------------------------------

#: Edge types provenance and impact follow (see the README, "Asking questions").
FOLLOWED_EVENTS = frozenset({"INPUT", "OUTPUT"})


def upstream(graph: nx.MultiDiGraph, node: str) -> Iterator[str]:
    """Yield the nodes upstream of ``node`` along INPUT and OUTPUT edges, nearest first.

    Example:
        >>> import networkx as nx
        >>> g = nx.MultiDiGraph()
        >>> _ = g.add_edge("artifact:1", "execution:2", event_type="INPUT")
        >>> _ = g.add_edge("execution:2", "artifact:3", event_type="OUTPUT")
        >>> list(upstream(g, "artifact:3"))
        ['execution:2', 'artifact:1']
    """
    return _walk(graph, node, graph.in_edges)


def downstream(graph: nx.MultiDiGraph, node: str) -> Iterator[str]:
    """Yield the nodes downstream of ``node`` along INPUT and OUTPUT edges, nearest first.

    Example:
        >>> import networkx as nx
        >>> g = nx.MultiDiGraph()
        >>> _ = g.add_edge("artifact:1", "execution:2", event_type="INPUT")
        >>> list(downstream(g, "artifact:1"))
        ['execution:2']
    """
    return _walk(graph, node, graph.out_edges)


def _walk(graph: nx.MultiDiGraph, node: str, edges: Any) -> Iterator[str]:
    seen = {node}
    frontier = [node]
    while frontier:
        nxt: list[str] = []
        for current in frontier:
            for u, v, etype in sorted(edges(current, data="event_type")):
                if etype not in FOLLOWED_EVENTS:
                    continue
                other = u if v == current else v
                if other not in seen:
                    seen.add(other)
                    nxt.append(other)
                    yield other
        frontier = nxt
