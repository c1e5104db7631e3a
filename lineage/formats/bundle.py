"""The ``bundle`` format: our portable ``lineage.v1.Bundle`` message
(``proto/lineage/v1/bundle.proto``).

Types, records with their properties, events with paths, contexts with attributions,
associations and parent links, and a header. Binary protobuf, or JSON when the file ends in
``.json``. :func:`read_bundle` reads one back, checked whole;
:func:`lineage.formats.bundle_import.import_bundle` writes it into another store.

What a bundle holds: the provenance slice of the artifacts exported
(:mod:`lineage.formats._slice`), plus every earlier version of each of our versioned
artifacts in it (the records only, so that the ``previous_version`` chain arrives whole and
version numbers can be kept in the target).

**The digest.** The header's ``digest`` is ``"sha256:<hex>"`` of the bundle's
deterministic binary serialization with the digest field empty (:func:`digest_of`). A
reader recomputes it, from the binary or the JSON form alike, and refuses a bundle whose
content does not match, so a flipped byte anywhere (a fingerprint, an id, a property) is
refused before anything is written. A bundle built or edited by a program must be sealed
again with :func:`seal`.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from google.protobuf import json_format
from ml_metadata.proto import metadata_store_pb2 as pb

from lineage._proto.lineage.v1 import bundle_pb2 as bpb
from lineage._proto.lineage.v1 import types_pb2 as tpb
from lineage.errors import BundleError
from lineage.formats._slice import Slice, clean

__all__ = ["FORMAT_VERSION", "Bundle", "digest_of", "read_bundle", "seal", "to_bundle"]

#: The bundle format version this module writes and reads (2: the header carries a digest).
FORMAT_VERSION = 2
#: The bundle message (``lineage.v1.Bundle``).
Bundle = bpb.Bundle
_VALUE_KINDS = {
    pb.INT: "int_value", pb.DOUBLE: "double_value", pb.STRING: "string_value",
    pb.STRUCT: "struct_value", pb.PROTO: "proto_value", pb.BOOLEAN: "bool_value",
}



def bundle_dict(bundle: bpb.Bundle) -> dict[str, Any]:
    try:
        out: dict[str, Any] = json_format.MessageToDict(
            bundle, preserving_proto_field_name=True)
    except TypeError as exc:  # a proto_value of a message type this process does not know
        raise BundleError(
            f"cannot write the bundle as JSON: {exc}; write it as binary (.pb) instead"
        ) from None
    return out



def copy_props(src: Mapping[str, Any], dst: Any, secrets: Sequence[str] = ()) -> None:
    """Copy a properties map between MLMD's Value and ours (same field numbers)."""
    for key in sorted(src):
        dst[key].MergeFromString(src[key].SerializeToString())
        if secrets and dst[key].WhichOneof("value") == "string_value":
            dst[key].string_value = clean(dst[key].string_value, secrets)


def type_set(sl: Slice) -> tpb.TypeSet:
    from lineage.typedecl import (
        artifact_type_from_mlmd,
        context_type_from_mlmd,
        execution_type_from_mlmd,
    )

    store = sl.store
    atypes = store._types("artifact", {a.type_id for a in sl.artifacts.values()})
    etypes = store._types("execution", {e.type_id for e in sl.executions.values()})
    ctypes = store._types("context", {c.type_id for c in sl.contexts.values()})
    used_a = sorted({a.type_id for a in sl.artifacts.values()})
    used_e = sorted({e.type_id for e in sl.executions.values()})
    used_c = sorted({c.type_id for c in sl.contexts.values()})
    out = tpb.TypeSet()
    out.artifact_types.extend(sorted((artifact_type_from_mlmd(atypes[i]) for i in used_a),
                                     key=lambda t: t.name))
    out.execution_types.extend(sorted((execution_type_from_mlmd(etypes[i]) for i in used_e),
                                      key=lambda t: t.name))
    out.context_types.extend(sorted((context_type_from_mlmd(ctypes[i]) for i in used_c),
                                    key=lambda t: t.name))
    return out


def to_bundle(sl: Slice, secrets: Sequence[str]) -> bpb.Bundle:
    import ml_metadata

    from lineage import __version__

    store = sl.store
    atypes = store._types("artifact", {a.type_id for a in sl.artifacts.values()})
    etypes = store._types("execution", {e.type_id for e in sl.executions.values()})
    ctypes = store._types("context", {c.type_id for c in sl.contexts.values()})
    bundle = bpb.Bundle()
    h = bundle.header
    h.format_version = FORMAT_VERSION
    h.created.GetCurrentTime()
    h.source_uri = store.uri
    h.lineage_version = __version__
    h.mlmd_version = str(getattr(ml_metadata, "__version__", ""))
    h.description = "provenance of " + ", ".join(
        f"{t.type_name} {t.name}@{t.version} (artifact:{t.id})" if t.version
        else f"{t.type_name} artifact:{t.id}" for t in sl.targets)
    bundle.types.CopyFrom(type_set(sl))
    for aid in sorted(sl.artifacts):
        a = sl.artifacts[aid]
        out = bundle.artifacts.add(
            id=a.id, type=atypes[a.type_id].name, uri=clean(a.uri, secrets), name=a.name,
            external_id=a.external_id, state=int(a.state),
            create_time_since_epoch=a.create_time_since_epoch,
            last_update_time_since_epoch=a.last_update_time_since_epoch,
        )
        copy_props(a.properties, out.properties, secrets)
        copy_props(a.custom_properties, out.custom_properties, secrets)
    for eid in sorted(sl.executions):
        e = sl.executions[eid]
        ex = bundle.executions.add(
            id=e.id, type=etypes[e.type_id].name, name=e.name, external_id=e.external_id,
            last_known_state=int(e.last_known_state),
            create_time_since_epoch=e.create_time_since_epoch,
            last_update_time_since_epoch=e.last_update_time_since_epoch,
        )
        copy_props(e.properties, ex.properties, secrets)
        copy_props(e.custom_properties, ex.custom_properties, secrets)
    for ev in sl.events:
        bev = bundle.events.add(artifact_id=ev.artifact_id, execution_id=ev.execution_id,
                                type=int(ev.type),
                                milliseconds_since_epoch=ev.milliseconds_since_epoch)
        for step in ev.path.steps:
            bev.path.add().MergeFromString(step.SerializeToString())
    for cid in sorted(sl.contexts):
        c = sl.contexts[cid]
        bc = bundle.contexts.add(
            id=c.id, type=ctypes[c.type_id].name, name=c.name, external_id=c.external_id,
            create_time_since_epoch=c.create_time_since_epoch,
            last_update_time_since_epoch=c.last_update_time_since_epoch,
        )
        copy_props(c.properties, bc.properties, secrets)
        copy_props(c.custom_properties, bc.custom_properties, secrets)
    for aid, cid in sl.attributions:
        bundle.attributions.add(artifact_id=aid, context_id=cid)
    for eid, cid in sl.associations:
        bundle.associations.add(execution_id=eid, context_id=cid)
    for child, parent in sl.parents:
        bundle.parent_contexts.add(child_id=child, parent_id=parent)
    return seal(bundle)


def digest_of(bundle: bpb.Bundle) -> str:
    """``"sha256:<hex>"`` of the deterministic serialization of ``bundle`` with its
    header's ``digest`` empty.

    Example:
        >>> b = Bundle()
        >>> b.header.format_version = FORMAT_VERSION
        >>> digest_of(b) == digest_of(seal(b)), digest_of(b)[:7]
        (True, 'sha256:')
    """
    unsealed = bpb.Bundle()
    unsealed.CopyFrom(bundle)
    unsealed.header.ClearField("digest")
    data = unsealed.SerializeToString(deterministic=True)
    return "sha256:" + hashlib.sha256(data).hexdigest()


def seal(bundle: bpb.Bundle) -> bpb.Bundle:
    """Set the header's digest to :func:`digest_of` the bundle; return the bundle."""
    bundle.header.digest = digest_of(bundle)
    return bundle



def read_bundle(source: str | os.PathLike[str] | bytes | bpb.Bundle) -> bpb.Bundle:
    """Read a bundle from a file, from bytes (binary protobuf or JSON), or take a message,
    and check it whole: its format version, its digest, and that it is consistent (every
    reference resolves, every record can be written as it is).

    Raises:
        BundleError: the file is missing, is not a bundle, has an unknown format version,
            does not match its digest (altered), or is inconsistent.

    Example:
        >>> import lineage
        >>> store = lineage.connect(":memory:")
        >>> _ = store.put(lineage.Model(content=b"w", name="clf"))
        >>> data = store.export("clf").to_bytes()
        >>> read_bundle(data).header.format_version
        2
    """
    where: str
    if isinstance(source, bpb.Bundle):
        bundle, where = source, "<message>"
    else:
        if isinstance(source, (bytes, bytearray, memoryview)):
            data, where = bytes(source), "<bytes>"
        else:
            where = os.fspath(source)
            try:
                data = Path(where).read_bytes()
            except OSError as exc:
                raise BundleError(f"cannot read the bundle {where}: {exc.strerror or exc}",
                                  source=where) from None
        bundle = bpb.Bundle()
        text = data.lstrip()[:1]
        try:
            if text == b"{" or where.lower().endswith(".json"):
                json_format.Parse(data.decode("utf-8"), bundle)
            else:
                bundle.ParseFromString(data)
        except Exception as exc:  # protobuf's parsers raise many kinds on damaged input
            raise BundleError(
                f"{where} is not a lineage bundle (binary protobuf or JSON): "
                f"{' '.join(str(exc).split())[:200]}; export one with `lineage export REF "
                "--format bundle -o FILE`",
                source=where,
            ) from None
    if bundle.header.format_version != FORMAT_VERSION:
        version = bundle.header.format_version
        what = ("has no bundle header" if version == 0
                else f"has bundle format version {version}")
        raise BundleError(
            f"{where} {what}; this lineage reads format version {FORMAT_VERSION} "
            "(export it again with this version)",
            source=where,
        )
    _check_digest(bundle, where)
    _validate(bundle, where)
    return bundle


def _check_digest(bundle: bpb.Bundle, where: str) -> None:
    stated = bundle.header.digest
    if not stated:
        raise BundleError(
            f"{where} has no digest, so its content cannot be checked; nothing was imported "
            "(export it again with `lineage export REF --format bundle`, or seal a bundle "
            "built by a program with lineage.formats.bundle.seal)",
            source=where,
        )
    actual = digest_of(bundle)
    if stated != actual:
        raise BundleError(
            f"{where} was altered after it was written: its content does not match its "
            f"digest ({_short(stated)} stated, {_short(actual)} found); nothing was imported "
            "(export it again from the source store)",
            source=where,
        )


def _short(digest: str) -> str:
    text = "".join(c if c.isprintable() else "?" for c in digest)
    return text[:19] + "…" if len(text) > 20 else text


def _validate(bundle: bpb.Bundle, where: str) -> None:
    """Every reference inside the bundle resolves, and every record can be written as it
    is: typed properties match their types, enum values are known, names and external ids
    are unique where MLMD keeps them unique, events are not repeated, parent links have
    no cycle. The importer relies on this: after it, nothing in the bundle can make a
    write fail half-way."""
    problems: list[str] = []
    decls: dict[str, dict[str, dict[str, int]]] = {"artifact": {}, "execution": {}, "context": {}}
    bases = {"artifact": tpb.ArtifactTypeDecl.BaseType.values(),
             "execution": tpb.ExecutionTypeDecl.BaseType.values()}
    for kind, types in (("artifact", bundle.types.artifact_types),
                        ("execution", bundle.types.execution_types),
                        ("context", bundle.types.context_types)):
        for t in types:
            if not t.name:
                problems.append(f"an {kind} type without a name")
            elif t.name in decls[kind]:
                problems.append(f"the {kind} type {t.name!r} is declared twice")
            decls[kind][t.name] = {p.name: int(p.type) for p in t.properties}
            if kind in bases and int(getattr(t, "base_type", 0)) not in bases[kind]:
                problems.append(f"{kind} type {t.name!r} has an unknown base type")
            props = [p.name for p in t.properties]
            if "" in props or len(set(props)) != len(props):
                problems.append(f"{kind} type {t.name!r}: property names must be unique "
                                "and not empty")
            for p in t.properties:
                if int(p.type) not in _VALUE_KINDS:
                    problems.append(f"{kind} type {t.name!r}: property {p.name!r} has an "
                                    f"unknown type {int(p.type)}")
    states = {"artifact": ("state", bpb.Artifact.State.values()),
              "execution": ("last_known_state", bpb.Execution.State.values())}
    ids: dict[str, set[int]] = {}
    for kind, records in (("artifact", bundle.artifacts), ("execution", bundle.executions),
                          ("context", bundle.contexts)):
        seen: set[int] = set()
        named: set[tuple[str, str]] = set()
        external: set[str] = set()
        for r in records:
            label = f"{kind} {r.id}"
            if r.id <= 0 or r.id in seen:
                problems.append(f"{label}: ids must be positive and unique")
            seen.add(r.id)
            if r.name:
                if (r.type, r.name) in named:
                    problems.append(f"two {kind}s of type {r.type!r} are named {r.name!r}")
                named.add((r.type, r.name))
            if r.external_id:
                if r.external_id in external:
                    problems.append(f"two {kind}s have the external id {r.external_id!r}")
                external.add(r.external_id)
            if kind in states:
                field, known = states[kind]
                if int(getattr(r, field)) not in known:
                    problems.append(f"{label}: unknown state {int(getattr(r, field))}")
            if r.create_time_since_epoch < 0 or r.last_update_time_since_epoch < 0:
                problems.append(f"{label}: negative time")
            declared = decls[kind].get(r.type)
            if declared is None:
                problems.append(f"{label}: its type {r.type!r} is not declared in the bundle")
                continue
            for key in r.properties:
                if key not in declared:
                    problems.append(f"{label}: property {key!r} is not declared by {r.type!r}")
                elif r.properties[key].WhichOneof("value") not in (
                        None, _VALUE_KINDS.get(declared[key])):
                    problems.append(f"{label}: property {key!r} does not hold a "
                                    f"{pb.PropertyType.Name(declared[key])}")
            if "" in r.custom_properties:
                problems.append(f"{label}: a custom property without a name")
        ids[kind] = seen
        if kind == "context" and any(not r.name for r in records):
            problems.append("a context without a name")
    known_events = bpb.Event.Type.values()
    seen_events: set[tuple[int, int, int]] = set()
    for ev in bundle.events:
        if ev.artifact_id not in ids["artifact"] or ev.execution_id not in ids["execution"]:
            problems.append(f"an event links artifact {ev.artifact_id} and execution "
                            f"{ev.execution_id}, not both in the bundle")
        if int(ev.type) not in known_events or int(ev.type) == 0:
            problems.append(f"an event has the unknown type {int(ev.type)}")
        edge = (ev.artifact_id, ev.execution_id, int(ev.type))
        if edge in seen_events:
            problems.append(f"the event {edge} is repeated")
        seen_events.add(edge)
        if ev.milliseconds_since_epoch < 0:
            problems.append("an event has a negative time")
        if any(s.WhichOneof("value") is None for s in ev.path):
            problems.append("an event path has an empty step")
    for link, a_kind, a_field in (("attribution", "artifact", "artifact_id"),
                                  ("association", "execution", "execution_id")):
        for r in getattr(bundle, link + "s"):
            if getattr(r, a_field) not in ids[a_kind] or r.context_id not in ids["context"]:
                problems.append(f"an {link} links records that are not in the bundle")
    children: dict[int, set[int]] = {}
    for pc in bundle.parent_contexts:
        if pc.child_id not in ids["context"] or pc.parent_id not in ids["context"]:
            problems.append("a parent link between contexts that are not in the bundle")
        children.setdefault(pc.parent_id, set()).add(pc.child_id)
    if _has_cycle(children):
        problems.append("the parent links between contexts form a cycle")
    if problems:
        unique = sorted(set(problems))
        shown = "; ".join(unique[:5])
        more = f" (and {len(unique) - 5} more)" if len(unique) > 5 else ""
        raise BundleError(f"{where} is inconsistent: {shown}{more}; nothing was imported",
                          source=where)


def _has_cycle(children: Mapping[int, set[int]]) -> bool:
    """Whether the graph parent -> children has a cycle (a self-link counts)."""
    state: dict[int, int] = {}  # 1: on the path, 2: done
    for root in children:
        stack: list[tuple[int, list[int]]] = [(root, sorted(children.get(root, ())))]
        if state.get(root) == 2:
            continue
        state[root] = 1
        while stack:
            node, todo = stack[-1]
            if not todo:
                state[node] = 2
                stack.pop()
                continue
            nxt = todo.pop()
            if state.get(nxt) == 1:
                return True
            if state.get(nxt) is None:
                state[nxt] = 1
                stack.append((nxt, sorted(children.get(nxt, ()))))
    return False
