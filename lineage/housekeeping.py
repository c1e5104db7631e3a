"""Housekeeping of kept content: ``gc`` (objects no record references) and ``du`` (what the
objects take, per name and version).

MLMD has no delete, so objects become unreferenced when a store is recreated or replaced,
when a write crashed between keeping the bytes and recording the version, or when an
object store is shared by several stores. ``gc`` looks at the records of one store only:
do not run it on an object store other stores use too (a shared bucket), or it removes
their objects. Objects younger than ``min_age`` seconds (10 minutes by default) are left,
so that a version being recorded while ``gc`` runs keeps its bytes.

Example:
    >>> import lineage
    >>> store = lineage.connect(":memory:")
    >>> _ = store.put(lineage.Artifact(content=b"hi", name="greeting"))
    >>> store.du().rows[0].size, store.gc().removed
    (2, [])
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any

import attrs

from lineage import _text
from lineage.artifacts import Artifact
from lineage.fingerprint import manifest_entries
from lineage.keeping import kept_info, objects_of
from lineage.objects import ObjectInfo, ObjectStore, human_size, object_key

if TYPE_CHECKING:
    from lineage.store import Store

__all__ = ["Collection", "Usage", "UsageRow", "du", "gc"]


def _keys_of(objects: ObjectStore, art: Artifact, info: dict[str, Any]) -> list[str]:
    """Every object key a kept version needs (a folder: its files, then its manifest)."""
    key = str(info["key"])
    if info.get("kind") != "folder":
        return [key]
    algo = str(art.fingerprint or "sha256:").split(":", 1)[0]
    try:
        text = objects.read(key).decode("utf-8", "surrogateescape")
    except (FileNotFoundError, OSError):
        return [key]
    keys = [object_key(f"{algo}:{hexd}") for hexd, _rel in manifest_entries(text)]
    return [*keys, key]


def _kept_versions(store: Store) -> list[tuple[Artifact, dict[str, Any]]]:
    out = []
    for art in sorted(store.artifacts(), key=lambda a: a.id or 0):
        info = kept_info(art)
        if info is not None:
            out.append((art, info))
    return out


@attrs.define(eq=False)
class Collection:
    """What ``gc`` removed (or, in a dry run, would remove).

    Example:
        >>> import lineage
        >>> print(lineage.connect(":memory:").gc())
        gc (dry run) of memory:: 0 unreferenced object(s), 0 B; 0 referenced object(s) kept
    """

    objects: str
    """The object store's URL."""
    dry_run: bool
    """Nothing was deleted."""
    removed: list[ObjectInfo]
    """The unreferenced objects removed (would be removed, in a dry run)."""
    referenced: int
    """Objects some recorded version needs (never removed)."""
    young: int = 0
    """Unreferenced objects left because they are younger than ``min_age``."""

    @property
    def bytes(self) -> int:
        """Bytes of the removed objects."""
        return sum(o.size for o in self.removed)

    def to_dict(self) -> dict[str, Any]:
        """``objects``, ``dry_run``, ``removed`` (keys and sizes), ``bytes``,
        ``referenced`` and ``young``."""
        return {"objects": self.objects, "dry_run": self.dry_run,
                "removed": [{"key": o.key, "size": o.size} for o in self.removed],
                "bytes": self.bytes, "referenced": self.referenced, "young": self.young}

    def __str__(self) -> str:
        head = "gc (dry run)" if self.dry_run else "gc"
        verb = "" if self.dry_run else " removed"
        line = (f"{head} of {self.objects}: {len(self.removed)} unreferenced object(s){verb}, "
                f"{human_size(self.bytes)}; {self.referenced} referenced object(s) kept")
        if self.young:
            line += f"; {self.young} recent unreferenced object(s) left (younger than min_age)"
        if self.dry_run and self.removed:
            line += "\nrun `lineage gc --yes` to remove them"
        return line

    def __repr__(self) -> str:
        return f"<Collection {'dry run' if self.dry_run else 'done'}: {len(self.removed)} objects>"


def gc(store: Store, *, dry_run: bool = True, min_age: float = 600.0) -> Collection:
    """Remove the objects of the store's object store that no recorded version needs.

    Args:
        store: the store whose records say what is needed.
        dry_run: only say what would be removed (the default).
        min_age: leave unreferenced objects younger than this many seconds (a version
            may be being recorded).
    """
    objects = objects_of(store)
    needed: set[str] = set()
    for art, info in _kept_versions(store):
        needed.update(_keys_of(objects, art, info))
    now = time.time()
    removed: list[ObjectInfo] = []
    young = referenced = 0
    for obj in objects.list():
        if obj.key in needed:
            referenced += 1
            continue
        if obj.mtime is not None and now - obj.mtime < min_age:
            young += 1
            continue
        removed.append(obj)
    if not dry_run:
        for obj in removed:
            objects.delete(obj.key)
    removed.sort(key=lambda o: o.key)
    return Collection(objects.url, dry_run, removed, referenced, young)


@attrs.define(eq=False)
class UsageRow:
    """What one kept version takes."""

    artifact: Artifact
    """The version."""
    kind: str
    """``file``, ``folder`` or the kind of in-memory content."""
    size: int
    """Its content's size in bytes (all files of a folder)."""
    objects: int
    """Objects it needs (a folder: one per distinct file, and its manifest)."""
    new: int
    """Bytes of the objects no earlier version needs (what keeping this version added)."""
    missing: int
    """Objects it needs that are not in the object store."""

    def to_dict(self) -> dict[str, Any]:
        """``artifact``, ``kind``, ``size``, ``objects``, ``new`` and ``missing``."""
        return {"artifact": self.artifact.to_dict(), "kind": self.kind, "size": self.size,
                "objects": self.objects, "new": self.new, "missing": self.missing}


@attrs.define(eq=False)
class Usage:
    """What the kept objects take: one row per kept version (by name, then version), and
    the totals of the object store.

    Example:
        >>> import lineage
        >>> print(lineage.connect(":memory:").du())
        (no kept content)
        memory:: 0 object(s), 0 B; referenced 0 B; unreferenced 0 B
    """

    objects: str
    """The object store's URL."""
    rows: list[UsageRow]
    """One per kept version."""
    count: int
    """Objects in the object store."""
    total: int
    """Bytes of all objects in the object store."""
    referenced: int
    """Bytes of the objects some version needs (each counted once)."""

    @property
    def unreferenced(self) -> int:
        """Bytes ``gc`` would free (besides recent objects)."""
        return self.total - self.referenced

    def to_dict(self) -> dict[str, Any]:
        """``objects``, ``rows``, ``count``, ``total``, ``referenced``, ``unreferenced``."""
        return {"objects": self.objects, "rows": [r.to_dict() for r in self.rows],
                "count": self.count, "total": self.total, "referenced": self.referenced,
                "unreferenced": self.unreferenced}

    def __str__(self) -> str:
        lines = []
        if self.rows:
            lines.append(_text.table(
                [[f"artifact:{r.artifact.id}", r.artifact.type_name, r.artifact.name,
                  str(r.artifact.version), r.kind, str(r.objects), human_size(r.size),
                  human_size(r.new), str(r.missing) if r.missing else "-"] for r in self.rows],
                ["ref", "type", "name", "version", "kind", "objects", "size", "new", "missing"]))
        else:
            lines.append("(no kept content)")
        lines.append(f"{self.objects}: {self.count} object(s), {human_size(self.total)}; "
                     f"referenced {human_size(self.referenced)}; unreferenced "
                     f"{human_size(self.unreferenced)}"
                     + (" (lineage gc --yes removes them)" if self.unreferenced else ""))
        return "\n".join(lines)

    def __repr__(self) -> str:
        return f"<Usage {len(self.rows)} versions, {self.count} objects, {self.total} B>"


def du(store: Store) -> Usage:
    """What the store's kept objects take, per name and version.

    ``new`` of a row is what that version added: the bytes of the objects no earlier
    version (by record id) needs, so the ``new`` column adds up to ``referenced``.
    """
    objects = objects_of(store)
    sizes = {o.key: o.size for o in objects.list()}
    seen: set[str] = set()
    rows: list[UsageRow] = []
    for art, info in _kept_versions(store):
        keys = _keys_of(objects, art, info)
        new = missing = 0
        for key in keys:
            if key not in sizes:
                missing += 1
            elif key not in seen:
                new += sizes[key]
            seen.add(key)
        rows.append(UsageRow(art, str(info.get("kind")), int(info.get("size") or 0),
                             len(set(keys)), new, missing))
    rows.sort(key=lambda r: (r.artifact.name, r.artifact.version or 0, r.artifact.id or 0))
    referenced = sum(size for key, size in sizes.items() if key in seen)
    return Usage(objects.url, rows, len(sizes), sum(sizes.values()), referenced)
