"""Approvals: dated, optionally signed, linked to the artifact; `verify` checks them."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

import pytest

import lineage
from lineage.approvals import approvals_of
from lineage.cli import main
from lineage.signing import generate_key, key_id


def _model(store: lineage.Store, tmp_path: Path) -> lineage.Artifact:
    f = tmp_path / "model.bin"
    f.write_bytes(b"weights")
    return store.put(lineage.Model(f, name="clf"))


def _edit(store: lineage.Store, artifact_id: int, key: str, value: str) -> None:
    """Rewrite one property of a recorded artifact with raw ml_metadata."""
    proto = store.mlmd.get_artifacts_by_id([artifact_id])[0]
    target = proto.properties if key in proto.properties else proto.custom_properties
    target[key].string_value = value
    store.mlmd.put_artifacts([proto])


def test_an_approval_is_dated_linked_and_signed(store: lineage.Store, tmp_path: Path) -> None:
    model = _model(store, tmp_path)
    key, pub = generate_key(tmp_path / "jane.pem")
    before = dt.datetime.now(dt.timezone.utc).replace(microsecond=0)
    approval = lineage.approve(store, "clf", by="Jane Doe", note="fit for production", key=key)
    p = approval.properties
    assert (p["by"], p["note"], p["target"], p["target_fingerprint"]) == (
        "Jane Doe", "fit for production", model.id, model.fingerprint)
    when = dt.datetime.fromisoformat(p["time"].replace("Z", "+00:00"))
    assert before <= when <= dt.datetime.now(dt.timezone.utc)
    assert p["key_id"] == key_id(pub) and p["signature"]
    # linked: an `approve` execution reads the model and writes the approval
    [ex] = store.executions(step="approve")
    assert ex.inputs == [model.id] and ex.outputs == [approval.id]
    assert approval.id in [a.id for a in store.impact(model).artifacts]
    [check] = approvals_of(store, model)
    assert check.status == "ok" and check.signed and check.ok
    assert approvals_of(store, model, key=pub)[0].ok
    _, other = generate_key(tmp_path / "other.pem")
    assert approvals_of(store, model, key=other)[0].status == "bad signature"
    v = store.verify(model)
    assert v.ok and [a.approval.id for a in v.approvals] == [approval.id]
    assert v.to_dict()["approvals"][0]["by"] == "Jane Doe"


def test_unsigned_approvals_are_shown_as_such(sqlite_store: lineage.Store, tmp_path: Path) -> None:
    _model(sqlite_store, tmp_path)
    lineage.approve(sqlite_store, "clf", by="Bob")
    [check] = approvals_of(sqlite_store, "clf")
    assert check.status == "unsigned" and check.ok and not check.signed
    assert sqlite_store.verify("clf").ok


def test_verify_catches_edited_forged_and_stale_approvals(sqlite_store: lineage.Store, tmp_path: Path) -> None:
    model = _model(sqlite_store, tmp_path)
    key, _pub = generate_key(tmp_path / "k.pem")
    a1 = lineage.approve(sqlite_store, "clf", by="Jane", note="ok", key=key)
    a2 = lineage.approve(sqlite_store, "clf", by="Joe", note="ok", key=key)
    a3 = lineage.approve(sqlite_store, "clf", by="Ann", note="ok", key=key)
    assert sqlite_store.verify("clf").ok
    _edit(sqlite_store, int(a1.id or 0), "by", "Mallory")  # who approved, rewritten
    stmt = a2.statement()  # a statement re-signed... with a signature that is not the key's
    other_key, _ = generate_key(tmp_path / "mallory.pem")
    from lineage.approvals import _canonical
    from lineage.signing import sign

    _edit(sqlite_store, int(a2.id or 0), "signature", sign(_canonical(stmt), other_key))
    _edit(sqlite_store, int(a3.id or 0), "target_fingerprint", "sha256:" + "0" * 64)
    statuses = {c.approval.id: c.status for c in approvals_of(sqlite_store, model)}
    assert statuses == {a1.id: "changed", a2.id: "bad signature", a3.id: "stale"}
    v = sqlite_store.verify("clf")
    assert not v.ok and all(r.status == "ok" for r in v.results)
    v_all = sqlite_store.verify()
    assert not v_all.ok and len(v_all.approvals) == 3


def test_approve_refuses_bad_input(sqlite_store: lineage.Store, tmp_path: Path) -> None:
    _model(sqlite_store, tmp_path)
    with pytest.raises(lineage.StepError, match="who approves"):
        lineage.approve(sqlite_store, "clf", by="  ")
    (tmp_path / "rsa.pem").write_text("-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n")
    with pytest.raises(lineage.SignatureError):
        lineage.approve(sqlite_store, "clf", by="Jane", key=tmp_path / "rsa.pem")
    with pytest.raises(lineage.NotFound):
        lineage.approve(sqlite_store, "nothing", by="Jane")
    with pytest.raises(lineage.StepError, match="NUL"):
        lineage.approve(sqlite_store, "clf", by="Jane", note="ok\x00hidden")
    assert not sqlite_store.artifacts(type="Approval")


def test_cli_approve_and_verify(sqlite_uri: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    store = lineage.connect(sqlite_uri)
    _model(store, tmp_path)
    key, _ = generate_key(tmp_path / "k.pem")
    code = main(["--store", sqlite_uri, "approve", "clf", "--by", "Jane Doe", "--note", "ok",
                 "--key", str(key), "--json"])
    d = json.loads(capsys.readouterr().out)
    assert code == 0 and d["by"] == "Jane Doe" and d["approval"].startswith("artifact:")
    assert main(["--store", sqlite_uri, "verify", "clf"]) == 0
    out = capsys.readouterr().out
    assert "Jane Doe" in out and " ok" in out
    _edit(store, int(d["approval"].split(":")[1]), "note", "edited")
    assert main(["--store", sqlite_uri, "verify", "clf"]) == 1
    assert "changed" in capsys.readouterr().out
    assert main(["--store", sqlite_uri, "approve", "clf"]) == 2  # --by is required
