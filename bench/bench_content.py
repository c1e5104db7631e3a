"""Keeping content: ``store.put`` with keeping on and off, ``store.checkout``, against DVC's
``dvc add`` and ``dvc checkout`` of the same data, measured in the same run.

Two data sets, written once in a temporary folder on the same file system:

- a 1 GiB file of random bytes;
- a folder of 2,000 files of 32 KiB of random bytes (62.5 MiB).

Each round takes fresh stores and a fresh DVC repository (their own copies of the data,
hard links to the originals made outside the timed regions, modification times set in the
past so that no digest cache skips a file) and measures, for each data set:

(a) ``store.put(Dataset(path))`` on a fresh store with ``keep=False``: fingerprint + record;
(b) the same with keeping on (the default): fingerprint + record + keep the bytes in
    ``.lineage/objects`` (a copy-on-write clone where the file system can, else a copy);
(c) ``dvc add`` (DVC 3, its own virtualenv ``bench/.dvc-venv``, created here when missing,
    in one process that times what it is asked with DVC's Python API: no interpreter
    start-up or import counted): md5 + copy into ``.dvc/cache``;
(d) ``store.checkout(ref)`` after the working copy was deleted: copy back, checked against
    the fingerprint;
(e) ``dvc checkout`` after the working copy was deleted: copy back from the cache.

Everything is in the page cache (the machine has 24 GiB) and every timed operation starts
after ``sync`` (not timed), so that none pays for the writeback of another's data: this
measures the work each tool does. The tools take turns going first, and each round has
several pairs of checkouts; medians are reported, with the medians of the paired ratios.

Usage: ``python bench/run.py content`` (or ``python bench/bench_content.py [--quick]``);
writes the "Kept content" section of ``bench/RESULTS.md``.
"""

from __future__ import annotations

import datetime
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from _results import write_section  # bench/ is on sys.path when run as a script

import lineage

HERE = Path(__file__).resolve().parent
DVC_VENV = HERE / ".dvc-venv"
DVC_SPEC = "dvc==3.*"
BIG = 1 << 30
FILES = 2000
FILE_SIZE = 32 << 10
GOAL = 1.0  # lineage / DVC: at most this


def ensure_dvc_venv() -> Path | None:
    """The Python of ``bench/.dvc-venv`` (created with DVC when missing), or None."""
    python = DVC_VENV / "bin" / "python"
    if python.exists():
        check = subprocess.run([str(python), "-c", "import dvc.repo"], capture_output=True)
        if check.returncode == 0:
            return python
    print(f"bench: installing {DVC_SPEC} into {DVC_VENV} (once)", flush=True)
    try:
        subprocess.run([sys.executable, "-m", "venv", str(DVC_VENV)], check=True)
        subprocess.run([str(python), "-m", "pip", "install", "-q", DVC_SPEC], check=True,
                       timeout=1800)
    except (subprocess.SubprocessError, OSError) as exc:
        print(f"bench: cannot install DVC ({exc}); measuring lineage only", file=sys.stderr)
        return None
    return python


def _age(path: Path) -> None:
    """Set modification times a minute back: no digest cache treats a file as 'racy'."""
    past = time.time() - 60
    targets = [path] if path.is_file() else [p for p in path.rglob("*") if p.is_file()]
    for p in targets:
        os.utime(p, (past, past))


def _link_copy(src: Path, dst: Path) -> None:
    """Hard links to the data (outside any timed region; no tool writes in place)."""
    if src.is_file():
        os.link(src, dst)
        return
    dst.mkdir()
    for p in src.iterdir():
        os.link(p, dst / p.name)


def make_data(root: Path) -> dict[str, Path]:
    big = root / "big.bin"
    chunk = 64 << 20
    with open(big, "wb") as f:
        for _ in range(BIG // chunk):
            f.write(os.urandom(chunk))
    folder = root / "images"
    folder.mkdir()
    for i in range(FILES):
        (folder / f"img{i:05d}.bin").write_bytes(os.urandom(FILE_SIZE))
    _age(big)
    _age(folder)
    return {"file": big, "folder": folder}


def _timed(fn: Any) -> tuple[float, Any]:
    os.sync()  # no writeback backlog from the previous operation (not timed)
    start = time.perf_counter()
    result = fn()
    return time.perf_counter() - start, result


class Lineage:
    """(a), (b) and (d) for one data set: fresh stores, the data linked in."""

    def __init__(self, work: Path, name: str, data: Path) -> None:
        self.name = name
        self.target = work / "data" / data.name
        self.target.parent.mkdir(parents=True)
        _link_copy(data, self.target)
        self.off = lineage.connect(work / "off" / "metadata.sqlite", keep=False)
        self.on = lineage.connect(work / "on" / "metadata.sqlite")  # the default: up to 1 GiB
        self.fingerprint: str | None = None

    def add(self) -> dict[str, float]:
        out: dict[str, float] = {}
        out["put_off"], rec = _timed(lambda: self.off.put(lineage.Dataset(self.target, name=self.name)))
        assert rec.kept is None
        out["put_on"], rec = _timed(lambda: self.on.put(lineage.Dataset(self.target, name=self.name)))
        assert rec.kept is not None
        self.fingerprint = rec.fingerprint
        return out

    def checkout(self) -> float:
        if self.target.is_dir():
            shutil.rmtree(self.target)
        else:
            self.target.unlink()
        took, got = _timed(lambda: self.on.checkout(self.name))
        assert got.path == self.target and got.fingerprint == self.fingerprint
        return float(took)

    def close(self) -> None:
        self.off.close()
        self.on.close()


class Dvc:
    """(c) and (e): DVC in its own virtualenv, in a process that times what it is asked."""

    def __init__(self, python: Path) -> None:
        self.proc = subprocess.Popen(
            [str(python), str(HERE / "_dvc_driver.py")], stdin=subprocess.PIPE,
            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True,  # DVC's chatter
        )
        self.version = str(self._answer()["version"])

    def _answer(self) -> dict[str, Any]:
        assert self.proc.stdout is not None
        line = self.proc.stdout.readline()
        if not line:
            raise RuntimeError("the DVC driver stopped")
        got: dict[str, Any] = json.loads(line)
        if "error" in got:
            raise RuntimeError(f"DVC: {got['error']}")
        return got

    def ask(self, op: str, repo: Path, target: str) -> float:
        assert self.proc.stdin is not None
        self.proc.stdin.write(json.dumps({"op": op, "repo": str(repo), "target": target}) + "\n")
        self.proc.stdin.flush()
        return float(self._answer()["seconds"])

    def close(self) -> None:
        if self.proc.stdin is not None:
            self.proc.stdin.close()
        self.proc.wait(timeout=60)


def one_round(r: int, work: Path, kind: str, data: Path, dvc: Dvc | None,
              checkouts: int) -> dict[str, list[float]]:
    """Both tools on one data set: each adds, then checks out ``checkouts`` times; the
    i-th checkouts of the two tools in a round are compared."""
    got: dict[str, list[float]] = {}
    ours = Lineage(work / "lineage", kind, data)
    repo = work / "dvc"
    repo.mkdir(parents=True)
    _link_copy(data, repo / data.name)
    # One tool's whole sequence, then the other's, the first changing every round: the
    # aftermath of one tool's writes (DVC's add takes several times our put) falls on
    # each tool's sequence alike across rounds.
    for tool in (("lineage", "dvc") if r % 2 == 0 else ("dvc", "lineage")):
        if tool == "lineage":
            for key, value in ours.add().items():
                got.setdefault(key, []).append(value)
            got["checkout"] = [ours.checkout() for _ in range(checkouts)]
        elif dvc is not None:
            got["dvc_add"] = [dvc.ask("add", repo, data.name)]
            got["dvc_checkout"] = [dvc.ask("checkout", repo, data.name) for _ in range(checkouts)]
    ours.close()
    return got


def main(argv: list[str] | None = None) -> dict[str, Any]:
    argv = sys.argv[1:] if argv is None else argv
    rounds = 1 if "--quick" in argv else 5
    checkouts = 1 if "--quick" in argv else 3
    python = None if "--no-dvc" in argv else ensure_dvc_venv()
    dvc = Dvc(python) if python is not None else None
    times: dict[str, dict[str, list[float]]] = {"file": {}, "folder": {}}
    try:
        with tempfile.TemporaryDirectory(prefix="lineage-bench-content-") as tmp:
            root = Path(tmp)
            (root / "src").mkdir()
            print("bench: writing 1 GiB and 2,000 files ...", flush=True)
            data = make_data(root / "src")
            for r in range(rounds):
                for kind, path in data.items():
                    work = root / f"round{r}-{kind}"
                    got = one_round(r, work, kind, path, dvc, checkouts)
                    for key, values in got.items():
                        times[kind].setdefault(key, []).extend(values)
                    shutil.rmtree(work)
                    print(f"round {r + 1}/{rounds} {kind}: " + ", ".join(
                        f"{k} {' '.join(f'{v:.3f}' for v in vs)} s" for k, vs in got.items()),
                        flush=True)
    finally:
        if dvc is not None:
            dvc.close()
    result: dict[str, Any] = {
        "date": datetime.date.today().isoformat(),
        "machine": f"{platform.machine()} {os.cpu_count()} cores, Python {platform.python_version()}",
        "fs": _fs_type(Path(tempfile.gettempdir())),
        "rounds": rounds,
        "checkouts": checkouts,
        "dvc": dvc.version if dvc is not None else "",
        "times": times,
    }
    if "--no-write" not in argv:
        write_section("Kept content", "<!-- content-notes -->", _section(result))
    print(_section(result))
    return result


def _fs_type(path: Path) -> str:
    try:
        out = subprocess.run(["df", "--output=fstype", str(path)], capture_output=True,
                             text=True, timeout=10).stdout.split()
        return out[-1] if out else "?"
    except (OSError, subprocess.SubprocessError):
        return "?"


def _med(values: list[float]) -> float:
    return statistics.median(values) if values else float("nan")


def _ratio(times: dict[str, list[float]], a: str, b: str) -> float:
    pairs = [x / y for x, y in zip(times.get(a, []), times.get(b, []), strict=False) if y]
    return statistics.median(pairs) if pairs else float("nan")


def _section(result: dict[str, Any]) -> str:
    lines = [
        f"## Kept content (1 GiB file, 2,000 x 32 KiB folder; {result['date']}, "
        f"{result['machine']}, {result['fs']})",
        "",
        "| operation | 1 GiB file (s) | 2,000-file folder (s) |",
        "| --- | ---: | ---: |",
    ]
    rows = [("`store.put`, keep=False (fingerprint + record)", "put_off"),
            ("`store.put`, keeping on (+ keep the bytes)", "put_on"),
            (f"`dvc add` (DVC {result['dvc'] or 'not run'})", "dvc_add"),
            ("`store.checkout` (copy back + check the fingerprint)", "checkout"),
            ("`dvc checkout`", "dvc_checkout")]
    file_t, folder_t = result["times"]["file"], result["times"]["folder"]
    for label, key in rows:
        if key in file_t:
            lines.append(f"| {label} | {_med(file_t[key]):.3f} | {_med(folder_t[key]):.3f} |")
    lines.append("")
    ratio_rows = [("keeping on / off (put)", "put_on", "put_off", None),
                  ("lineage put (keeping on) / dvc add", "put_on", "dvc_add", GOAL),
                  ("lineage checkout / dvc checkout", "checkout", "dvc_checkout", GOAL)]
    lines += ["| ratio | 1 GiB file | 2,000-file folder | goal |", "| --- | ---: | ---: | ---: |"]
    for label, a, b, goal in ratio_rows:
        if b in file_t:
            lines.append(f"| {label} | **{_ratio(file_t, a, b):.2f}x** | "
                         f"**{_ratio(folder_t, a, b):.2f}x** | {'<= ' + str(goal) + 'x' if goal else ''} |")
    lines += ["", f"Medians of {result['rounds']} round(s), each on fresh stores and a fresh "
              f"DVC repository, with {result['checkouts']} checkouts per tool and round "
              "(the tools taking turns going first); data in the page cache, `sync` before "
              "every timed operation; ratios are medians of the paired ratios. "
              "`python bench/run.py content`.", ""]
    return "\n".join(lines)


if __name__ == "__main__":
    main()
