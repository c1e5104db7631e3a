"""What an export holds: the provenance slice of an artifact, read in batches, and the
helpers every format shares (JSON encoding, time stamps, secrets left out)."""

from __future__ import annotations

import datetime as _dt
import json
from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING, Any

import attrs
from ml_metadata.proto import metadata_store_pb2 as pb

from lineage import _convert
from lineage._schema import RECORDED_BY, RUN_TYPE
from lineage.artifacts import Artifact
from lineage.errors import redact
from lineage.records import Execution, Run

if TYPE_CHECKING:
    from lineage.store import Ref, Store

#: The project's page; :func:`producer` adds the version.
PROJECT_URL = "https://pypi.org/project/mlmd-lineage/"


def producer() -> str:
    """Who wrote an export (OpenLineage ``producer``/``_producer``, the PROV agent): the
    library's page for the version that wrote it.

    Example:
        >>> import lineage
        >>> producer() == f"https://pypi.org/project/mlmd-lineage/{lineage.__version__}/"
        True
    """
    from lineage import __version__

    return f"{PROJECT_URL}{__version__}/"

@attrs.define
class Slice:
    """The records of an export, read in batches."""

    store: Store
    targets: list[Artifact]
    """The artifacts asked about, in the order given."""
    runs: dict[int, list[Run]]
    """Execution id -> its runs and other contexts (as in ``Provenance.runs``)."""
    artifacts: dict[int, pb.Artifact]
    records: dict[int, Artifact]
    executions: dict[int, pb.Execution]
    steps: dict[int, Execution]
    events: list[pb.Event]
    contexts: dict[int, pb.Context]
    attributions: list[tuple[int, int]]
    associations: list[tuple[int, int]]
    parents: list[tuple[int, int]]
    versions: set[int] = attrs.field(factory=set)
    """Ids of earlier versions of the slice's versioned artifacts that are in it only as
    versions (the bundle carries whole ``previous_version`` chains; see
    :func:`version_chains`)."""


def slice_of(store: Store, ref: Ref | Sequence[Ref], *, versions: bool = False) -> Slice:
    """The provenance slice of ``ref`` (or the union of those of several refs);
    ``versions``: also every earlier version of each of our versioned artifacts in it."""
    refs: list[Ref] = list(ref) if isinstance(ref, (list, tuple)) else [ref]  # type: ignore[list-item]
    provs = [store.provenance(r) for r in refs]
    steps = {s.id: s for p in provs for s in p.steps}
    runs: dict[int, list[Run]] = {}
    for p in provs:
        runs.update(p.runs)
    executions = {e.id: e for e in store._batched("get_executions_by_id", sorted(steps))}
    events = sorted(store._batched("get_events_by_execution_ids", sorted(steps)),
                    key=lambda e: (e.execution_id, e.artifact_id, e.type))
    art_ids = {int(p.target.id or 0) for p in provs}
    art_ids |= {int(a.id or 0) for p in provs for a in p.artifacts}
    art_ids |= {e.artifact_id for e in events}
    # Contexts: the runs (and foreign groupings) of the steps, then their ancestors.
    associations = sorted({(eid, r.id) for eid, rs in runs.items() if eid in steps
                           for r in rs})
    ctx_ids = {cid for _, cid in associations}
    contexts = {c.id: c for c in store._batched("get_contexts_by_id", sorted(ctx_ids))}
    parents: set[tuple[int, int]] = set()
    frontier = sorted(contexts)
    while frontier:
        found: dict[int, pb.Context] = {}
        for cid in frontier:  # one call per context (MLMD has no batched form)
            for parent in store._call("get_parent_contexts_by_context", cid, missing=[]):
                parents.add((cid, parent.id))
                if parent.id not in contexts:
                    found[parent.id] = parent
        contexts.update(found)
        frontier = sorted(found)
    ctypes = store._types("context", {c.type_id for c in contexts.values()})
    # The Config artifacts our runs name (their `config` property).
    for c in contexts.values():
        if is_our_run(ctypes.get(c.type_id)) and "config" in c.properties:
            config = _convert.from_value(c.properties["config"])
            if isinstance(config, dict):
                art_ids |= {v for v in config.values() if isinstance(v, int)}
    artifacts = {a.id: a for a in store._batched("get_artifacts_by_id", sorted(art_ids))}
    earlier: set[int] = set()
    if versions:
        chains = version_chains(store, artifacts.values())
        earlier = set(chains) - set(artifacts)
        artifacts.update(chains)
    attributions: set[tuple[int, int]] = set()
    for cid in sorted(contexts):  # one call per context
        for a in store._call("get_artifacts_by_context", cid, missing=[]):
            if a.id in artifacts and a.id not in earlier:
                attributions.add((a.id, cid))
    records = {a.id: a for a in store._artifacts_from_protos(list(artifacts.values()))
               if a.id is not None}
    return Slice(
        store=store, targets=[p.target for p in provs], runs=runs, artifacts=artifacts,
        records=records, executions=executions, steps=steps, events=events,
        contexts=contexts, attributions=sorted(attributions), associations=associations,
        parents=sorted(parents), versions=earlier,
    )


def version_chains(store: Store, protos: Iterable[pb.Artifact]) -> dict[int, pb.Artifact]:
    """The given artifacts and, for each of our versioned ones, every earlier version
    (following ``previous_version``): one batched read per level."""
    out = {p.id: p for p in protos}
    frontier = {p.id for p in out.values()}
    while frontier:
        wanted = set()
        for aid in frontier:
            prev = out[aid].properties.get("previous_version")
            if prev is not None and prev.int_value > 0 and prev.int_value not in out:
                wanted.add(int(prev.int_value))
        got = store._batched("get_artifacts_by_id", sorted(wanted)) if wanted else []
        out.update((p.id, p) for p in got)
        frontier = {p.id for p in got}
    return out


def is_our_run(ctype: pb.ContextType | None) -> bool:
    return ctype is not None and ctype.name == RUN_TYPE and RECORDED_BY in ctype.properties


def dumps(value: Any, *, indent: int | None) -> str:
    return json.dumps(_convert.jsonable(value), sort_keys=True, indent=indent, ensure_ascii=False,
                      allow_nan=False, default=str)




def clean(text: str, secrets: Sequence[str]) -> str:
    return redact(text, secrets) if text else text


def iso(ms: float | None) -> str | None:
    if ms is None or ms <= 0:
        return None
    stamp = _dt.datetime.fromtimestamp(ms / 1000, tz=_dt.timezone.utc)
    return stamp.isoformat(timespec="milliseconds").replace("+00:00", "Z")


def seconds_ms(value: Any) -> float | None:
    return float(value) * 1000 if isinstance(value, (int, float)) and value > 0 else None


