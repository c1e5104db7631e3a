"""Content fingerprints: files, folders, in-memory data, the cache, the auditor's check."""

from __future__ import annotations

import hashlib
import os
import shutil
import socket
import sqlite3
import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest

import lineage
from lineage.fingerprint import FingerprintCache, fingerprint, fingerprint_content, manifest

OLD_NS = 1_600_000_000 * 10**9  # long ago: outside the "racily clean" window


def _sha256sum(path: Path) -> str:
    out = subprocess.run(["sha256sum", str(path)], check=True, capture_output=True, text=True)
    return out.stdout.split()[0]


def _documented_folder_pipeline(folder: Path) -> str:
    """The auditor's check from lineage/fingerprint.py and the README."""
    cmd = ("find . -type f -printf '%P\\0' | LC_ALL=C sort -z | xargs -0 sha256sum "
           "| sha256sum")
    out = subprocess.run(cmd, shell=True, cwd=folder, check=True, capture_output=True, text=True)
    return out.stdout.split()[0]


def _make_tree(root: Path, files: dict[str, bytes], order: list[str] | None = None) -> Path:
    for rel in order or list(files):
        p = root / rel
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_bytes(files[rel])
    return root


TREE = {
    "b.csv": b"x,y\n1,2\n",
    "a.txt": b"hello\n",
    "sub/z.bin": bytes(range(256)) * 10,
    "sub/deeper/A.txt": b"upper case sorts first\n",
    "sub/deeper/a b.txt": b"space in name\n",
    "empty": b"",
}


# --- files ---------------------------------------------------------------------------------


@pytest.mark.parametrize("data", [b"", b"hi", os.urandom(3 << 20)], ids=["empty", "small", "3MiB"])
def test_file_sha256_equals_sha256sum(tmp_path: Path, data: bytes) -> None:
    f = tmp_path / "f.bin"
    f.write_bytes(data)
    assert fingerprint(f) == "sha256:" + _sha256sum(f)
    assert fingerprint(f) == "sha256:" + hashlib.sha256(data).hexdigest()


def test_recorded_fingerprint_is_checkable_with_sha256sum(
    store: lineage.Store, write_file: Callable[..., Path]
) -> None:
    f = write_file("iris.csv", "a,b\n1,2\n")
    d = store.put(lineage.Dataset(f, name="iris"))
    algo, hexdigest = (d.fingerprint or "").split(":")
    assert (algo, hexdigest) == ("sha256", _sha256sum(f))


def test_missing_path_is_a_fingerprint_error(tmp_path: Path) -> None:
    with pytest.raises(lineage.FingerprintError, match="no such file") as info:
        fingerprint(tmp_path / "nope")
    assert info.value.path == tmp_path / "nope"


def test_unknown_algorithm_is_refused(tmp_path: Path) -> None:
    with pytest.raises(lineage.FingerprintError, match="unknown fingerprint algorithm"):
        fingerprint(tmp_path, algo="md5")


# --- folders -------------------------------------------------------------------------------


def test_folder_digest_equals_the_documented_sha256sum_pipeline(tmp_path: Path) -> None:
    folder = _make_tree(tmp_path / "data", TREE)
    assert fingerprint(folder) == "sha256:" + _documented_folder_pipeline(folder)
    lines = manifest(folder).splitlines()
    assert [line.split("  ", 1)[1] for line in lines] == sorted(TREE, key=os.fsencode)


def test_folder_digest_ignores_mtimes_creation_order_and_location(tmp_path: Path) -> None:
    a = _make_tree(tmp_path / "one" / "data", TREE)
    b = _make_tree(tmp_path / "elsewhere" / "deep" / "copy", TREE, order=sorted(TREE, reverse=True))
    for i, p in enumerate(sorted(b.rglob("*"))):
        os.utime(p, ns=(OLD_NS + i * 10**9, OLD_NS + i * 10**9))
    assert fingerprint(a) == fingerprint(b)
    moved = tmp_path / "moved"
    shutil.move(str(a), moved)
    assert fingerprint(moved) == fingerprint(b)


def test_folder_digest_changes_with_content_and_names(tmp_path: Path) -> None:
    base = fingerprint(_make_tree(tmp_path / "a", TREE))
    assert fingerprint(_make_tree(tmp_path / "b", {**TREE, "a.txt": b"hellO\n"})) != base
    renamed = {("c.txt" if k == "a.txt" else k): v for k, v in TREE.items()}
    assert fingerprint(_make_tree(tmp_path / "c", renamed)) != base
    assert fingerprint(_make_tree(tmp_path / "d", {**TREE, "new": b""})) != base


def test_empty_folder_has_the_digest_of_an_empty_manifest(tmp_path: Path) -> None:
    (tmp_path / "e").mkdir()
    assert fingerprint(tmp_path / "e") == "sha256:" + hashlib.sha256(b"").hexdigest()


# --- in-memory content ---------------------------------------------------------------------


def test_bytes_and_str_are_digested_as_their_bytes() -> None:
    assert fingerprint_content(b"abc") == "sha256:" + hashlib.sha256(b"abc").hexdigest()
    assert fingerprint_content("é") == "sha256:" + hashlib.sha256("é".encode()).hexdigest()
    assert fingerprint_content(bytearray(b"abc")) == fingerprint_content(b"abc")


def test_dicts_are_canonical_json() -> None:
    assert fingerprint_content({"b": 1, "a": [1, 2]}) == fingerprint_content({"a": [1, 2], "b": 1})
    assert fingerprint_content({"a": 1}) != fingerprint_content({"a": 2})
    assert fingerprint_content({"a": 1.0}) != fingerprint_content({"a": "1.0"})
    with pytest.raises(lineage.FingerprintError, match="inside a mapping"):
        fingerprint_content({"a": object()})
    with pytest.raises(lineage.FingerprintError, match="cannot fingerprint a object"):
        fingerprint_content(object())


def test_numpy_arrays_by_dtype_shape_and_bytes() -> None:
    np = pytest.importorskip("numpy")
    a = np.arange(12, dtype=np.int64).reshape(3, 4)
    assert fingerprint_content(a) == fingerprint_content(a.copy())
    assert fingerprint_content(a) == fingerprint_content(np.asfortranarray(a))
    assert fingerprint_content(a) != fingerprint_content(a.reshape(4, 3))
    assert fingerprint_content(a) != fingerprint_content(a.astype(np.int32))
    b = a.copy()
    b[0, 0] = 99
    assert fingerprint_content(a) != fingerprint_content(b)
    with pytest.raises(lineage.FingerprintError, match="without pickle"):
        fingerprint_content(np.array([object()], dtype=object))


def test_pandas_frames_by_columns_dtypes_index_and_values() -> None:
    pd = pytest.importorskip("pandas")
    df = pd.DataFrame({"a": [1, 2, 3], "b": ["x", "y", None]})
    assert fingerprint_content(df) == fingerprint_content(df.copy())
    assert fingerprint_content(df) != fingerprint_content(df.rename(columns={"a": "c"}))
    assert fingerprint_content(df) != fingerprint_content(df.astype({"a": "float64"}))
    assert fingerprint_content(df) != fingerprint_content(df.set_index(pd.Index([3, 4, 5])))
    changed = df.copy()
    changed.loc[1, "b"] = "Y"
    assert fingerprint_content(df) != fingerprint_content(changed)
    assert fingerprint_content(df["a"]) == fingerprint_content(df[["a"]])


def test_in_memory_dataset_is_versioned_by_content(store: lineage.Store) -> None:
    np = pytest.importorskip("numpy")
    a = store.put(lineage.Dataset(np.zeros(4), name="arr"))
    b = store.put(lineage.Dataset(np.zeros(4), name="arr"))
    c = store.put(lineage.Dataset(np.ones(4), name="arr"))
    assert a.id == b.id and c.version == 2 and a.uri == ""


# --- blake3 --------------------------------------------------------------------------------


def test_blake3_option_for_files_folders_and_content(tmp_path: Path) -> None:
    blake3 = pytest.importorskip("blake3")
    data = os.urandom(1 << 20) + b"tail"
    f = tmp_path / "f.bin"
    f.write_bytes(data)
    assert fingerprint(f, algo="blake3") == "blake3:" + blake3.blake3(data).hexdigest()
    assert fingerprint_content(data, algo="blake3") == fingerprint(f, algo="blake3")
    folder = _make_tree(tmp_path / "d", TREE)
    text = manifest(folder, algo="blake3").encode()
    assert fingerprint(folder, algo="blake3") == "blake3:" + blake3.blake3(text).hexdigest()
    assert fingerprint(f, algo="blake3") != fingerprint(f)


def test_blake3_of_a_file_with_a_progress_bar_is_the_same(tmp_path: Path) -> None:
    pytest.importorskip("blake3")
    f = tmp_path / "f.bin"
    f.write_bytes(os.urandom(3 << 20))
    assert fingerprint(f, algo="blake3", progress=True) == fingerprint(f, algo="blake3")


# --- the cache of unchanged files ----------------------------------------------------------


def _old_file(path: Path, data: bytes) -> os.stat_result:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    os.utime(path, ns=(OLD_NS, OLD_NS))
    return path.stat()


def _rewrite_in_place_keeping_size_and_mtime(path: Path, data: bytes) -> None:
    st = path.stat()
    with open(path, "r+b") as f:  # same inode
        f.write(data)
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns))
    after = path.stat()
    assert (after.st_size, after.st_mtime_ns, after.st_ino) == (
        st.st_size, st.st_mtime_ns, st.st_ino)


def test_cache_lives_in_the_store_folder_and_skips_unchanged_files(tmp_path: Path) -> None:
    store = lineage.connect(tmp_path / "store" / "metadata.sqlite")
    f = tmp_path / "data" / "big.bin"
    _old_file(f, b"A" * 1000)
    first = store.put(lineage.Dataset(f, name="big"))
    cache_file = tmp_path / "store" / "fingerprints.sqlite"
    assert cache_file.is_file()
    rows = sqlite3.connect(cache_file).execute("SELECT path, size, digest FROM digests").fetchall()
    assert rows == [(str(f.resolve()), 1000, (first.fingerprint or "").split(":")[1])]

    # Change the bytes but keep size, mtime and inode, as DVC documents: the cache is
    # trusted, so the stale digest comes back. This proves the file was not read again.
    _rewrite_in_place_keeping_size_and_mtime(f, b"B" * 1000)
    assert store.fingerprint_of(lineage.Dataset(f, name="big")) == first.fingerprint
    assert fingerprint(f) == "sha256:" + hashlib.sha256(b"B" * 1000).hexdigest()

    # Any change of the stat key (here the mtime) makes it hash again.
    os.utime(f, ns=(OLD_NS + 10**9, OLD_NS + 10**9))
    second = store.put(lineage.Dataset(f, name="big"))
    assert second.version == 2 and second.fingerprint == fingerprint(f)


def test_folder_put_records_what_fingerprint_says_and_caches_each_file_by_its_real_path(
    tmp_path: Path,
) -> None:
    """A folder's first put (keeping on) records exactly ``lineage.fingerprint`` of the
    folder, its manifest and its location; the digests it caches are keyed by each file's
    resolved path, as ``FingerprintCache.get`` of that file looks them up (a file under a
    subfolder, a link to a file outside, the folder reached through a link)."""
    outside = _old_file(tmp_path / "elsewhere" / "target.txt", b"outside\n")
    real = _make_tree(tmp_path / "real", TREE)
    (real / "link-to-file").symlink_to(tmp_path / "elsewhere" / "target.txt")
    (real / "link-to-dir").symlink_to(real / "sub", target_is_directory=True)
    for f in [p for p in real.rglob("*") if p.is_file() and not p.is_symlink()]:
        os.utime(f, ns=(OLD_NS, OLD_NS))
    via = tmp_path / "via"
    via.symlink_to(real, target_is_directory=True)  # the folder given through a link

    expected = fingerprint(via)
    assert expected == fingerprint(real)
    text = manifest(via)
    assert [line.split("  ", 1)[1] for line in text.splitlines()] == [
        "a.txt", "b.csv", "empty", "link-to-file", "sub/deeper/A.txt", "sub/deeper/a b.txt",
        "sub/z.bin"]

    store = lineage.connect(tmp_path / "store" / "metadata.sqlite")
    put = store.put(lineage.Dataset(via, name="tree"))
    assert (put.fingerprint, put.version, put.name) == (expected, 1, "tree")
    assert put.locations == [{"uri": str(via), "host": socket.gethostname()}]
    got = store.get("tree")
    assert (got.id, got.fingerprint, got.uri) == (put.id, expected, str(via))
    kept = got.kept
    assert kept is not None
    objects = lineage.keeping.objects_of(store)
    assert (kept["kind"], kept["files"], kept["size"]) == (
        "folder", 7, sum(len(v) for v in TREE.values()) + len(b"outside\n"))
    assert objects.read(kept["key"]) == text.encode()

    # The cached digests are the files' own, under their resolved paths.
    cache = store._fingerprints()
    hexes = dict((rel, hexd) for hexd, rel in
                 (line.split("  ", 1) for line in text.splitlines()))
    for rel, hexd in hexes.items():
        assert cache.get(via / rel, "sha256") == hexd, rel
    rows = dict(sqlite3.connect(tmp_path / "store" / "fingerprints.sqlite").execute(
        "SELECT path, digest FROM digests").fetchall())
    assert rows[str(tmp_path / "elsewhere" / "target.txt")] == hexes["link-to-file"]
    assert rows[str(real / "sub" / "deeper" / "a b.txt")] == hexes["sub/deeper/a b.txt"]
    assert not any(str(via) in path for path in rows)
    assert outside.st_ino == os.stat(real / "link-to-file").st_ino

    # Unchanged files come from the cache: rewritten in place (same size, mtime, inode),
    # the folder still has its recorded fingerprint through the store, not without it.
    _rewrite_in_place_keeping_size_and_mtime(real / "sub" / "z.bin", bytes(2560))
    assert store.fingerprint_of(lineage.Dataset(real, name="tree")) == expected
    assert fingerprint(real) != expected
    assert store.put(lineage.Dataset(via, name="tree")).id == put.id


def test_recently_modified_files_are_not_cached(tmp_path: Path) -> None:
    cache = FingerprintCache(tmp_path / "c.sqlite")
    f = tmp_path / "fresh.txt"
    f.write_bytes(b"new")  # mtime is now: could still change within the same tick
    fingerprint(f, cache=cache)
    assert cache.get(f, "sha256") is None
    os.utime(f, ns=(OLD_NS, OLD_NS))
    fingerprint(f, cache=cache)
    assert cache.get(f, "sha256") == hashlib.sha256(b"new").hexdigest()


def test_cache_is_per_algorithm(tmp_path: Path) -> None:
    pytest.importorskip("blake3")
    cache = FingerprintCache(tmp_path / "c.sqlite")
    f = tmp_path / "f.txt"
    _old_file(f, b"data")
    s = fingerprint(f, cache=cache)
    b = fingerprint(f, algo="blake3", cache=cache)
    assert s.startswith("sha256:") and b.startswith("blake3:")
    assert fingerprint(f, cache=cache) == s and fingerprint(f, algo="blake3", cache=cache) == b


def test_corrupt_cache_is_ignored(tmp_path: Path) -> None:
    folder = tmp_path / "store"
    folder.mkdir()
    (folder / "fingerprints.sqlite").write_bytes(b"this is not a database" * 100)
    store = lineage.connect(folder / "metadata.sqlite")
    f = tmp_path / "d.csv"
    _old_file(f, b"1,2\n")
    d = store.put(lineage.Dataset(f, name="d"))
    assert d.fingerprint == "sha256:" + _sha256sum(f)
    assert store.put(lineage.Dataset(f, name="d")).id == d.id


def test_cache_with_a_wrong_schema_is_ignored(tmp_path: Path) -> None:
    path = tmp_path / "c.sqlite"
    db = sqlite3.connect(path)
    db.execute("CREATE TABLE digests (x TEXT)")
    db.commit()
    db.close()
    f = tmp_path / "f"
    _old_file(f, b"x")
    cache = FingerprintCache(path)
    assert fingerprint(f, cache=cache) == "sha256:" + hashlib.sha256(b"x").hexdigest()


def test_memory_store_keeps_its_cache_in_the_user_cache_folder(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    store = lineage.connect(":memory:")
    f = tmp_path / "f"
    _old_file(f, b"x")
    store.put(lineage.Dataset(f, name="f"))
    assert (tmp_path / "xdg" / "lineage" / "fingerprints.sqlite").is_file()


# --- progress ------------------------------------------------------------------------------


def test_progress_bar_when_asked(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    f = tmp_path / "big.bin"
    f.write_bytes(os.urandom(3 << 20))
    assert fingerprint(f, progress=True) == "sha256:" + _sha256sum(f)
    err = capsys.readouterr().err
    assert "big.bin" in err and "B" in err


def test_no_progress_bar_when_not_a_terminal(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    f = tmp_path / "big.bin"
    f.write_bytes(os.urandom(1 << 20))
    fingerprint(f)
    fingerprint(f, progress=False)
    assert capsys.readouterr().err == ""


def test_progress_bar_by_default_for_large_files_on_a_terminal(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    import sys

    fp = sys.modules["lineage.fingerprint"]  # `lineage.fingerprint` is also the function
    f = tmp_path / "large.bin"
    f.write_bytes(os.urandom(2 << 20))
    monkeypatch.setattr(fp, "_PROGRESS_MIN_BYTES", 1 << 20)
    monkeypatch.setattr(sys.stderr, "isatty", lambda: True)
    fingerprint(f)
    assert "large.bin" in capsys.readouterr().err
    small = tmp_path / "small.bin"
    small.write_bytes(b"x" * 1000)
    fingerprint(small)
    assert capsys.readouterr().err == ""
