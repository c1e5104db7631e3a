"""Keeping content: what is kept, where, and the hook that keeps it when a version is recorded.

**What is kept by default.** The bytes of every version ``lineage`` fingerprints while
recording it: ``store.put()`` of a file, folder or in-memory content, the outputs a step
returns, and the inputs a step records for the first time (a path given to a step). Each
is kept when it is at most :data:`KEEP_LIMIT` bytes (1 GiB; a folder counts all its
files); a bigger one is recorded but not kept, with a :class:`KeepWarning`. Not kept:
remote URIs (``s3://…``: the bytes are not here to copy) and artifacts already recorded
(their bytes were read when they were recorded, not now).

**Opting out, or in.** The most specific setting wins:

- per artifact: ``Dataset(path, keep=False)`` (never), ``keep=True`` (whatever its size);
- per step: ``@lineage.step(keep=False)`` for everything that step records, or ``True``;
- per store: ``lineage.connect(..., keep=False)`` (keep nothing unless an artifact or step
  says ``True``), ``keep="10G"`` (another size limit), ``keep=True`` (the default limit),
  or ``keep="all"`` (no limit); ``$LINEAGE_KEEP`` takes the same values (``0``/``1``).

**Where.** The object store (:mod:`lineage.objects`) is ``connect(..., objects=URL)``,
else ``$LINEAGE_OBJECTS``, else ``objects/`` beside a SQLite store's file
(``.lineage/objects``), an in-process dict for ``:memory:``, and ``./.lineage/objects``
for server stores (PostgreSQL, MySQL, gRPC).

**What the record says.** A kept version's MLMD artifact carries the custom property
``kept`` (``Artifact.kept`` in Python, not among ``Artifact.properties``): ``{"objects": <object store URL>, "key": <object key>, "kind": "file" | "folder"
| "bytes" | "str" | "numpy" | "pandas" | "json", "size": <bytes>}`` (folders add
``files``). MLMD says what exists; the object store only holds the bytes.

**Hash once.** The key is the fingerprint recorded anyway, so keeping reads no byte to
hash it: a file is cloned (copy-on-write) or copied, a folder's per-file digests come from
the manifest its fingerprint was computed from, in-memory content is written as the bytes
it was fingerprinted from.

Example:
    >>> import lineage
    >>> store = lineage.connect(":memory:")
    >>> a = store.put(lineage.Artifact(content=b"hello", name="greeting"))
    >>> a.kept["kind"], a.kept["size"], a.properties
    ('bytes', 5, {})
"""

from __future__ import annotations

import os
import re
import stat
import threading
import time
import warnings
import weakref
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import attrs
from ml_metadata.proto import metadata_store_pb2 as pb

from lineage import _convert
from lineage.artifacts import Artifact
from lineage.errors import ContentError, KeepWarning
from lineage.fingerprint import (
    ALGORITHMS,
    content_bytes,
    fingerprint_content,
    manifest,
    manifest_entries,
    recent_manifest,
)
from lineage.objects import ObjectStore, object_key, open_objects

if TYPE_CHECKING:
    from lineage._recording import Pending
    from lineage.store import Store

__all__ = [
    "ENV_KEEP",
    "ENV_OBJECTS",
    "KEEP_LIMIT",
    "KEPT",
    "KeepPolicy",
    "KeepWarning",
    "configure",
    "keep",
    "keep_pending",
    "kept_info",
    "objects_of",
    "policy_of",
    "settings",
]

#: Default largest content kept per artifact, in bytes (1 GiB).
KEEP_LIMIT = 1 << 30
#: Environment variable naming the object store (a path or fsspec URL).
ENV_OBJECTS = "LINEAGE_OBJECTS"
#: Environment variable with the store's keep policy (``0``, ``1``, ``10G``, ``all``).
ENV_KEEP = "LINEAGE_KEEP"
#: The custom property of a kept artifact.
KEPT = "kept"
IN_MEMORY_KINDS = ("bytes", "str", "numpy", "pandas", "json")

#: Smallest kept file whose digest is vouched for in the digest cache (see _put_vouched).
VOUCH_MIN = 1 << 20
_RACY_NS = 2_000_000_000  # as lineage.fingerprint: files this fresh are not in the digest cache
_SIZE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([kmgtp]?)(i?b?)\s*$", re.I)
_UNITS = {"": 1, "k": 1 << 10, "m": 1 << 20, "g": 1 << 30, "t": 1 << 40, "p": 1 << 50}


def parse_size(text: str) -> int:
    """Bytes of a size such as ``"512M"``, ``"10G"``, ``"1.5GiB"`` or ``"2048"``.

    Example:
        >>> parse_size("10G"), parse_size("512 MiB"), parse_size("2048")
        (10737418240, 536870912, 2048)
    """
    m = _SIZE.match(text)
    if m is None:
        raise ValueError(f"{text!r} is not a size (e.g. 512M, 10G, 2048)")
    return int(float(m[1]) * _UNITS[m[2].lower()])


@attrs.frozen
class KeepPolicy:
    """A store's keeping rule: on or off by default, and the largest content kept.

    Example:
        >>> KeepPolicy.parse("10G")
        KeepPolicy(enabled=True, limit=10737418240)
        >>> KeepPolicy.parse(False).enabled, KeepPolicy.parse("all").limit
        (False, None)
    """

    enabled: bool = True
    """Whether content is kept when neither the artifact nor the step says."""
    limit: int | None = KEEP_LIMIT
    """The largest content kept (bytes) by default; ``None``: no limit."""

    @classmethod
    def parse(cls, value: bool | int | str | None) -> KeepPolicy:
        """The policy ``keep=`` or ``$LINEAGE_KEEP`` gives: ``None`` (from the
        environment, else the default), a bool, a byte count, a size (``"10G"``) or
        ``"all"``."""
        if value is None:
            env = os.environ.get(ENV_KEEP, "").strip()
            return cls.parse(env) if env else cls()
        if isinstance(value, bool):
            return cls(enabled=value)
        if isinstance(value, int):
            if value < 0:
                raise ValueError(f"keep={value}: a size limit cannot be negative")
            return cls(enabled=True, limit=value)
        if isinstance(value, str):
            word = value.strip().lower()
            if word in ("0", "false", "no", "off", "never"):
                return cls(enabled=False)
            if word in ("1", "true", "yes", "on", ""):
                return cls()
            if word in ("all", "inf", "unlimited", "always"):
                return cls(enabled=True, limit=None)
            return cls(enabled=True, limit=parse_size(word))
        raise ValueError(f"keep={value!r}: use True, False, a size such as '10G', or 'all'")


@attrs.define
class _Config:
    objects_arg: str | None
    policy: KeepPolicy
    objects: ObjectStore | None = None


_configs: weakref.WeakKeyDictionary[Store, _Config] = weakref.WeakKeyDictionary()
_lock = threading.Lock()


def configure(
    store: Store, *, objects: str | os.PathLike[str] | None = None,
    keep: bool | int | str | KeepPolicy | None = None,
) -> None:
    """Set a store's object store and keep policy (``connect(objects=, keep=)``).

    Raises:
        ContentError: ``keep`` is not a policy.
    """
    try:
        policy = keep if isinstance(keep, KeepPolicy) else KeepPolicy.parse(keep)
    except ValueError as exc:
        raise ContentError(
            f"keep={keep!r}: {exc}; use True, False, a size limit such as '10G', or 'all'"
        ) from None
    arg = os.fspath(objects) if objects is not None else None
    with _lock:
        _configs[store] = _Config(arg, policy)


def _config(store: Store) -> _Config:
    found = _configs.get(store)
    if found is None:
        with _lock:
            found = _configs.get(store)
            if found is None:
                found = _configs[store] = _Config(None, KeepPolicy.parse(None))
    return found


def objects_url(store: Store) -> str:
    """Where a store keeps content: ``objects=``, ``$LINEAGE_OBJECTS``, ``objects/`` beside
    a SQLite file, ``memory:`` for ``:memory:``, else ``./.lineage/objects``."""
    arg = _config(store).objects_arg or os.environ.get(ENV_OBJECTS) or None
    if arg:
        return arg
    if store.folder is not None:
        return os.fspath(store.folder / "objects")
    if store.kind == "memory":
        return "memory:"
    return os.fspath(Path(".lineage", "objects").absolute())


def objects_of(store: Store) -> ObjectStore:
    """The store's object store, opened once per store object."""
    config = _config(store)
    if config.objects is None:
        opened = open_objects(objects_url(store))
        with _lock:
            if config.objects is None:
                config.objects = opened
    assert config.objects is not None
    return config.objects


def settings(store: Store) -> tuple[str, KeepPolicy]:
    """The object store URL and keep policy of a store (what a pickled store takes along)."""
    return objects_url(store), policy_of(store)


def policy_of(store: Store) -> KeepPolicy:
    """The store's keep policy."""
    return _config(store).policy


def kept_info(record: pb.Artifact | Artifact) -> dict[str, Any] | None:
    """The ``kept`` property of a recorded artifact (proto or record), or ``None``.

    Example:
        >>> import lineage
        >>> kept_info(lineage.Dataset("x.csv")) is None
        True
    """
    if isinstance(record, Artifact):
        value = record.__dict__.get(KEPT)
    else:
        value = _convert.from_value(record.custom_properties[KEPT]) if (
            KEPT in record.custom_properties) else None
    if isinstance(value, dict) and isinstance(value.get("key"), str) and value.get("kind"):
        return value
    return None


def content_kind(obj: Any) -> str:
    """How in-memory content was fingerprinted (and is given back): ``bytes``, ``str``,
    ``numpy``, ``pandas`` or ``json``.

    Example:
        >>> content_kind(b"x"), content_kind("x"), content_kind({"a": 1})
        ('bytes', 'str', 'json')
    """
    if isinstance(obj, (bytes, bytearray, memoryview)):
        return "bytes"
    if isinstance(obj, str):
        return "str"
    module = type(obj).__module__.split(".")[0]
    if module in ("numpy", "pandas"):
        return module
    return "json"


def _too_big(what: str, size: int, limit: int | None) -> bool:
    if limit is None or size <= limit:
        return False
    warnings.warn(
        f"{what} is recorded but not kept: its {size:,} bytes are over the keep limit of "
        f"{limit:,}; keep it with keep=True on the artifact or step, or raise the limit "
        f"(connect(keep='10G') or ${ENV_KEEP}=10G)",
        KeepWarning,
        stacklevel=4,
    )
    return True


def _put_vouched(store: Store, objects: ObjectStore, key: str, path: str, digest: str) -> None:
    """Keep the file ``path`` (digest ``digest``) under ``key``.

    When the store's digest cache proves that the bytes copied are the bytes that were
    hashed (it holds this digest for the file's size, mtime and inode, and they did not
    change during the copy), a local object gets the file's modification time and its
    digest goes in the cache too: a checkout then copies it without hashing it again
    (objects are read-only files; the trust DVC puts in its cache). Otherwise the first
    checkout hashes it.
    """
    before = os.stat(path)
    objects.put_file(key, path)
    local = objects.local_path(key)
    if local is None or before.st_size < VOUCH_MIN or time.time_ns() - before.st_mtime_ns < _RACY_NS:
        return  # small (hashing it costs less than the cache), or just written: not in the cache
    algo, _, hexd = digest.partition(":")
    cache = store._fingerprints()
    if cache.get(path, algo, before) != hexd:
        return  # written too recently to be in the cache, or changed: not vouched for
    after = os.stat(path)
    if (after.st_size, after.st_mtime_ns, after.st_ino) != (
        before.st_size, before.st_mtime_ns, before.st_ino
    ):
        return
    os.utime(local, ns=(before.st_atime_ns, before.st_mtime_ns))
    cache.put(local, algo, os.stat(local), hexd)


def _keep_file(store: Store, objects: ObjectStore, fp: str, path: str, size: int) -> dict[str, Any]:
    key = object_key(fp)
    if not objects.exists(key):
        _put_vouched(store, objects, key, path, fp)
    return {"key": key, "kind": "file", "size": size}


def _folder_manifest(store: Store, fp: str, path: str) -> str:
    text = recent_manifest(fp)
    if text is not None:
        return text
    algo = fp.split(":", 1)[0]
    text = manifest(path, algo=algo, cache=store._fingerprints())
    if fingerprint_content(text.encode("utf-8", "surrogateescape"), algo=algo) != fp:
        raise ContentError(f"{path} changed while it was being recorded; it is not kept")
    return text


def _manifest_entries(text: str) -> list[tuple[str, str]]:
    return manifest_entries(text)  # sha256sum's escapes undone (names with \\, \n, \r)


def _keep_folder(
    store: Store, objects: ObjectStore, fp: str, path: str, limit: int | None, what: str
) -> dict[str, Any] | None:
    text = _folder_manifest(store, fp, path)
    entries = _manifest_entries(text)
    algo = fp.split(":", 1)[0]
    sizes = [os.stat(os.path.join(path, rel)).st_size for _h, rel in entries]
    total = sum(sizes)
    if _too_big(what, total, limit):
        return None
    key = object_key(fp, manifest=True)
    local = objects.local_path(key) is not None
    if local or not objects.exists(key):  # remote: a manifest is written after its files
        with store._fingerprints().batch():
            _keep_files(store, objects, algo, path, entries)
        if not objects.exists(key):
            objects.put_bytes(key, [text.encode("utf-8", "surrogateescape")])
    return {"key": key, "kind": "folder", "size": total, "files": len(entries)}


def _keep_files(
    store: Store, objects: ObjectStore, algo: str, path: str, entries: list[tuple[str, str]]
) -> None:
    """Keep a folder's files, one by one (threads were measured no faster here: creating
    small files is file-system metadata work)."""
    for hexd, rel in entries:
        file_key = object_key(f"{algo}:{hexd}")
        if not objects.exists(file_key):
            _put_vouched(store, objects, file_key, os.path.join(path, rel), f"{algo}:{hexd}")


def _keep_content(
    objects: ObjectStore, fp: str, content: Any, limit: int | None, what: str
) -> dict[str, Any] | None:
    kind = content_kind(content)
    key = object_key(fp)
    info: dict[str, Any] = {"key": key, "kind": kind}
    if kind == "pandas":
        import pandas as pd

        info["index"] = str(content.index.dtype)
        if isinstance(content, pd.Series):
            info["series"] = True
    size = objects.size(key)
    if size is None:
        chunks = list(content_bytes(content))
        size = sum(len(c) for c in chunks)
        if _too_big(what, size, limit):
            return None
        objects.put_bytes(key, chunks)
    info["size"] = size
    return info


def keep(store: Store, artifact: Artifact, proto: pb.Artifact, *, step_keep: bool | None = None) -> bool:
    """Keep the content of ``artifact``, just fingerprinted and about to be recorded as
    ``proto``, and set ``proto``'s ``kept`` property (the hook of ``Store.put`` and of
    step recording).

    Returns:
        True when ``proto`` is a stored record that gained its ``kept`` property (the
        caller writes it again); False otherwise.

    Never raises for a failed copy: the version is recorded without ``kept`` and a
    :class:`KeepWarning` says why.
    """
    if artifact.id is not None:  # a recorded artifact: its bytes were not read now
        return False
    want = artifact.__dict__.get("keep")
    if want is None:
        want = step_keep
    policy = policy_of(store)
    if want is False or (want is None and not policy.enabled):
        return False
    fp = artifact.fingerprint
    if not fp or fp.split(":", 1)[0] not in ALGORITHMS:
        return False
    limit = None if want is True else policy.limit
    what = f"{artifact.type_name} {artifact.name!r}"
    try:
        objects = objects_of(store)
        info: dict[str, Any] | None
        if artifact.has_content:
            info = _keep_content(objects, fp, artifact.content, limit, what)
        else:
            uri = artifact.uri
            if not uri or "://" in uri:
                return False
            st = os.stat(uri)
            if stat.S_ISDIR(st.st_mode):
                info = _keep_folder(store, objects, fp, uri, limit, what)
            elif _too_big(what, st.st_size, limit):
                info = None
            else:
                info = _keep_file(store, objects, fp, uri, st.st_size)
    except Exception as exc:  # any failure to keep (a full disk, an unreachable bucket):
        # the version is still recorded, without `kept`
        warnings.warn(f"{what} is recorded but not kept: {exc}", KeepWarning, stacklevel=3)
        return False
    if info is None:
        return False
    recorded = kept_info(proto)
    if recorded is not None and recorded.get("key") == info["key"]:
        return False  # the record already says so (perhaps in another object store)
    _convert.set_props(proto.custom_properties, {KEPT: {"objects": objects.url, **info}})
    return bool(proto.id)


def keep_pending(store: Store, step_keep: bool | None, pending: Sequence[Pending]) -> None:
    """Keep the content of the new artifacts an execution write carries (the hook of
    :func:`lineage._recording.put_execution`)."""
    for p in pending:
        for _path, artifact, proto in p.items:
            if proto is not None and artifact.id is None:
                keep(store, artifact, proto, step_keep=step_keep)
