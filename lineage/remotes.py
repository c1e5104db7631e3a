"""Remotes: moving the kept objects a set of records needs between object stores.

As DVC's remotes do: ``store.push(remote)`` copies the objects of the chosen versions from
the store's object store to a shared one (``s3://bucket/prefix``, any fsspec URL or a
folder), and ``store.pull(remote)`` copies them back into another machine's store. The
lineage records themselves travel in bundles (``lineage export REF --format bundle`` and
``lineage import``); a teammate imports the bundle, pulls, and checks out::

    lineage export clf --format bundle -o clf.bundle.pb   # records (e.g. committed to git)
    lineage push clf --remote s3://team-bucket/lineage    # their bytes
    # on another machine, in a fresh clone:
    lineage import clf.bundle.pb && lineage pull clf --remote s3://team-bucket/lineage
    lineage checkout clf -o model.pkl

The set of versions is the provenance of each ref (the version and everything upstream of
it, what a bundle of that ref holds), or every recorded artifact when no ref is given.
``$LINEAGE_REMOTE`` is the default remote. Every pulled object is checked against the
digest its key names before it is stored.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import attrs

from lineage.artifacts import Artifact
from lineage.errors import ContentError, CorruptObject, LineageError
from lineage.fingerprint import fingerprint, manifest_entries
from lineage.keeping import kept_info, objects_of
from lineage.objects import ObjectStore, human_size, object_key, open_objects, parse_key

if TYPE_CHECKING:
    from lineage.store import Ref, Store

__all__ = ["ENV_REMOTE", "Transfer", "pull", "push"]

#: Environment variable naming the default remote object store.
ENV_REMOTE = "LINEAGE_REMOTE"


@attrs.define(eq=False)
class Transfer:
    """What a push or pull moved.

    Example:
        >>> import lineage, tempfile
        >>> store = lineage.connect(":memory:")
        >>> _ = store.put(lineage.Artifact(content=b"hi", name="greeting"))
        >>> t = store.push(tempfile.mkdtemp())
        >>> t.copied, t.ok
        (1, True)
    """

    direction: str
    """``push`` or ``pull``."""
    source: str
    """The URL objects were copied from."""
    target: str
    """The URL objects were copied to."""
    versions: int
    """Kept versions whose objects were wanted."""
    copied: int
    """Objects copied."""
    bytes: int
    """Bytes copied."""
    present: int
    """Objects the target already had."""
    missing: list[tuple[str, str]] = attrs.field(factory=list)
    """``(artifact ref, object key)`` of objects the source does not have."""
    not_kept: list[str] = attrs.field(factory=list)
    """Refs of versions in the set whose content was never kept."""

    @property
    def ok(self) -> bool:
        """Every object wanted is now at the target."""
        return not self.missing

    def to_dict(self) -> dict[str, Any]:
        """Every field, and ``ok``."""
        return {"direction": self.direction, "source": self.source, "target": self.target,
                "versions": self.versions, "copied": self.copied, "bytes": self.bytes,
                "present": self.present, "missing": [list(m) for m in self.missing],
                "not_kept": self.not_kept, "ok": self.ok}

    def __str__(self) -> str:
        lines = [f"{self.direction}: {self.copied} object(s) copied ({human_size(self.bytes)}), "
                 f"{self.present} already there, for {self.versions} kept version(s); "
                 f"{self.source} -> {self.target}"]
        if self.not_kept:
            lines.append(f"not kept (nothing to move): {', '.join(self.not_kept)}")
        for ref, key in self.missing[:20]:
            lines.append(f"MISSING in {self.source}: {key} (needed by {ref})")
        if len(self.missing) > 20:
            lines.append(f"... and {len(self.missing) - 20} more missing")
        return "\n".join(lines)

    def __repr__(self) -> str:
        return (f"<Transfer {self.direction} {self.copied} copied, {self.present} present, "
                f"{len(self.missing)} missing>")


def remote_of(remote: str | os.PathLike[str] | None) -> str:
    """The remote URL to use: the one given, else ``$LINEAGE_REMOTE``.

    Raises:
        ContentError: neither is set.
    """
    url = os.fspath(remote) if remote is not None else os.environ.get(ENV_REMOTE, "")
    if not url:
        raise ContentError(
            f"no remote object store: give one (--remote s3://bucket/prefix) or set ${ENV_REMOTE}"
        )
    return url


def versions_of(store: Store, refs: Sequence[Ref] | None) -> list[Artifact]:
    """The versions a push or pull moves: the provenance of each ref, or every artifact."""
    if refs is None:
        return store.artifacts()
    seen: dict[int, Artifact] = {}
    for ref in refs:
        prov = store.provenance(ref)
        for art in (prov.target, *prov.artifacts):
            if art.id is not None:
                seen.setdefault(art.id, art)
    return [seen[i] for i in sorted(seen)]


def _verified(key: str, path: str) -> bool:
    parsed = parse_key(key)
    if parsed is None:
        return True  # not an object key lineage writes: copied as is
    fp, _manifest = parsed
    return fingerprint(path, algo=fp.split(":", 1)[0], progress=False) == fp


def _copy(source: ObjectStore, target: ObjectStore, key: str, verify: bool) -> int:
    local = source.local_path(key)
    if local is not None and not verify:
        target.put_file(key, local)
        return os.path.getsize(local)
    with tempfile.TemporaryDirectory(prefix="lineage-transfer-") as tmpdir:
        tmp = os.path.join(tmpdir, "object")
        source.get_file(key, tmp)
        if verify and not _verified(key, tmp):
            raise CorruptObject(
                f"the object {key} in {source.url} does not match the digest its key names; "
                "it was not copied: delete it there and push it again", key=key)
        target.put_file(key, tmp)
        return os.path.getsize(tmp)


def _manifest_keys(manifest: bytes, algo: str) -> list[str]:
    text = manifest.decode("utf-8", "surrogateescape")
    return [object_key(f"{algo}:{hexd}") for hexd, _rel in manifest_entries(text)]


def _move(store: Store, direction: str, source: ObjectStore, target: ObjectStore,
          refs: Sequence[Ref] | None) -> Transfer:
    verify = direction == "pull"
    result = Transfer(direction, source.url, target.url, 0, 0, 0, 0)
    done: set[str] = set()

    def want(ref: str, key: str) -> bool:
        """Copy ``key`` unless the target has it; False when the source lacks it."""
        if key in done:
            return True
        done.add(key)
        if target.exists(key):
            result.present += 1
            return True
        if not source.exists(key):
            result.missing.append((ref, key))
            return False
        result.bytes += _copy(source, target, key, verify)
        result.copied += 1
        return True

    for art in versions_of(store, refs):
        info = kept_info(art)
        ref = f"artifact:{art.id}"
        if info is None:
            if art.fingerprint and (art.path is not None or not art.uri):
                result.not_kept.append(ref)
            continue
        result.versions += 1
        key = str(info["key"])
        if info.get("kind") == "folder":
            holder = target if key in done or target.exists(key) else source
            try:
                manifest = holder.read(key)
            except FileNotFoundError:
                result.missing.append((ref, key))
                done.add(key)
                continue
            algo = str(art.fingerprint or "sha256:").split(":", 1)[0]
            for file_key in _manifest_keys(manifest, algo):
                want(ref, file_key)
        want(ref, key)  # a folder's manifest after its files: its presence means complete
    return result


def _guarded(store: Store, direction: str, source: ObjectStore, target: ObjectStore,
             refs: Sequence[Ref] | None) -> Transfer:
    """:func:`_move`, with the errors of object stores (a refused credential, an
    unreachable server) as one :class:`ContentError` naming both ends."""
    try:
        return _move(store, direction, source, target, refs)
    except LineageError:
        raise
    except Exception as exc:
        raise ContentError(
            f"{direction} from {source.url} to {target.url} failed: "
            f"{type(exc).__name__}: {exc}") from exc


def push(store: Store, remote: str | os.PathLike[str] | None = None,
         refs: Sequence[Ref] | None = None) -> Transfer:
    """Copy the kept objects of ``refs`` (and their provenance; ``None``: every artifact)
    from the store's object store to ``remote`` (default ``$LINEAGE_REMOTE``).

    Objects the remote has are not copied again; objects the store's object store lacks
    are listed in ``Transfer.missing``.
    """
    target = open_objects(remote_of(remote))
    return _guarded(store, "push", objects_of(store), target, refs)


def pull(store: Store, remote: str | os.PathLike[str] | None = None,
         refs: Sequence[Ref] | None = None) -> Transfer:
    """Copy the kept objects of ``refs`` (and their provenance; ``None``: every artifact)
    from ``remote`` (default ``$LINEAGE_REMOTE``) into the store's object store, each
    checked against the digest its key names.

    Raises:
        CorruptObject: a remote object does not match its key (it is not copied).
        ContentError: an object store failed (credentials, network).
    """
    source = open_objects(remote_of(remote))
    return _guarded(store, "pull", source, objects_of(store), refs)
