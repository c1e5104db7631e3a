"""Hostile input to fingerprints: FIFOs and devices, files rewritten while they are read,
unreadable subfolders, and folders whose digest must match the README's sha256sum recipe
(symbolic links, odd file names)."""

from __future__ import annotations

import hashlib
import os
import re
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

import lineage
from lineage.cli import main
from lineage.fingerprint import fingerprint, manifest

ROOT = Path(__file__).resolve().parents[1]
IS_ROOT = os.geteuid() == 0


def _in_child(code: str, *, unprivileged: bool = False, timeout: float = 60
              ) -> subprocess.CompletedProcess[str]:
    """Run Python ``code`` in a child process (a hang there fails the test instead of the
    whole run); ``unprivileged``: as root, without the capabilities that let root ignore
    file permissions."""
    cmd = [sys.executable, "-c", textwrap.dedent(code)]
    if unprivileged and IS_ROOT:
        drop = "-dac_override,-dac_read_search"
        cmd = ["setpriv", f"--inh-caps={drop}", f"--bounding-set={drop}", "--", *cmd]
    try:
        return subprocess.run(cmd, capture_output=True, text=True, timeout=timeout,
                              env={**os.environ, "PYTHONPATH": str(ROOT)})
    except subprocess.TimeoutExpired:
        pytest.fail(f"the child hung for {timeout:g} s: {code!r}")


def test_a_fifo_is_refused_at_once_alone_and_inside_a_folder(tmp_path: Path) -> None:
    fifo = tmp_path / "pipe"
    os.mkfifo(fifo)
    folder = tmp_path / "data"
    folder.mkdir()
    (folder / "a.csv").write_text("a\n")
    os.mkfifo(folder / "queue")
    done = _in_child(f"""
        import lineage
        for target in ({str(fifo)!r}, {str(folder)!r}):
            try:
                lineage.fingerprint(target)
            except lineage.FingerprintError as exc:
                print("refused:", exc)
        store = lineage.connect(":memory:")
        try:
            store.put(lineage.Dataset({str(fifo)!r}, name="pipe"))
        except lineage.FingerprintError as exc:
            print("put refused:", exc)
    """)
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert len(lines) == 3, done.stdout
    assert "a FIFO" in lines[0] and "pipe" in lines[0]
    assert "a FIFO" in lines[1] and "queue" in lines[1]
    assert lines[2].startswith("put refused:")


@pytest.mark.parametrize("device", ["/dev/zero", "/dev/null", "/dev/urandom"])
def test_devices_are_refused_at_once(device: str) -> None:
    done = _in_child(f"""
        import lineage
        try:
            lineage.fingerprint({device!r})
        except lineage.FingerprintError as exc:
            print("refused:", exc)
    """)
    assert "refused:" in done.stdout and "character device" in done.stdout, done.stderr


def test_a_socket_is_refused(tmp_path: Path) -> None:
    import socket

    path = tmp_path / "sock"
    with socket.socket(socket.AF_UNIX) as server:
        server.bind(str(path))
        with pytest.raises(lineage.FingerprintError, match="a socket"):
            fingerprint(path)


def test_a_recorded_file_replaced_by_a_fifo_is_unreadable_not_a_hang(tmp_path: Path) -> None:
    data = tmp_path / "d.csv"
    data.write_text("a\n")
    store_path = tmp_path / "meta.sqlite"
    lineage.connect(store_path).put(lineage.Dataset(data, name="d"))
    data.unlink()
    os.mkfifo(data)
    done = _in_child(f"""
        import lineage
        print(lineage.connect({str(store_path)!r}, read_only=True).verify().counts)
    """)
    assert done.returncode == 0, done.stderr
    assert "unreadable" in done.stdout and "'ok'" not in done.stdout


def test_a_file_rewritten_while_it_is_read_never_gets_a_mixed_digest(tmp_path: Path) -> None:
    """A writer keeps flipping the first and last pages of a 32 MiB file between two
    versions; every digest must be one version's, or the read must be refused."""
    size, page = 32 << 20, 4096
    path = tmp_path / "big.bin"
    with open(path, "wb") as f:
        f.write(b"A" * page + b"\0" * (size - 2 * page) + b"A" * page)
    versions = {
        "sha256:" + hashlib.sha256(fill * page + b"\0" * (size - 2 * page) + fill * page).hexdigest()
        for fill in (b"A", b"B")
    }
    writer = subprocess.Popen([sys.executable, "-c", textwrap.dedent(f"""
        import os
        fd = os.open({str(path)!r}, os.O_WRONLY)
        while True:
            for fill in (b"B", b"A"):
                os.pwrite(fd, fill * {page}, 0)
                os.pwrite(fd, fill * {page}, {size - page})
    """)])
    try:
        outcomes = []
        for _ in range(10):
            try:
                digest = fingerprint(path)
            except lineage.FingerprintError as exc:
                assert "changed while it was read" in str(exc)
                outcomes.append("refused")
            else:
                assert digest in versions, "a digest of neither version"
                outcomes.append("consistent")
    finally:
        writer.kill()
        writer.wait()
    assert outcomes  # ten reads, none mixed


def test_an_unreadable_subfolder_raises_instead_of_being_left_out(tmp_path: Path) -> None:
    folder = tmp_path / "data"
    (folder / "secret").mkdir(parents=True)
    (folder / "a.csv").write_text("a\n")
    (folder / "secret" / "b.csv").write_text("b\n")
    (folder / "secret").chmod(0o000)
    tmp_path.chmod(0o755)
    try:
        done = _in_child(f"""
            import lineage
            try:
                print("digest:", lineage.fingerprint({str(folder)!r}))
            except lineage.FingerprintError as exc:
                print("refused:", exc)
        """, unprivileged=True)
    finally:
        (folder / "secret").chmod(0o755)
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("refused:"), done.stdout
    assert "secret" in done.stdout and "Permission denied" in done.stdout


def _readme_recipe() -> str:
    text = (ROOT / "README.md").read_text()
    found = re.search(r"^\s*cd data/ && (find .*)$", text, re.MULTILINE)
    assert found, "the README's sha256sum recipe for folders"
    return found.group(1)


def _odd_folder(root: Path) -> Path:
    folder = root / "data"
    (folder / "sub").mkdir(parents=True)
    (folder / "plain.csv").write_text("a,b\n1,2\n")
    (folder / "sub" / "deep.txt").write_text("deep\n")
    (folder / "back\\slash.txt").write_text("backslash\n")
    (folder / "new\nline.txt").write_text("newline\n")
    (folder / "carriage\rreturn.txt").write_text("cr\n")
    (folder / "-starts-with-dash").write_text("dash\n")
    (folder / "ünïcødé.txt").write_text("unicode\n")
    (folder / os.fsdecode(b"latin1-\xe9.txt")).write_text("not utf-8\n")
    (folder / ".hidden").write_text("hidden\n")
    outside = root / "outside.txt"
    outside.write_text("linked content\n")
    (folder / "link-to-file").symlink_to(outside)
    (folder / "link-to-dir").symlink_to(folder / "sub", target_is_directory=True)
    (folder / "dangling").symlink_to(root / "nowhere")
    return folder


def test_folder_digest_equals_the_readme_sha256sum_recipe(tmp_path: Path) -> None:
    folder = _odd_folder(tmp_path)
    recipe = _readme_recipe()
    done = subprocess.run(["bash", "-c", f"cd {folder} && {recipe}"],
                          capture_output=True, timeout=60)
    assert done.returncode == 0, done.stderr
    expected = done.stdout.split()[0].decode()
    assert fingerprint(folder) == f"sha256:{expected}"
    # the manifest is what sha256sum prints for the files, in that order
    listed = subprocess.run(
        ["bash", "-c", f"cd {folder} && {recipe.rsplit('|', 1)[0]}"],
        capture_output=True, timeout=60).stdout
    assert manifest(folder).encode("utf-8", "surrogateescape") == listed
    assert b"link-to-file" in listed and b"deep.txt" in listed and b"dangling" not in listed


def test_lineage_fingerprint_command_prints_the_digest_and_the_manifest(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    folder = tmp_path / "data"
    folder.mkdir()
    (folder / "a.txt").write_text("hi")
    (folder / "b\\c.txt").write_text("x")
    assert main(["fingerprint", str(folder)]) == 0
    assert capsys.readouterr().out.strip() == fingerprint(folder)
    done = subprocess.run([sys.executable, "-m", "lineage.cli", "fingerprint", str(folder),
                           "--manifest"], capture_output=True, timeout=60,
                          env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert done.returncode == 0, done.stderr
    assert done.stdout == manifest(folder).encode()
    assert "sha256:" + hashlib.sha256(done.stdout).hexdigest() == fingerprint(folder)
    assert main(["fingerprint", str(folder / "a.txt"), "--manifest", "--json"]) == 0
    out = capsys.readouterr().out
    assert "8f434346648f6b96df89dda901c5176b10a6d83961dd3c1ac88b59b2dc327aa4" in out
    os.mkfifo(tmp_path / "fifo")
    assert main(["fingerprint", str(tmp_path / "fifo")]) == 1
    err = capsys.readouterr().err
    assert "a FIFO" in err and "internal error" not in err


def test_a_kept_folder_with_odd_names_is_checked_out_exactly(tmp_path: Path) -> None:
    """Kept content reads the manifest back (names escaped as sha256sum escapes them)."""
    folder = tmp_path / "data"
    folder.mkdir()
    files = {"plain.csv": b"a\n", "back\\slash.txt": b"b\n", "new\nline.txt": b"c\n",
             "carriage\rreturn.txt": b"d\n", "file\x1cseparator.txt": b"e\n"}
    for name, data in files.items():
        (folder / name).write_bytes(data)
    store = lineage.connect(tmp_path / "store" / "meta.sqlite")
    recorded = store.put(lineage.Dataset(folder, name="odd"))
    restored = tmp_path / "restored"
    store.checkout(recorded, restored)
    assert {p.name: p.read_bytes() for p in restored.iterdir()} == files
    assert fingerprint(restored) == recorded.fingerprint
