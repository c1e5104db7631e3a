"""Object stores: where the bytes of recorded versions are kept, addressed by fingerprint.

MLMD is the store of record: it says which versions exist and (in each artifact's ``kept``
property) under which key their bytes are kept. An object store only holds bytes, one
object per distinct content, under keys derived from fingerprints, in DVC's layout::

    <root>/sha256/ab/cdef0123…        a file, or in-memory content, whose digest is abcdef0123…
    <root>/sha256/12/3456789a….dir    a folder's manifest ("<hex>  <relative/path>" lines);
                                      its digest is the folder's fingerprint, and each line
                                      names the object of one file

so identical files are stored once, whichever folders and versions hold them.

Three kinds of object store, chosen by URL (:func:`open_objects`):

- a local folder (a path or ``file://``): objects are written to a temporary name and
  renamed into place, made read-only, and copied with a copy-on-write clone (``ioctl
  FICLONE``, on Btrfs, XFS, bcachefs, …) where the file system can, else with an in-kernel
  copy (``copy_file_range``); never a hard link or a symbolic link, which a later in-place
  write to the original would change;
- ``memory:``: a throwaway dict, the default of a ``:memory:`` store;
- any other fsspec URL (``s3://bucket/prefix``, ``gs://…``, ``memory://…``), with fsspec
  and its protocol's package (``s3fs`` for S3; ``pip install 'mlmd-lineage[remote]'``).
  fsspec reads options from the environment (``FSSPEC_S3_ENDPOINT_URL`` for an
  S3-compatible server, AWS credentials as boto does).

Example:
    >>> import tempfile
    >>> objects = open_objects(tempfile.mkdtemp())
    >>> key = object_key("sha256:2cf24dba5fb0a30e26e83b2ac5b9e29e1b161e5c1fa7425e73043362938b9824")
    >>> key
    'sha256/2c/f24dba5fb0a30e26e83b2ac5b9e29e1b161e5c1fa7425e73043362938b9824'
    >>> objects.put_bytes(key, [b"hello"]); objects.exists(key), objects.read(key)
    (True, b'hello')
"""

from __future__ import annotations

import contextlib
import errno
import os
import re
import shutil
import stat
import threading
import uuid
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

from lineage.errors import ContentError
from lineage.fingerprint import ALGORITHMS

__all__ = [
    "FsspecObjects",
    "LocalObjects",
    "MemoryObjects",
    "ObjectInfo",
    "ObjectStore",
    "clone_or_copy",
    "human_size",
    "object_key",
    "open_objects",
]

#: Linux ``FICLONE`` (``_IOW(0x94, 9, int)``): clone a whole file, sharing its blocks.
FICLONE = 0x40049409
_KEY = re.compile(r"^(?P<algo>[a-z0-9]+)/(?P<a>[0-9a-f]{2})/(?P<b>[0-9a-f]{6,})(?P<dir>\.dir)?$")
# File systems (by st_dev) where FICLONE was refused: not asked again in this process.
_NO_REFLINK: set[int] = set()
_TMP_MARK = ".lineage-tmp-"


def object_key(fingerprint: str, *, manifest: bool = False) -> str:
    """The key of the object holding content with ``fingerprint`` (``manifest``: a
    folder's manifest, whose digest is the folder's fingerprint).

    Raises:
        ContentError: not a fingerprint ``lineage`` writes (``"<algo>:<hex>"``).

    Example:
        >>> object_key("sha256:00ff" + "0" * 60, manifest=True)[-8:]
        '0000.dir'
    """
    algo, _, hexd = fingerprint.partition(":")
    if algo not in ALGORITHMS or len(hexd) < 8 or not all(c in "0123456789abcdef" for c in hexd):
        raise ContentError(
            f"{fingerprint!r} is not a fingerprint lineage can keep content under "
            f"(expected '<algo>:<hex>' with algo one of {ALGORITHMS})"
        )
    return f"{algo}/{hexd[:2]}/{hexd[2:]}" + (".dir" if manifest else "")


def human_size(n: int) -> str:
    """A byte count for people (``1.5 KiB``).

    Example:
        >>> human_size(0), human_size(1536), human_size(3 << 30)
        ('0 B', '1.5 KiB', '3.0 GiB')
    """
    size = float(n)
    for unit in ("B", "KiB", "MiB", "GiB"):
        if size < 1024:
            return f"{int(size)} B" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1024
    return f"{size:.1f} TiB"


def parse_key(key: str) -> tuple[str, bool] | None:
    """``(fingerprint, is_manifest)`` of an object key, or ``None`` for anything else.

    Example:
        >>> parse_key("sha256/ab/cdef0123.dir")
        ('sha256:abcdef0123', True)
    """
    m = _KEY.match(key)
    if m is None:
        return None
    return f"{m['algo']}:{m['a']}{m['b']}", bool(m["dir"])


class ObjectInfo:
    """One object: its key, size in bytes and modification time (seconds, or ``None``)."""

    __slots__ = ("key", "mtime", "size")

    def __init__(self, key: str, size: int, mtime: float | None) -> None:
        self.key = key
        self.size = size
        self.mtime = mtime

    def __repr__(self) -> str:
        return f"<ObjectInfo {self.key} {self.size} B>"


class ObjectStore:
    """Bytes by key. Subclasses: :class:`LocalObjects`, :class:`MemoryObjects`,
    :class:`FsspecObjects`; open one with :func:`open_objects`."""

    #: The URL the store was opened with (what ``kept`` records).
    url: str = ""

    def exists(self, key: str) -> bool:
        """Whether an object is stored under ``key``."""
        raise NotImplementedError

    def size(self, key: str) -> int | None:
        """The size of an object in bytes, or ``None`` when it is not there."""
        raise NotImplementedError

    def put_file(self, key: str, source: str | os.PathLike[str]) -> str:
        """Store the bytes of a local file under ``key`` (atomically: readers never see a
        partial object); return how (``"reflink"``, ``"copy"`` or ``"upload"``)."""
        raise NotImplementedError

    def put_bytes(self, key: str, chunks: Iterable[bytes]) -> None:
        """Store bytes under ``key``, atomically."""
        raise NotImplementedError

    def get_file(self, key: str, target: str | os.PathLike[str]) -> str:
        """Write the object to the local file ``target`` (created; must not exist);
        return how (``"reflink"``, ``"copy"`` or ``"download"``).

        Raises:
            FileNotFoundError: no object under ``key``.
        """
        raise NotImplementedError

    def read(self, key: str) -> bytes:
        """The bytes of an object.

        Raises:
            FileNotFoundError: no object under ``key``.
        """
        raise NotImplementedError

    def list(self) -> Iterator[ObjectInfo]:
        """Every object (temporary files of unfinished writes included)."""
        raise NotImplementedError

    def delete(self, key: str) -> None:
        """Remove an object (nothing if it is not there)."""
        raise NotImplementedError

    def local_path(self, key: str) -> str | None:
        """The local file holding an object, for stores on the local file system."""
        return None

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.url}>"


# --- local folders ---------------------------------------------------------------------


def _clone(src_fd: int, dst_fd: int, dev: int) -> bool:
    if dev in _NO_REFLINK:
        return False
    import fcntl

    try:
        fcntl.ioctl(dst_fd, FICLONE, src_fd)
        return True
    except OSError as exc:
        if exc.errno in (errno.EOPNOTSUPP, errno.ENOTTY, errno.EXDEV, errno.EINVAL,
                         errno.ENOSYS, errno.EPERM, errno.EBADF):
            _NO_REFLINK.add(dev)
            return False
        raise


def _copy_range(src_fd: int, dst_fd: int, size: int) -> None:
    copied = 0
    try:
        while copied < size:
            n = os.copy_file_range(src_fd, dst_fd, min(size - copied, 1 << 30))
            if n == 0:
                break
            copied += n
    except OSError as exc:
        if exc.errno not in (errno.EXDEV, errno.ENOSYS, errno.EINVAL, errno.EOPNOTSUPP,
                             errno.EBADF, errno.EPERM) or copied:
            raise
    else:
        if copied >= size:
            return
    # a file system without copy_file_range, or a file that grew: plain read/write
    os.lseek(src_fd, copied, os.SEEK_SET)
    os.lseek(dst_fd, copied, os.SEEK_SET)
    with os.fdopen(os.dup(src_fd), "rb") as fin, os.fdopen(os.dup(dst_fd), "wb") as fout:
        shutil.copyfileobj(fin, fout, 1 << 20)


def clone_or_copy(source: str | os.PathLike[str], target: str | os.PathLike[str]) -> str:
    """Write a new file ``target`` with the bytes of ``source``: a copy-on-write clone
    (``ioctl FICLONE``) where the file system allows it, else an in-kernel copy. Never a
    link: a later in-place write to either file leaves the other as it was.

    Returns ``"reflink"`` or ``"copy"``.

    Raises:
        FileExistsError: ``target`` exists.

    Example:
        >>> import tempfile, pathlib
        >>> d = pathlib.Path(tempfile.mkdtemp()); _ = (d / "a").write_bytes(b"abc")
        >>> clone_or_copy(d / "a", d / "b") in ("reflink", "copy"), (d / "b").read_bytes()
        (True, b'abc')
    """
    src_fd = os.open(source, os.O_RDONLY)
    try:
        st = os.fstat(src_fd)
        if stat.S_ISDIR(st.st_mode):
            raise IsADirectoryError(errno.EISDIR, "is a directory", os.fspath(source))
        dst_fd = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
        try:
            if st.st_size and _clone(src_fd, dst_fd, st.st_dev):
                return "reflink"
            if st.st_size:
                _copy_range(src_fd, dst_fd, st.st_size)
            return "copy"
        except BaseException:
            os.close(dst_fd)
            dst_fd = -1
            with contextlib.suppress(OSError):
                os.unlink(target)
            raise
        finally:
            if dst_fd >= 0:
                os.close(dst_fd)
    finally:
        os.close(src_fd)


def _tmp_name(path: str) -> str:
    head, tail = os.path.split(path)
    return os.path.join(head, f".{tail}{_TMP_MARK}{uuid.uuid4().hex[:12]}")


class LocalObjects(ObjectStore):
    """Objects in a local folder, read-only files written by rename.

    Example:
        >>> import tempfile
        >>> LocalObjects(tempfile.mkdtemp()).exists("sha256/00/000000")
        False
    """

    def __init__(self, root: str | os.PathLike[str]) -> None:
        self.root = Path(root).expanduser().absolute()
        self._root = os.fspath(self.root)
        self.url = self.root.as_uri()
        self._dirs: set[str] = set()
        self._lock = threading.Lock()

    def local_path(self, key: str) -> str:
        return os.path.join(self._root, key)

    def _ready_dir(self, path: str) -> None:
        folder = os.path.dirname(path)
        if folder not in self._dirs:
            os.makedirs(folder, exist_ok=True)
            with self._lock:
                self._dirs.add(folder)

    def exists(self, key: str) -> bool:
        return os.path.exists(os.path.join(self._root, key))

    def size(self, key: str) -> int | None:
        try:
            return os.stat(os.path.join(self._root, key)).st_size
        except OSError:
            return None

    def _publish(self, tmp: str, path: str) -> None:
        os.chmod(tmp, 0o444)  # read-only, as DVC's cache: an object is never written to
        os.replace(tmp, path)

    def put_file(self, key: str, source: str | os.PathLike[str]) -> str:
        path = os.path.join(self._root, key)
        self._ready_dir(path)
        tmp = _tmp_name(path)
        try:
            how = clone_or_copy(source, tmp)
        except FileNotFoundError:
            if not os.path.isdir(os.path.dirname(path)):  # removed by hand meanwhile
                with self._lock:
                    self._dirs.discard(os.path.dirname(path))
                self._ready_dir(path)
                how = clone_or_copy(source, tmp)
            else:
                raise
        self._publish(tmp, path)
        return how

    def put_bytes(self, key: str, chunks: Iterable[bytes]) -> None:
        path = os.path.join(self._root, key)
        self._ready_dir(path)
        tmp = _tmp_name(path)
        try:
            with open(tmp, "xb") as f:
                for chunk in chunks:
                    f.write(chunk)
            self._publish(tmp, path)
        except BaseException:
            with contextlib.suppress(OSError):
                os.unlink(tmp)
            raise

    def get_file(self, key: str, target: str | os.PathLike[str]) -> str:
        return clone_or_copy(os.path.join(self._root, key), target)

    def read(self, key: str) -> bytes:
        with open(os.path.join(self._root, key), "rb") as f:
            return f.read()

    def list(self) -> Iterator[ObjectInfo]:
        if not self.root.is_dir():
            return
        for dirpath, _dirs, files in os.walk(self._root):
            for name in files:
                full = os.path.join(dirpath, name)
                try:
                    st = os.stat(full)
                except OSError:
                    continue
                rel = os.path.relpath(full, self._root).replace(os.sep, "/")
                # ctime: when it was kept (a kept object may carry its source's mtime)
                yield ObjectInfo(rel, st.st_size, max(st.st_mtime, st.st_ctime))

    def delete(self, key: str) -> None:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(os.path.join(self._root, key))


# --- in process ------------------------------------------------------------------------


class MemoryObjects(ObjectStore):
    """Objects in a dict: the throwaway object store of a ``:memory:`` store.

    Example:
        >>> m = MemoryObjects(); m.put_bytes("k", [b"a", b"b"]); m.read("k")
        b'ab'
    """

    def __init__(self) -> None:
        self.url = "memory:"
        self._data: dict[str, bytes] = {}

    def exists(self, key: str) -> bool:
        return key in self._data

    def size(self, key: str) -> int | None:
        data = self._data.get(key)
        return None if data is None else len(data)

    def put_file(self, key: str, source: str | os.PathLike[str]) -> str:
        with open(source, "rb") as f:
            self._data[key] = f.read()
        return "copy"

    def put_bytes(self, key: str, chunks: Iterable[bytes]) -> None:
        self._data[key] = b"".join(chunks)

    def get_file(self, key: str, target: str | os.PathLike[str]) -> str:
        data = self.read(key)
        with open(target, "xb") as f:
            f.write(data)
        return "copy"

    def read(self, key: str) -> bytes:
        try:
            return self._data[key]
        except KeyError:
            raise FileNotFoundError(errno.ENOENT, "no such object", key) from None

    def list(self) -> Iterator[ObjectInfo]:
        for key, data in list(self._data.items()):
            yield ObjectInfo(key, len(data), None)

    def delete(self, key: str) -> None:
        self._data.pop(key, None)


# --- fsspec ----------------------------------------------------------------------------


class FsspecObjects(ObjectStore):
    """Objects under an fsspec URL (``s3://bucket/prefix``, ``gs://…``, ``memory://…``).

    Example:
        >>> o = FsspecObjects("memory://lineage-doctest/objects")
        >>> o.put_bytes("sha256/00/00000000", [b"x"]); o.size("sha256/00/00000000")
        1
    """

    def __init__(self, url: str, **options: Any) -> None:
        try:
            import fsspec
        except ImportError as exc:  # pragma: no cover - depends on the environment
            raise ContentError(
                f"the object store {url!r} needs fsspec (and s3fs for s3://): "
                "pip install 'mlmd-lineage[remote]'"
            ) from exc
        try:
            self.fs, root = fsspec.core.url_to_fs(url, **options)
        except (ImportError, ValueError) as exc:
            raise ContentError(
                f"cannot open the object store {url!r}: {exc} (s3:// needs s3fs: "
                "pip install 'mlmd-lineage[remote]')"
            ) from exc
        self.root = str(root).rstrip("/")
        self.url = url.rstrip("/")
        self._made = False

    def _path(self, key: str) -> str:
        return f"{self.root}/{key}"

    def _ready(self) -> None:
        if not self._made:
            # s3fs: creates the bucket if absent; a prefix needs no folder, and a refused
            # write says why below
            with contextlib.suppress(OSError, ValueError, NotImplementedError):
                self.fs.makedirs(self.root, exist_ok=True)
            self._made = True

    def exists(self, key: str) -> bool:
        return bool(self.fs.exists(self._path(key)))

    def size(self, key: str) -> int | None:
        try:
            return int(self.fs.info(self._path(key))["size"])
        except FileNotFoundError:
            return None

    def put_file(self, key: str, source: str | os.PathLike[str]) -> str:
        self._ready()
        self.fs.put_file(os.fspath(source), self._path(key))
        return "upload"

    def put_bytes(self, key: str, chunks: Iterable[bytes]) -> None:
        self._ready()
        self.fs.pipe_file(self._path(key), b"".join(chunks))

    def get_file(self, key: str, target: str | os.PathLike[str]) -> str:
        if os.path.exists(target):
            raise FileExistsError(errno.EEXIST, "exists", os.fspath(target))
        if not self.fs.exists(self._path(key)):
            raise FileNotFoundError(errno.ENOENT, "no such object", key)
        self.fs.get_file(self._path(key), os.fspath(target))
        return "download"

    def read(self, key: str) -> bytes:
        return bytes(self.fs.cat_file(self._path(key)))

    def list(self) -> Iterator[ObjectInfo]:
        try:
            found = self.fs.find(self.root, detail=True)
        except FileNotFoundError:
            return
        prefix = self.root + "/"
        for path, info in found.items():
            if info.get("type", "file") != "file" or not path.startswith(prefix):
                continue
            mtime = info.get("mtime") or info.get("LastModified") or info.get("created")
            if hasattr(mtime, "timestamp"):
                mtime = mtime.timestamp()
            yield ObjectInfo(path[len(prefix):], int(info.get("size") or 0),
                             float(mtime) if isinstance(mtime, (int, float)) else None)

    def delete(self, key: str) -> None:
        with contextlib.suppress(FileNotFoundError):
            self.fs.rm_file(self._path(key))


def open_objects(url: str | os.PathLike[str], **options: Any) -> ObjectStore:
    """Open an object store: a local folder (a path or ``file://``), ``memory:`` (in
    process), or any other fsspec URL.

    Example:
        >>> open_objects("memory:")
        <MemoryObjects memory:>
    """
    text = os.fspath(url)
    if text == "memory:":
        return MemoryObjects()
    if text.startswith("file://"):
        from urllib.parse import unquote, urlparse

        return LocalObjects(unquote(urlparse(text).path))
    if "://" in text:
        return FsspecObjects(text, **options)
    return LocalObjects(text)
