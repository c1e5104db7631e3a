"""Re-performance: `lineage reproduce REF` re-runs the recorded steps in a scratch folder and
compares digests; it says plainly which steps cannot be re-run and why."""

from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
from demo_store import record_demo

import lineage
from lineage.cli import main
from lineage.reproduce import reproduce

pytestmark = pytest.mark.slow

STEPS = '''
from pathlib import Path
import time
import lineage

OUT = Path(__file__).resolve().parent / "out"


@lineage.step
def clean(raw: lineage.Dataset, sep: str = ",") -> lineage.Dataset:
    OUT.mkdir(exist_ok=True)
    rows = [line.split(sep) for line in Path(raw.uri).read_text().splitlines()]
    out = OUT / "clean.csv"
    out.write_text("\\n".join(",".join(r) for r in rows if all(r)) + "\\n")
    return lineage.Dataset(out, name="clean")


@lineage.step(kind="train")
def fit(data: lineage.Dataset, lr: float = 0.1) -> lineage.Model:
    out = OUT / "model.txt"
    out.write_text(f"lr={lr} rows={len(Path(data.uri).read_text().splitlines())}\\n")
    return lineage.Model(out, name="m")


@lineage.step(kind="train")
def stamp(data: lineage.Dataset) -> lineage.Model:
    out = OUT / "stamped.txt"
    out.write_text(f"{time.time()}\\n")
    return lineage.Model(out, name="stamped")
'''


def _load(path: Path) -> ModuleType:
    spec = importlib.util.spec_from_file_location(f"steps_{abs(hash(path))}", path)
    assert spec is not None and spec.loader is not None
    mod = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = mod
    spec.loader.exec_module(mod)
    return mod


@pytest.fixture()
def recorded(tmp_path: Path) -> dict[str, Any]:
    code = tmp_path / "code"
    code.mkdir()
    (code / "steps.py").write_text(STEPS)
    raw = tmp_path / "raw.csv"
    raw.write_text("a,b\n1,2\n3,\n5,6\n")
    store = lineage.connect(tmp_path / "store" / "metadata.sqlite")
    mod = _load(code / "steps.py")
    with lineage.run("r", store=store):
        clean = mod.clean(lineage.Dataset(raw, name="raw"))
        mod.fit(clean, lr=0.5)
        mod.stamp(clean)
    return {"store": store, "code": code, "raw": raw, "tmp": tmp_path}


def test_the_demo_pipeline_is_re_performed_with_the_same_digests(tmp_path: Path) -> None:
    uri, _out, _ = record_demo(tmp_path / "demo")
    store = lineage.connect(uri, read_only=True)
    before = {a.id: a.fingerprint for a in store.artifacts()}
    # both demo runs write models/clf.pkl: model v2's file holds v1 again (kept copies)
    checks = {r.artifact.id: (r.status, r.restorable) for r in store.verify().results}
    result = reproduce(store, "clf-serving", tmp_path / "scratch")
    assert result.ok, str(result)
    assert result.target_status == "same" and result.target_now == store.get("clf-serving").fingerprint
    assert [s.step for s in result.steps] == ["ingest", "validate", "split", "featurize", "train",
                                              "evaluate", "deploy"]
    assert all(s.status == "same" for s in result.steps), str(result)
    recorded = {a.id: a.fingerprint for a in store.artifacts()}
    for s in result.steps:
        for o in s.outputs:
            assert o["now"] == o["recorded"] == recorded[o["artifact"]]
            if o["uri"]:  # files, not in-memory metrics
                assert Path(o["uri"]).resolve().is_relative_to((tmp_path / "scratch").resolve())
    assert not result.environment  # the same interpreter and packages
    # nothing was written to the audited store or over the recorded files
    after = lineage.connect(uri, read_only=True)
    assert {a.id: a.fingerprint for a in after.artifacts()} == before
    assert {r.artifact.id: (r.status, r.restorable) for r in after.verify().results} == checks
    assert all(status == "ok" or restorable for status, restorable in checks.values())


def test_what_cannot_be_re_run_is_said_plainly(recorded: dict[str, Any]) -> None:
    store: lineage.Store = recorded["store"]
    ok = reproduce(store, "m", recorded["tmp"] / "s1")
    assert ok.ok and [s.status for s in ok.steps] == ["same", "same"], str(ok)
    # the stamp step is not deterministic: the digests differ, and the report says so
    stamped = reproduce(store, "stamped", recorded["tmp"] / "s2")
    assert stamped.target_status == "differs" and not stamped.ok
    assert stamped.steps[-1].status == "differs"
    assert "DIFFERS" in str(stamped) and "non-deterministic" in str(stamped)
    # the code changed after the run, and was never committed
    steps = recorded["code"] / "steps.py"
    steps.write_text(steps.read_text().replace('f"lr={lr} rows=', 'f"LR={lr} rows='))
    changed = reproduce(store, "m", recorded["tmp"] / "s3")
    by_step = {s.step: s for s in changed.steps}
    assert by_step["clean"].status == "same"
    assert by_step["fit"].status == "not re-run"
    assert "the code changed" in by_step["fit"].reason
    assert changed.target_status == "not reproduced" and "NOT REPRODUCED" in str(changed)
    # the raw data is gone: the store's kept copy stands in for it
    recorded["raw"].unlink()
    restored = reproduce(store, "m", recorded["tmp"] / "s4")
    assert restored.steps[0].status == "same", str(restored)
    # and when the kept copy is gone too, the report says so
    kept = store.get("raw").kept
    assert kept is not None
    (Path(store.objects.local_path(kept["key"]) or "")).unlink()
    gone = reproduce(store, "m", recorded["tmp"] / "s5")
    assert gone.steps[0].status == "not re-run" and "raw.csv" in gone.steps[0].reason
    assert "gone" in gone.steps[0].reason and "could not restore" in gone.steps[0].reason


def test_foreign_and_failed_steps(sqlite_store: lineage.Store, tmp_path: Path) -> None:
    from ml_metadata.proto import metadata_store_pb2 as pb

    model = sqlite_store.put(lineage.Model(content=b"w", name="foreign"))
    etype = sqlite_store.mlmd.put_execution_type(pb.ExecutionType(name="tfx.Trainer"))
    ex = pb.Execution(type_id=etype, last_known_state=pb.Execution.COMPLETE)
    event = pb.Event(type=pb.Event.OUTPUT, artifact_id=int(model.id or 0))
    sqlite_store.mlmd.put_execution(ex, [(None, event)], [])
    result = reproduce(sqlite_store, "foreign", tmp_path / "s")
    [step] = result.steps
    assert step.status == "not re-run" and "no function to call" in step.reason
    assert result.target_status == "not reproduced"


def test_cli_reproduce(recorded: dict[str, Any], capsys: pytest.CaptureFixture[str]) -> None:
    uri = str(recorded["tmp"] / "store" / "metadata.sqlite")
    assert main(["--store", uri, "reproduce", "m", "-o", str(recorded["tmp"] / "c1")]) == 0
    assert "SAME" in capsys.readouterr().out
    assert main(["--store", uri, "reproduce", "stamped", "-o", str(recorded["tmp"] / "c2"),
                 "--json"]) == 1
    d = json.loads(capsys.readouterr().out)
    assert d["target"]["status"] == "differs" and d["steps"][-1]["status"] == "differs"
