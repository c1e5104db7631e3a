"""The questions asked of a lineage: provenance, impact, diff, verify, compare.

Provenance and impact walk the store frontier by frontier: one batched
``get_events_by_artifact_ids`` and one batched ``get_events_by_execution_ids`` call per hop,
then the rows of the answer by id. Their cost grows with the answer, never with the store,
and there is no depth limit (a 1,000-step chain is followed to its root).

They follow INPUT and OUTPUT events only. The other event types are edges of the graph
(see :mod:`lineage.graph`) but are not followed:

- ``DECLARED_INPUT`` / ``DECLARED_OUTPUT``: what a pipeline declared it would read or
  write, not what it did; a declared output may never have been produced.
- ``INTERNAL_INPUT`` / ``INTERNAL_OUTPUT``: orchestrator bookkeeping (TFX resolvers link
  existing artifacts with INTERNAL_OUTPUT); following them would make a resolver look
  like the producer of a model it only selected.
- ``PENDING_OUTPUT``: an output not finalised yet (its content may not exist).

Every result has ``to_dict()`` (JSON-serialisable), ``graph`` (the networkx subgraph,
the queried artifact included) and displays as SVG in Jupyter.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Collection, Iterable, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import attrs
import networkx as nx
from ml_metadata.proto import metadata_store_pb2 as pb

from lineage import _convert, _fold, _runref, _text, _timeline
from lineage._schema import CACHE_CONTEXT_TYPE, EXPERIMENT_TYPE
from lineage.artifacts import Artifact
from lineage.checkout import restore_checks
from lineage.errors import FingerprintError, InvalidRef
from lineage.fingerprint import ALGORITHMS, fingerprint, fingerprint_content
from lineage.graph import (
    LineageGraph,
    artifact_attrs,
    artifact_node,
    build_graph,
    contexts_by_execution,
    event_edge,
    execution_attrs,
    execution_node,
    node_id,
)
from lineage.records import Execution, Run

if TYPE_CHECKING:
    import pandas

    from lineage.store import Ref, Store

__all__ = [
    "ArtifactCheck",
    "Comparison",
    "Impact",
    "LineageDiff",
    "Provenance",
    "Verification",
    "compare",
    "diff",
    "impact",
    "provenance",
    "verify",
]

_CODE_KEYS = ("function", "source_hash", "code_hash", "git_commit", "git_dirty", "git_repo",
              "script")
#: What diff compares of code: its identity, never where a clone of it lives (``git_repo``,
#: ``script``); ``code_hash`` covers the project's own helpers a step calls.
_CODE_IDENTITY = ("function", "source_hash", "code_hash", "git_commit", "git_dirty")
_ENV_KEYS = ("python", "packages")
_TIME_KEYS = ("start_time", "end_time", "duration")


# --- the walk ---------------------------------------------------------------------------


@attrs.define
class _Walk:
    """What a time-respecting walk (:mod:`lineage._timeline`) read."""

    artifacts: dict[int, pb.Artifact]
    executions: dict[int, pb.Execution]
    events: list[pb.Event]
    """Every event of the executions walked (edges to rows outside the answer included):
    an execution's record lists all its inputs and outputs."""
    counted: set[tuple[int, int, int]] = attrs.field(factory=set)
    """(event type, artifact, execution) of the events that counted: the answer's edges."""


def _batched(store: Store, method: str, ids: Iterable[int]) -> list[Any]:
    return store._batched(method, sorted(set(ids)))


class _StoreEvents:
    """The events of a store, read in batches as a walk needs them (one batched call per
    hop and direction), each row read once (:class:`lineage._timeline.Events`)."""

    def __init__(self, store: Store) -> None:
        self.store = store
        self.by_artifact: dict[int, list[pb.Event]] = {}
        self.by_execution: dict[int, list[pb.Event]] = {}
        self.executions: dict[int, pb.Execution] = {}
        self._seq: dict[int, dict[str, Any] | None] = {}

    def _events(self, ids: Collection[int], cache: dict[int, list[pb.Event]],
                method: str, key: str) -> list[pb.Event]:
        missing = [i for i in ids if i not in cache]
        if missing:
            for i in missing:
                cache[i] = []
            for ev in _batched(self.store, method, missing):
                cache[getattr(ev, key)].append(ev)
        return [ev for i in ids for ev in cache[i]]

    def _of_artifacts(self, ids: Collection[int]) -> list[pb.Event]:
        return self._events(ids, self.by_artifact, "get_events_by_artifact_ids", "artifact_id")

    def _of_executions(self, ids: Collection[int]) -> list[pb.Event]:
        return self._events(ids, self.by_execution, "get_events_by_execution_ids",
                            "execution_id")

    def read_executions(self, ids: Iterable[int]) -> None:
        missing = {i for i in ids if i not in self.executions}
        if missing:
            self.executions.update(
                (e.id, e) for e in _batched(self.store, "get_executions_by_id", missing))

    def _produced(self, events: Iterable[pb.Event]) -> list[tuple[int, int, int]]:
        outs = [ev for ev in events if ev.type == pb.Event.OUTPUT]
        self.read_executions(ev.execution_id for ev in outs)
        found = []
        for ev in outs:
            proto = self.executions.get(ev.execution_id)
            if proto is None:
                continue  # an event of an execution that is not in the store
            if proto.id not in self._seq:
                self._seq[proto.id] = _timeline.output_seq_of(proto)
            place = _timeline.production_key(proto.id, self._seq[proto.id],
                                             _convert.event_path(ev))
            found.append((ev.artifact_id, ev.execution_id, place))
        return found

    @staticmethod
    def _read(events: Iterable[pb.Event]) -> list[tuple[int, int, int]]:
        return [(ev.artifact_id, ev.execution_id, _timeline.read_key(ev.execution_id))
                for ev in events if ev.type == pb.Event.INPUT]

    def producers(self, artifacts: Collection[int]) -> list[tuple[int, int, int]]:
        return self._produced(self._of_artifacts(artifacts))

    def consumers(self, artifacts: Collection[int]) -> list[tuple[int, int, int]]:
        return self._read(self._of_artifacts(artifacts))

    def inputs(self, executions: Collection[int]) -> list[tuple[int, int, int]]:
        return self._read(self._of_executions(executions))

    def outputs(self, executions: Collection[int]) -> list[tuple[int, int, int]]:
        return self._produced(self._of_executions(executions))


def _walk(store: Store, start: int, *, up: bool) -> _Walk:
    """The time-respecting closure of artifact ``start``, upstream (``up``) or downstream
    (the rule and the walk: :mod:`lineage._timeline`), with the rows of the answer."""
    source = _StoreEvents(store)
    found = _timeline.upstream(source, start) if up else _timeline.downstream(source, start)
    source.read_executions(found.executions)
    events = [ev for eid in sorted(found.executions)
              for ev in source._of_executions([eid])]
    counted = {(pb.Event.INPUT, a, e) for a, e in found.inputs}
    counted |= {(pb.Event.OUTPUT, a, e) for a, e in found.outputs}
    artifacts = {a.id: a for a in _batched(store, "get_artifacts_by_id", found.artifacts)}
    executions = {e: source.executions[e] for e in sorted(found.executions)
                  if e in source.executions}
    return _Walk(artifacts, executions, events, counted)


def _contexts_of(store: Store, executions: Iterable[pb.Execution]) -> dict[int, list[Run]]:
    """execution id → the contexts it belongs to (with their experiment), cache keys left out.

    Our executions recorded in a run name it in their ``run_context`` property: one
    batched ``get_contexts_by_id`` for all of them. Only foreign executions (and ours
    recorded outside a run) cost a ``get_contexts_by_execution`` call each, which scans
    MLMD's Association table (see :func:`lineage.graph.contexts_by_execution`).
    Experiments (parents) are read once per distinct run.
    """
    by_exec = contexts_by_execution(store, executions)
    distinct = {c.id: c for ctxs in by_exec.values() for c in ctxs}
    ctypes = store._types("context", {c.type_id for c in distinct.values()})
    wanted = sorted((c for c in distinct.values()  # no parent lookups for cache keys
                     if getattr(ctypes.get(c.type_id), "name", None) != CACHE_CONTEXT_TYPE),
                    key=lambda c: c.id)
    runs = {r.id: r for r in store._runs_from_protos(wanted) if _is_run_like(r)}
    return {eid: [runs[c.id] for c in sorted(ctxs, key=lambda c: c.id) if c.id in runs]
            for eid, ctxs in sorted(by_exec.items())}


def _is_run_like(ctx: Run) -> bool:
    """Whether a context is one a user reads as "the run it belongs to" (or its experiment,
    or a foreign grouping): everything but ``execution_cache`` contexts, which group the
    executions sharing a cache key (steps.py's caching, TFX's convention)."""
    return ctx.type_name != CACHE_CONTEXT_TYPE


def _records(store: Store, walk: _Walk) -> tuple[dict[int, Artifact], dict[int, Execution]]:
    arts = {a.id: a for a in store._artifacts_from_protos(list(walk.artifacts.values()))
            if a.id is not None}
    by_exec: dict[int, list[pb.Event]] = {}
    for ev in walk.events:
        by_exec.setdefault(ev.execution_id, []).append(ev)
    types = store._types("execution", (e.type_id for e in walk.executions.values()))
    execs = {
        eid: _convert.execution_from_proto(p, types.get(p.type_id), by_exec.get(eid, ()))
        for eid, p in walk.executions.items()
    }
    return arts, execs


def _subgraph(
    store: Store, walk: _Walk, runs: dict[int, list[Run]]
) -> nx.MultiDiGraph:
    """The answer as a graph with the same node and edge attributes as ``store.graph()``."""
    atypes = store._types("artifact", (a.type_id for a in walk.artifacts.values()))
    etypes = store._types("execution", (e.type_id for e in walk.executions.values()))
    nodes = [
        (artifact_node(i), artifact_attrs(walk.artifacts[i], atypes.get(walk.artifacts[i].type_id)))
        for i in sorted(walk.artifacts)
    ]
    nodes += [
        (execution_node(i), execution_attrs(
            walk.executions[i], etypes.get(walk.executions[i].type_id),
            [r.name for r in runs.get(i, [])]))
        for i in sorted(walk.executions)
    ]
    edges = sorted((event_edge(e) for e in walk.events
                    if (e.type, e.artifact_id, e.execution_id) in walk.counted),
                   key=lambda e: e[:3])
    g = build_graph(nodes, edges)
    g.graph["run_contexts"] = sorted({r.name for rs in runs.values() for r in rs
                                      if _runref.is_run_type(r.type_name)})
    return g


def _topological(execs: dict[int, Execution]) -> list[Execution]:
    """Executions ordered producers first; ties (and cycles) by create time and id."""
    dag = nx.DiGraph()
    dag.add_nodes_from(execs)
    producers: dict[int, list[int]] = {}
    for e in execs.values():
        for a in e.outputs:
            producers.setdefault(a, []).append(e.id)
    for e in execs.values():
        for a in e.inputs:
            for p in producers.get(a, []):
                if p != e.id:
                    dag.add_edge(p, e.id)

    def key(eid: int) -> tuple[int, int]:
        return (execs[eid].create_time or 0, eid)

    if not nx.is_directed_acyclic_graph(dag):  # MLMD does not forbid cycles
        cond = nx.condensation(dag)
        order: list[int] = []
        for comp in nx.lexicographical_topological_sort(
            cond, key=lambda c: min(key(m) for m in cond.nodes[c]["members"])
        ):
            order.extend(sorted(cond.nodes[comp]["members"], key=key))
        return [execs[i] for i in order]
    return [execs[i] for i in nx.lexicographical_topological_sort(dag, key=key)]


def _step_dict(ex: Execution, runs: Sequence[Run]) -> dict[str, Any]:
    """A step in query results: the API shape plus runs, code, environment, timing."""
    out = ex.to_dict()
    props = ex.properties
    run_ctx = [r for r in runs if _runref.is_run_type(r.type_name)] or [
        r for r in runs if r.type_name not in (EXPERIMENT_TYPE, CACHE_CONTEXT_TYPE)]
    out.update(
        base_type=ex.base_type,
        error=ex.error,
        runs=[r.name for r in run_ctx],
        contexts=[{"type": r.type_name, "name": r.name} for r in runs],
        experiment=next((r.experiment for r in run_ctx if r.experiment), None),
        code={k: props[k] for k in _CODE_KEYS if props.get(k) not in (None, "")},
        environment={k: props[k] for k in _ENV_KEYS if props.get(k) not in (None, "")},
        **{k: props.get(k) for k in _TIME_KEYS},
    )
    if isinstance(props.get("metrics"), dict):
        out["metrics"] = props["metrics"]
    return out


def _json_dict(value: dict[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = _convert.jsonable(value)
    return out




def _artifact_dict(a: Artifact) -> dict[str, Any]:
    return a.to_dict()


def _is_dataset(a: Artifact) -> bool:
    return getattr(a, "base_type", None) == "DATASET"


# --- provenance ---------------------------------------------------------------------------


@attrs.define(eq=False)
class Provenance:
    """Which data, steps and parameters produced an artifact.

    Example:
        >>> import lineage
        >>> store = lineage.connect(":memory:")
        >>> raw = store.put(lineage.Dataset(content=b"x", name="raw"))
        >>> store.provenance(raw).to_dict()["steps"]
        []
    """

    target: Artifact
    """The artifact asked about."""
    artifacts: list[Artifact]
    """Every upstream artifact (the target excluded), by id."""
    datasets: list[Artifact]
    """The upstream artifacts whose MLMD base type is DATASET."""
    roots: list[int]
    """Ids of the upstream artifacts with no artifact upstream of them."""
    steps: list[Execution]
    """Every upstream execution, in topological order, roots first."""
    graph: nx.MultiDiGraph
    """The subgraph: target, upstream artifacts and steps, and the events between them."""
    runs: dict[int, list[Run]] = attrs.field(factory=dict)
    """Execution id → the contexts (runs, experiments, TFX contexts) it belongs to;
    ``execution_cache`` contexts (cache keys) are not runs and are left out."""

    def step_dict(self, step: Execution) -> dict[str, Any]:
        """One step as in ``to_dict()["steps"]``."""
        return _step_dict(step, self.runs.get(step.id, []))

    def to_dict(self) -> dict[str, Any]:
        """The JSON shape documented in API.md (``target``, ``datasets``, ``artifacts``,
        ``roots``, ``steps``)."""
        return _json_dict({
            "target": _artifact_dict(self.target),
            "datasets": [_artifact_dict(a) for a in self.datasets],
            "artifacts": [_artifact_dict(a) for a in self.artifacts],
            "roots": list(self.roots),
            "steps": [self.step_dict(s) for s in self.steps],
        })

    def __str__(self) -> str:
        """The provenance tree, a summary line and the datasets (what ``lineage
        provenance`` prints)."""
        return _text.provenance(self)

    def __repr__(self) -> str:
        return _text.provenance_repr(self)

    def _repr_svg_(self) -> str:
        from lineage.render import to_svg
        return to_svg(self)

    def _repr_html_(self) -> str:
        return self._repr_svg_()


def provenance(store: Store, ref: Ref) -> Provenance:
    """Which data, steps and parameters produced ``ref``, to any depth.

    Args:
        store: the store.
        ref: an artifact reference (an Artifact, an id, ``"name"``, ``"name@3"``,
            ``"artifact:12"``).

    Raises:
        NotFound: the reference names nothing. AmbiguousRef: the name exists in several types.

    Example:
        >>> import lineage
        >>> store = lineage.connect(":memory:")
        >>> m = store.put(lineage.Model(content=b"weights", name="clf"))
        >>> p = store.provenance("clf")
        >>> p.target.name, p.artifacts, sorted(p.graph)
        ('clf', [], ['artifact:1'])
    """
    target_proto = store._resolve(ref)
    walk = _walk(store, target_proto.id, up=True)
    arts, execs = _records(store, walk)
    runs = _contexts_of(store, walk.executions.values())
    target = arts.pop(target_proto.id)
    upstream = [arts[i] for i in sorted(arts)]
    # Roots: upstream artifacts whose producers (those that count) read no artifact.
    produced_by: dict[int, list[Execution]] = {}
    for kind, a, e in walk.counted:
        if kind == pb.Event.OUTPUT and e in execs:
            produced_by.setdefault(a, []).append(execs[e])
    roots = [
        a.id for a in upstream
        if a.id is not None and all(not p.inputs for p in produced_by.get(a.id, []))
    ]
    return Provenance(
        target=target,
        artifacts=upstream,
        datasets=[a for a in upstream if _is_dataset(a)],
        roots=roots,
        steps=_topological(execs),
        graph=_subgraph(store, walk, runs),
        runs=runs,
    )


# --- impact -------------------------------------------------------------------------------


@attrs.define(eq=False)
class Impact:
    """Everything downstream of an artifact: what a bad dataset reached.

    Example:
        >>> import lineage
        >>> store = lineage.connect(":memory:")
        >>> raw = store.put(lineage.Dataset(content=b"x", name="raw"))
        >>> store.impact(raw).to_dict()["artifacts"]
        []
    """

    source: Artifact
    """The artifact asked about."""
    artifacts: list[Artifact]
    """Every downstream artifact (the source excluded), by id."""
    executions: list[Execution]
    """Every downstream execution, in topological order."""
    by_type: dict[str, list[Artifact | Execution]]
    """Artifact type name, or step name for executions → the downstream records."""
    graph: nx.MultiDiGraph
    """The subgraph: source, downstream artifacts and executions, and their events."""
    runs: dict[int, list[Run]] = attrs.field(factory=dict)
    """Execution id → the contexts it belongs to (``execution_cache`` ones left out)."""

    def to_dict(self) -> dict[str, Any]:
        """``source``, ``artifacts``, ``executions`` and ``by_type`` (type → refs)."""

        def brief(x: Artifact | Execution) -> dict[str, Any]:
            if isinstance(x, Execution):
                return {"ref": x.ref, "id": x.id, "name": x.name, "state": x.state}
            return {"ref": x.ref, "id": x.id, "name": x.name, "version": x.version}

        return _json_dict({
            "source": _artifact_dict(self.source),
            "artifacts": [_artifact_dict(a) for a in self.artifacts],
            "executions": [_step_dict(e, self.runs.get(e.id, [])) for e in self.executions],
            "by_type": {t: [brief(x) for x in xs] for t, xs in self.by_type.items()},
        })

    def __str__(self) -> str:
        """What is downstream, by type (what ``lineage impact`` prints)."""
        return _text.impact(self)

    def __repr__(self) -> str:
        return _text.impact_repr(self)

    def _repr_svg_(self) -> str:
        from lineage.render import to_svg
        return to_svg(self)

    def _repr_html_(self) -> str:
        return self._repr_svg_()


def impact(store: Store, ref: Ref) -> Impact:
    """Everything downstream of ``ref``: artifacts and executions, grouped by type.

    Example:
        >>> import lineage
        >>> store = lineage.connect(":memory:")
        >>> raw = store.put(lineage.Dataset(content=b"x", name="raw"))
        >>> store.impact("raw").by_type
        {}
    """
    source_proto = store._resolve(ref)
    walk = _walk(store, source_proto.id, up=False)
    arts, execs = _records(store, walk)
    runs = _contexts_of(store, walk.executions.values())
    source = arts.pop(source_proto.id)
    downstream = [arts[i] for i in sorted(arts)]
    ordered = _topological(execs)
    by_type: dict[str, list[Artifact | Execution]] = {}
    items: list[Artifact | Execution] = [*downstream, *ordered]
    for x in items:  # executions by step name: "Trainer", not TFX's class path
        by_type.setdefault(x.name if isinstance(x, Execution) else x.type_name, []).append(x)
    return Impact(
        source=source,
        artifacts=downstream,
        executions=ordered,
        by_type=dict(sorted(by_type.items())),
        graph=_subgraph(store, walk, runs),
        runs=runs,
    )


# --- diff ---------------------------------------------------------------------------------


def _artifact_key(a: Artifact) -> tuple[str, str]:
    return (a.type_name, a.name or a.uri or f"#{a.id}")


def _distinct(steps: Sequence[Execution]) -> tuple[list[Execution], dict[int, int]]:
    """Leave out repeats of a call (see :mod:`lineage._fold`): a cache hit re-emitting the
    outputs of the call it reused, or an identical re-run, says nothing new about why two
    lineages differ. Returns the remaining steps (order kept) and dropped id → kept id."""
    return _fold.distinct(steps)


def _places(p: Provenance) -> dict[int, tuple[str, ...]]:
    """Execution id → its place in the target's producer chain: the shortest sequence of
    hops (a producer's step name and output path, then the input path of the artifact it
    read, …) from the target to it, along the edges that counted (ties broken by the
    sequence itself, so the same structure gives the same places in two lineages)."""
    g = p.graph
    start = artifact_node(p.target.id or 0)
    best: dict[str, tuple[str, ...]] = {start: ()}
    frontier = [start]
    while frontier:
        found: dict[str, tuple[str, ...]] = {}
        for node in frontier:
            here = best[node]
            for u, _v, data in g.in_edges(node, data=True):
                if u in best:
                    continue
                hop = (f"{g.nodes[u].get('name') or u}.{data.get('path') or ''}"
                       if data.get("event_type") == "OUTPUT" else str(data.get("path") or ""))
                cand = (*here, hop)
                if u not in found or cand < found[u]:
                    found[u] = cand
        best.update(found)
        frontier = sorted(found)
    return {node_id(n)[1]: place for n, place in best.items() if n.startswith("execution:")}


def _pair_steps(
    pa: Provenance, sa: Sequence[Execution], pb_: Provenance, sb: Sequence[Execution],
) -> tuple[list[tuple[str, Execution, Execution]], list[tuple[str, Execution]],
           list[tuple[str, Execution]]]:
    """Match the steps of two lineages by their place in each target's producer chain
    (:func:`_places`), in topological order among steps at the same place. A step in both
    lineages is paired like any other: with what the other lineage has at its place (a
    side path of one lineage reaching it does not hide a change on the main path).

    Labels are the step name for the nearest call of each step name, else the step name
    with where it was read (``"Trainer (via Evaluator.baseline_model)"``), or ``"prep#2"``.
    """
    place_a, place_b = _places(pa), _places(pb_)
    at_b: dict[tuple[str, ...], list[Execution]] = {}
    for e in sb:
        at_b.setdefault(place_b.get(e.id, ()), []).append(e)
    used: set[str] = set()

    def label(e: Execution, place: tuple[str, ...]) -> str:
        name = e.name
        if name not in used:
            used.add(name)
            return name
        via = place[-2] if len(place) >= 2 else ""
        reader = place[-3].rsplit(".", 1)[0] if len(place) >= 3 else ""
        text = f"{name} (via {reader}.{via})" if reader and via else name
        n = 2
        while text in used:
            text = f"{name}#{n}"
            n += 1
        used.add(text)
        return text

    pairs: list[tuple[str, Execution, Execution]] = []
    only_a: list[tuple[str, Execution]] = []
    taken: set[int] = set()
    for e in sa:
        place = place_a.get(e.id, ())
        match = next((x for x in at_b.get(place, []) if x.name == e.name and id(x) not in taken),
                     None)
        if match is None:
            only_a.append((label(e, place), e))
            continue
        taken.add(id(match))
        if match.id != e.id:
            pairs.append((label(e, place), e, match))
        else:
            label(e, place)
    only_b = [(label(e, place_b.get(e.id, ())), e) for e in sb if id(e) not in taken]
    return pairs, only_a, only_b


def _unfold(value: Any) -> Any:
    """A dict, or a JSON string holding an object (TFX keeps settings that way), as a
    dict; anything else unchanged."""
    if isinstance(value, str) and value[:1] == "{":
        try:
            found = json.loads(value)
        except ValueError:
            return value
        return found if isinstance(found, dict) else value
    return value


def _changes(a: dict[str, Any], b: dict[str, Any], prefix: str = "") -> dict[str, tuple[Any, Any]]:
    """Keys whose values differ; dicts and JSON-object strings on both sides are compared
    key by key (``custom_config.learning_rate``), so a change is never hidden in a blob."""
    out: dict[str, tuple[Any, Any]] = {}
    for k in sorted(set(a) | set(b), key=str):
        va, vb = a.get(k), b.get(k)
        if va == vb:
            continue
        da, db = _unfold(va), _unfold(vb)
        if isinstance(da, dict) and isinstance(db, dict):
            out.update(_changes(da, db, f"{prefix}{k}."))
        else:
            out[f"{prefix}{k}"] = (va, vb)
    return out


def _environment(ex: Execution) -> dict[str, Any]:
    env: dict[str, Any] = {}
    if ex.properties.get("python"):
        env["python"] = ex.properties["python"]
    packages = ex.properties.get("packages")
    if isinstance(packages, dict):
        env.update({f"packages.{k}": v for k, v in packages.items()})
    return env


@attrs.define(eq=False)
class LineageDiff:
    """Why two artifacts (usually two models) differ: data, params, code, environment.

    Example:
        >>> import lineage
        >>> store = lineage.connect(":memory:")
        >>> m = store.put(lineage.Model(content=b"w", name="clf"))
        >>> store.diff(m, m).is_empty
        True
    """

    a: Provenance
    """Provenance of the first artifact."""
    b: Provenance
    """Provenance of the second artifact."""
    datasets: list[dict[str, Any]]
    """Datasets that differ: ``{"type", "name", "status", "a", "b"}`` with status
    ``"changed"`` (other version or fingerprint), ``"only_a"`` or ``"only_b"``."""
    params: dict[str, dict[str, tuple[Any, Any]]]
    """Step label → parameter → (value in a, value in b), for differing parameters."""
    code: dict[str, dict[str, tuple[Any, Any]]]
    """Step label → code fact (``source_hash``, ``git_commit``, …) → (a, b)."""
    environment: dict[str, dict[str, tuple[Any, Any]]]
    """Step label → ``python`` or ``packages.<name>`` → (a, b)."""
    only_in_a: list[str]
    """Step labels present only in the lineage of a."""
    only_in_b: list[str]
    """Step labels present only in the lineage of b."""
    graph: nx.MultiDiGraph
    """Both provenance graphs; every node has ``diff`` in same/changed/only_a/only_b."""

    @property
    def is_empty(self) -> bool:
        """Whether both lineages used the same data, params, code and environment."""
        return not (self.datasets or self.params or self.code or self.environment
                    or self.only_in_a or self.only_in_b)

    def to_dict(self) -> dict[str, Any]:
        """JSON shape: the two targets, every difference, ``is_empty``."""

        def pairs(d: dict[str, dict[str, tuple[Any, Any]]]) -> dict[str, Any]:
            return {s: {k: {"a": v[0], "b": v[1]} for k, v in kv.items()} for s, kv in d.items()}

        return _json_dict({
            "a": _artifact_dict(self.a.target),
            "b": _artifact_dict(self.b.target),
            "is_empty": self.is_empty,
            "datasets": self.datasets,
            "params": pairs(self.params),
            "code": pairs(self.code),
            "environment": pairs(self.environment),
            "only_in_a": self.only_in_a,
            "only_in_b": self.only_in_b,
        })

    def __str__(self) -> str:
        """One line per difference (what ``lineage diff`` prints)."""
        return _text.diff(self)

    def __repr__(self) -> str:
        return _text.diff_repr(self)

    def _repr_svg_(self) -> str:
        from lineage.render import to_svg
        return to_svg(self)

    def _repr_html_(self) -> str:
        return self._repr_svg_()


def diff(store: Store, ref_a: Ref, ref_b: Ref) -> LineageDiff:
    """How the lineages of two artifacts differ.

    Datasets are matched by type and name (the uri for unnamed ones); steps by their
    place in each target's producer chain (the same step name reached by the same path
    of inputs), whether or not the other lineage also reaches them by a side path.
    Params that are dicts, or JSON strings of objects, are compared key by key.

    Example:
        >>> import lineage
        >>> store = lineage.connect(":memory:")
        >>> a = store.put(lineage.Model(content=b"1", name="clf"))
        >>> b = store.put(lineage.Model(content=b"2", name="clf"))
        >>> d = store.diff(a, b)
        >>> d.is_empty, d.graph.nodes[a.ref]["diff"]
        (True, 'changed')
    """
    pa, pb_ = provenance(store, ref_a), provenance(store, ref_b)

    def group(p: Provenance) -> dict[tuple[str, str], list[Artifact]]:
        out: dict[tuple[str, str], list[Artifact]] = {}
        for a in p.datasets:
            out.setdefault(_artifact_key(a), []).append(a)
        return out

    da, db = group(pa), group(pb_)
    datasets: list[dict[str, Any]] = []
    for key in sorted(set(da) | set(db)):
        sa, sb = da.get(key, []), db.get(key, [])
        ida = {(x.version, x.fingerprint, x.uri) for x in sa}
        idb = {(x.version, x.fingerprint, x.uri) for x in sb}
        if ida == idb:
            continue
        status = "only_a" if not sb else "only_b" if not sa else "changed"
        datasets.append({
            "type": key[0], "name": key[1], "status": status,
            "a": [_artifact_dict(x) for x in sa], "b": [_artifact_dict(x) for x in sb],
        })
    steps_a, alias_a = _distinct(pa.steps)
    steps_b, alias_b = _distinct(pb_.steps)
    pairs, only_a, only_b = _pair_steps(pa, steps_a, pb_, steps_b)
    params: dict[str, dict[str, tuple[Any, Any]]] = {}
    code: dict[str, dict[str, tuple[Any, Any]]] = {}
    env: dict[str, dict[str, tuple[Any, Any]]] = {}
    step_diff: dict[int, str] = {}
    for label, ea, eb in pairs:
        changed = False
        for table, got in (
            (params, _changes(ea.params, eb.params)),
            (code, _changes({k: ea.properties.get(k) for k in _CODE_IDENTITY},
                            {k: eb.properties.get(k) for k in _CODE_IDENTITY})),
            (env, _changes(_environment(ea), _environment(eb))),
        ):
            if got:
                table[label] = got
                changed = True
        step_diff[ea.id] = step_diff[eb.id] = "changed" if changed else "same"
    step_diff.update({e.id: "only_a" for _, e in only_a})
    step_diff.update({e.id: "only_b" for _, e in only_b})
    for dropped, kept in [*alias_a.items(), *alias_b.items()]:
        if kept in step_diff:  # a re-emission is marked like the call it reused
            step_diff[dropped] = step_diff[kept]
    graph = _diff_graph(pa, pb_, step_diff, [(ea.id, eb.id) for _, ea, eb in pairs])
    return LineageDiff(
        a=pa, b=pb_, datasets=datasets, params=params, code=code, environment=env,
        only_in_a=[lbl for lbl, _ in only_a], only_in_b=[lbl for lbl, _ in only_b],
        graph=graph,
    )


def _diff_graph(
    pa: Provenance, pb_: Provenance, step_diff: dict[int, str], pairs: Sequence[tuple[int, int]]
) -> nx.MultiDiGraph:
    g: nx.MultiDiGraph = nx.compose(pa.graph, pb_.graph)
    in_a, in_b = set(pa.graph), set(pb_.graph)
    keys_a = {_artifact_key(a) for a in [pa.target, *pa.artifacts]}
    keys_b = {_artifact_key(a) for a in [pb_.target, *pb_.artifacts]}
    arts = {artifact_node(a.id): a for a in [pa.target, *pa.artifacts, pb_.target, *pb_.artifacts]
            if a.id is not None}
    # Counterparts: the two targets, and what paired steps read or wrote on the same path.
    counterpart = {artifact_node(pa.target.id or 0), artifact_node(pb_.target.id or 0)}
    for ida, idb in pairs:
        node_a, node_b = execution_node(ida), execution_node(idb)
        for edges in ("out_edges", "in_edges"):
            side_a = {k: (u if v == node_a else v)
                      for u, v, k in getattr(pa.graph, edges)(node_a, keys=True)}
            side_b = {k: (u if v == node_b else v)
                      for u, v, k in getattr(pb_.graph, edges)(node_b, keys=True)}
            for key in side_a.keys() & side_b.keys():
                if side_a[key] != side_b[key]:
                    counterpart.update((side_a[key], side_b[key]))
    for node, data in g.nodes(data=True):
        if node in in_a and node in in_b:
            data["diff"] = "same"
            continue
        side = "only_a" if node in in_a else "only_b"
        if data.get("kind") == "execution":
            data["diff"] = step_diff.get(data["id"], side)
        elif node in arts:
            other = keys_b if side == "only_a" else keys_a
            matched = node in counterpart or _artifact_key(arts[node]) in other
            data["diff"] = "changed" if matched else side
        else:
            data["diff"] = side
    return g


# --- verify -------------------------------------------------------------------------------


@attrs.define(eq=False)
class ArtifactCheck:
    """The result of re-fingerprinting one artifact."""

    artifact: Artifact
    """The recorded artifact."""
    status: str
    """``ok``, ``changed``, ``missing``, ``unreadable``, ``elsewhere`` (recorded on another
    host and not reachable here), ``skipped`` (no local content to re-read: in-memory
    content, a remote URI, or no recorded fingerprint), or ``restored`` (changed or
    missing, and put back from its kept copy by ``verify(restore=True)``)."""
    recorded: str | None
    """The fingerprint recorded in the store."""
    current: str | None
    """The fingerprint of the content now (``None`` when it cannot be computed)."""
    detail: str = ""
    """Why, for anything but ``ok``."""
    restorable: bool = False
    """For a changed or missing file or folder: a kept copy can restore it."""

    def to_dict(self) -> dict[str, Any]:
        """JSON shape of one check."""
        return {"artifact": _artifact_dict(self.artifact), "status": self.status,
                "recorded": self.recorded, "current": self.current, "detail": self.detail,
                "restorable": self.restorable}

    def __repr__(self) -> str:
        return f"<ArtifactCheck {_text.label(self.artifact)} artifact:{self.artifact.id}: {self.status}>"


@attrs.define(eq=False)
class Verification:
    """Re-fingerprinted content of recorded artifacts.

    Example:
        >>> import lineage
        >>> v = lineage.connect(":memory:").verify()
        >>> v.ok, str(v)  # nothing was checked: not OK
        (False, 'NOT VERIFIED (nothing could be checked here): no artifacts')
    """

    results: list[ArtifactCheck]
    """One check per artifact, by artifact id."""
    target: Artifact | None = None
    """The artifact whose lineage was checked (``None``: every artifact)."""
    _graph: nx.MultiDiGraph | None = attrs.field(default=None, alias="graph", repr=False)
    _load: Callable[[], nx.MultiDiGraph] | None = attrs.field(default=None, alias="load",
                                                              repr=False)
    approvals: list[Any] = attrs.field(factory=list)
    """The approvals of the checked artifacts (:class:`lineage.approvals.ApprovalCheck`)."""

    @property
    def graph(self) -> nx.MultiDiGraph:
        """The lineage checked (the provenance of ``target``, else the whole store, read on
        first use); every checked artifact has ``verify`` = its status."""
        if self._graph is None:
            graph = self._load() if self._load is not None else LineageGraph()
            for r in self.results:
                node = artifact_node(r.artifact.id or 0)
                if node in graph:
                    graph.nodes[node]["verify"] = r.status
            self._graph = graph
        return self._graph

    def _repr_svg_(self) -> str:
        from lineage.render import to_svg
        return to_svg(self)

    def _repr_html_(self) -> str:
        return self._repr_svg_()

    @property
    def ok(self) -> bool:
        """At least one artifact was checked (or restored), and none changed, went missing
        or became unreadable (skipped ones, and ones recorded on another host, are neither;
        ones restored from their kept copies are fine), and every approval checks
        (signature, record, approved content)."""
        return any(r.status in ("ok", "restored") for r in self.results) and all(
            r.status in ("ok", "skipped", "elsewhere", "restored") for r in self.results
        ) and all(a.ok for a in self.approvals)

    @property
    def counts(self) -> dict[str, int]:
        """Status → how many artifacts."""
        out: dict[str, int] = {}
        for r in self.results:
            out[r.status] = out.get(r.status, 0) + 1
        return dict(sorted(out.items()))

    def to_dict(self) -> dict[str, Any]:
        """``ok``, ``counts`` and ``artifacts`` (one check each)."""
        return {"ok": self.ok, "counts": self.counts,
                "artifacts": [r.to_dict() for r in self.results],
                "approvals": [a.to_dict() for a in self.approvals]}

    def __str__(self) -> str:
        """A table of the checks and ``OK: …`` or ``FAILED: …`` (what ``lineage verify``
        prints)."""
        return _text.verification(self)

    def __repr__(self) -> str:
        return _text.verification_repr(self)


def _mapped(uri: str, prefixes: Mapping[str, str]) -> str:
    """``uri`` with the longest matching prefix replaced (``--map /home/alice=/mnt/alice``)."""
    for old in sorted(prefixes, key=len, reverse=True):
        if uri == old or uri.startswith(old.rstrip("/") + "/"):
            return prefixes[old] + uri[len(old):]
    return uri


def _check(a: Artifact, prefixes: Mapping[str, str] | None = None) -> ArtifactCheck:
    """Re-fingerprint ``a`` at every location it was seen at (mapped through
    ``prefixes``); the first that still holds the recorded bytes makes it ``ok``."""
    from lineage._identity import host

    recorded = a.fingerprint
    seen = a.locations or ([{"uri": a.uri, "host": ""}] if a.uri else [])
    local = [(loc, _mapped(loc["uri"], prefixes or {})) for loc in seen
             if loc["uri"] and "://" not in loc["uri"]]
    if not local:
        rederived = _recorded_content(a)  # in-memory content kept in the record (Metrics)
        if rederived is not None:
            return rederived
        why = "in-memory content" if not a.uri else f"remote URI {a.uri}"
        return ArtifactCheck(a, "skipped", recorded, None, f"{why}: nothing local to re-read")
    present = [(loc, path) for loc, path in local if Path(path).exists()]
    if not present:
        here = host()
        away = sorted({loc["host"] for loc, path in local
                       if loc["host"] and loc["host"] != here and path == loc["uri"]})
        if away and all(loc["host"] and loc["host"] != here for loc, _p in local):
            where = ", ".join(f"{loc['uri']} on {loc['host']}" for loc, _p in local)
            return ArtifactCheck(
                a, "elsewhere", recorded, None,
                f"recorded on another host ({where}), not reachable here; map the folder "
                "with --map REMOTE_PREFIX=LOCAL_PREFIX if it is shared")
        paths = ", ".join(path for _loc, path in local)
        return ArtifactCheck(a, "missing", recorded, None, f"{paths} does not exist")
    if recorded is None:
        return ArtifactCheck(a, "skipped", None, None, "no fingerprint was recorded")
    algo = recorded.split(":", 1)[0]
    if algo not in ALGORITHMS:
        return ArtifactCheck(a, "unreadable", recorded, None,
                             f"unknown fingerprint algorithm {algo!r}")
    first: tuple[str, str | None, str] | None = None
    for _loc, path in present:
        try:
            # No digest cache: an audit re-reads the bytes.
            current = fingerprint(path, algo=algo, progress=False)
        except FingerprintError as exc:
            first = first or (path, None, str(exc))
            continue
        if current == recorded:
            detail = "" if path == local[0][1] else f"the recorded bytes are at {path}"
            return ArtifactCheck(a, "ok", recorded, current, detail)
        first = first or (path, current, f"{path} changed since it was recorded")
    assert first is not None
    _where, now, detail = first
    return ArtifactCheck(a, "changed" if now else "unreadable", recorded, now, detail)


def _recorded_content(a: Artifact) -> ArtifactCheck | None:
    """Re-derive the fingerprint of in-memory content the record keeps (the values of a
    ``Metrics``, an ``Environment``, an ``Approval``): ``ok`` when it matches; ``changed``
    when the content is known exactly and does not; ``None`` when it cannot be told."""
    get = getattr(a, "recorded_content", None)
    found = get() if callable(get) else None
    if found is None or not a.fingerprint or a.uri:
        return None
    content, exact = found
    try:
        current = fingerprint_content(content, algo=a.fingerprint.split(":", 1)[0])
    except (FingerprintError, ValueError, TypeError):
        return None
    if current == a.fingerprint:
        return ArtifactCheck(a, "ok", a.fingerprint, current, "re-derived from the recorded values")
    if exact:
        return ArtifactCheck(a, "changed", a.fingerprint, current,
                             "the recorded values no longer give the recorded fingerprint")
    return None


def verify(store: Store, ref: Ref | None = None, *,
           map: Mapping[str, str] | None = None, restore: bool = False) -> Verification:
    """Re-fingerprint the content behind recorded artifacts, at every location each was
    seen at.

    A changed or missing file or folder says whether a kept copy can restore it
    (``ArtifactCheck.restorable``); with ``restore`` those copies are put back.

    Args:
        store: the store.
        ref: check this artifact and its provenance; ``None`` checks every artifact.
        map: path prefixes to read elsewhere: ``{"/home/alice": "/mnt/alice"}`` checks
            what was recorded under ``/home/alice`` in ``/mnt/alice``.
        restore: put back the kept copy of every changed or missing file and folder
            (see :mod:`lineage.checkout`).

    Example:
        >>> import lineage, tempfile, pathlib
        >>> store = lineage.connect(":memory:")
        >>> f = pathlib.Path(tempfile.mkdtemp()) / "d.csv"; _ = f.write_text("1")
        >>> d = store.put(lineage.Dataset(f, name="d"))
        >>> _ = f.write_text("2")
        >>> [r.status for r in store.verify("d").results]
        ['changed']
    """
    from lineage.approvals import approvals_of

    if ref is None:
        arts = store.artifacts()
        target, load = None, store.graph
    else:
        p = provenance(store, ref)
        arts = [p.target, *p.artifacts]
        target, load = p.target, p.graph.copy
    checks = [_check(a, map) for a in sorted(arts, key=lambda a: a.id or 0)]
    restore_checks(store, checks, restore=restore)  # what kept copies can put back
    return Verification(checks, target=target, load=load, approvals=approvals_of(store, ref))


# --- compare ------------------------------------------------------------------------------


@attrs.define(frozen=True)
class Column:
    """One compared value: a parameter or a metric."""

    name: str
    kind: str
    """``param`` or ``metric``."""
    differs: bool


@attrs.define(eq=False)
class Comparison:
    """Runs side by side: their params and final metrics, the differing columns first.

    Example:
        >>> import lineage
        >>> store = lineage.connect(":memory:")
        >>> store.compare([]).to_dict()
        {'runs': [], 'columns': [], 'rows': []}
    """

    runs: list[Run]
    """The runs, in the order asked."""
    columns: list[Column]
    """Differing columns first, then params before metrics, then by name."""
    values: list[dict[str, Any]]
    """Per run (aligned with ``runs``): column name → value (missing when absent)."""

    def to_dict(self) -> dict[str, Any]:
        """``runs``, ``columns`` (name, kind, differs) and ``rows`` (run → values)."""
        return _json_dict({
            "runs": [r.to_dict() for r in self.runs],
            "columns": [attrs.asdict(c) for c in self.columns],
            "rows": [
                {"run": r.name, "id": r.id, "values": {c.name: v.get(c.name) for c in self.columns}}
                for r, v in zip(self.runs, self.values, strict=True)
            ],
        })

    def to_pandas(self) -> pandas.DataFrame:
        """A DataFrame: one row per run (index: run name), one column per value."""
        try:
            import pandas as pd
        except ImportError as exc:  # pragma: no cover - depends on the environment
            raise ImportError("Comparison.to_pandas() needs pandas: pip install pandas") from exc
        return pd.DataFrame(
            [[v.get(c.name) for c in self.columns] for v in self.values],
            index=pd.Index([r.name for r in self.runs], name="run"),
            columns=[c.name for c in self.columns],
        )

    def __str__(self) -> str:
        """A plain-text table: one column per run, one row per value, ``*`` where they differ."""
        return _text.comparison(self)

    def _repr_html_(self) -> str:
        """The same table in HTML (Jupyter), the differing rows marked."""
        return _text.comparison_html(self)

    def __repr__(self) -> str:
        return _text.comparison_repr(self)


_ABSENT: Any = object()


def _run_values(
    store: Store, ctx: pb.Context, run: Run
) -> tuple[dict[str, Any], dict[str, Any], dict[str, Any]]:
    """(run params, step params as columns, metrics) of one run."""
    metrics: dict[str, Any] = {}
    props = run.properties
    if isinstance(props.get("metrics"), dict):
        metrics.update(props["metrics"])
    protos = list(store._call("get_executions_by_context", ctx.id, missing=[]))
    execs = sorted(store._executions_from_protos(protos), key=lambda e: e.id)
    steps = _runref.step_columns(execs)
    artifact_ids = {a for ex in execs for a in ex.outputs}
    artifact_ids.update(a.id for a in store._call("get_artifacts_by_context", ctx.id, missing=[]))
    arts = sorted(store.artifacts_by_id(artifact_ids).values(), key=lambda a: a.id or 0)
    for a in arts:  # the latest Metrics artifact of each name gives its final values
        if getattr(a, "base_type", None) == "METRICS":
            for k, v in a.properties.items():
                if isinstance(v, (int, float)) and not isinstance(v, bool):
                    metrics[f"{a.name}.{k}"] = v
    return dict(run.params), steps, metrics


def compare(store: Store, runs: Sequence[str | int | Run]) -> Comparison:
    """Runs side by side with their params and final metrics, the differing ones first.

    Params are the run's own (``lineage.run(..., **params)``, config files, ``log_params``)
    and every step call's, as ``"<step>.<param>"`` (``"<step>#2.<param>"`` for a second call
    in the run); a run param that would share a column with a step's (a config key
    ``train.lr`` beside the ``train`` step's ``lr``) is shown as ``"run.<key>"``. Metrics are
    the run's final logged values and the values of Metrics artifacts the run produced
    (``"<name>.<key>"``).

    Raises:
        NotFound: a run reference names nothing.

    Example:
        >>> import lineage
        >>> store = lineage.connect(":memory:")
        >>> print(store.compare([]))
        (no runs)
    """
    if isinstance(runs, (str, int)):
        raise InvalidRef("compare() takes a list of runs, e.g. ['baseline', 'tuned']", ref=runs)
    run_recs: list[Run] = []
    read: list[tuple[dict[str, Any], dict[str, Any], dict[str, Any]]] = []
    for ref in runs:
        ctx = store._resolve_run(ref)
        run = store._runs_from_protos([ctx])[0]
        run_recs.append(run)
        read.append(_run_values(store, ctx, run))
    # a config key that is also a step's param column in any of these runs: run.<key>
    renamed = set().union(*(_runref.clashes(p, s) for p, s, _m in read))
    values: list[dict[str, Any]] = []
    kinds: dict[str, str] = {}
    for run_params, steps, metrics in read:
        params = _runref.param_columns(run_params, steps, renamed)
        values.append({**params, **metrics})
        kinds.update({k: "param" for k in params})
        kinds.update({k: "metric" for k in metrics if k not in kinds})
    columns = []
    for name, kind in kinds.items():
        seen = [v.get(name, _ABSENT) for v in values]
        differs = any(x is _ABSENT or x != seen[0] for x in seen[1:]) or (
            len(seen) > 1 and seen[0] is _ABSENT)
        columns.append(Column(name, kind, differs))
    columns.sort(key=lambda c: (not c.differs, c.kind != "param", c.name))
    return Comparison(runs=run_recs, columns=columns, values=values)
