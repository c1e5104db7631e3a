"""The first ``store.put`` of a folder of 2,000 small files against ``lineage.fingerprint``
of the same folder, measured in the same run.

Writes a folder of 2,000 files of 1 KiB of random bytes (20 subfolders) under
``bench/out/`` (deleted afterwards), with modification times a minute back (a data set
that was there before it is recorded: the store's digest cache takes every file's digest).
All reads come from the page cache: the folder is read once before the rounds, and every
measurement reads the same pages. Each round measures, in an order that rotates:

(a) ``lineage.fingerprint(folder)``: the baseline (no cache);
(b) ``store.put(Dataset(folder))`` on a fresh SQLite store with ``keep=False``: the
    fingerprint, the digest cache's 2,000 entries, the type registration and the record;
(c) the same with keeping on (the default): (b) plus a copy of every file into the
    store's object store (``objects/sha256/ab/cdef…``, one object per distinct file);
(d) the floor of (c)'s extra work: the same 2,000 files copied with plain ``os`` calls
    into a fresh folder with the object store's 256 subfolders (no hashing, no record).

Every timed operation starts after ``sync`` (not timed). Reported: medians over the
rounds, and the medians of the per-round ratios to (a); the goal is (b) / (a) <= 2.

Usage: ``python bench/run.py put_folder`` (or ``python bench/bench_put_folder.py
[--files 2000] [--size 1024] [--rounds 7]``); writes the "First put of a folder" section of
``bench/RESULTS.md``.
"""

from __future__ import annotations

import argparse
import datetime
import os
import platform
import shutil
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from _results import write_section  # bench/ is on sys.path when run as a script

import lineage
from lineage.fingerprint import fingerprint, manifest
from lineage.objects import object_key

OUT = Path(__file__).resolve().parent / "out"
GOAL = 2.0  # first put (recording) / fingerprint: at most this
NOTES = "<!-- put-folder-notes -->"


def _write_folder(root: Path, files: int, size: int) -> None:
    past = time.time() - 60
    for i in range(files):
        sub = root / f"part-{i % 20:02d}"
        sub.mkdir(parents=True, exist_ok=True)
        path = sub / f"row-{i:05d}.bin"
        path.write_bytes(os.urandom(size))
        os.utime(path, (past, past))


def _copy_floor(src: Path, dst: Path) -> None:
    """The file-system work keeping does, without lineage: one new file per source file,
    under 256 subfolders, written by an in-kernel copy."""
    for i in range(256):
        os.makedirs(dst / f"{i:02x}")
    n = 0
    for dirpath, _dirs, names in os.walk(src):
        for name in names:
            fin = os.open(os.path.join(dirpath, name), os.O_RDONLY)
            try:
                size = os.fstat(fin).st_size
                fout = os.open(dst / f"{n % 256:02x}" / f"{n:08d}",
                               os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o444)
                try:
                    os.copy_file_range(fin, fout, size)
                finally:
                    os.close(fout)
            finally:
                os.close(fin)
            n += 1


def _timed(fn: Callable[[], object]) -> tuple[float, object]:
    os.sync()  # nobody pays for the writeback of another's data
    start = time.perf_counter()
    result = fn()
    return time.perf_counter() - start, result


def main(argv: list[str] | None = None) -> dict[str, float]:
    """Run the benchmark; print and record a Markdown table; return the median ratios."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--files", type=int, default=2000)
    parser.add_argument("--size", type=int, default=1024, help="bytes per file")
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--no-write", action="store_true", help="do not update RESULTS.md")
    args = parser.parse_args(argv)
    OUT.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix="put-folder-", dir=OUT))
    try:
        folder = tmp / "data"
        _write_folder(folder, args.files, args.size)
        expected = fingerprint(folder)  # also warms the page cache
        text = manifest(folder).encode()

        def put(label: str, keep: bool) -> Callable[[], object]:
            store = lineage.connect(tmp / label / "metadata.sqlite", keep=keep)

            def run() -> object:
                try:
                    return store.put(lineage.Dataset(folder, name="data"))
                finally:
                    store.close()

            return run

        variants = ["fingerprint", "put keep=False", "put keep=True", "copy floor"]
        times: dict[str, list[float]] = {v: [] for v in variants}
        for round_ in range(args.rounds):
            order = variants[round_ % len(variants):] + variants[:round_ % len(variants)]
            for variant in order:
                label = f"r{round_}-{variant.replace(' ', '-').replace('=', '')}"
                if variant == "fingerprint":
                    t, got = _timed(lambda: fingerprint(folder))
                    assert got == expected, (got, expected)
                elif variant == "copy floor":
                    dst = tmp / label
                    t, _ = _timed(lambda dst=dst: _copy_floor(folder, dst))
                else:
                    keep = variant.endswith("True")
                    t, recorded = _timed(put(label, keep))
                    assert isinstance(recorded, lineage.Dataset)
                    assert recorded.fingerprint == expected and recorded.version == 1
                    if keep:
                        kept = recorded.kept or {}
                        assert kept.get("key") == object_key(expected, manifest=True), kept
                        stored = tmp / label / "objects" / kept["key"]
                        assert stored.read_bytes() == text
                times[variant].append(t)
            shutil.rmtree(tmp / f"r{round_}-copy-floor", ignore_errors=True)

        for v, ts in times.items():
            print(f"{v}: " + " ".join(f"{t:.3f}" for t in ts), file=sys.stderr)
        med = {v: statistics.median(ts) for v, ts in times.items()}
        fp = times["fingerprint"]
        ratio_put = statistics.median(p / f for p, f in zip(times["put keep=False"], fp, strict=True))
        ratio_keep = statistics.median(p / f for p, f in zip(times["put keep=True"], fp, strict=True))
        ratio_floor = statistics.median(
            p / (f + c) for p, f, c in zip(times["put keep=True"], fp, times["copy floor"], strict=True))
        load = os.getloadavg()[0]
        heading = (f"First put of a folder ({args.files:,} files of {args.size:,} B; "
                   f"{datetime.date.today()}, {platform.machine()} {os.cpu_count()} cores, "
                   f"Python {platform.python_version()})")
        lines = [
            f"## {heading}", "",
            "| operation | median (s) | / fingerprint |",
            "| --- | ---: | ---: |",
            f"| `lineage.fingerprint(folder)` (baseline) | {med['fingerprint']:.3f} | 1.00x |",
            f"| first `store.put`, `keep=False` (fingerprint + digest cache + record) | "
            f"{med['put keep=False']:.3f} | **{ratio_put:.2f}x** |",
            f"| first `store.put`, keeping on (+ 2,000 objects) | "
            f"{med['put keep=True']:.3f} | {ratio_keep:.2f}x |",
            f"| copy floor: the same files copied into 256 new subfolders, plain `os` calls"
            f" | {med['copy floor']:.3f} | |",
            "",
            f"first put (`keep=False`) / fingerprint = **{ratio_put:.2f}x** (goal <= "
            f"{GOAL:.0f}x: {'met' if ratio_put <= GOAL else 'NOT met'}); keeping on / "
            f"(fingerprint + copy floor) = **{ratio_floor:.2f}x**.",
            "",
            f"{args.rounds} rounds, medians of times and of per-round ratios; files a minute "
            f"old, page-cached, `sync` before each timed operation; load average "
            f"{load:.1f} at the end. `python bench/run.py put_folder`.",
            "",
        ]
        out = "\n".join(lines)
        print(out)
        if not args.no_write:
            write_section("First put of a folder", NOTES, out)
        return {"put_over_fingerprint": ratio_put, "keep_over_fingerprint": ratio_keep,
                "keep_over_floor": ratio_floor}
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
