"""Importing a bundle into a store: checked whole, planned without writing, then written;
idempotent, and the imported records answer every question as they did in the source.

**Checked whole first.** :func:`~lineage.formats.bundle.read_bundle` checks the format
version, the digest (a bundle altered after it was written is refused) and that every
record can be written as it is; the types are compared with the store's; then every record
is looked up in the store. Nothing is written before all of that passed.

**Identity, never the store's path.** A record already in the target store is reused,
never written twice: the same ``external_id``; else, for a record that has none, the same
*content identity*, which the importer gives it as its ``external_id``
(``"bundle:<kind>:<sha256>"``), computed from what never changes about a record
(:mod:`lineage.formats._ids`):

- an artifact: its type, name, uri and creation time;
- an execution: its type, name, creation time and what it read (the identities of its
  INPUT artifacts, with the event paths);
- a context: its type, name and creation time.

So the same store exported again, or a byte-identical copy of it at another path or on
another host, imports as nothing new. (Bundles imported by lineage before this rule named
the source store's URI in the identity; those ids are still recognised.) A record of a type
the store already had is also the stored record of the same name (a Run of the same name but
another start time is another run, imported as ``name-2``).

**Versions.** A bundle carries whole version chains (see :mod:`lineage.formats.bundle`). A
version keeps its number when that ``name@version`` is free in the target; it is renumbered
only on a real conflict (the number holds other content there) or to keep the source's
order of the versions of one name, and then becomes the next version there, as
``store.put`` does. Numbers never leave a gap (a bare name finds its newest version by
probing ``name@1``, ``name@2``, …). ``previous_version`` points at the version before in
the target, and the ``current_version`` pointer keeps meaning the source's current content.

**Time.** Lineage respects time (:mod:`lineage._timeline`): a read's place is its
execution's id, a production's place our ``output_seq`` (or the execution's id). The new
executions are written in one transaction in the source's id order, so the target gives them
ids in the same order; each ``output_seq`` value (an execution id of the source store) is
mapped to the largest target id of a bundle execution whose source id is at or below it.
For every pair of a production and a read inside the bundle, "recorded before the read"
then holds in the target exactly when it held in the source. Records of a later import
come after everything already in the store: to move lineage that interleaves in time (two
runs sharing data), export the artifacts together (``export(store, [ref1, ref2])``), or
import their bundles oldest first.

**Writes.** Executions, artifacts and events go in with one ``put_lineage_subgraph`` (one
transaction), then the contexts, then the properties that hold ids of other records
(``previous_version``, ``parent_execution``, ``cached_from``, ``run_context``,
``output_seq``, a run's ``config``), then attributions, associations and parent links. If the
store fails half-way, importing again completes what is missing (a property that holds an
id is set where it is absent, never overwritten).
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
from lineage.formats import _ids
from lineage.formats.bundle import copy_props, read_bundle

if TYPE_CHECKING:
    from lineage.store import Store

__all__ = ["ImportResult", "import_bundle"]

_KINDS = ("artifact", "execution", "context")
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
    renumbered: dict[str, str] = attrs.field(factory=dict)
    """``name@version`` in the bundle → ``name@version`` here, for the versions whose number
    was taken by other content in this store (empty when every number was kept)."""

    def to_dict(self) -> dict[str, Any]:
        """JSON shape: ``source_uri``, ``added``, ``renumbered`` and the three id maps (keys
        as strings)."""
        return {
            "source_uri": self.source_uri,
            "added": dict(self.added),
            "renumbered": dict(sorted(self.renumbered.items())),
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
        text = f"imported from {self.source_uri}: added {', '.join(parts)} ({counts} in all)"
        if self.renumbered:
            moved = ", ".join(f"{a} as {b}" for a, b in sorted(self.renumbered.items()))
            text += f"; taken here by other content, so renumbered: {moved}"
        return text


# --- identity ---------------------------------------------------------------------------


def _legacy_id(bundle: bpb.Bundle, kind: str, record: Any) -> str:
    """The identity earlier versions of this importer gave (it named the source store)."""
    key = "\0".join((bundle.header.source_uri, kind, record.type, record.name,
                     str(record.create_time_since_epoch)))
    digest = hashlib.sha256(key.encode()).hexdigest()[:24]
    return f"bundle:{digest}:{kind}:{record.id}"


def identities(bundle: bpb.Bundle) -> dict[str, dict[int, str]]:
    """kind → bundle id → the ``external_id`` a record is known by: its own, else its
    content identity (:mod:`lineage.formats._ids`). Records whose content identities are
    equal are told apart by their order in the bundle (by source id).

    Example:
        >>> b = bpb.Bundle()
        >>> _ = b.artifacts.add(id=7, type="Examples", uri="/data/x",
        ...                     create_time_since_epoch=1700000000000)
        >>> identities(b)["artifact"][7][:16]
        'bundle:artifact:'
    """
    out: dict[str, dict[int, str]] = {kind: {} for kind in _KINDS}

    def assign(kind: str, records: Sequence[Any], key: Any) -> None:
        seen: dict[str, int] = {}
        for r in sorted(records, key=lambda r: r.id):
            if r.external_id:
                out[kind][r.id] = r.external_id
                continue
            identity = key(r)
            n = seen[identity] = seen.get(identity, 0) + 1
            out[kind][r.id] = identity if n == 1 else f"{identity}:{n}"

    assign("artifact", bundle.artifacts, lambda r: _ids.artifact_identity(
        r.type, r.name, r.uri, r.create_time_since_epoch))
    assign("context", bundle.contexts, lambda r: _ids.context_identity(
        r.type, r.name, r.create_time_since_epoch))
    reads: dict[int, list[tuple[str, str]]] = {}
    for ev in bundle.events:
        if ev.type == bpb.Event.INPUT:
            reads.setdefault(ev.execution_id, []).append(
                (out["artifact"].get(ev.artifact_id, ""), _ids.path_text(ev.path)))
    assign("execution", bundle.executions, lambda r: _ids.execution_identity(
        r.type, r.name, r.create_time_since_epoch, reads.get(r.id, [])))
    return out


# --- types ------------------------------------------------------------------------------


def _type_proto(kind: str, decl: Any) -> Any:
    cls = {"artifact": pb.ArtifactType, "execution": pb.ExecutionType,
           "context": pb.ContextType}[kind]
    proto = cls(name=decl.name)
    if kind != "context" and decl.base_type:
        proto.base_type = int(decl.base_type)
    for p in decl.properties:
        proto.properties[p.name] = int(p.type)
    return proto


def _declarations(bundle: bpb.Bundle) -> list[tuple[str, Any]]:
    return [*(("artifact", d) for d in bundle.types.artifact_types),
            *(("execution", d) for d in bundle.types.execution_types),
            *(("context", d) for d in bundle.types.context_types)]


def _check_types(store: Store, bundle: bpb.Bundle) -> dict[str, set[str]]:
    """Raise TypeConflict before writing anything if a declared type clashes with a
    stored one; return the type names the store already had, per kind."""
    existed: dict[str, set[str]] = {kind: set() for kind in _KINDS}
    for kind, decl in _declarations(bundle):
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


# --- the plan (reads only) --------------------------------------------------------------


@attrs.define
class _Plan:
    """Which bundle records exist in the store, and the protos of the new ones."""

    maps: dict[str, dict[int, int]]
    stored: dict[str, dict[int, Any]]  # bundle id -> stored proto (existing records)
    new: dict[str, dict[int, Any]]  # bundle id -> proto to write (no id, no type id yet)
    types: dict[str, dict[int, str]]  # bundle id -> type name of the new records
    # (kind, bundle id) -> {property: (what it refers to, bundle value)}
    refs: dict[tuple[str, int], dict[str, tuple[str, Any]]]
    renumbered: dict[str, str] = attrs.field(factory=dict)


def _lookup(store: Store, kind: str, wanted: Sequence[str]) -> dict[str, Any]:
    """external_id → stored proto, for the ids of ``wanted`` that are in the store."""
    found: dict[str, Any] = {}
    ids = sorted(set(wanted))
    for start in range(0, len(ids), 1000):  # batched, like Store._batched
        got = store._call(f"get_{kind}s_by_external_ids", ids[start:start + 1000], missing=[])
        found.update((p.external_id, p) for p in got)
    return found


def _known(store: Store, bundle: bpb.Bundle, kind: str, records: Sequence[Any],
           ids: dict[int, str]) -> dict[int, Any]:
    """Bundle id → stored proto of the records already in the store (by identity, or by
    the identity an earlier importer gave them)."""
    legacy = {r.id: _legacy_id(bundle, kind, r) for r in records if not r.external_id}
    found = _lookup(store, kind, [*ids.values(), *legacy.values()])
    out = {}
    for r in records:
        hit = found.get(ids[r.id]) or found.get(legacy.get(r.id, ""))
        if hit is not None:
            out[r.id] = hit
    return out


def _by_name(store: Store, kind: str, type_name: str, name: str) -> Any | None:
    got = store._call(f"get_{kind}_by_type_and_name", type_name, name, missing=None)
    return got if got is not None and got.id and got.name == name else None


def _version(record: Any) -> int:
    value = record.properties.get("version")
    return int(value.int_value) if value is not None else 0


def _plan(store: Store, bundle: bpb.Bundle, existed: dict[str, set[str]]) -> _Plan:
    plan = _Plan(maps={k: {} for k in _KINDS}, stored={k: {} for k in _KINDS},
                 new={k: {} for k in _KINDS}, types={k: {} for k in _KINDS}, refs={})
    ids = identities(bundle)
    our_etypes = {t.name for t in bundle.types.execution_types
                  if any(p.name == RECORDED_BY for p in t.properties)}
    our_runs = {t.name for t in bundle.types.context_types
                if t.name == RUN_TYPE and any(p.name == RECORDED_BY for p in t.properties)}

    # contexts
    stored = _known(store, bundle, "context", bundle.contexts, ids["context"])
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
        proto = pb.Context(name=name, external_id=ids["context"][c.id])
        copy_props(c.properties, proto.properties)
        copy_props(c.custom_properties, proto.custom_properties)
        plan.new["context"][c.id] = proto
        plan.types["context"][c.id] = c.type
        if c.type in our_runs and "config" in c.properties:
            config = _convert.from_value(proto.properties["config"])
            if isinstance(config, dict):
                del proto.properties["config"]
                plan.refs[("context", c.id)] = {"config": ("artifact", config)}
    for cid, proto in plan.stored["context"].items():
        _stored_refs(plan, "context", cid, proto, bundle)

    _plan_artifacts(store, bundle, existed, ids["artifact"], plan)

    # executions
    stored = _known(store, bundle, "execution", bundle.executions, ids["execution"])
    for e in sorted(bundle.executions, key=lambda r: r.id):
        if e.id not in stored and e.name and e.type in existed["execution"]:
            hit = _by_name(store, "execution", e.type, e.name)
            if hit is not None:
                stored[e.id] = hit
        refs: dict[str, tuple[str, Any]] = {}
        if e.type in our_etypes:
            for prop, kind in _EXECUTION_REFS.items():
                if prop in e.properties:
                    refs[prop] = (kind, e.properties[prop].int_value)
            if "output_seq" in e.properties:
                seq = _convert.from_value(_to_mlmd_value(e.properties["output_seq"]))
                if isinstance(seq, dict):
                    refs["output_seq"] = ("seq", seq)
        if e.id in stored:
            plan.stored["execution"][e.id] = stored[e.id]
            if refs:  # an earlier attempt may have failed before setting them
                plan.refs[("execution", e.id)] = refs
            continue
        proto = pb.Execution(external_id=ids["execution"][e.id],
                             last_known_state=int(e.last_known_state))
        if e.name:
            proto.name = e.name
        copy_props(e.properties, proto.properties)
        copy_props(e.custom_properties, proto.custom_properties)
        for prop in refs:
            del proto.properties[prop]
        if refs:
            plan.refs[("execution", e.id)] = refs
        plan.new["execution"][e.id] = proto
        plan.types["execution"][e.id] = e.type
    for kind in plan.maps:
        plan.maps[kind] = {rid: p.id for rid, p in plan.stored[kind].items()}
    return plan


def _stored_refs(plan: _Plan, kind: str, rid: int, proto: Any, bundle: bpb.Bundle) -> None:
    """A stored Run context without the ``config`` the bundle gives it (an earlier
    attempt failed before setting it) gets it."""
    if kind != "context" or "config" in proto.properties:
        return
    source = next((c for c in bundle.contexts if c.id == rid), None)
    if source is None or source.type != RUN_TYPE or "config" not in source.properties:
        return
    config = _convert.from_value(_to_mlmd_value(source.properties["config"]))
    if isinstance(config, dict) and RECORDED_BY in proto.properties:
        plan.refs[("context", rid)] = {"config": ("artifact", config)}


def _plan_artifacts(store: Store, bundle: bpb.Bundle, existed: dict[str, set[str]],
                    ids: dict[int, str], plan: _Plan) -> None:
    """Artifacts: the stored ones, then the versions of our names in source order (each
    keeps its number if free, see the module docstring), then the others."""
    our_atypes = {t.name for t in bundle.types.artifact_types
                  if {"version", "fingerprint"} <= {p.name for p in t.properties}}
    stored = _known(store, bundle, "artifact", bundle.artifacts, ids)
    chains: dict[tuple[str, str], list[bpb.Artifact]] = {}
    for a in sorted(bundle.artifacts, key=lambda r: r.id):
        version = _version(a)
        if a.type in our_atypes and version > 0 and a.name.endswith(f"@{version}"):
            chains.setdefault((a.type, a.name[: -len(f"@{version}")]), []).append(a)
            continue
        if a.id in stored:
            plan.stored["artifact"][a.id] = stored[a.id]
            continue
        if a.name and a.type in existed["artifact"]:
            hit = _by_name(store, "artifact", a.type, a.name)
            if hit is not None:
                plan.stored["artifact"][a.id] = hit
                continue
        proto = pb.Artifact(uri=a.uri, external_id=ids[a.id], state=int(a.state))
        if a.name:  # an empty name is a name to MLMD: two would collide
            proto.name = a.name
        copy_props(a.properties, proto.properties)
        copy_props(a.custom_properties, proto.custom_properties)
        plan.new["artifact"][a.id] = proto
        plan.types["artifact"][a.id] = a.type
    for (type_name, logical), versions in sorted(chains.items()):
        _plan_versions(store, type_name, logical, versions, stored, ids, existed, plan)


def _plan_versions(store: Store, type_name: str, logical: str,
                   versions: list[bpb.Artifact], stored: dict[int, Any], ids: dict[int, str],
                   existed: dict[str, set[str]], plan: _Plan) -> None:
    """Number the bundle's versions of one name: in source order, each keeps its number
    when it is free here, comes after the versions before it, and leaves no gap; else it
    becomes the next version here."""
    from lineage._identity import latest_version

    had = type_name in existed["artifact"]
    newest = latest_version(store, type_name, logical) if had else None
    top = _version(newest) if newest is not None else 0  # the newest number here
    floor = 0  # the number of the bundle version before, here
    # number here -> ("stored", id) | ("new", bundle id), for previous_version
    here: dict[int, tuple[str, int]] = {}
    numbers: dict[int, int] = {}  # source version -> number here
    for a in sorted(versions, key=_version):
        v = _version(a)
        hit = stored.get(a.id)
        if hit is not None:
            plan.stored["artifact"][a.id] = hit
            numbers[v] = _version(hit)
            here[_version(hit)] = ("stored", hit.id)
            floor = max(floor, _version(hit))
            continue
        number = v
        free = number > floor and number not in here and not (
            had and _taken(store, type_name, logical, number))
        gapless = number == 1 or number - 1 in here or (
            had and _taken(store, type_name, logical, number - 1) is not None)
        if not (free and gapless):
            number = max(top, floor, *here) + 1
            plan.renumbered[f"{logical}@{v}"] = f"{logical}@{number}"
        floor = number
        numbers[v] = number
        here[number] = ("new", a.id)
        proto = pb.Artifact(uri=a.uri, external_id=ids[a.id], state=int(a.state),
                            name=_convert.mlmd_artifact_name(logical, number))
        copy_props(a.properties, proto.properties)
        copy_props(a.custom_properties, proto.custom_properties)
        proto.properties["version"].int_value = number
        for prop in ("previous_version", "current_version"):
            if prop in proto.properties:
                del proto.properties[prop]
        plan.new["artifact"][a.id] = proto
        plan.types["artifact"][a.id] = a.type
    last = max(max(here, default=0), top)
    for a in versions:
        proto = plan.new["artifact"].get(a.id)
        if proto is None:  # stored: an earlier attempt may have failed before linking it
            hit = plan.stored["artifact"][a.id]
            number = _version(hit)
            if number > 1 and "previous_version" not in hit.properties and number - 1 in here:
                kind, ref = here[number - 1]
                plan.refs[("artifact", a.id)] = {"previous_version": (
                    "id" if kind == "stored" else "artifact", ref)}
            continue
        number = _version(proto)
        if number > 1:
            if number - 1 in here:
                kind, ref = here[number - 1]
                if kind == "stored":
                    proto.properties["previous_version"].int_value = ref
                else:
                    plan.refs[("artifact", a.id)] = {"previous_version": ("artifact", ref)}
            else:  # below the bundle's versions: the stored record of that number
                below = _taken(store, type_name, logical, number - 1)
                if below is not None:
                    proto.properties["previous_version"].int_value = below.id
        pointer = a.properties.get("current_version")
        if number == last and pointer is not None and pointer.int_value in numbers \
                and numbers[pointer.int_value] != number:
            proto.properties["current_version"].int_value = numbers[pointer.int_value]


def _taken(store: Store, type_name: str, logical: str, number: int) -> Any | None:
    from lineage._identity import by_name

    return by_name(store, type_name, _convert.mlmd_artifact_name(logical, number))


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


# --- writing ----------------------------------------------------------------------------


def import_bundle(store: Store, source: str | os.PathLike[str] | bytes | bpb.Bundle,
                  ) -> ImportResult:
    """Import a bundle: types, records with new ids, events, contexts and their links.

    Idempotent: importing the same bundle again (or one exported from a copy of the same
    store) adds nothing. The whole bundle is checked before anything is written: its
    format, its digest, the references inside it, its types against the store's, and
    every record is looked up (see the module docstring for identities, versions and
    time order).

    Args:
        store: the store to write.
        source: a bundle file, its bytes (binary or JSON), or a :data:`Bundle` message.

    Raises:
        ReadOnlyStore: the store was opened read-only.
        BundleError: the bundle is corrupt, altered, of another format version, or
            inconsistent.
        TypeConflict: a type in the bundle clashes with the store's type of that name.

    Example:
        >>> import lineage
        >>> a, b = lineage.connect(":memory:"), lineage.connect(":memory:")
        >>> _ = a.put(lineage.Model(content=b"v1", name="clf"))
        >>> _ = a.put(lineage.Model(content=b"v2", name="clf"))
        >>> data = a.export("clf@2").to_bytes()
        >>> b.import_bundle(data).added["artifacts"], b.import_bundle(data).added["artifacts"]
        (2, 0)
        >>> b.get("clf").version, b.get("clf").fingerprint == a.get("clf@2").fingerprint
        (2, True)
    """
    store._check_writable("import a bundle")
    bundle = read_bundle(source)
    existed = _check_types(store, bundle)

    def attempt() -> ImportResult:
        plan = _plan(store, bundle, existed)
        type_ids: dict[str, dict[str, int]] = {kind: {} for kind in _KINDS}
        for kind, decl in _declarations(bundle):
            type_ids[kind][decl.name] = store._register_type(kind, _type_proto(kind, decl))
        for kind in _KINDS:
            for rid, proto in plan.new[kind].items():
                proto.type_id = type_ids[kind][plan.types[kind][rid]]
        return _write(store, bundle, plan)

    return store._write_with_retry(attempt, "import the bundle")


def _write(store: Store, bundle: bpb.Bundle, plan: _Plan) -> ImportResult:
    added = dict.fromkeys(("artifacts", "executions", "contexts", "events", "attributions",
                           "associations", "parent_contexts"), 0)
    # 1. executions (in source id order: the target numbers them in that order),
    #    artifacts and events: one transaction
    new_exec, new_art = sorted(plan.new["execution"]), sorted(plan.new["artifact"])
    exec_index = {rid: i for i, rid in enumerate(new_exec)}
    art_index = {rid: i for i, rid in enumerate(new_art)}
    existing_events = _existing_events(store, bundle, plan)
    edges: list[tuple[int | None, int | None, pb.Event]] = []
    for ev in bundle.events:
        event = pb.Event(type=int(ev.type))
        if ev.milliseconds_since_epoch:
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
    # 2. contexts
    new_ctx = sorted(plan.new["context"])
    if new_ctx:
        ids = store._call("put_contexts", [plan.new["context"][i] for i in new_ctx])
        for rid, new_id in zip(new_ctx, ids, strict=True):
            plan.new["context"][rid].id = new_id
            plan.maps["context"][rid] = int(new_id)
        added["contexts"] = len(new_ctx)
    # 3. properties that hold ids of other records
    _fix_refs(store, plan)
    # 4. links
    _write_links(store, bundle, plan, added)
    return ImportResult(
        source_uri=bundle.header.source_uri,
        artifacts=dict(sorted(plan.maps["artifact"].items())),
        executions=dict(sorted(plan.maps["execution"].items())),
        contexts=dict(sorted(plan.maps["context"].items())),
        added=added,
        renumbered=dict(plan.renumbered),
    )


def _existing_events(store: Store, bundle: bpb.Bundle, plan: _Plan) -> set[tuple[int, int, int]]:
    """(artifact, execution, type) of the events of the bundle's executions already stored."""
    ids = sorted(plan.maps["execution"][e.id] for e in bundle.executions
                 if e.id in plan.stored["execution"])
    return {(ev.artifact_id, ev.execution_id, ev.type)
            for ev in store._batched("get_events_by_execution_ids", ids)}


def _places(plan: _Plan) -> list[tuple[int, int]]:
    """(source id, target id) of the bundle's executions, by source id."""
    return sorted(plan.maps["execution"].items())


def remap_seq(seq: int, places: Sequence[tuple[int, int]]) -> int | None:
    """The target place of a source ``output_seq`` value: the largest target id of a bundle
    execution whose source id is at or below it (None if there is none).

    Example:
        >>> remap_seq(7, [(3, 40), (5, 41), (9, 42)]), remap_seq(2, [(3, 40)])
        (41, None)
    """
    below = [target for source, target in places if source <= seq]
    return max(below) if below else None


def _resolve_refs(plan: _Plan, kind: str, rid: int) -> dict[str, Any]:
    """The id-valued properties of a record, in this store's ids (unknown targets left out)."""
    out: dict[str, Any] = {}
    places = _places(plan)
    for prop, (target_kind, old) in plan.refs.get((kind, rid), {}).items():
        if target_kind == "seq":
            mapped = {path: remap_seq(v, places) for path, v in old.items()
                      if isinstance(v, int) and not isinstance(v, bool)}
            out[prop] = {p: v for p, v in mapped.items() if v is not None}
            continue
        if target_kind == "id":  # already an id in this store
            out[prop] = old
            continue
        ids = plan.maps[target_kind]
        if isinstance(old, dict):  # a Run's config: file name -> Config artifact id
            out[prop] = {k: ids[v] for k, v in old.items() if isinstance(v, int) and v in ids}
        elif old in ids:
            out[prop] = ids[old]
    return out


def _fix_refs(store: Store, plan: _Plan) -> None:
    """Set the id-valued properties of the bundle's records where they are absent (new
    records, and stored ones an earlier attempt left without them); never overwrite."""
    from lineage._convert import set_props

    for kind in _KINDS:
        updates = []
        for (k, rid), _refs in sorted(plan.refs.items()):
            if k != kind:
                continue
            proto = plan.new[kind].get(rid) or plan.stored[kind].get(rid)
            if proto is None or not proto.id:
                continue
            wanted = {p: v for p, v in _resolve_refs(plan, kind, rid).items()
                      if p not in proto.properties and v not in ({}, None)}
            if not wanted:
                continue
            seq = wanted.pop("output_seq", None)
            set_props(proto.properties, wanted, typed=True)
            if seq:
                proto.properties["output_seq"].CopyFrom(_convert.to_value(seq, packed=True))
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
