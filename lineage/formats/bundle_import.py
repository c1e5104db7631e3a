"""Importing a bundle into a store: checked whole, then written in one transaction,
idempotently.

Importing is idempotent: a record already in the target store (same ``external_id``; else,
for a type the store already had, the same name: a Run of the same name but another start
time is another run and is imported as ``name-2``) is reused, never written twice. Records
without an ``external_id`` get a stable one, ``"bundle:<digest>:<kind>:<old id>"``, where
the digest covers the source store's URI and the record's type, name and creation time.
Our artifacts are versions of a name: an artifact whose ``name@version`` is taken in the
target store by other content becomes the next version there, as ``store.put`` does.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import attrs
from ml_metadata.proto import metadata_store_pb2 as pb

from lineage import _convert
from lineage._proto.lineage.v1 import bundle_pb2 as bpb
from lineage._schema import RECORDED_BY, RUN_TYPE
from lineage.errors import TypeConflict
from lineage.formats.bundle import copy_props, read_bundle

if TYPE_CHECKING:
    from lineage.store import Store

__all__ = ["ImportResult", "import_bundle"]

_ARTIFACT_REFS = {"previous_version": "artifact"}
_EXECUTION_REFS = {"parent_execution": "execution", "cached_from": "execution",
                   "run_context": "context"}


@attrs.define(eq=False)
class ImportResult:
    """What :func:`import_bundle` did: old id → new id maps and what it added.

    Example:
        >>> import lineage
        >>> a, b = lineage.connect(":memory:"), lineage.connect(":memory:")
        >>> _ = a.put(lineage.Model(content=b"w", name="clf"))
        >>> b.import_bundle(a.export("clf").to_bytes()).added["artifacts"]
        1
    """

    source_uri: str
    """The store the bundle was exported from (password redacted)."""
    artifacts: dict[int, int]
    """Bundle artifact id → id in this store."""
    executions: dict[int, int]
    """Bundle execution id → id in this store."""
    contexts: dict[int, int]
    """Bundle context id → id in this store."""
    added: dict[str, int]
    """How many artifacts, executions, contexts, events, attributions, associations and
    parent_contexts were written (0 everywhere when the bundle was already imported)."""

    def to_dict(self) -> dict[str, Any]:
        """JSON shape: ``source_uri``, ``added`` and the three id maps (keys as strings)."""
        return {
            "source_uri": self.source_uri,
            "added": dict(self.added),
            "artifacts": {str(k): v for k, v in sorted(self.artifacts.items())},
            "executions": {str(k): v for k, v in sorted(self.executions.items())},
            "contexts": {str(k): v for k, v in sorted(self.contexts.items())},
        }

    def __str__(self) -> str:
        parts = [f"{n} {k.replace('_', ' ')}" for k, n in self.added.items() if n]
        counts = (f"{len(self.artifacts)} artifacts, {len(self.executions)} executions, "
                  f"{len(self.contexts)} contexts")
        if not parts:
            return f"nothing new: the bundle from {self.source_uri} was already here ({counts})"
        return f"imported from {self.source_uri}: added {', '.join(parts)} ({counts} in all)"


def _derived_id(bundle: bpb.Bundle, kind: str, record: Any) -> str:
    key = "\0".join((bundle.header.source_uri, kind, record.type, record.name,
                     str(record.create_time_since_epoch)))
    digest = hashlib.sha256(key.encode()).hexdigest()[:24]
    return f"bundle:{digest}:{kind}:{record.id}"


def _type_proto(kind: str, decl: Any) -> Any:
    cls = {"artifact": pb.ArtifactType, "execution": pb.ExecutionType,
           "context": pb.ContextType}[kind]
    proto = cls(name=decl.name)
    if kind != "context" and decl.base_type:
        proto.base_type = int(decl.base_type)
    for p in decl.properties:
        proto.properties[p.name] = int(p.type)
    return proto


def _check_types(store: Store, bundle: bpb.Bundle) -> dict[str, set[str]]:
    """Raise TypeConflict before writing anything if a declared type clashes with a
    stored one; return the type names the store already had, per kind."""
    existed: dict[str, set[str]] = {"artifact": set(), "execution": set(), "context": set()}
    for kind, decls in (("artifact", bundle.types.artifact_types),
                        ("execution", bundle.types.execution_types),
                        ("context", bundle.types.context_types)):
        for decl in decls:
            base = int(getattr(decl, "base_type", 0))
            stored = store._type_named(kind, decl.name)
            if stored is None or not stored.id:
                continue
            existed[kind].add(decl.name)
            clashes = [p.name for p in decl.properties
                       if p.name in stored.properties and stored.properties[p.name] != p.type]
            if base and stored.HasField("base_type") and int(stored.base_type) != base:
                clashes.append("base type")
            if clashes:
                raise TypeConflict(
                    f"cannot import: the {kind} type {decl.name!r} in {store.uri} differs "
                    f"from the bundle's in {', '.join(clashes)}; import into another store, "
                    "or rename the type in the source",
                    uri=store.uri,
                )
    return existed


@attrs.define
class _Plan:
    """Which bundle records exist in the store, and the protos of the new ones."""

    maps: dict[str, dict[int, int]]
    stored: dict[str, dict[int, Any]]  # bundle id -> stored proto (existing records)
    new: dict[str, dict[int, Any]]  # bundle id -> proto to write (no id yet)
    type_ids: dict[str, dict[str, int]]
    # (kind, bundle id) -> {property: (referenced kind, bundle id of the referenced record)}
    refs: dict[tuple[str, int], dict[str, tuple[str, Any]]]


def _lookup(store: Store, kind: str, records: Sequence[Any], bundle: bpb.Bundle,
            ) -> tuple[dict[int, Any], dict[int, str]]:
    """Bundle id → stored proto of the records already in the store; bundle id → the
    external_id to write for the others."""
    ext: dict[int, str] = {
        int(r.id): str(r.external_id or _derived_id(bundle, kind, r)) for r in records}
    wanted = sorted(set(ext.values()))
    found: dict[str, Any] = {}
    for start in range(0, len(wanted), 1000):  # batched, like Store._batched
        got = store._call(f"get_{kind}s_by_external_ids", wanted[start:start + 1000], missing=[])
        found.update((p.external_id, p) for p in got)
    stored = {rid: found[e] for rid, e in ext.items() if e in found}
    return stored, {rid: e for rid, e in ext.items() if rid not in stored}


def _by_name(store: Store, kind: str, type_name: str, name: str) -> Any | None:
    got = store._call(f"get_{kind}_by_type_and_name", type_name, name, missing=None)
    return got if got is not None and got.id and got.name == name else None


def _plan(store: Store, bundle: bpb.Bundle, existed: dict[str, set[str]],
          type_ids: dict[str, dict[str, int]]) -> _Plan:
    plan = _Plan(maps={"artifact": {}, "execution": {}, "context": {}},
                 stored={"artifact": {}, "execution": {}, "context": {}},
                 new={"artifact": {}, "execution": {}, "context": {}},
                 type_ids=type_ids, refs={})
    our_atypes = {t.name for t in bundle.types.artifact_types
                  if {"version", "fingerprint"} <= {p.name for p in t.properties}}
    our_etypes = {t.name for t in bundle.types.execution_types
                  if any(p.name == RECORDED_BY for p in t.properties)}
    our_runs = {t.name for t in bundle.types.context_types
                if t.name == RUN_TYPE and any(p.name == RECORDED_BY for p in t.properties)}

    # contexts
    stored, ext = _lookup(store, "context", bundle.contexts, bundle)
    taken: set[tuple[str, str]] = set()
    for c in sorted(bundle.contexts, key=lambda r: r.id):
        if c.id in stored:
            plan.stored["context"][c.id] = stored[c.id]
            continue
        name = c.name
        if c.type in existed["context"]:
            hit = _by_name(store, "context", c.type, c.name)
            if hit is not None and (c.type not in our_runs or _same_run(hit, c)):
                plan.stored["context"][c.id] = hit
                continue
            if hit is not None:  # another run of that name: the next free "name-<n>"
                name = _free_context_name(store, c.type, c.name, taken)
        taken.add((c.type, name))
        proto = pb.Context(type_id=type_ids["context"][c.type], name=name,
                           external_id=ext[c.id])
        copy_props(c.properties, proto.properties)
        copy_props(c.custom_properties, proto.custom_properties)
        plan.new["context"][c.id] = proto
        if c.type in our_runs and "config" in c.properties:
            config = _convert.from_value(proto.properties["config"])
            if isinstance(config, dict):
                del proto.properties["config"]
                plan.refs[("context", c.id)] = {"config": ("artifact", config)}

    # artifacts
    stored, ext = _lookup(store, "artifact", bundle.artifacts, bundle)
    latest: dict[tuple[str, str], tuple[int, str, int]] = {}  # -> (version, kind, id)
    for a in sorted(bundle.artifacts, key=lambda r: r.id):
        if a.id in stored:
            plan.stored["artifact"][a.id] = stored[a.id]
            continue
        proto = pb.Artifact(type_id=type_ids["artifact"][a.type], uri=a.uri,
                            external_id=ext[a.id], state=int(a.state))
        if a.name:  # an empty name is a name to MLMD: two would collide
            proto.name = a.name
        copy_props(a.properties, proto.properties)
        copy_props(a.custom_properties, proto.custom_properties)
        version = a.properties["version"].int_value if "version" in a.properties else 0
        ours = a.type in our_atypes and version > 0 and a.name.endswith(f"@{version}")
        refs: dict[str, tuple[str, Any]] = {}
        if "previous_version" in proto.properties and a.type in our_atypes:
            del proto.properties["previous_version"]
        if ours:
            logical = a.name[: -len(f"@{version}")]
            key = (a.type, logical)
            if key not in latest and a.type in existed["artifact"]:
                hit = store._latest_version(a.type, logical)
                if hit is not None:
                    latest[key] = (int(hit.properties["version"].int_value), "stored", hit.id)
            prev = latest.get(key)
            number = prev[0] + 1 if prev is not None else 1
            proto.name = _convert.mlmd_artifact_name(logical, number)
            proto.properties["version"].int_value = number
            if prev is not None and prev[1] == "stored":
                proto.properties["previous_version"].int_value = prev[2]
            elif prev is not None:
                refs["previous_version"] = ("artifact", prev[2])
            latest[key] = (number, "new", a.id)
        elif a.name and a.type in existed["artifact"]:
            hit = _by_name(store, "artifact", a.type, a.name)
            if hit is not None:
                plan.stored["artifact"][a.id] = hit
                continue
        plan.new["artifact"][a.id] = proto
        if refs:
            plan.refs[("artifact", a.id)] = refs

    # executions
    stored, ext = _lookup(store, "execution", bundle.executions, bundle)
    for e in sorted(bundle.executions, key=lambda r: r.id):
        if e.id in stored:
            plan.stored["execution"][e.id] = stored[e.id]
            continue
        if e.name and e.type in existed["execution"]:
            hit = _by_name(store, "execution", e.type, e.name)
            if hit is not None:
                plan.stored["execution"][e.id] = hit
                continue
        proto = pb.Execution(type_id=type_ids["execution"][e.type], external_id=ext[e.id],
                             last_known_state=int(e.last_known_state))
        if e.name:
            proto.name = e.name
        copy_props(e.properties, proto.properties)
        copy_props(e.custom_properties, proto.custom_properties)
        if e.type in our_etypes:
            refs = {}
            for prop, kind in _EXECUTION_REFS.items():
                if prop in proto.properties:
                    refs[prop] = (kind, proto.properties[prop].int_value)
                    del proto.properties[prop]
            if refs:
                plan.refs[("execution", e.id)] = refs
        plan.new["execution"][e.id] = proto
    for kind in plan.maps:
        plan.maps[kind] = {rid: p.id for rid, p in plan.stored[kind].items()}
    return plan


def _same_run(stored: pb.Context, incoming: bpb.Context) -> bool:
    """Whether a stored Run context is the bundle's run (same name, start time)."""
    for key in ("run_name", "start_time"):
        a = _convert.from_value(stored.properties[key]) if key in stored.properties else None
        b = (_convert.from_value(_to_mlmd_value(incoming.properties[key]))
             if key in incoming.properties else None)
        if a != b:
            return False
    return True


def _to_mlmd_value(v: bpb.Value) -> pb.Value:
    out = pb.Value()
    out.MergeFromString(v.SerializeToString())
    return out


def _free_context_name(store: Store, type_name: str, name: str,
                       taken: set[tuple[str, str]]) -> str:
    n = 2
    while (type_name, f"{name}-{n}") in taken or _by_name(
            store, "context", type_name, f"{name}-{n}") is not None:
        n += 1
    return f"{name}-{n}"


def _resolve_refs(plan: _Plan, kind: str, rid: int) -> dict[str, Any]:
    """The id-valued properties of a record, in this store's ids (unknown targets left out)."""
    out: dict[str, Any] = {}
    for prop, (target_kind, old) in plan.refs.get((kind, rid), {}).items():
        ids = plan.maps[target_kind]
        if isinstance(old, dict):  # a Run's config: file name -> Config artifact id
            out[prop] = {k: ids[v] for k, v in old.items() if isinstance(v, int) and v in ids}
        elif old in ids:
            out[prop] = ids[old]
    return out


def import_bundle(store: Store, source: str | os.PathLike[str] | bytes | bpb.Bundle,
                  ) -> ImportResult:
    """Import a bundle: types, records with new ids, events, contexts and their links.

    Idempotent: importing the same bundle again adds nothing. The whole bundle is checked
    before anything is written (its format, the references inside it, its types against
    the store's); records go in with one ``put_contexts`` and one ``put_lineage_subgraph``
    (executions, artifacts and events in one transaction), then the id-valued properties
    that point at records new in this import (``previous_version``, ``parent_execution``,
    ``cached_from``, a run's ``config``) and the links. If the store fails half-way,
    importing again writes the records, events and links still missing (not those
    id-valued properties of records written by the failed attempt).

    Args:
        store: the store to write.
        source: a bundle file, its bytes (binary or JSON), or a :data:`Bundle` message.

    Raises:
        ReadOnlyStore: the store was opened read-only.
        BundleError: the bundle is corrupt, of another format version, or inconsistent.
        TypeConflict: a type in the bundle clashes with the store's type of that name.

    Example:
        >>> import lineage
        >>> a, b = lineage.connect(":memory:"), lineage.connect(":memory:")
        >>> _ = a.put(lineage.Model(content=b"w", name="clf"))
        >>> data = a.export("clf").to_bytes()
        >>> b.import_bundle(data).added["artifacts"], b.import_bundle(data).added["artifacts"]
        (1, 0)
        >>> b.get("clf").fingerprint == a.get("clf").fingerprint
        True
    """
    store._check_writable("import a bundle")
    bundle = read_bundle(source)
    existed = _check_types(store, bundle)
    type_ids: dict[str, dict[str, int]] = {"artifact": {}, "execution": {}, "context": {}}
    for kind, decls in (("artifact", bundle.types.artifact_types),
                        ("execution", bundle.types.execution_types),
                        ("context", bundle.types.context_types)):
        for decl in decls:
            type_ids[kind][decl.name] = store._register_type(kind, _type_proto(kind, decl))

    def attempt() -> ImportResult:
        return _write(store, bundle, _plan(store, bundle, existed, type_ids))

    return store._write_with_retry(attempt, "import the bundle")


def _write(store: Store, bundle: bpb.Bundle, plan: _Plan) -> ImportResult:
    added = dict.fromkeys(("artifacts", "executions", "contexts", "events", "attributions",
                           "associations", "parent_contexts"), 0)
    # 1. contexts (executions name their run in `run_context`)
    new_ctx = sorted(plan.new["context"])
    if new_ctx:
        ids = store._call("put_contexts", [plan.new["context"][i] for i in new_ctx])
        for rid, new_id in zip(new_ctx, ids, strict=True):
            plan.new["context"][rid].id = new_id
            plan.maps["context"][rid] = int(new_id)
        added["contexts"] = len(new_ctx)
    # 2. executions, artifacts and events: one transaction
    new_exec, new_art = sorted(plan.new["execution"]), sorted(plan.new["artifact"])
    for rid in new_exec:
        from lineage._convert import set_props
        set_props(plan.new["execution"][rid].properties,
                  {k: v for k, v in _resolve_refs(plan, "execution", rid).items()
                   if k == "run_context"}, typed=True)
    exec_index = {rid: i for i, rid in enumerate(new_exec)}
    art_index = {rid: i for i, rid in enumerate(new_art)}
    existing_events = _existing_events(store, bundle, plan)
    edges: list[tuple[int | None, int | None, pb.Event]] = []
    for ev in bundle.events:
        event = pb.Event(type=int(ev.type))
        if ev.milliseconds_since_epoch:  # keeps the event order of the source store
            event.milliseconds_since_epoch = ev.milliseconds_since_epoch
        for step in ev.path:
            event.path.steps.add().MergeFromString(step.SerializeToString())
        ei, ai = exec_index.get(ev.execution_id), art_index.get(ev.artifact_id)
        if ei is None:
            event.execution_id = plan.maps["execution"][ev.execution_id]
        if ai is None:
            event.artifact_id = plan.maps["artifact"][ev.artifact_id]
        if ei is None and ai is None and (
                event.artifact_id, event.execution_id, event.type) in existing_events:
            continue
        edges.append((ei, ai, event))
    if new_exec or new_art or edges:
        exec_ids, art_ids, _ = store._call(
            "put_lineage_subgraph", [plan.new["execution"][i] for i in new_exec],
            [plan.new["artifact"][i] for i in new_art], [], edges)
        for rid, new_id in zip(new_exec, exec_ids, strict=True):
            plan.new["execution"][rid].id = new_id
            plan.maps["execution"][rid] = int(new_id)
        for rid, new_id in zip(new_art, art_ids, strict=True):
            plan.new["artifact"][rid].id = new_id
            plan.maps["artifact"][rid] = int(new_id)
        added.update(executions=len(new_exec), artifacts=len(new_art), events=len(edges))
    # 3. id-valued properties that point at records written in this import
    _fix_refs(store, plan)
    # 4. links
    _write_links(store, bundle, plan, added)
    return ImportResult(
        source_uri=bundle.header.source_uri,
        artifacts=dict(sorted(plan.maps["artifact"].items())),
        executions=dict(sorted(plan.maps["execution"].items())),
        contexts=dict(sorted(plan.maps["context"].items())),
        added=added,
    )


def _existing_events(store: Store, bundle: bpb.Bundle, plan: _Plan) -> set[tuple[int, int, int]]:
    """(artifact, execution, type) of the events of the bundle's executions already stored."""
    ids = sorted(plan.maps["execution"][e.id] for e in bundle.executions
                 if e.id in plan.stored["execution"])
    return {(ev.artifact_id, ev.execution_id, ev.type)
            for ev in store._batched("get_events_by_execution_ids", ids)}


def _fix_refs(store: Store, plan: _Plan) -> None:
    """Set id-valued properties whose target was written in this import (or is found
    now), on the records that lack them; never overwrite a stored value."""
    from lineage._convert import set_props

    for kind in ("artifact", "execution", "context"):
        updates = []
        for (k, rid), _refs in sorted(plan.refs.items()):
            if k != kind:
                continue
            proto = plan.new[kind].get(rid)
            if proto is None or not proto.id:
                continue
            wanted = {p: v for p, v in _resolve_refs(plan, kind, rid).items()
                      if p not in proto.properties and v not in ({}, None)}
            if not wanted:
                continue
            set_props(proto.properties, wanted, typed=True)
            updates.append(proto)
        if updates:
            store._call(f"put_{kind}s", updates)


def _write_links(store: Store, bundle: bpb.Bundle, plan: _Plan, added: dict[str, int]) -> None:
    amap, emap, cmap = plan.maps["artifact"], plan.maps["execution"], plan.maps["context"]
    old_ctx = {cmap[c] for c in plan.stored["context"]}
    have_attr: set[tuple[int, int]] = set()
    have_assoc: set[tuple[int, int]] = set()
    have_parent: set[tuple[int, int]] = set()
    for cid in sorted(old_ctx):  # one call per context that was already there
        have_attr |= {(a.id, cid) for a in store._call("get_artifacts_by_context", cid,
                                                        missing=[])}
        have_assoc |= {(e.id, cid) for e in store._call("get_executions_by_context", cid,
                                                         missing=[])}
        have_parent |= {(cid, p.id) for p in store._call("get_parent_contexts_by_context",
                                                          cid, missing=[])}
    attributions = sorted({(amap[r.artifact_id], cmap[r.context_id])
                           for r in bundle.attributions} - have_attr)
    associations = sorted({(emap[r.execution_id], cmap[r.context_id])
                           for r in bundle.associations} - have_assoc)
    parents = sorted({(cmap[r.child_id], cmap[r.parent_id])
                      for r in bundle.parent_contexts} - have_parent)
    if attributions or associations:
        store._call("put_attributions_and_associations",
                    [pb.Attribution(artifact_id=a, context_id=c) for a, c in attributions],
                    [pb.Association(execution_id=e, context_id=c) for e, c in associations])
    if parents:
        store._call("put_parent_contexts",
                    [pb.ParentContext(child_id=ch, parent_id=pa) for ch, pa in parents])
    added.update(attributions=len(attributions), associations=len(associations),
                 parent_contexts=len(parents))
