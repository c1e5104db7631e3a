"""The ``bundle`` format: our portable ``lineage.v1.Bundle`` message
(``proto/lineage/v1/bundle.proto``).

Types, records with their properties, events with paths, contexts with attributions,
associations and parent links, and a header. Binary protobuf, or JSON when the file ends in
``.json``. :func:`read_bundle` reads one back (checked whole);
:func:`lineage.formats.bundle_import.import_bundle` writes it into another store.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from google.protobuf import json_format, message
from ml_metadata.proto import metadata_store_pb2 as pb

from lineage._proto.lineage.v1 import bundle_pb2 as bpb
from lineage._proto.lineage.v1 import types_pb2 as tpb
from lineage.errors import BundleError
from lineage.formats._slice import Slice, clean

__all__ = ["FORMAT_VERSION", "Bundle", "read_bundle", "to_bundle"]

#: The bundle format version this module writes and reads.
FORMAT_VERSION = 1
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
    target = sl.provenance.target
    bundle = bpb.Bundle()
    h = bundle.header
    h.format_version = FORMAT_VERSION
    h.created.GetCurrentTime()
    h.source_uri = store.uri
    h.lineage_version = __version__
    h.mlmd_version = str(getattr(ml_metadata, "__version__", ""))
    h.description = (f"provenance of {target.type_name} {target.name}@{target.version} "
                     f"(artifact:{target.id})")
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
    return bundle



def read_bundle(source: str | os.PathLike[str] | bytes | bpb.Bundle) -> bpb.Bundle:
    """Read a bundle from a file, from bytes (binary protobuf or JSON), or take a message.

    Raises:
        BundleError: the file is missing, is not a bundle, or has an unknown format version.

    Example:
        >>> import lineage
        >>> store = lineage.connect(":memory:")
        >>> _ = store.put(lineage.Model(content=b"w", name="clf"))
        >>> data = store.export("clf").to_bytes()
        >>> read_bundle(data).header.format_version
        1
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
        except (message.DecodeError, json_format.ParseError, UnicodeDecodeError,
                ValueError) as exc:
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
    _validate(bundle, where)
    return bundle


def _validate(bundle: bpb.Bundle, where: str) -> None:
    """Every reference inside the bundle resolves; typed properties match their types."""
    problems: list[str] = []
    decls: dict[str, dict[str, dict[str, int]]] = {"artifact": {}, "execution": {}, "context": {}}
    for kind, types in (("artifact", bundle.types.artifact_types),
                        ("execution", bundle.types.execution_types),
                        ("context", bundle.types.context_types)):
        for t in types:
            if not t.name:
                problems.append(f"an {kind} type without a name")
            elif t.name in decls[kind]:
                problems.append(f"the {kind} type {t.name!r} is declared twice")
            decls[kind][t.name] = {p.name: int(p.type) for p in t.properties}
            for p in t.properties:
                if int(p.type) not in _VALUE_KINDS:
                    problems.append(f"{kind} type {t.name!r}: property {p.name!r} has an "
                                    f"unknown type {int(p.type)}")
    ids: dict[str, set[int]] = {}
    for kind, records in (("artifact", bundle.artifacts), ("execution", bundle.executions),
                          ("context", bundle.contexts)):
        seen: set[int] = set()
        for r in records:
            label = f"{kind} {r.id}"
            if r.id <= 0 or r.id in seen:
                problems.append(f"{label}: ids must be positive and unique")
            seen.add(r.id)
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
        ids[kind] = seen
        if kind == "context" and any(not r.name for r in records):
            problems.append("a context without a name")
    for ev in bundle.events:
        if ev.artifact_id not in ids["artifact"] or ev.execution_id not in ids["execution"]:
            problems.append(f"an event links artifact {ev.artifact_id} and execution "
                            f"{ev.execution_id}, not both in the bundle")
        if int(ev.type) not in pb.Event.Type.values():
            problems.append(f"an event has the unknown type {int(ev.type)}")
    for link, a_kind, a_field in (("attribution", "artifact", "artifact_id"),
                                  ("association", "execution", "execution_id")):
        for r in getattr(bundle, link + "s"):
            if getattr(r, a_field) not in ids[a_kind] or r.context_id not in ids["context"]:
                problems.append(f"an {link} links records that are not in the bundle")
    for pc in bundle.parent_contexts:
        if pc.child_id not in ids["context"] or pc.parent_id not in ids["context"]:
            problems.append("a parent link between contexts that are not in the bundle")
    if problems:
        shown = "; ".join(sorted(set(problems))[:5])
        more = f" (and {len(set(problems)) - 5} more)" if len(set(problems)) > 5 else ""
        raise BundleError(f"{where} is inconsistent: {shown}{more}; nothing was imported",
                          source=where)

