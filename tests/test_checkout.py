"""Getting data back: kept content, checkout, restores on cache hits and in verify, gc, du."""

from __future__ import annotations

import hashlib
import json
import os
import warnings
from pathlib import Path
from typing import Any

import pytest

import lineage
from lineage.cli import main
from lineage.fingerprint import fingerprint


def sha(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def objects_root(store: lineage.Store) -> Path:
    root = store.objects.local_path("")
    assert root is not None
    return Path(root)


class Counter:
    calls = 0


def trainer(store: lineage.Store, out: Path, counter: Counter, **options: Any) -> Any:
    @lineage.step(store=store, kind="train", cache=True, **options)
    def train(data: lineage.Dataset, C: float = 1.0) -> lineage.Model:
        counter.calls += 1
        rows = Path(data.uri).read_text().split()
        out.write_bytes(f"model C={C} rows={len(rows)}\n".encode() + os.urandom(64))
        return lineage.Model(out, name="clf")

    return train


# --- files ------------------------------------------------------------------------------


def test_overwritten_model_file_checks_out_v1_with_exact_bytes(
    store: lineage.Store, tmp_path: Path
) -> None:
    data = tmp_path / "iris.csv"
    data.write_text("1\n2\n3\n")
    out = tmp_path / "out" / "model.pkl"
    out.parent.mkdir()
    train = trainer(store, out, Counter())
    with lineage.run("baseline", store=store):
        v1 = train(lineage.Dataset(data, name="iris"), C=1.0)
    first = out.read_bytes()
    with lineage.run("tuned", store=store):
        v2 = train(lineage.Dataset(data, name="iris"), C=0.1)
    assert (v1.version, v2.version) == (1, 2)
    assert out.read_bytes() != first  # the second run overwrote model v1's file
    assert store.get("iris").kept is not None  # a path given to a step is kept like a put

    got = store.checkout("clf@1")
    assert got.path == out and out.read_bytes() == first
    assert got.fingerprint == v1.fingerprint == sha(first)
    assert (got.kind, got.size, got.files) == ("file", len(first), 1)
    assert got.to_dict()["verified"] is True and "clf v1" in str(got)

    elsewhere = tmp_path / "v2-copy.pkl"
    assert store.checkout(v2, elsewhere).path == elsewhere
    assert sha(elsewhere.read_bytes()) == v2.fingerprint
    folder = tmp_path / "deploy"
    folder.mkdir()
    assert store.checkout("clf@2", folder).path == folder / "model.pkl"  # into a folder


def test_kept_copy_is_an_independent_file_never_a_link(sqlite_store: lineage.Store, tmp_path: Path) -> None:
    f = tmp_path / "weights.bin"
    f.write_bytes(b"A" * 10_000)
    model = sqlite_store.put(lineage.Model(f, name="w"))
    kept = model.kept
    assert kept is not None and kept["kind"] == "file" and kept["size"] == 10_000
    assert kept["objects"] == (Path(sqlite_store.uri).parent / "objects").as_uri()
    obj = objects_root(sqlite_store) / kept["key"]
    assert obj.exists() and not obj.is_symlink()
    assert obj.stat().st_ino != f.stat().st_ino and obj.stat().st_nlink == 1
    assert not os.access(obj, os.W_OK) or os.geteuid() == 0  # read-only (root writes anyway)
    assert obj.stat().st_mode & 0o222 == 0
    with open(f, "r+b") as handle:  # an in-place write to the original
        handle.write(b"B" * 100)
    assert obj.read_bytes() == b"A" * 10_000
    assert sqlite_store.checkout("w", tmp_path / "back.bin").path is not None
    assert (tmp_path / "back.bin").read_bytes() == b"A" * 10_000


def test_same_content_is_kept_once(sqlite_store: lineage.Store, tmp_path: Path) -> None:
    for name in ("a", "b"):
        (tmp_path / f"{name}.csv").write_text("same\n")
        sqlite_store.put(lineage.Dataset(tmp_path / f"{name}.csv", name=name))
    a, b = sqlite_store.get("a"), sqlite_store.get("b")
    assert a.kept is not None and b.kept is not None and a.kept["key"] == b.kept["key"]
    assert len(list(sqlite_store.objects.list())) == 1


# --- folders ----------------------------------------------------------------------------


def test_folder_dataset_checks_out_exactly_and_shares_unchanged_files(
    store: lineage.Store, tmp_path: Path
) -> None:
    folder = tmp_path / "images"
    (folder / "sub").mkdir(parents=True)
    for i in range(20):
        (folder / f"img{i:02d}.bin").write_bytes(bytes([i]) * (100 + i))
    (folder / "sub" / "labels.txt").write_text("cat\ndog\n")
    v1 = store.put(lineage.Dataset(folder, name="images"))
    assert v1.kept is not None and v1.kept["kind"] == "folder" and v1.kept["files"] == 21
    assert v1.kept["key"].endswith(".dir")

    (folder / "img00.bin").write_bytes(b"changed")
    (folder / "img01.bin").unlink()
    (folder / "new.bin").write_bytes(b"added")
    v2 = store.put(lineage.Dataset(folder, name="images"))
    assert v2.version == 2

    got = store.checkout("images@1")  # back where it was recorded, exactly
    assert got.path == folder and got.files == 21
    assert fingerprint(folder) == v1.fingerprint
    assert not (folder / "new.bin").exists() and (folder / "img01.bin").exists()
    assert (folder / "sub" / "labels.txt").read_text() == "cat\ndog\n"

    copy = tmp_path / "v2"
    store.checkout(v2, copy)
    assert fingerprint(copy) == v2.fingerprint and (copy / "new.bin").read_bytes() == b"added"
    assert not list(tmp_path.glob(".*lineage-tmp*"))  # no temporary left behind

    usage = store.du()
    rows = {r.artifact.version: r for r in usage.rows if r.artifact.name == "images"}
    # 21 files and a manifest each; v2 shares 19 unchanged files with v1: it added only
    # its changed and new file (7 + 5 bytes) and its manifest
    assert rows[1].objects == rows[2].objects == 22
    assert v2.kept is not None
    assert rows[2].new == 7 + 5 + (store.objects.size(v2.kept["key"]) or 0)
    assert usage.referenced == usage.total == sum(r.new for r in usage.rows)


# --- in-memory content ------------------------------------------------------------------


def test_in_memory_datasets_come_back_as_they_were(store: lineage.Store, tmp_path: Path) -> None:
    np = pytest.importorskip("numpy")
    pd = pytest.importorskip("pandas")
    values: dict[str, Any] = {
        "raw": b"\x00\x01binary",
        "text": "héllo\nworld",
        "config": {"lr": 0.1, "layers": [64, 32], "nan": float("nan"), "name": "x"},
        "array": np.arange(12, dtype=np.float32).reshape(3, 4),
        "frame": pd.DataFrame({"a": [1, 2, 3], "b": ["x", "y", "z"], "c": [0.5, 1.5, 2.5]}),
    }
    for name, value in values.items():
        store.put(lineage.Dataset(content=value, name=name))
    assert store.checkout("raw").content == values["raw"]
    assert store.checkout("text").content == values["text"]
    config = store.checkout("config").content
    assert config["layers"] == [64, 32] and config["lr"] == 0.1 and config["nan"] != config["nan"]
    array = store.checkout("array").content
    assert array.dtype == np.float32 and (array == values["array"]).all()
    array[0, 0] = 99  # a writable copy
    frame = store.checkout("frame").content
    pd.testing.assert_frame_equal(frame, values["frame"])

    written = tmp_path / "frame.bytes"  # with a path: the bytes it was fingerprinted from
    got = store.checkout("frame", written)
    assert got.content is None and sha(written.read_bytes()) == store.get("frame").fingerprint


def test_cache_hit_on_in_memory_output_returns_its_content(store: lineage.Store) -> None:
    calls = []

    @lineage.step(store=store, cache=True)
    def summarise(n: int = 3) -> lineage.Dataset:
        calls.append(n)
        return lineage.Dataset({"squares": [i * i for i in range(n)]}, name="summary")

    first = summarise(4)
    again = summarise(4)
    assert calls == [4]
    assert [e.state for e in store.executions(step="summarise")] == ["COMPLETE", "CACHED"]
    assert again.content == first.content == {"squares": [0, 1, 4, 9]}
    assert again.has_content and again.id == first.id


def test_in_memory_output_whose_object_is_gone_runs_the_step_again(
    sqlite_store: lineage.Store,
) -> None:
    calls = []

    @lineage.step(store=sqlite_store, cache=True)
    def make() -> lineage.Artifact:
        calls.append(1)
        return lineage.Artifact(content=b"payload", name="blob")

    kept = make().kept
    assert kept is not None
    (objects_root(sqlite_store) / kept["key"]).unlink()
    assert make().content == b"payload" and len(calls) == 2


# --- caching ----------------------------------------------------------------------------


def test_cache_hit_restores_an_overwritten_output_instead_of_running(
    store: lineage.Store, tmp_path: Path
) -> None:
    data = tmp_path / "iris.csv"
    data.write_text("1\n2\n")
    out = tmp_path / "model.pkl"
    counter = Counter()
    train = trainer(store, out, counter)
    v1 = train(lineage.Dataset(data, name="iris"), C=1.0)
    v1_bytes = out.read_bytes()
    train(lineage.Dataset(data, name="iris"), C=0.1)  # overwrites model.pkl
    assert counter.calls == 2

    again = train(lineage.Dataset(data, name="iris"), C=1.0)
    assert counter.calls == 2  # a hit: the body did not run
    assert out.read_bytes() == v1_bytes and again.id == v1.id
    states = [e.state for e in store.executions(step="train")]
    assert states == ["COMPLETE", "COMPLETE", "CACHED"]

    out.unlink()  # deleted: restored too
    train(lineage.Dataset(data, name="iris"), C=0.1)
    assert counter.calls == 2 and sha(out.read_bytes()) == store.get("clf@2").fingerprint


def test_cache_hit_without_a_kept_copy_runs_the_step(store: lineage.Store, tmp_path: Path) -> None:
    data = tmp_path / "iris.csv"
    data.write_text("1\n")
    out = tmp_path / "model.pkl"
    counter = Counter()
    train = trainer(store, out, counter, keep=False)
    first = train(lineage.Dataset(data, name="iris"))
    assert first.kept is None
    out.write_bytes(b"overwritten")
    train(lineage.Dataset(data, name="iris"))
    assert counter.calls == 2


# --- errors -----------------------------------------------------------------------------


def test_object_deleted_by_hand_is_a_clear_error(sqlite_store: lineage.Store, tmp_path: Path) -> None:
    f = tmp_path / "model.pkl"
    f.write_bytes(b"v1 weights")
    v1 = sqlite_store.put(lineage.Model(f, name="clf"))
    f.write_bytes(b"v2 weights")
    sqlite_store.put(lineage.Model(f, name="clf"))
    assert v1.kept is not None
    (objects_root(sqlite_store) / v1.kept["key"]).unlink()

    with pytest.raises(lineage.MissingObject) as info:
        sqlite_store.checkout("clf@1")
    message = str(info.value)
    assert "Model clf v1" in message and f"artifact:{v1.id}" in message
    assert v1.kept["key"] in message and "lineage pull" in message
    assert info.value.key == v1.kept["key"] and info.value.ref == f"artifact:{v1.id}"
    assert f.read_bytes() == b"v2 weights"  # nothing was touched

    code = main(["--store", sqlite_store.uri, "checkout", "clf@1", "-o", str(tmp_path / "x")])
    assert code == 1 and not (tmp_path / "x").exists()


def test_damaged_object_is_refused_and_nothing_is_replaced(
    sqlite_store: lineage.Store, tmp_path: Path
) -> None:
    f = tmp_path / "model.pkl"
    f.write_bytes(b"v1 weights")
    v1 = sqlite_store.put(lineage.Model(f, name="clf"))
    assert v1.kept is not None
    obj = objects_root(sqlite_store) / v1.kept["key"]
    obj.chmod(0o644)
    obj.write_bytes(b"v1 weightz")
    f.write_bytes(b"current")
    with pytest.raises(lineage.CorruptObject, match="does not match its fingerprint"):
        sqlite_store.checkout(v1)
    assert f.read_bytes() == b"current"
    assert not list(tmp_path.glob(".*lineage-tmp*"))


def test_version_that_was_not_kept_says_why(store: lineage.Store, tmp_path: Path) -> None:
    f = tmp_path / "big.bin"
    f.write_bytes(b"x" * 100)
    a = store.put(lineage.Dataset(f, name="optout", keep=False))
    assert a.kept is None
    with pytest.raises(lineage.NotKept, match="keep=False"):
        store.checkout(a)
    remote = store.put(lineage.Dataset("s3://bucket/data.csv", name="remote",
                                       fingerprint="sha256:" + "0" * 64))
    with pytest.raises(lineage.NotKept, match="remote"):
        store.checkout(remote)


# --- what is kept ---------------------------------------------------------------------


def test_size_limit_and_opt_outs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    f = tmp_path / "data.bin"
    f.write_bytes(b"y" * 2048)
    small = lineage.connect(tmp_path / "a" / "metadata.sqlite", keep="1K")
    with pytest.warns(lineage.KeepWarning, match="over the keep limit"):
        assert small.put(lineage.Dataset(f, name="d")).kept is None
    assert small.put(lineage.Dataset(f, name="forced", keep=True)).kept is not None

    off = lineage.connect(tmp_path / "b" / "metadata.sqlite", keep=False)
    assert off.put(lineage.Dataset(f, name="d")).kept is None
    assert off.put(lineage.Dataset(f, name="e", keep=True)).kept is not None

    @lineage.step(store=off, keep=True)
    def produce() -> lineage.Dataset:
        return lineage.Dataset(f, name="produced")

    assert produce().kept is not None

    monkeypatch.setenv("LINEAGE_KEEP", "0")
    assert lineage.connect(":memory:").put(lineage.Dataset(f, name="d")).kept is None
    monkeypatch.setenv("LINEAGE_KEEP", "all")
    monkeypatch.setenv("LINEAGE_OBJECTS", str(tmp_path / "shared-objects"))
    env = lineage.connect(tmp_path / "c" / "metadata.sqlite")
    kept = env.put(lineage.Dataset(f, name="d")).kept
    assert kept is not None and kept["objects"] == (tmp_path / "shared-objects").as_uri()
    assert (tmp_path / "shared-objects" / kept["key"]).exists()

    with pytest.raises(lineage.ContentError, match="keep="):
        lineage.connect(":memory:", keep="lots")
    with pytest.raises(lineage.StepError, match="keep="):
        lineage.step(keep="yes")(lambda: None)  # type: ignore[call-overload]


def test_step_keep_false_keeps_nothing_it_records(store: lineage.Store, tmp_path: Path) -> None:
    f = tmp_path / "in.csv"
    f.write_text("a\n")

    @lineage.step(store=store, keep=False)
    def copy(data: lineage.Dataset) -> lineage.Dataset:
        out = tmp_path / "out.csv"
        out.write_text(Path(data.uri).read_text())
        return lineage.Dataset(out, name="copied")

    assert copy(lineage.Dataset(f, name="input")).kept is None
    assert store.get("input").kept is None


def test_re_recording_content_keeps_it_again_after_its_object_was_lost(
    sqlite_store: lineage.Store, tmp_path: Path
) -> None:
    f = tmp_path / "d.csv"
    f.write_text("1\n")
    first = sqlite_store.put(lineage.Dataset(f, name="d", keep=False))
    assert first.kept is None
    again = sqlite_store.put(lineage.Dataset(f, name="d"))  # same record, now kept
    assert again.id == first.id and again.kept is not None
    assert sqlite_store.get("d").kept == again.kept
    (objects_root(sqlite_store) / again.kept["key"]).unlink()
    sqlite_store.put(lineage.Dataset(f, name="d"))
    assert (objects_root(sqlite_store) / again.kept["key"]).exists()


# --- verify -----------------------------------------------------------------------------


def test_verify_says_what_a_kept_copy_can_restore_and_restores_it(
    sqlite_store: lineage.Store, tmp_path: Path
) -> None:
    kept_file = tmp_path / "kept.csv"
    kept_file.write_text("1\n")
    lost_file = tmp_path / "lost.csv"
    lost_file.write_text("2\n")
    plain = tmp_path / "plain.csv"
    plain.write_text("3\n")
    sqlite_store.put(lineage.Dataset(kept_file, name="kept"))
    sqlite_store.put(lineage.Dataset(lost_file, name="lost"))
    sqlite_store.put(lineage.Dataset(plain, name="plain", keep=False))
    kept_file.write_text("changed\n")
    lost_file.unlink()
    plain.write_text("changed too\n")

    check = {r.artifact.name: r for r in sqlite_store.verify().results}
    assert (check["kept"].status, check["kept"].restorable) == ("changed", True)
    assert (check["lost"].status, check["lost"].restorable) == ("missing", True)
    assert (check["plain"].status, check["plain"].restorable) == ("changed", False)
    assert "verify --restore" in check["kept"].detail and "not kept" in check["plain"].detail
    assert check["kept"].to_dict()["restorable"] is True

    store_uri = sqlite_store.uri
    assert main(["--store", store_uri, "verify"]) == 1
    assert main(["--store", store_uri, "verify", "kept", "--restore"]) == 0
    assert kept_file.read_text() == "1\n" and not lost_file.exists()
    restored = sqlite_store.verify(restore=True)
    statuses = {r.artifact.name: r.status for r in restored.results}
    assert statuses == {"kept": "ok", "lost": "restored", "plain": "changed"}
    assert lost_file.read_text() == "2\n" and not restored.ok


# --- gc, du and the command line ----------------------------------------------------------


def test_gc_removes_only_unreferenced_objects_and_du_reports(tmp_path: Path) -> None:
    objects = tmp_path / "objects"
    old = lineage.connect(tmp_path / "old.sqlite", objects=objects)
    (tmp_path / "gone.csv").write_text("gone\n")
    old.put(lineage.Dataset(tmp_path / "gone.csv", name="gone"))
    # a new store sharing the object store: the old one's object is now unreferenced
    store = lineage.connect(tmp_path / "new.sqlite", objects=objects)
    (tmp_path / "model.pkl").write_bytes(b"v1")
    store.put(lineage.Model(tmp_path / "model.pkl", name="clf"))
    (tmp_path / "model.pkl").write_bytes(b"v2!")
    store.put(lineage.Model(tmp_path / "model.pkl", name="clf"))
    (objects / "sha256" / ".junk.lineage-tmp-123").write_bytes(b"half")  # a crashed write

    usage = store.du()
    assert [(r.artifact.name, r.artifact.version, r.size) for r in usage.rows] == [
        ("clf", 1, 2), ("clf", 2, 3)]
    assert (usage.count, usage.total, usage.referenced, usage.unreferenced) == (4, 14, 5, 9)

    assert store.gc().removed == []  # everything is younger than min_age
    dry = store.gc(min_age=0)
    assert dry.dry_run and len(dry.removed) == 2 and dry.bytes == 9 and dry.referenced == 2
    assert len(list(store.objects.list())) == 4  # a dry run removes nothing
    done = store.gc(dry_run=False, min_age=0)
    assert len(done.removed) == 2 and not done.dry_run
    assert sorted(o.size for o in store.objects.list()) == [2, 3]
    assert store.checkout("clf@1").size == 2  # referenced objects are all there
    assert store.du().unreferenced == 0


def test_cli_checkout_gc_du(sqlite_store: lineage.Store, tmp_path: Path,
                            capfdbinary: pytest.CaptureFixture[bytes]) -> None:
    f = tmp_path / "model.pkl"
    f.write_bytes(b"weights v1")
    sqlite_store.put(lineage.Model(f, name="clf"))
    sqlite_store.put(lineage.Artifact(content="hello", name="greeting"))
    uri = sqlite_store.uri
    out = tmp_path / "restored.pkl"

    assert main(["--store", uri, "checkout", "clf", "-o", str(out), "--json"]) == 0
    shown = json.loads(capfdbinary.readouterr().out)
    assert shown["path"] == str(out) and shown["verified"] and out.read_bytes() == b"weights v1"
    assert main(["--store", uri, "checkout", "greeting"]) == 0
    assert capfdbinary.readouterr().out == b"hello"
    assert main(["--store", uri, "du"]) == 0
    text = capfdbinary.readouterr().out.decode()
    assert "clf" in text and "greeting" in text and "2 object(s)" in text
    assert main(["--store", uri, "gc", "--json"]) == 0
    assert json.loads(capfdbinary.readouterr().out)["dry_run"] is True
    assert main(["--store", uri, "show", "clf"]) == 0
    assert "kept: file://" in capfdbinary.readouterr().out.decode()
    assert main(["--store", uri, "checkout", "nothing"]) == 1
    assert "no artifact" in capfdbinary.readouterr().err.decode()
    elsewhere = tmp_path / "elsewhere"  # --objects: another object store (empty here)
    assert main(["--store", uri, "--objects", str(elsewhere), "du"]) == 0
    assert f"{elsewhere.as_uri()}: 0 object(s)" in capfdbinary.readouterr().out.decode()
    assert main(["--store", uri, "push", "--remote", str(elsewhere)]) == 0
    assert "2 object(s) copied" in capfdbinary.readouterr().out.decode()
    assert main(["--store", uri, "--objects", str(elsewhere), "checkout", "clf",
                 "-o", str(tmp_path / "again.pkl")]) == 0
    assert (tmp_path / "again.pkl").read_bytes() == b"weights v1"


def test_keeping_warns_and_records_when_the_object_store_cannot_be_written(
    tmp_path: Path,
) -> None:
    blocker = tmp_path / "not-a-folder"
    blocker.write_text("a file where the object store should be")
    store = lineage.connect(tmp_path / "s.sqlite", objects=blocker)
    (tmp_path / "d.csv").write_text("1\n")
    with warnings.catch_warnings(record=True) as seen:
        warnings.simplefilter("always")
        recorded = store.put(lineage.Dataset(tmp_path / "d.csv", name="d"))
    assert recorded.id is not None and recorded.kept is None
    assert any(issubclass(w.category, lineage.KeepWarning) for w in seen)


def test_a_pickled_store_keeps_where_and_what_it_keeps(tmp_path: Path) -> None:
    import pickle

    store = lineage.connect(tmp_path / "s.sqlite", objects=tmp_path / "elsewhere", keep="1K")
    again = pickle.loads(pickle.dumps(store))  # what a spawn process pool does
    assert again.objects.url == (tmp_path / "elsewhere").as_uri()
    (tmp_path / "big.bin").write_bytes(b"z" * 2048)
    with pytest.warns(lineage.KeepWarning):
        assert again.put(lineage.Dataset(tmp_path / "big.bin", name="big")).kept is None
