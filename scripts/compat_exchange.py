"""A store written by one ml-metadata line is read and extended by another (make test-compat).

Each writer adds one run, tagged with who wrote it (``host-1.17``, ``trixie-1.21``, …), to a
SQLite store in FOLDER: a new version of the dataset ``shared`` (its own file), a ``train``
step that reads it and the model the previous writer trained (so provenance crosses
lines), an ``evaluate`` step, params and metrics. A checker, given the tags in the order
they wrote, opens the store read-only and asserts everything every writer recorded: the
MLMD schema version, runs, versions and their links, fingerprints against the files,
provenance across writers, params, metrics, and the CLI's answer. It exits non-zero with
the first difference.

Usage::

    python scripts/compat_exchange.py write FOLDER TAG
    python scripts/compat_exchange.py check FOLDER TAG [TAG ...]
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import itertools
import json
import sqlite3
import sys
from pathlib import Path

import lineage
from lineage import _compat
from lineage.cli import main as cli_main

SCHEMA_VERSION = 10
EXPERIMENT = "exchange"


def _content(tag: str) -> bytes:
    rows = "".join(f"{i},{len(tag) * i % 7},{tag}\n" for i in range(20))
    return f"x,y,writer\n{rows}".encode()


def _lr(tag: str) -> float:
    return round(0.01 * (1 + sum(tag.encode()) % 9), 2)


def _store_path(folder: Path) -> Path:
    return folder / "metadata.sqlite"


def write(folder: Path, tag: str) -> None:
    """Add one run written by this process's ml-metadata line."""
    data = folder / "data" / f"{tag}.csv"
    data.parent.mkdir(parents=True, exist_ok=True)
    data.write_bytes(_content(tag))
    store = lineage.connect(_store_path(folder))
    previous = store.artifacts(name="model")
    facts = _compat.versions()

    @lineage.step(kind="train", store=store)
    def train(data: lineage.Dataset, base: lineage.Model, lr: float, writer: str) -> lineage.Model:
        body = hashlib.sha256(data.path.read_bytes() + base.uri.encode()).hexdigest()
        return lineage.Model(content=f"{writer}:{lr}:{body}".encode(), name="model")

    @lineage.step(kind="evaluate", store=store)
    def evaluate(model: lineage.Model, data: lineage.Dataset) -> lineage.Metrics:
        return lineage.Metrics({"rows": len(data.path.read_bytes().splitlines()) - 1},
                               name="eval")

    with lineage.run(f"run-{tag}", experiment=EXPERIMENT, store=store):
        lineage.log_params(writer=tag, mlmd=facts["ml-metadata"], protobuf=facts["protobuf"])
        dataset = lineage.Dataset(data, name="shared")
        base = previous[-1] if previous else store.put(lineage.Model(content=b"init", name="init"))
        model = train(dataset, base, lr=_lr(tag), writer=tag)
        evaluate(model, dataset)
        lineage.log_metrics({"lr": _lr(tag)})
    store.close()
    print(f"exchange: {tag} wrote run-{tag} into {_store_path(folder)} "
          f"(ml-metadata {facts['ml-metadata']}, protobuf {facts['protobuf']})")


def _fail(message: str) -> None:
    raise SystemExit(f"exchange: FAILED ({_compat.versions()['ml-metadata']}): {message}")


def check(folder: Path, tags: list[str]) -> None:
    """Assert that every run the writers ``tags`` added (in that order) reads back whole."""
    path = _store_path(folder)
    with contextlib.closing(sqlite3.connect(f"file:{path}?mode=ro", uri=True)) as db:
        (schema,) = db.execute("SELECT schema_version FROM MLMDEnv").fetchone()
    if schema != SCHEMA_VERSION:
        _fail(f"schema version {schema}, expected {SCHEMA_VERSION}")
    store = lineage.connect(path, read_only=True)

    runs = {r.run_name: r for r in store.runs(experiment=EXPERIMENT)}
    if sorted(runs) != sorted(f"run-{t}" for t in tags):
        _fail(f"runs {sorted(runs)}, expected one per writer {tags}")
    shared = store.artifacts(name="shared")
    if [a.version for a in shared] != list(range(1, len(tags) + 1)):
        _fail(f"dataset versions {[a.version for a in shared]} for {len(tags)} writers")
    for before, after in itertools.pairwise(shared):
        if after.previous_version != before.id:
            _fail(f"shared v{after.version} links to {after.previous_version}, not {before.id}")
    for art, tag in zip(shared, tags, strict=True):
        want = "sha256:" + hashlib.sha256(_content(tag)).hexdigest()
        if art.fingerprint != want or not art.uri.endswith(f"{tag}.csv"):
            _fail(f"shared v{art.version}: {art.uri} {art.fingerprint}, expected {tag}.csv {want}")
    checks = store.verify()
    if not checks.ok:
        _fail(f"verify: {checks.to_dict()}")

    models = store.artifacts(name="model")
    if [m.version for m in models] != list(range(1, len(tags) + 1)):
        _fail(f"model versions {[m.version for m in models]}")
    prov = store.provenance("model")
    seen = sorted(d.fingerprint or "" for d in prov.datasets)
    want_fps = sorted("sha256:" + hashlib.sha256(_content(t)).hexdigest() for t in tags)
    if seen != want_fps:
        _fail(f"provenance of the last model reaches {len(seen)} datasets, expected every "
              f"writer's ({len(tags)})")
    trains = [s for s in prov.steps if s.name == "train"]
    writers = [s.params.get("writer") for s in trains]
    if writers != tags or [s.params.get("lr") for s in trains] != [_lr(t) for t in tags]:
        _fail(f"train steps upstream {writers}, expected {tags}")
    for tag in tags:
        metrics = lineage.run_metrics(store, f"run-{tag}")
        if metrics.final.get("lr") != _lr(tag):
            _fail(f"run-{tag} metrics {metrics.final}")
        params = runs[f"run-{tag}"].params
        if params.get("writer") != tag:
            _fail(f"run-{tag} params {params}")
    evals = store.executions(step="evaluate")
    if len(evals) != len(tags) or {e.state for e in evals} != {"COMPLETE"}:
        _fail(f"evaluate executions {[(e.id, e.state) for e in evals]}")

    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        code = cli_main(["--store", str(path), "provenance", "model", "--json"])
    if code != 0 or json.loads(out.getvalue()) != prov.to_dict():
        _fail(f"`lineage provenance model --json` exited {code} or differs from the library")
    store.close()
    lines = ", ".join(f"{t} ({runs[f'run-{t}'].params.get('mlmd')})" for t in tags)
    print(f"exchange: ok: ml-metadata {_compat.versions()['ml-metadata']} read {path.name} "
          f"in {folder.name}/ written by {lines}")


def main(argv: list[str]) -> int:
    if len(argv) < 3 or argv[0] not in ("write", "check") or (argv[0] == "write" and len(argv) != 3):
        print(__doc__, file=sys.stderr)
        return 2
    folder = Path(argv[1]).resolve()
    if argv[0] == "write":
        write(folder, argv[2])
    else:
        check(folder, argv[2:])
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
