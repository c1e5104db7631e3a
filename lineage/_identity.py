"""Which record is this content? Artifact identity, versions, locations, the current version.

The rules (the README's "Data versioning" states them for users):

- **Identity.** The same content (fingerprint) under the same type and name is one record:
  its ``external_id`` is ``"lineage:<sha256 of type, name, fingerprint>"``, which MLMD keeps
  unique, so two writers cannot record it twice.
- **A path without a name.** A path given without ``name=`` (to ``put``, or to a step's
  artifact argument) for a file whose uri and content are already recorded as that type is
  that record, under the name it has (the most recent such record if there are several).
- **Versions.** New content under a known name is the next version; ``previous_version``
  holds the id of the version before.
- **Locations.** A record keeps every location its content was seen at, with the host it
  was seen on (the ``locations`` property; MLMD's ``uri`` is the first). What a caller
  gets back always points at the path the caller passed: recording never changes what a
  step reads.
- **The current version.** A bare name means the content most recently recorded under
  that name. Recording older content again (content A, then B, then A) leaves the versions
  as they are and sets ``current_version`` on the newest version to the version of A;
  new content clears it (the newest version is then current).

Every function takes the store and reads and writes through ``Store._call``.
"""

from __future__ import annotations

import functools
import hashlib
import os
import socket
import warnings
from typing import TYPE_CHECKING, Any

import attrs
from ml_metadata.proto import metadata_store_pb2 as pb

from lineage import _convert
from lineage.artifacts import Artifact
from lineage.errors import ArtifactError, LineageError, LineageWarning

if TYPE_CHECKING:
    from lineage.store import Store

__all__ = [
    "Prepared",
    "add_location",
    "current_of",
    "fill",
    "host",
    "identity_key",
    "latest_version",
    "locations_of",
    "prepare",
]


@functools.cache
def host() -> str:
    """The name of this machine, as recorded with every location and execution."""
    return str(socket.gethostname())


def identity_key(artifact: Artifact) -> str:
    """The ``external_id`` of ``artifact``'s content under its type and name."""
    identity = artifact.fingerprint or f"uri:{artifact.uri}"
    digest = hashlib.sha256(
        "\0".join((artifact.type_name, artifact.name, identity)).encode()
    ).hexdigest()
    return f"lineage:{digest}"


def _fingerprint(proto: pb.Artifact) -> str | None:
    value = proto.properties.get("fingerprint")
    return (value.string_value or None) if value is not None else None


def _version(proto: pb.Artifact) -> int:
    value = proto.properties.get("version")
    return int(value.int_value) if value is not None else 0


def logical_name(proto: pb.Artifact) -> str:
    """The name versions share (``"iris"`` for MLMD's ``"iris@2"``)."""
    suffix = f"@{_version(proto)}"
    name = str(proto.name)
    return name[: -len(suffix)] if name.endswith(suffix) else name


# --- locations ------------------------------------------------------------------------


def _location_host(uri: str) -> str:
    """The host a location is on: this one for a local path, none for a remote URI."""
    return "" if "://" in uri else host()


def locations_of(proto: pb.Artifact) -> list[dict[str, str]]:
    """Every location the content of ``proto`` was seen at (see
    :func:`lineage._convert.artifact_locations`)."""
    return _convert.artifact_locations(proto)


def _set_locations(proto: pb.Artifact, locations: list[dict[str, str]]) -> None:
    proto.properties["locations"].CopyFrom(
        _convert.to_value([[loc["uri"], loc["host"]] for loc in locations], packed=True))


#: Most locations kept per record: the first one and the most recent others. A step that
#: writes the same bytes to a new path each run (``out/<date>/model.pkl``) would otherwise
#: grow the list, rewritten whole by each put, without end.
LOCATIONS_MAX = 100


def add_location(proto: pb.Artifact, uri: str) -> bool:
    """Add ``uri`` (seen on this host) to the locations of ``proto``; whether it was new.
    Past :data:`LOCATIONS_MAX`, the oldest but the first are let go."""
    if not uri:
        return False
    where = _location_host(uri)
    known = locations_of(proto)
    for loc in known:
        if loc["uri"] == uri and loc["host"] in ("", where):
            return False
    kept = [*known, {"uri": uri, "host": where}]
    if len(kept) > LOCATIONS_MAX:
        kept = [kept[0], *kept[len(kept) - LOCATIONS_MAX + 1:]]
    _set_locations(proto, kept)
    return True


# --- versions ---------------------------------------------------------------------------


def _exact(found: pb.Artifact | None, type_name: str, name: str) -> pb.Artifact | None:
    """``found`` if it is the artifact named ``name`` of type ``type_name``, else None.

    MySQL/MariaDB compare names without regard to case (their default collations), so a
    lookup of ``model@1`` there can return ``Model@1``, or one of type ``model``.
    """
    if found is None or not found.id:
        return None
    if found.name != name or (found.type and found.type != type_name):
        return None
    return found


def by_name(store: Store, type_name: str, name: str) -> pb.Artifact | None:
    """The stored artifact of type ``type_name`` whose MLMD name is ``name``, or None."""
    got = store._call("get_artifact_by_type_and_name", type_name, name, missing=None)
    return _exact(got, type_name, name)


def latest_version(
    store: Store, type_name: str, name: str, *, writing: bool = False, fresh: bool = False
) -> pb.Artifact | None:
    """The stored proto of the newest version of ``name``, probing O(log n) names.

    ``fresh``: read the newest version again even when this store object knows it (its
    properties, such as ``current_version``, may have been changed by another writer).

    Raises:
        ArtifactError: ``writing`` and the store holds the name spelled in another case
            (MySQL cannot store both).
    """
    from lineage.store import last_present

    def get(v: int) -> pb.Artifact | None:
        wanted = _convert.mlmd_artifact_name(name, v)
        found = store._call("get_artifact_by_type_and_name", type_name, wanted, missing=None)
        exact = _exact(found, type_name, wanted)
        if writing and exact is None and found is not None and found.id and (
            found.type in ("", type_name)
        ):
            stored = found.name.rsplit("@", 1)[0]
            raise ArtifactError(
                f"cannot record the {type_name} {name!r}: {store.uri} already holds "
                f"{stored!r} and compares names without regard to case (MySQL/MariaDB "
                "collation), so it cannot hold both; use the stored spelling or a name "
                "that differs in more than case"
            )
        return exact

    hint = store._version_hints.get((type_name, name))
    if hint is not None and get(hint[0] + 1) is None:
        # versions are never deleted: the newest we saw is still the newest
        if not fresh:
            return hint[1]
        again = get(hint[0])
        if again is not None:
            store._version_hints[(type_name, name)] = (hint[0], again)
            return again
        # MySQL may answer a name lookup with a type differing only in case: keep ours
        return hint[1]
    found = last_present(get)
    if found is None:
        return None
    store._version_hints[(type_name, name)] = found
    return found[1]


def current_of(store: Store, type_name: str, name: str) -> pb.Artifact | None:
    """The version of ``name`` whose content was most recently recorded (see the module
    docstring), or None if the name has no versions."""
    latest = latest_version(store, type_name, name, fresh=True)
    if latest is None:
        return None
    pointer = latest.properties.get("current_version")
    if pointer is None or not pointer.int_value or pointer.int_value == _version(latest):
        return latest
    return by_name(store, type_name, _convert.mlmd_artifact_name(name, pointer.int_value)) or latest


# --- preparing a write ------------------------------------------------------------------


@attrs.define
class Prepared:
    """What to write for an artifact: see :func:`prepare`."""

    proto: pb.Artifact
    """The stored artifact (with ``id``) when the content is recorded, else a new version."""
    dirty: bool = False
    """The stored ``proto`` gained a location: it must be written again."""
    others: list[pb.Artifact] = attrs.field(factory=list)
    """Other stored artifacts to write again (the newest version's ``current_version``)."""


def _by_location(store: Store, artifact: Artifact, type_id: int) -> pb.Artifact | None:
    """The newest record of this type whose MLMD uri is the artifact's path and whose
    content is the artifact's (one indexed read: MLMD indexes ``uri``)."""
    if artifact.name_given or not artifact.uri or not artifact.fingerprint:
        return None
    hits = [p for p in store._call("get_artifacts_by_uri", artifact.uri, missing=[])
            if p.type_id == type_id and _fingerprint(p) == artifact.fingerprint]
    return max(hits, key=lambda p: p.id) if hits else None


def prepare(store: Store, artifact: Artifact, type_id: int) -> Prepared:
    """What to write to record ``artifact`` (of MLMD type ``type_id``).

    Fills in ``artifact.fingerprint`` and, for a path given without a name that is already
    recorded, ``artifact.name``. A recorded content gets this location added; recording
    an older version again makes it the current one. Callers write a new proto and, on a
    lost race (``AlreadyExists``), call this again.
    """
    if not artifact.uri and not artifact.has_content and not artifact.fingerprint:
        raise ArtifactError(
            f"{artifact!r} has neither a uri nor content; give a path, a URI or content="
        )
    artifact.fingerprint = store.fingerprint_of(artifact)
    if artifact.fingerprint is None and artifact.uri and "://" in artifact.uri:
        warnings.warn(
            f"{artifact.uri} is recorded without a fingerprint: lineage cannot read remote "
            "content, so new content there is not a new version and a cached step never "
            "reuses a result made from it; give fingerprint= (e.g. the object's checksum)",
            LineageWarning, stacklevel=4)
    found = _by_location(store, artifact, type_id)
    if found is not None:
        artifact.name = logical_name(found)
    else:
        got = store._call("get_artifacts_by_external_ids", [identity_key(artifact)], missing=[])
        found = got[0] if got else None
    if found is not None:
        prepared = Prepared(found, dirty=add_location(found, artifact.uri))
        _make_current(store, artifact, prepared)
        return prepared
    latest = latest_version(store, artifact.type_name, artifact.name, writing=True)
    version = 1 if latest is None else _version(latest) + 1
    return Prepared(new_version(artifact, type_id, version, latest.id if latest else None))


def new_version(
    artifact: Artifact, type_id: int, version: int, previous: int | None
) -> pb.Artifact:
    """A new MLMD artifact (no id) for ``artifact`` as version ``version`` of its name."""
    proto = _convert.artifact_to_proto(
        artifact,
        type_id=type_id,
        version=version,
        previous=previous,
        external_id=identity_key(artifact),
        declared=type(artifact).property_types,
    )
    if artifact.uri:
        _set_locations(proto, [{"uri": artifact.uri, "host": _location_host(artifact.uri)}])
    return proto


def _make_current(store: Store, artifact: Artifact, prepared: Prepared) -> None:
    """Recording stored content again makes it the current version of its name."""
    found = prepared.proto
    version = _version(found)
    if not version:
        return  # not one of our versioned records
    latest = latest_version(store, artifact.type_name, logical_name(found), fresh=True)
    if latest is None:
        return
    target = found if latest.id == found.id else latest
    pointer = target.properties.get("current_version")
    now = pointer.int_value if pointer is not None else 0
    wanted = 0 if latest.id == found.id else version
    if now == wanted or (wanted == 0 and now == _version(latest)):
        return
    if wanted:
        target.properties["current_version"].int_value = wanted
    else:
        del target.properties["current_version"]
    if target is found:
        prepared.dirty = True
    else:
        prepared.others.append(target)


def fill(store: Store, artifact: Artifact, proto: pb.Artifact) -> Artifact:
    """Copy the recorded fields of ``proto`` into ``artifact``; return it.

    The artifact keeps the location it was given (``uri``): what a step's body reads is
    what its caller passed, never another copy of the same content.
    """
    recorded = _convert.recorded_fields(proto)
    for attr in ("id", "version", "previous_version", "fingerprint", "state",
                 "external_id", "create_time", "locations", "kept"):
        setattr(artifact, attr, recorded[attr])
    if not artifact.uri:
        artifact.uri = recorded["uri"]
    artifact.properties = recorded["properties"]
    artifact.name_given = True
    key = (artifact.type_name, artifact.name)
    version = artifact.version
    if proto.id and version and version > store._version_hints.get(key, (0,))[0]:
        store._version_hints[key] = (version, proto)
    return artifact


def stored_value(proto: pb.Artifact, key: str) -> Any:
    """A decoded typed property of a stored artifact, or None."""
    return _convert.from_value(proto.properties[key]) if key in proto.properties else None


# --- finding a file's record --------------------------------------------------------------


def which(store: Store, path: str | os.PathLike[str]) -> list[Artifact]:
    """The records whose content equals the file's or folder's bytes at ``path``, those
    seen at this very location first, then by id (see :meth:`lineage.Store.which`)."""
    from lineage.fingerprint import fingerprint

    where = os.path.abspath(os.path.expanduser(os.fspath(path)))
    digest = fingerprint(where, cache=store._fingerprints())
    algos = {digest.split(":", 1)[0]}
    at_path = [p for p in store._call("get_artifacts_by_uri", where, missing=[])]
    # content may have been recorded elsewhere (another path, another host): one read of
    # every artifact (MLMD cannot look properties up by value)
    everything = list(store._call("get_artifacts"))
    wanted: dict[str, str] = {digest.split(":", 1)[0]: digest}
    for p in everything:
        fp = _fingerprint(p)
        if fp and fp.split(":", 1)[0] not in algos:
            algo = fp.split(":", 1)[0]
            algos.add(algo)
            try:
                wanted[algo] = fingerprint(where, algo=algo)
            except LineageError:
                continue
    hits = {p.id: p for p in [*at_path, *everything]
            if (fp := _fingerprint(p)) is not None and wanted.get(fp.split(":", 1)[0]) == fp}
    here = {p.id for p in hits.values() if any(loc["uri"] == where for loc in locations_of(p))}
    ordered = sorted(hits.values(), key=lambda p: (p.id not in here, p.id))
    return store._artifacts_from_protos(ordered)


def by_file(store: Store, path: str) -> pb.Artifact:
    """The record a ``file:PATH`` reference names: the one whose content equals the file's
    (seen at this location, when several are).

    Raises:
        NotFound: no record holds that content. AmbiguousRef: several do, none of them
            seen at this path.
    """
    from lineage.errors import AmbiguousRef, NotFound

    found = which(store, path)
    where = os.path.abspath(os.path.expanduser(path))
    if not found:
        raise NotFound(f"no record holds the content of {where} in {store.uri}; "
                       "`lineage which PATH` lists what a file matches", ref=f"file:{path}")
    seen_here = [a for a in found if any(loc["uri"] == where for loc in a.locations)]
    if len(seen_here) >= 1:
        return store._call("get_artifacts_by_id", [max(a.id or 0 for a in seen_here)])[0]
    if len(found) > 1:
        options = ", ".join(f"artifact:{a.id} ({a.type_name} {a.name} v{a.version})"
                            for a in found)
        raise AmbiguousRef(f"the content of {where} is recorded as several artifacts: "
                           f"{options}; pass one of these ids", ref=f"file:{path}")
    return store._call("get_artifacts_by_id", [found[0].id])[0]

