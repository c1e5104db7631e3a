"""The examples run end to end and give the answers they promise."""

from __future__ import annotations

import hashlib
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

import lineage

ROOT = Path(__file__).resolve().parent.parent
EXAMPLES = ROOT / "examples"
pytestmark = pytest.mark.slow


def _run(args: list[str], cwd: Path, out: Path) -> str:
    env = {**os.environ, "LINEAGE_EXAMPLE_OUT": str(out), "LINEAGE_URI": ""}
    done = subprocess.run(
        [sys.executable, *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=300
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    return done.stdout


def test_tabular_demo_twice_keeps_versions_and_hits_the_cache(tmp_path: Path) -> None:
    out = tmp_path / "out"
    first = _run([str(EXAMPLES / "tabular" / "demo.py")], tmp_path, out)
    second = _run([str(EXAMPLES / "tabular" / "demo.py")], tmp_path, out)

    # The pictures and reports are written and listed.
    for name in ("provenance.svg", "impact.svg", "diff.svg", "audit.html", "audit.md"):
        assert (out / name).stat().st_size > 0
        assert str(out / name) in second
    # A fresh store: the baseline runs every step; the override reuses the four steps
    # before training. The second time, every cached step of both runs is a hit.
    assert first.count("cache hits: 0 step(s)") == 1
    assert "cache hits: 4 step(s) skipped (ingest, validate, split, featurize)" in first
    assert second.count("cache hits: 6 step(s) skipped") == 2

    store = lineage.connect(tmp_path / ".lineage" / "metadata.sqlite", read_only=True)
    # Same data, same versions: one record per data file, however often the demo ran.
    for name in ("breast_cancer", "breast_cancer_train", "breast_cancer_test"):
        assert [a.version for a in store.artifacts(name=name)] == [1]
    assert [a.version for a in store.artifacts(name="clf")] == [1, 2]
    assert store.executions(state="CACHED")

    raw = store.get("breast_cancer")
    digest = hashlib.sha256(Path(raw.uri).read_bytes()).hexdigest()
    assert raw.fingerprint == f"sha256:{digest}"
    deployed = store.get("clf-serving")
    prov = store.provenance(deployed)
    assert raw.fingerprint in [d.fingerprint for d in prov.datasets]
    assert raw.id in prov.roots
    assert "trained by train(C=" in second and raw.fingerprint[:15] in second
    # It ends with the one command that opens the web UI on this store.
    last = second.strip().splitlines()[-1].split()
    assert last[1:] == ["--store", ".lineage/metadata.sqlite", "ui", "--open"]
    assert last[0].endswith("lineage")

    # Both runs wrote models/clf.pkl: the first model comes back exactly from its kept copy,
    # and the deployed model has its bytes (the best F1 was put back in place first).
    v1, v2 = store.get("clf@1"), store.get("clf@2")
    assert v1.uri == v2.uri and "Getting data back" in first
    copy = out / "models" / "clf-v1.pkl"
    assert f"sha256:{hashlib.sha256(copy.read_bytes()).hexdigest()}" == v1.fingerprint
    assert f"checked out Model clf v1 (artifact:{v1.id}) to {copy}" in second
    assert deployed.fingerprint == v1.fingerprint

    diff = store.diff("clf@1", "clf@2")
    assert diff.params == {"train": {"C": (1.0, 0.1)}}
    assert "train.C: 1.0 -> 0.1" in first.split("Why do the two models differ?")[1]

    # The audit report of the deployed model, after two demos, draws one box per distinct
    # call (same step, params, inputs and outputs), however often the call was made.
    calls = {(s["name"], json.dumps(s["params"], sort_keys=True), tuple(sorted(s["inputs"])),
              tuple(sorted(s["outputs"]))) for s in prov.to_dict()["steps"]}
    assert len(prov.steps) >= 2 * len(calls)  # the two demos and their cache hits
    report = (out / "audit.html").read_text()
    svg = report[report.index("<svg"):report.index("</svg>")]
    boxes = re.findall(r'<g id="node\d+" class="node">\s*<title>(?:[fg]_)?e\d+</title>', svg)
    assert len(boxes) == len(calls)


def test_notebook_runs_as_a_plain_script(tmp_path: Path) -> None:
    notebook = EXAMPLES / "notebook" / "lineage_notebook.ipynb"
    subprocess.run(
        [sys.executable, "-m", "jupyter", "nbconvert", "--to", "script", "--output-dir",
         str(tmp_path), str(notebook)],
        check=True, capture_output=True, timeout=120,
    )
    script = tmp_path / "lineage_notebook.py"
    assert script.exists()
    _run([str(script)], EXAMPLES / "notebook", tmp_path / "out")


def test_foreign_store_example_answers_provenance_on_a_tfx_store(tmp_path: Path) -> None:
    path = tmp_path / "tfx" / "metadata.sqlite"
    output = _run([str(EXAMPLES / "foreign_store" / "tfx_store.py"), str(path)], tmp_path, tmp_path)
    assert "Trainer" in output and "CsvExampleGen" in output
    assert (path.parent / "tfx_provenance.svg").read_text().lstrip().startswith("<?xml")
