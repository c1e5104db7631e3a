"""Giving kept content back: checkout, restores for cache hits and ``verify --restore``.

``store.checkout(ref, path=None)`` writes the exact bytes of any kept version (a file, a
folder, or in-memory content) and checks them against the recorded fingerprint before
it returns; nothing is replaced until the new bytes are checked (they are written under a
temporary name beside the target and renamed into place). The bytes checked are the
object's, hashed as they are copied (by a second thread for a big object, while the kernel
copies it), or, for a local object whose digest keeping vouched for in the store's digest
cache (unchanged size, mtime and inode since), that digest: DVC's trust in its cache.
Downloaded objects and in-memory content are always hashed. Objects are looked for in the
store's object store, then in the one the record names (``kept.objects``), if another.

Example:
    >>> import lineage, tempfile, pathlib
    >>> store = lineage.connect(":memory:")
    >>> f = pathlib.Path(tempfile.mkdtemp()) / "model.pkl"; _ = f.write_bytes(b"v1")
    >>> v1 = store.put(lineage.Model(f, name="clf"))
    >>> _ = f.write_bytes(b"v2"); _ = store.put(lineage.Model(f, name="clf"))
    >>> store.checkout("clf@1").path == f, f.read_bytes()
    (True, b'v1')
    >>> store.checkout("clf@1", f.with_name("old.pkl")).size
    2
"""

from __future__ import annotations

import ast
import contextlib
import json
import math
import os
import shutil
import uuid
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import TYPE_CHECKING, Any

import attrs
from ml_metadata.proto import metadata_store_pb2 as pb

from lineage import _text
from lineage.artifacts import Artifact
from lineage.errors import ContentError, CorruptObject, FingerprintError, MissingObject, NotKept
from lineage.fingerprint import fingerprint, fingerprint_content, manifest_entries
from lineage.keeping import IN_MEMORY_KINDS, VOUCH_MIN, kept_info, objects_of
from lineage.objects import ObjectStore, object_key, open_objects

if TYPE_CHECKING:
    from lineage.queries import ArtifactCheck
    from lineage.store import Ref, Store

__all__ = [
    "Checkout",
    "checkout",
    "checkout_bytes",
    "load_contents",
    "restorable",
    "restore_checks",
    "restore_outputs",
]

_TMP_MARK = ".lineage-tmp-"


@attrs.define(eq=False)
class Checkout:
    """The content of one version, given back and verified against its fingerprint.

    Example:
        >>> import lineage
        >>> store = lineage.connect(":memory:")
        >>> _ = store.put(lineage.Dataset({"a": [1, 2]}, name="small"))
        >>> store.checkout("small").content
        {'a': [1, 2]}
    """

    artifact: Artifact
    """The recorded version."""
    kind: str
    """``file``, ``folder``, or the kind of in-memory content (``bytes``, ``str``,
    ``numpy``, ``pandas``, ``json``)."""
    path: Path | None
    """Where the bytes were written; ``None`` for in-memory content given back in Python."""
    content: Any
    """The in-memory content, when no path was asked for; else ``None``."""
    fingerprint: str
    """The recorded fingerprint the bytes were verified against."""
    size: int
    """Bytes written (all files of a folder)."""
    files: int
    """Files written (1 for a file or in-memory content)."""
    source: str
    """The URL of the object store the bytes came from."""

    def to_dict(self) -> dict[str, Any]:
        """``artifact``, ``kind``, ``path``, ``fingerprint``, ``size``, ``files``,
        ``source`` and ``verified`` (always true: a mismatch raises)."""
        return {"artifact": self.artifact.to_dict(), "kind": self.kind,
                "path": str(self.path) if self.path is not None else None,
                "fingerprint": self.fingerprint, "size": self.size, "files": self.files,
                "source": self.source, "verified": True}

    def __str__(self) -> str:
        where = f"to {self.path}" if self.path is not None else "in memory"
        files = f"{self.files:,} files, " if self.kind == "folder" else ""
        return (f"checked out {_text.label(self.artifact)} (artifact:{self.artifact.id}) {where}: "
                f"{files}{self.size:,} bytes, {_text.short_fp(self.fingerprint)} verified "
                f"(from {self.source})")

    def __repr__(self) -> str:
        return f"<Checkout {_text.label(self.artifact)} {self.kind} -> {self.path or 'memory'}>"


# --- finding objects ---------------------------------------------------------------------

_opened: dict[str, ObjectStore] = {}


def _sources(store: Store, info: dict[str, Any]) -> list[ObjectStore]:
    """The store's object store, then the one the record names, if another."""
    own = objects_of(store)
    out = [own]
    recorded = info.get("objects")
    if isinstance(recorded, str) and recorded and recorded not in (own.url, "memory:"):
        try:
            other = _opened.get(recorded)
            if other is None:
                other = _opened[recorded] = open_objects(recorded)
            out.append(other)
        except (ContentError, OSError):
            pass
    return out


def _has(source: ObjectStore, key: str) -> bool:
    try:
        return source.exists(key)
    except Exception:  # an unreachable remote: as if absent
        return False


def _locate(store: Store, art: Artifact, info: dict[str, Any], key: str | None = None) -> ObjectStore:
    key = key or str(info["key"])
    sources = _sources(store, info)
    for source in sources:
        if _has(source, key):
            return source
    where = ", ".join(s.url for s in sources)
    what = "manifest of the folder" if key.endswith(".dir") else f"{info.get('kind')} content"
    raise MissingObject(
        f"cannot give back {_text.label(art)} (artifact:{art.id}): its kept object {key} "
        f"({what}, {int(info.get('size') or 0):,} bytes) is not in {where}; `lineage pull` "
        "brings it from a remote, or record the same content again to keep it anew",
        ref=f"artifact:{art.id}", key=key,
    )


def _kept(art: Artifact) -> dict[str, Any]:
    info = kept_info(art)
    if info is None:
        why = ("remote content is not kept" if art.uri and "://" in art.uri else
               "it was recorded with keep=False, over the size limit, or before content was kept")
        raise NotKept(
            f"cannot give back {_text.label(art)} (artifact:{art.id}): its content was not kept "
            f"({why})",
            ref=f"artifact:{art.id}",
        )
    return info


def restorable(store: Store, art: Artifact | pb.Artifact) -> bool:
    """Whether the kept object of a version is where :func:`checkout` looks (for folders:
    the manifest; the files are checked when restored)."""
    info = kept_info(art)
    if info is None:
        return False
    return any(_has(s, str(info["key"])) for s in _sources(store, info))


# --- writing ----------------------------------------------------------------------------


def _tmp_beside(target: Path) -> Path:
    return target.with_name(f".{target.name}{_TMP_MARK}{uuid.uuid4().hex[:12]}")


def _discard(path: Path) -> None:
    try:
        if path.is_dir() and not path.is_symlink():
            shutil.rmtree(path)
        else:
            path.unlink()
    except FileNotFoundError:
        pass


def _corrupt(art: Artifact, key: str, source: ObjectStore, got: str, want: str) -> CorruptObject:
    return CorruptObject(
        f"cannot give back {_text.label(art)} (artifact:{art.id}): the kept object {key} in "
        f"{source.url} does not match its fingerprint ({_text.short_fp(got)} instead of "
        f"{_text.short_fp(want)}); it is damaged: delete it, and record the content again "
        "or pull it from a remote",
        ref=f"artifact:{art.id}", key=key,
    )


_PARALLEL_MIN = 8 << 20
_COPY_THREADS = 2  # a folder's files are copied (and small ones hashed) by this many threads


def _copy_and_hash(store: Store, source: ObjectStore, key: str, tmp: Path, algo: str) -> str:
    """Copy object ``key`` to ``tmp``; return the digest of the bytes copied.

    A local object is hashed as it is copied (a big one in a second thread while the
    kernel copies it: one pass of time on two cores), unless the store's digest cache
    knows it unchanged since it was last checked (objects are read-only files, so this is
    the trust DVC puts in its cache); a remote one once downloaded.
    """
    local = source.local_path(key)
    if local is None:
        source.get_file(key, tmp)
        return fingerprint(tmp, algo=algo, progress=False)
    st = os.stat(local)
    cache = store._fingerprints()
    known = cache.get(local, algo, st)
    if known is not None:
        source.get_file(key, tmp)
        return f"{algo}:{known}"
    if st.st_size < _PARALLEL_MIN:
        source.get_file(key, tmp)
        digest = fingerprint(local, algo=algo, progress=False)
    else:
        with ThreadPoolExecutor(1) as pool:
            hashing = pool.submit(fingerprint, local, algo=algo, progress=False)
            try:
                source.get_file(key, tmp)
            finally:
                digest = hashing.result()
    cache.put(local, algo, st, digest.split(":", 1)[1])
    return digest


def _fetch_verified(
    store: Store, art: Artifact, source: ObjectStore, key: str, tmp: Path, want: str,
    others: Sequence[ObjectStore],
) -> ObjectStore:
    """Write object ``key`` to ``tmp`` and check it hashes to ``want``; return its store."""
    algo = want.split(":", 1)[0]
    for candidate in [source, *[o for o in others if o is not source]]:
        try:
            got = _copy_and_hash(store, candidate, key, tmp, algo)
        except FileNotFoundError:
            continue
        break
    else:
        raise MissingObject(
            f"cannot give back {_text.label(art)} (artifact:{art.id}): its kept object {key} "
            f"is not in {', '.join(o.url for o in [source, *others])}; `lineage pull` "
            "brings it from a remote",
            ref=f"artifact:{art.id}", key=key,
        )
    if got != want:
        _discard(tmp)
        raise _corrupt(art, key, candidate, got, want)
    return candidate


def _restore_file(store: Store, art: Artifact, info: dict[str, Any], target: Path) -> tuple[str, int]:
    key = str(info["key"])
    source = _locate(store, art, info, key)
    if target.is_dir():
        raise ContentError(
            f"cannot restore {_text.label(art)} (artifact:{art.id}) to {target}: a folder is "
            "there; give another path", ref=f"artifact:{art.id}")
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = _tmp_beside(target)
    try:
        used = _fetch_verified(store, art, source, key, tmp, str(art.fingerprint), [])
        os.replace(tmp, target)
    except BaseException:
        _discard(tmp)
        raise
    return used.url, target.stat().st_size


def _entries(text: str) -> list[tuple[str, str]]:
    return manifest_entries(text)  # sha256sum's escapes undone (names with \\, \n, \r)


def _restore_folder(
    store: Store, art: Artifact, info: dict[str, Any], target: Path
) -> tuple[str, int, int]:
    fp = str(art.fingerprint)
    algo = fp.split(":", 1)[0]
    key = str(info["key"])
    source = _locate(store, art, info, key)
    data = source.read(key)
    got = fingerprint_content(data, algo=algo)
    if got != fp:
        raise _corrupt(art, key, source, got, fp)
    entries = _entries(data.decode("utf-8", "surrogateescape"))
    if target.exists() and not target.is_dir():
        raise ContentError(
            f"cannot restore the folder {_text.label(art)} (artifact:{art.id}) to {target}: "
            "a file is there; give another path", ref=f"artifact:{art.id}")
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = _tmp_beside(target)
    others = [s for s in _sources(store, info) if s is not source]
    cache = store._fingerprints()
    size = 0
    try:
        tmp.mkdir()
        made: set[Path] = {tmp}
        jobs: list[tuple[str, Path, str, str | None]] = []  # key, dest, hex, digest known
        for hexd, rel in entries:
            dest = tmp / rel
            if dest.parent not in made:
                dest.parent.mkdir(parents=True, exist_ok=True)
                made.add(dest.parent)
            file_key = object_key(f"{algo}:{hexd}")
            local = source.local_path(file_key)
            known = None
            if local is not None:  # small objects: hashing them costs less than the cache
                try:
                    st = os.stat(local)
                    if st.st_size >= VOUCH_MIN:
                        known = cache.get(local, algo, st)
                except OSError:
                    known = None
            jobs.append((file_key, dest, hexd, known))

        def copy(job: tuple[str, Path, str, str | None]) -> tuple[str | None, int]:
            """Copy one file; its digest (None: not in ``source``) and size. No cache use
            here: the cache's connection stays in this thread."""
            file_key, dest, _hexd, known = job
            try:
                source.get_file(file_key, dest)
            except FileNotFoundError:
                return None, 0
            local = source.local_path(file_key)
            if known is not None:
                return f"{algo}:{known}", dest.stat().st_size
            return fingerprint(local or dest, algo=algo, progress=False), dest.stat().st_size

        with ThreadPoolExecutor(_COPY_THREADS) as pool, cache.batch():
            for job, (digest, nbytes) in zip(jobs, pool.map(copy, jobs), strict=True):
                file_key, dest, hexd, known = job
                want = f"{algo}:{hexd}"
                if digest is None:  # not where the manifest was: the other object stores
                    _fetch_verified(store, art, source, file_key, dest, want, others)
                    size += dest.stat().st_size
                    continue
                if digest != want:
                    raise _corrupt(art, file_key, source, digest, want)
                size += nbytes
                local = source.local_path(file_key)
                if known is None and local is not None and nbytes >= VOUCH_MIN:
                    cache.put(local, algo, os.stat(local), hexd)
        if target.is_dir():  # swap: the old folder goes only once the new one is complete
            old = _tmp_beside(target)
            os.replace(target, old)
            os.replace(tmp, target)
            _discard(old)
        else:
            os.replace(tmp, target)
    except BaseException:
        _discard(tmp)
        raise
    return source.url, size, len(entries)


def _write_bytes(target: Path, data: bytes) -> None:
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = _tmp_beside(target)
    try:
        tmp.write_bytes(data)
        os.replace(tmp, target)
    except BaseException:
        _discard(tmp)
        raise


# --- in-memory content -------------------------------------------------------------------


def _unsafe(value: Any) -> Any:
    """The inverse of :func:`lineage.fingerprint.json_safe` for non-finite floats."""
    if isinstance(value, dict):
        if set(value) == {"__float__"} and isinstance(value["__float__"], str):
            return {"nan": math.nan, "inf": math.inf, "-inf": -math.inf}.get(
                value["__float__"], value)
        return {k: _unsafe(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_unsafe(v) for v in value]
    return value


def _decode_numpy(data: bytes) -> Any:
    import numpy as np

    header, _, raw = data.partition(b"\n")
    _tag, dtype, shape = header.decode().split(":", 2)
    return np.frombuffer(raw, dtype=np.dtype(dtype)).reshape(ast.literal_eval(shape)).copy()


def _decode_pandas(data: bytes, info: dict[str, Any]) -> Any:
    import numpy as np
    import pandas as pd

    header_line, _, rest = data.partition(b"\n")
    header = json.loads(header_line[len(b"pandas:"):])
    rows = int(header["shape"][0])
    pos = 0

    def series(dtype_name: str) -> Any:
        nonlocal pos
        try:
            dtype = np.dtype(dtype_name)
        except TypeError:
            dtype = None
        if dtype is not None and not dtype.hasobject and dtype.itemsize > 0:
            end = pos + rows * dtype.itemsize
            values: Any = np.frombuffer(rest[pos:end], dtype=dtype).copy()
        else:
            end = rest.index(b"\n", pos)
            values = json.loads(rest[pos:end])
        pos = end + 1
        return values

    index = series(str(info.get("index", "int64")))
    columns = {}
    for name, dtype_name in zip(header["columns"], header["dtypes"], strict=True):
        values = series(dtype_name)
        try:
            columns[name] = pd.Series(values, dtype=dtype_name)
        except (TypeError, ValueError):
            columns[name] = pd.Series(values)
    frame = pd.DataFrame({k: v.to_numpy() for k, v in columns.items()}, columns=header["columns"])
    frame.index = pd.Index(index)
    for name, dtype_name in zip(header["columns"], header["dtypes"], strict=True):
        if str(frame[name].dtype) != dtype_name:
            with contextlib.suppress(TypeError, ValueError):
                frame[name] = frame[name].astype(dtype_name)
    return frame.iloc[:, 0] if info.get("series") else frame


def decode(kind: str, data: bytes, info: dict[str, Any]) -> Any:
    """In-memory content from the bytes it was fingerprinted from.

    Example:
        >>> decode("json", b'json:{"a":[1,{"__float__":"nan"}]}', {})
        {'a': [1, nan]}
    """
    if kind == "bytes":
        return data
    if kind == "str":
        return data.decode("utf-8")
    if kind == "json":
        return _unsafe(json.loads(data[len(b"json:"):]))
    if kind == "numpy":
        return _decode_numpy(data)
    if kind == "pandas":
        return _decode_pandas(data, info)
    raise ContentError(f"unknown kind of kept content {kind!r}")


def _content(store: Store, art: Artifact, info: dict[str, Any]) -> tuple[bytes, str]:
    key = str(info["key"])
    source = _locate(store, art, info, key)
    data = source.read(key)
    fp = str(art.fingerprint)
    got = fingerprint_content(data, algo=fp.split(":", 1)[0])
    if got != fp:
        raise _corrupt(art, key, source, got, fp)
    return data, source.url


def _value(art: Artifact, info: dict[str, Any], data: bytes) -> Any:
    kind = str(info["kind"])
    try:
        value = decode(kind, data, info)
        same = fingerprint_content(value, algo=str(art.fingerprint).split(":", 1)[0])
    except (ValueError, TypeError, KeyError, IndexError, ImportError, FingerprintError) as exc:
        raise ContentError(
            f"the kept bytes of {_text.label(art)} (artifact:{art.id}) are exact, but cannot be "
            f"turned back into {kind} content ({exc}); check it out to a file with a path",
            ref=f"artifact:{art.id}") from exc
    if same != art.fingerprint:
        raise ContentError(
            f"the kept bytes of {_text.label(art)} (artifact:{art.id}) are exact, but the "
            f"{kind} content rebuilt from them differs; check it out to a file with a path",
            ref=f"artifact:{art.id}")
    return value


# --- the verbs ---------------------------------------------------------------------------


def checkout(store: Store, ref: Ref, path: str | os.PathLike[str] | None = None) -> Checkout:
    """Give back the exact content of a version, verified against its fingerprint.

    Args:
        store: the store.
        ref: the version (``"clf@1"``, an id, ``"artifact:12"``, an Artifact).
        path: where to write it. ``None``: a file or folder goes back to the path it was
            recorded at (replacing what is there), in-memory content is returned in
            ``Checkout.content``. An existing folder given for a file receives the file
            under its recorded name. In-memory content given a path is written as the
            bytes it was fingerprinted from.

    Raises:
        NotKept: the version's content was not kept.
        MissingObject: a kept object is in none of the object stores looked at.
        CorruptObject: a kept object does not match its fingerprint (nothing is replaced).
    """
    art = store.get(ref)
    info = _kept(art)
    kind = str(info["kind"])
    if kind in ("file", "folder"):
        if path is not None:
            target = Path(path).expanduser().absolute()
            if kind == "file" and target.is_dir() and art.path is not None:
                target = target / art.path.name
        elif art.path is not None:
            target = art.path
        else:
            raise ContentError(f"{_text.label(art)} has no local path to restore to; give path=",
                               ref=f"artifact:{art.id}")
        if kind == "file":
            source, size = _restore_file(store, art, info, target)
            return Checkout(art, kind, target, None, str(art.fingerprint), size, 1, source)
        source, size, files = _restore_folder(store, art, info, target)
        return Checkout(art, kind, target, None, str(art.fingerprint), size, files, source)
    if kind not in IN_MEMORY_KINDS:
        raise ContentError(f"unknown kind of kept content {kind!r} for {_text.label(art)}",
                           ref=f"artifact:{art.id}")
    data, source = _content(store, art, info)
    if path is not None:
        target = Path(path).expanduser().absolute()
        _write_bytes(target, data)
        return Checkout(art, kind, target, None, str(art.fingerprint), len(data), 1, source)
    return Checkout(art, kind, None, _value(art, info, data), str(art.fingerprint), len(data), 1,
                    source)


def checkout_bytes(result: Checkout) -> bytes:
    """The bytes in-memory content was fingerprinted from (what ``lineage checkout`` prints
    without ``-o``).

    Example:
        >>> import lineage
        >>> store = lineage.connect(":memory:")
        >>> _ = store.put(lineage.Artifact(content="hé", name="s"))
        >>> checkout_bytes(store.checkout("s"))
        b'h\\xc3\\xa9'
    """
    from lineage.fingerprint import content_bytes

    return b"".join(content_bytes(result.content))


def restore_outputs(
    store: Store, protos: Sequence[pb.Artifact], unchanged: Callable[[Store, pb.Artifact], bool]
) -> bool:
    """For a cache hit: whether every recorded output can be given back as it was.

    Files still matching their fingerprint stay; changed or deleted ones with a kept copy
    are restored (only once all of them are known to be restorable); in-memory outputs
    recorded with a kept copy need it to be present. Returns False (run the step) when
    any output cannot be given back.
    """
    todo: list[tuple[Artifact, dict[str, Any]]] = []
    for proto in protos:
        info = kept_info(proto)
        if not proto.uri:
            if info is not None and not restorable(store, proto):
                return False
            continue
        if unchanged(store, proto):
            continue
        if info is None or info.get("kind") not in ("file", "folder") or not restorable(store, proto):
            return False
        todo.append((store._artifacts_from_protos([proto])[0], info))
    for art, info in todo:
        assert art.path is not None
        try:
            if info["kind"] == "file":
                _restore_file(store, art, info, art.path)
            else:
                _restore_folder(store, art, info, art.path)
        except (ContentError, OSError):
            return False
    return True


def load_contents(store: Store, artifacts: Iterable[Artifact]) -> None:
    """Fill in the content of in-memory artifacts from their kept copies (a cache hit gives
    back what the step returned); those without one keep ``content=None``."""
    for art in artifacts:
        info = kept_info(art)
        if art.uri or info is None or info.get("kind") not in IN_MEMORY_KINDS:
            continue
        try:
            data, _source = _content(store, art, info)
            art.content = _value(art, info, data)
        except (ContentError, OSError):
            continue
        art.has_content = True


def restore_checks(store: Store, checks: Sequence[ArtifactCheck], *, restore: bool = False) -> None:
    """Say, for each CHANGED or MISSING file or folder, whether a kept copy can restore it,
    and with ``restore`` put those copies back (their status becomes ``restored``)."""
    for check in checks:
        if check.status not in ("changed", "missing"):
            continue
        art = check.artifact
        info = kept_info(art)
        if info is None or info.get("kind") not in ("file", "folder") or art.path is None:
            check.detail += "; not kept, cannot be restored"
            continue
        if not restorable(store, art):
            check.detail += "; its kept copy is missing (lineage pull?)"
            continue
        check.restorable = True
        if not restore:
            check.detail += "; a kept copy can restore it (verify --restore)"
            continue
        try:
            if info["kind"] == "file":
                source, _size = _restore_file(store, art, info, art.path)
            else:
                source, _size, _files = _restore_folder(store, art, info, art.path)
        except (ContentError, OSError) as exc:
            check.detail += f"; restoring it failed: {exc}"
            continue
        check.status = "restored"
        check.current = check.recorded
        check.detail = f"restored from the kept copy in {source}"
