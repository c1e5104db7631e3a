"""Object stores (local folders, memory, fsspec) and remotes against a real S3-compatible
server: moto's server mode, started here on 127.0.0.1, reached through s3fs."""

from __future__ import annotations

import hashlib
import os
import shutil
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

import lineage
from lineage.cli import main
from lineage.objects import (
    FsspecObjects,
    LocalObjects,
    MemoryObjects,
    ObjectStore,
    clone_or_copy,
    object_key,
    open_objects,
    parse_key,
)

IN_CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")


# --- object stores ------------------------------------------------------------------------


@pytest.fixture(params=["local", "memory", "fsspec-memory"])
def objects(request: pytest.FixtureRequest, tmp_path: Path) -> ObjectStore:
    if request.param == "local":
        return open_objects(tmp_path / "objects")
    if request.param == "memory":
        return open_objects("memory:")
    return open_objects(f"memory://lineage-test-{uuid.uuid4().hex}/objects")


def test_object_store_round_trip(objects: ObjectStore, tmp_path: Path) -> None:
    src = tmp_path / "src.bin"
    src.write_bytes(b"content" * 1000)
    key = object_key("sha256:" + hashlib.sha256(src.read_bytes()).hexdigest())
    assert not objects.exists(key) and objects.size(key) is None
    objects.put_file(key, src)
    objects.put_bytes("sha256/00/0000000000", [b"a", b"bc"])
    assert objects.exists(key) and objects.size(key) == 7000
    assert objects.read("sha256/00/0000000000") == b"abc"
    out = tmp_path / "out.bin"
    objects.get_file(key, out)
    assert out.read_bytes() == src.read_bytes()
    with pytest.raises(FileExistsError):
        objects.get_file(key, out)
    with pytest.raises(FileNotFoundError):
        objects.get_file("sha256/ff/ffffffff", tmp_path / "none")
    assert sorted((o.key, o.size) for o in objects.list()) == [
        ("sha256/00/0000000000", 3), (key, 7000)]
    objects.delete(key)
    objects.delete(key)  # twice: nothing to do
    assert not objects.exists(key)


def test_open_objects_picks_the_kind_by_url(tmp_path: Path) -> None:
    assert isinstance(open_objects(tmp_path), LocalObjects)
    local = open_objects((tmp_path / "with space").as_uri())
    assert isinstance(local, LocalObjects) and local.root == tmp_path / "with space"
    assert isinstance(open_objects("memory:"), MemoryObjects)
    assert isinstance(open_objects("memory://bucket/x"), FsspecObjects)
    with pytest.raises(lineage.ContentError, match="cannot open the object store"):
        open_objects("nosuchprotocol://x/y")


def test_keys_name_their_digest() -> None:
    fp = "sha256:" + "ab" * 32
    assert parse_key(object_key(fp)) == (fp, False)
    assert parse_key(object_key(fp, manifest=True)) == (fp, True)
    assert parse_key("sha256/.tmp") is None
    with pytest.raises(lineage.ContentError, match="not a fingerprint"):
        object_key("md5:abc")


def test_clone_or_copy_copies_big_and_empty_files(tmp_path: Path) -> None:
    big = tmp_path / "big"
    big.write_bytes(os.urandom(3 << 20))
    assert clone_or_copy(big, tmp_path / "big2") in ("reflink", "copy")
    assert (tmp_path / "big2").read_bytes() == big.read_bytes()
    (tmp_path / "empty").write_bytes(b"")
    clone_or_copy(tmp_path / "empty", tmp_path / "empty2")
    assert (tmp_path / "empty2").read_bytes() == b""
    with pytest.raises(FileExistsError):
        clone_or_copy(big, tmp_path / "big2")
    with pytest.raises(IsADirectoryError):
        clone_or_copy(tmp_path, tmp_path / "dir2")


def test_keeping_into_an_fsspec_store_and_checking_out(tmp_path: Path) -> None:
    url = f"memory://lineage-test-{uuid.uuid4().hex}/objects"
    store = lineage.connect(":memory:", objects=url)
    folder = tmp_path / "data"
    folder.mkdir()
    (folder / "a.txt").write_text("a")
    (folder / "b.txt").write_text("b")
    kept = store.put(lineage.Dataset(folder, name="data")).kept
    assert kept is not None and kept["objects"] == url
    shutil.rmtree(folder)
    store.checkout("data")
    assert (folder / "a.txt").read_text() == "a" and (folder / "b.txt").read_text() == "b"


def test_push_and_pull_between_folders(tmp_path: Path) -> None:
    alice = lineage.connect(tmp_path / "alice" / ".lineage" / "metadata.sqlite")
    (tmp_path / "model.pkl").write_bytes(b"weights")
    model = alice.put(lineage.Model(tmp_path / "model.pkl", name="clf"))
    remote = tmp_path / "remote"
    pushed = alice.push(str(remote))
    assert (pushed.copied, pushed.present, pushed.ok) == (1, 0, True)
    assert alice.push(str(remote)).present == 1  # nothing copied twice
    assert model.kept is not None
    (tmp_path / "alice" / ".lineage" / "objects" / model.kept["key"]).unlink()
    pulled = alice.pull(str(remote), ["clf"])
    assert (pulled.copied, pulled.ok) == (1, True)
    with pytest.raises(lineage.ContentError, match="LINEAGE_REMOTE"):
        alice.push()


# --- a real S3-compatible server --------------------------------------------------------


class MotoServer:
    """moto's S3 server (``python -m moto.server``) on a free port of 127.0.0.1."""

    def __init__(self) -> None:
        import moto.server  # noqa: F401  (fail early when moto[server] is missing)

        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            self.port = int(s.getsockname()[1])
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(self.port)],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"moto.server exited with {self.proc.returncode}")
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=0.5).close()
                return
            except OSError:
                time.sleep(0.1)
        self.stop()
        raise RuntimeError("moto.server did not accept connections in 60 s")

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=30)


@pytest.fixture(scope="session")
def moto_server() -> Iterator[MotoServer]:
    """An S3 server for the session; skipped when it cannot start, except under CI=true."""
    try:
        server = MotoServer()
    except Exception as exc:
        if IN_CI:
            pytest.fail(f"CI=true but moto's S3 server could not be started: {exc}")
        pytest.skip(f"moto's S3 server not available: {exc}")
    yield server
    server.stop()


@pytest.fixture
def bucket(moto_server: MotoServer, monkeypatch: pytest.MonkeyPatch) -> str:
    """A fresh ``s3://`` prefix on the moto server (the bucket is created by the first push)."""
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    monkeypatch.setenv("AWS_ENDPOINT_URL", moto_server.endpoint)
    return f"s3://lineage-{uuid.uuid4().hex[:12]}/team/objects"


def _git(cwd: Path, *args: str) -> None:
    subprocess.run(["git", *args], cwd=cwd, check=True, capture_output=True, timeout=60,
                   env={**os.environ, "GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@example.org",
                        "GIT_COMMITTER_NAME": "t", "GIT_COMMITTER_EMAIL": "t@example.org"})


@pytest.mark.s3
def test_pull_into_a_fresh_clone_against_the_s3_server(
    bucket: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # Alice's project: code and lineage bundles in git, data and .lineage/ ignored.
    project = tmp_path / "project"
    (project / "data").mkdir(parents=True)
    (project / ".gitignore").write_text(".lineage/\ndata/\nout/\n")
    _git(project, "init", "-q")
    alice = lineage.connect(project / ".lineage" / "metadata.sqlite")
    images = project / "data" / "images"
    images.mkdir()
    for i in range(5):
        (images / f"{i}.bin").write_bytes(os.urandom(1000))
    model_file = project / "out" / "model.pkl"
    model_file.parent.mkdir()

    @lineage.step(store=alice, kind="train")
    def train(data: lineage.Dataset, lr: float = 0.1) -> lineage.Model:
        model_file.write_bytes(f"model lr={lr}".encode() + os.urandom(100))
        return lineage.Model(model_file, name="clf")

    with lineage.run("baseline", store=alice):
        train(lineage.Dataset(images, name="images"), lr=0.1)
    v1_bytes = model_file.read_bytes()
    with lineage.run("tuned", store=alice):
        train(lineage.Dataset(images, name="images"), lr=0.01)  # overwrites out/model.pkl

    uri = str(project / ".lineage" / "metadata.sqlite")
    assert main(["--store", uri, "export", "clf@1", "--format", "bundle",
                 "-o", str(project / "clf-v1.bundle.pb")]) == 0
    assert main(["--store", uri, "push", "clf@1", "--remote", bucket]) == 0
    assert "7 object(s) copied" in capsys.readouterr().out  # model, 5 files, manifest
    _git(project, "add", "-A")
    _git(project, "commit", "-q", "-m", "train")

    # Bob: a fresh clone has the code and the bundle, no .lineage and no data.
    clone = tmp_path / "clone"
    _git(tmp_path, "clone", "-q", str(project), str(clone))
    assert not (clone / ".lineage").exists() and not (clone / "data").exists()
    alice_objects = alice.objects.url
    shutil.move(project, tmp_path / "alices-machine")  # Alice's disk is not Bob's
    bob_uri = str(clone / ".lineage" / "metadata.sqlite")
    assert main(["--store", bob_uri, "import", str(clone / "clf-v1.bundle.pb")]) == 0
    with pytest.raises(lineage.MissingObject) as missing:  # records without bytes, until the pull
        lineage.connect(bob_uri).checkout("clf@1", clone / "model.pkl")
    assert alice_objects in str(missing.value) and "lineage pull" in str(missing.value)
    capsys.readouterr()
    assert main(["--store", bob_uri, "pull", "clf", "--remote", bucket, "--json"]) == 0
    assert '"copied": 7' in capsys.readouterr().out

    bob = lineage.connect(bob_uri)
    got = bob.checkout("clf@1", clone / "model.pkl")
    assert (clone / "model.pkl").read_bytes() == v1_bytes
    assert got.fingerprint == alice.get("clf@1").fingerprint and got.source == bob.objects.url
    bob.checkout("images", clone / "images")
    assert lineage.fingerprint(clone / "images") == alice.get("images").fingerprint
    assert main(["--store", bob_uri, "pull", "--remote", bucket]) == 0  # all: already there
    assert "0 object(s) copied" in capsys.readouterr().out


@pytest.mark.s3
def test_object_store_on_the_s3_server_is_shared_directly(bucket: str, tmp_path: Path) -> None:
    alice = lineage.connect(tmp_path / "alice.sqlite", objects=bucket)
    f = tmp_path / "model.pkl"
    f.write_bytes(b"kept in the bucket")
    model = alice.put(lineage.Model(f, name="clf"))
    assert model.kept is not None and model.kept["objects"] == bucket
    alice.put(lineage.Dataset(content={"rows": 3}, name="stats"))
    exported = tmp_path / "clf.bundle.pb"
    alice.export("clf", "bundle", exported)

    bob = lineage.connect(tmp_path / "bob.sqlite", objects=bucket)
    bob.import_bundle(exported)
    got = bob.checkout("clf", tmp_path / "bob-model.pkl")
    assert got.source == bucket and (tmp_path / "bob-model.pkl").read_bytes() == b"kept in the bucket"
    # a store with its own local objects still finds the bytes where the record says
    carol = lineage.connect(tmp_path / "carol" / "metadata.sqlite")
    carol.import_bundle(exported)
    assert carol.checkout("clf", tmp_path / "carol.pkl").source == bucket

    listed = {o.key for o in alice.objects.list()}
    assert model.kept["key"] in listed and len(listed) == 2
    assert alice.du().referenced == alice.du().total


@pytest.mark.s3
def test_pull_refuses_a_damaged_remote_object(bucket: str, tmp_path: Path) -> None:
    store = lineage.connect(tmp_path / "s" / "metadata.sqlite")
    (tmp_path / "d.csv").write_text("1,2\n")
    data = store.put(lineage.Dataset(tmp_path / "d.csv", name="d"))
    assert store.push(bucket).copied == 1 and data.kept is not None
    remote = open_objects(bucket)
    remote.put_bytes(data.kept["key"], [b"tampered"])
    (tmp_path / "s" / "objects" / data.kept["key"]).unlink()
    with pytest.raises(lineage.CorruptObject, match="does not match"):
        store.pull(bucket)
    assert not (tmp_path / "s" / "objects" / data.kept["key"]).exists()
