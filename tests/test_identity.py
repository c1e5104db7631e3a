"""Recording never changes what a step reads; a record keeps the locations its content
was seen at; a path without a name is the record already made of it."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

import lineage


def _total(path: Path | str) -> int:
    return sum(int(x) for x in Path(path).read_text().split())


@pytest.fixture
def total(store: lineage.Store) -> object:
    """A step that reads the file it is given and reports what it read."""
    seen: list[str] = []

    @lineage.step(store=store)
    def total(sales: lineage.Dataset) -> lineage.Metrics:
        seen.append(sales.uri)
        return lineage.Metrics({"total": _total(sales.uri)}, name="total")

    total.seen = seen  # type: ignore[attr-defined]
    return total


def test_a_moved_file_is_read_where_it_is_now(store: lineage.Store, total, tmp_path: Path) -> None:
    old = tmp_path / "a" / "sales.csv"
    old.parent.mkdir()
    old.write_text("10 20\n")
    first = store.put(lineage.Dataset(old, name="sales"))
    new = tmp_path / "b" / "sales.csv"
    new.parent.mkdir()
    shutil.move(old, new)
    result = total(lineage.Dataset(new, name="sales"))
    assert total.seen == [str(new)]  # not the old location, which no longer exists
    assert result.values["total"] == 30
    [call] = store.executions(step="total")
    assert call.inputs == [first.id]
    rec = store.get("sales")
    assert rec.id == first.id
    assert [loc["uri"] for loc in rec.locations] == [str(old), str(new)]


def test_a_copy_edited_after_copying(store: lineage.Store, total, tmp_path: Path) -> None:
    original = tmp_path / "sales.csv"
    original.write_text("10 20\n")
    v1 = store.put(lineage.Dataset(original, name="sales"))
    copy = tmp_path / "clean" / "sales.csv"
    copy.parent.mkdir()
    shutil.copy(original, copy)
    original.write_text("10 20 900\n")  # the original changes after the copy was made
    given = lineage.Dataset(copy, name="sales")
    result = total(given)
    assert total.seen == [str(copy)] and given.uri == str(copy)
    assert result.values["total"] == 30  # what the store says was used: sales v1 (30)
    [call] = store.executions(step="total")
    assert call.inputs == [v1.id] and store.get(v1.id).fingerprint == lineage.fingerprint(copy)


def test_content_returned_to_is_the_current_version(
    store: lineage.Store, total, tmp_path: Path
) -> None:
    f = tmp_path / "sales.csv"
    f.write_text("1 2\n")
    v1 = store.put(lineage.Dataset(f, name="sales"))
    f.write_text("3 4\n")
    v2 = store.put(lineage.Dataset(f, name="sales"))
    f.write_text("1 2\n")  # reverted
    assert total(lineage.Dataset(f, name="sales")).values["total"] == 3
    assert store.get("sales").id == v1.id != v2.id
    assert store.verify("sales").ok  # the current content is what the file holds
    assert [e.name for e in store.impact("sales").executions] == ["total"]


def test_team_members_read_their_own_files(tmp_path: Path) -> None:
    shared = lineage.connect(tmp_path / "team.sqlite")
    homes = {}
    for who in ("alice", "bob"):
        home = tmp_path / who / "project" / "data"
        home.mkdir(parents=True)
        (home / "x.csv").write_text("5 6\n")  # the same bytes in both clones
        homes[who] = home / "x.csv"
    seen: list[str] = []

    @lineage.step(store=shared)
    def count(data: lineage.Dataset) -> lineage.Metrics:
        seen.append(data.uri)
        return lineage.Metrics({"n": _total(data.uri)}, name="n")

    count(homes["alice"])
    os.chmod(homes["alice"], 0)  # bob must never read alice's file
    try:
        count(homes["bob"])
    finally:
        os.chmod(homes["alice"], 0o644)
    assert seen == [str(homes["alice"]), str(homes["bob"])]
    data = shared.artifacts(type="Dataset")
    assert len(data) == 1  # the same content, one record
    assert {loc["uri"] for loc in data[0].locations} == {str(homes["alice"]), str(homes["bob"])}


def test_a_path_without_a_name_is_the_record_already_made_of_it(
    store: lineage.Store, tmp_path: Path
) -> None:
    f = tmp_path / "data" / "iris.csv"
    f.parent.mkdir()
    f.write_text("a,b\n1,2\n")
    iris = store.put(lineage.Dataset(f, name="iris"))  # the README's Quickstart

    @lineage.step(store=store)
    def train(data: lineage.Dataset, lr: float = 0.1) -> lineage.Model:
        return lineage.Model(content=data.uri.encode(), name="clf")

    train(str(f))  # the README's Tracking snippet: a path, no name
    assert [a.name for a in store.artifacts(type="Dataset")] == ["iris"]
    assert [e.name for e in store.impact("iris").executions] == ["train"]
    assert store.put(lineage.Dataset(f)).id == iris.id
    # a name given explicitly is that name
    assert store.put(lineage.Dataset(f, name="iris.csv")).id != iris.id


def test_two_new_versions_of_one_name_in_one_call(store: lineage.Store) -> None:
    @lineage.step(store=store)
    def train(epochs: int = 2) -> list[lineage.Model]:
        return [lineage.Model(content=f"weights {e}".encode(), name="checkpoint")
                for e in range(epochs)]

    first, second = train()
    assert (first.version, second.version) == (1, 2)
    assert second.previous_version == first.id
    assert store.get("checkpoint@2").properties == {} and store.get("checkpoint").id == second.id
    third, fourth = train(epochs=2)  # the same content again: the same records
    assert (third.id, fourth.id) == (first.id, second.id)


def test_verify_uses_whichever_location_still_holds_the_bytes(
    store: lineage.Store, tmp_path: Path
) -> None:
    a, b = tmp_path / "a.csv", tmp_path / "b.csv"
    a.write_text("1 2\n")
    store.put(lineage.Dataset(a, name="d"))
    shutil.copy(a, b)
    store.put(lineage.Dataset(b, name="d"))
    a.write_text("edited\n")
    [check] = store.verify("d").results
    assert check.status == "ok" and str(b) in check.detail
    b.unlink()
    [check] = store.verify("d").results
    assert check.status == "changed"
    a.unlink()
    [check] = store.verify("d").results
    assert check.status == "missing"


def test_the_same_bytes_at_a_new_path_every_run_keep_a_bounded_record(
    sqlite_store: lineage.Store, tmp_path: Path
) -> None:
    """A step writing identical bytes to out/<run>/model.bin each run: one record, its
    first location and the most recent ones, never a list that grows with every run."""
    from lineage._identity import LOCATIONS_MAX

    @lineage.step(store=sqlite_store)
    def export(i: int) -> lineage.Model:
        path = tmp_path / "out" / f"run-{i}" / "model.bin"
        path.parent.mkdir(parents=True)
        path.write_bytes(b"the same weights")
        return lineage.Model(path, name="model")

    runs = LOCATIONS_MAX + 20
    for i in range(runs):
        export(i)
    [model] = sqlite_store.artifacts(name="model")
    uris = [loc["uri"] for loc in model.locations]
    expected = [0, *range(runs - LOCATIONS_MAX + 1, runs)]
    assert uris == [str(tmp_path / "out" / f"run-{i}" / "model.bin") for i in expected]
    assert sqlite_store.get(f"file:{tmp_path / 'out' / 'run-5' / 'model.bin'}").id == model.id


def test_verify_tells_another_host_from_missing(tmp_path: Path) -> None:
    import subprocess
    import sys

    db = tmp_path / "team.sqlite"
    alice = tmp_path / "alice" / "data.csv"
    alice.parent.mkdir()
    alice.write_text("5 6\n")
    script = (
        "import socket; socket.gethostname = lambda: 'alice-laptop'\n"
        "import sys, lineage\n"
        "lineage.connect(sys.argv[1]).put(lineage.Dataset(sys.argv[2], name='data'))\n"
    )
    subprocess.run([sys.executable, "-c", script, str(db), str(alice)], check=True)
    shared = tmp_path / "mnt" / "alice"
    shared.mkdir(parents=True)
    alice.rename(shared / "data.csv")  # not reachable at alice's path from here
    store = lineage.connect(db)
    [check] = store.verify("data").results
    assert check.status == "elsewhere" and "alice-laptop" in check.detail
    v = store.verify("data")
    assert not v.ok and "NOT VERIFIED" in str(v)
    mapped = store.verify("data", map={str(alice.parent): str(shared)})
    assert mapped.ok and mapped.results[0].status == "ok"
    from lineage.cli import main

    assert main(["--store", str(db), "verify", "data"]) == 1
    assert main(["--store", str(db), "verify", "data", "--map",
                 f"{alice.parent}={shared}"]) == 0


def test_a_local_uri_that_does_not_exist_is_missing_without_a_fingerprint(
    store: lineage.Store, tmp_path: Path
) -> None:
    from ml_metadata.proto import metadata_store_pb2 as pb

    tid = store.mlmd.put_artifact_type(pb.ArtifactType(name="Examples"))
    [aid] = store.mlmd.put_artifacts([pb.Artifact(type_id=tid, uri=str(tmp_path / "gone"))])
    [check] = store.verify(aid).results
    assert check.status == "missing"
    assert not store.verify(aid).ok
