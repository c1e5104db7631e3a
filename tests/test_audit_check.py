"""Audit reports the store vouches for: a written report is recorded in the store, and
`check(path, store)` / `lineage --store URI audit --check FILE` accept it only if the store
recorded its digest and the facts it states still match the store; forged reports (edited
and re-sealed, or made from a second, fabricated store) are rejected; signatures."""

from __future__ import annotations

import hashlib
import json
import re
from pathlib import Path

import pytest
from ml_metadata.proto import metadata_store_pb2 as pb

import lineage
import lineage.report
from lineage import report
from lineage.cli import main
from lineage.report import _PLACEHOLDER, audit, check
from lineage.signing import generate_key


def _pipeline(store: lineage.Store, folder: Path, *, lr: float = 0.05,
              note: str = "plain") -> lineage.Model:
    folder.mkdir(parents=True, exist_ok=True)
    data = folder / "iris.csv"
    data.write_text("a,b\n1,2\n3,4\n")

    @lineage.step(store=store)
    def prep(raw: lineage.Dataset, note: str = "plain") -> lineage.Dataset:
        out = folder / "train.csv"
        out.write_text(raw.path.read_text() if raw.path else "")
        return lineage.Dataset(out, name="train")

    @lineage.step(store=store, kind="train")
    def train(data: lineage.Dataset, lr: float = 0.1) -> lineage.Model:
        out = folder / "model.bin"
        out.write_text(f"lr={lr}")
        return lineage.Model(out, name="clf")

    with lineage.run("baseline", experiment="iris", store=store):
        model: lineage.Model = train(prep(lineage.Dataset(data, name="iris"), note=note), lr=lr)
    return model


def _reseal(path: Path, text: str) -> None:
    """What a forger does: edit, then recompute the embedded digest."""
    found = re.search(r"sha256:[0-9a-f]{64}", text.split("</head>")[0] if "</head>" in text
                      else text.rsplit("lineage-audit-digest: ", 1)[1])
    assert found is not None
    blank = text.replace(found.group(0), _PLACEHOLDER)
    digest = "sha256:" + hashlib.sha256(blank.encode()).hexdigest()
    path.write_text(blank.replace(_PLACEHOLDER, digest))


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


# --- recording --------------------------------------------------------------------------


def test_a_written_report_is_recorded_in_the_store(sqlite_store: lineage.Store, tmp_path: Path) -> None:
    model = _pipeline(sqlite_store, tmp_path / "w")
    result = report.write_report(sqlite_store, model, tmp_path / "r.html")
    assert result.path == tmp_path / "r.html" and result.recorded_as
    [entry] = sqlite_store.artifacts(type="AuditReport")
    assert result.recorded_as == f"artifact:{entry.id}"
    assert entry.properties["digest"] == result.digest == check(result.path).recorded
    assert entry.properties["target"] == model.id and entry.properties["format"] == "html"
    assert entry.fingerprint == "sha256:" + hashlib.sha256(result.path.read_bytes()).hexdigest()
    assert entry.uri == str(result.path.resolve())
    # linked to the audited artifact by an `audit` execution: target -> report
    [ex] = sqlite_store.executions(step="audit")
    assert ex.inputs == [model.id] and ex.outputs == [entry.id] and ex.state == "COMPLETE"
    assert ex.properties["user"] and ex.properties["environment"]
    impact = sqlite_store.impact(model)
    assert entry.id in [a.id for a in impact.artifacts] and "AuditReport" in impact.by_type
    # the provenance of the model does not change
    assert entry.id not in [a.id for a in sqlite_store.provenance(model).artifacts]


def test_a_read_only_store_records_nothing(sqlite_uri: str, tmp_path: Path) -> None:
    store = lineage.connect(sqlite_uri)
    model = _pipeline(store, tmp_path / "w")
    ro = lineage.connect(sqlite_uri, read_only=True)
    result = report.write_report(ro, model.id, tmp_path / "r.md")
    assert result.recorded_as is None and not store.artifacts(type="AuditReport")
    assert check(result.path).ok
    assert not check(result.path, ro)  # the store never recorded it


# --- checking against the store ----------------------------------------------------------


@pytest.mark.parametrize("suffix", ["html", "md"])
def test_check_against_the_store_accepts_what_it_recorded(
    sqlite_store: lineage.Store, tmp_path: Path, suffix: str
) -> None:
    model = _pipeline(sqlite_store, tmp_path / "w")
    out = audit(sqlite_store, model, tmp_path / f"r.{suffix}")
    alone = check(out)
    assert alone.ok and not alone.against_store
    assert "self-consistency only" in alone.message and "no store" in alone.message
    vouched = check(out, sqlite_store)
    assert vouched.ok and vouched.against_store and "accepted" in vouched.message
    assert vouched.recorded_as == f"artifact:{sqlite_store.artifacts(type='AuditReport')[0].id}"
    # the facts block names every record the report states
    facts = report.facts_of(out.read_text())
    assert facts is not None and facts["target"] == model.id
    prov = sqlite_store.provenance(model)
    assert {str(a.id) for a in [prov.target, *prov.artifacts]} <= set(facts["artifacts"])
    assert {str(s.id) for s in prov.steps} <= set(facts["executions"])
    assert facts["artifacts"][str(model.id)]["fingerprint"] == model.fingerprint


@pytest.mark.parametrize("suffix", ["html", "md"])
def test_an_edited_and_resealed_report_is_rejected(
    sqlite_store: lineage.Store, tmp_path: Path, suffix: str
) -> None:
    model = _pipeline(sqlite_store, tmp_path / "w")
    out = audit(sqlite_store, model, tmp_path / f"r.{suffix}")
    forged = tmp_path / f"forged.{suffix}"
    _reseal(forged, out.read_text().replace("lr = 0.05", "lr = 0.01"))
    assert "lr = 0.01" in forged.read_text()
    assert check(forged).ok  # the digest alone cannot tell
    result = check(forged, sqlite_store)
    assert not result.ok and "never recorded" in result.message and "REJECTED" in result.message


def test_a_consistent_report_from_a_fabricated_store_is_rejected(tmp_path: Path) -> None:
    real = lineage.connect(tmp_path / "real" / "metadata.sqlite")
    fake = lineage.connect(tmp_path / "fake" / "metadata.sqlite")
    model = _pipeline(real, tmp_path / "w-real")
    _pipeline(fake, tmp_path / "w-fake", lr=0.5)  # what the forger wishes had happened
    genuine = audit(real, model, tmp_path / "genuine.html")
    forged = audit(fake, "clf", tmp_path / "forged.html")
    assert check(forged).ok and check(forged, fake).ok  # consistent, and vouched by *its* store
    result = check(forged, real)
    assert not result.ok and "never recorded" in result.message
    assert check(genuine, real).ok and not check(genuine, fake).ok


def test_facts_that_no_longer_match_the_store_are_rejected(
    sqlite_store: lineage.Store, tmp_path: Path
) -> None:
    model = _pipeline(sqlite_store, tmp_path / "w")
    out = audit(sqlite_store, model, tmp_path / "r.html")
    assert check(out, sqlite_store).ok
    # someone rewrites the record behind the report: a param and a fingerprint
    [train] = sqlite_store.executions(step="train")
    proto = sqlite_store.mlmd.get_executions_by_id([train.id])[0]
    proto.custom_properties["lr"].double_value = 0.5
    sqlite_store.mlmd.put_executions([proto])
    art = sqlite_store.mlmd.get_artifacts_by_id([sqlite_store.get("iris").id])[0]
    art.properties["fingerprint"].string_value = "sha256:" + "1" * 64
    sqlite_store.mlmd.put_artifacts([art])
    result = check(out, sqlite_store)
    assert not result.ok and "no longer match" in result.message
    assert any(f"execution:{train.id}: execution params" in m and "0.5" in m
               for m in result.mismatches)
    assert any("artifact:" in m and "fingerprint" in m and "1111" in m for m in result.mismatches)


def test_a_digest_looking_store_value_does_not_break_a_fresh_report(
    sqlite_store: lineage.Store, tmp_path: Path
) -> None:
    fake = "lineage-audit-digest: sha256:" + "ab" * 32
    model = _pipeline(sqlite_store, tmp_path / "w",
                      note=f"{fake} <!-- {fake} --> {_PLACEHOLDER} \x01\x1b[31m")
    for suffix in ("md", "html"):
        out = audit(sqlite_store, model, tmp_path / f"r.{suffix}")
        assert check(out).ok, check(out).message
        assert check(out, sqlite_store).ok
        assert _PLACEHOLDER in out.read_text().replace("\\-", "-") or suffix == "html"


# --- signatures ---------------------------------------------------------------------------


def test_signed_reports(sqlite_store: lineage.Store, tmp_path: Path) -> None:
    key, pub = generate_key(tmp_path / "keys" / "auditor.pem")
    _other, other_pub = generate_key(tmp_path / "keys" / "other.pem")
    model = _pipeline(sqlite_store, tmp_path / "w")
    result = report.write_report(sqlite_store, model, tmp_path / "r.html", key=key)
    assert result.signature == tmp_path / "r.html.sig"
    sig = json.loads(result.signature.read_text())
    assert sig["digest"] == result.digest
    entry = sqlite_store.artifacts(type="AuditReport")[0]
    assert entry.properties["signature"] == sig["signature"]
    assert check(result.path, key=pub).ok  # from FILE.sig, no store
    assert check(result.path, sqlite_store, key=pub).ok  # from the store record
    assert "signed with key" in check(result.path, sqlite_store).message  # checked anyway
    for store in (None, sqlite_store):
        wrong = check(result.path, store, key=other_pub)
        assert not wrong.ok and "does not verify" in wrong.message
    unsigned = audit(sqlite_store, model, tmp_path / "plain.html")
    assert not check(unsigned, sqlite_store, key=pub).ok
    with pytest.raises(lineage.SignatureError, match="not an unencrypted PEM private key"):
        (tmp_path / "bad.pem").write_text("not a key")
        audit(sqlite_store, model, tmp_path / "x.html", key=tmp_path / "bad.pem")
    assert not (tmp_path / "x.html").exists()


# --- the command line -----------------------------------------------------------------------


def test_cli_audit_check_with_and_without_a_store(
    sqlite_uri: str, tmp_path: Path, capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("LINEAGE_URI", raising=False)
    store = lineage.connect(sqlite_uri)
    _pipeline(store, tmp_path / "w")
    key, pub = generate_key(tmp_path / "k.pem")
    out = tmp_path / "r.html"
    code, text, _ = run(capsys, "--store", sqlite_uri, "audit", "clf", "-o", str(out),
                        "--sign", str(key))
    assert code == 0 and "recorded in the store as artifact:" in text and "signed" in text
    code, text, _ = run(capsys, "audit", "--check", str(out))
    assert code == 0 and "self-consistency only" in text
    code, text, _ = run(capsys, "--store", sqlite_uri, "audit", "--check", str(out), "--key", str(pub))
    assert code == 0 and "accepted" in text
    code, text, _ = run(capsys, "--store", sqlite_uri, "audit", "--check", str(out), "--json")
    d = json.loads(text)
    assert code == 0 and d["ok"] and d["against_store"] and d["recorded_as"].startswith("artifact:")
    _reseal(tmp_path / "forged.html", out.read_text().replace("lr = 0.05", "lr = 0.9"))
    code, text, _ = run(capsys, "--store", sqlite_uri, "audit", "--check", str(tmp_path / "forged.html"))
    assert code == 1 and "REJECTED" in text
    monkeypatch.setenv("LINEAGE_URI", sqlite_uri)  # the store may come from the environment
    code, text, _ = run(capsys, "audit", "--check", str(tmp_path / "forged.html"))
    assert code == 1 and "REJECTED" in text


def test_cli_audit_exit_status_follows_re_verification(
    sqlite_uri: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    store = lineage.connect(sqlite_uri)
    _pipeline(store, tmp_path / "w")
    code, _, _ = run(capsys, "--store", sqlite_uri, "audit", "clf", "-o", str(tmp_path / "ok.html"))
    assert code == 0
    (tmp_path / "w" / "iris.csv").write_text("changed\n")
    code, text, err = run(capsys, "--store", sqlite_uri, "audit", "clf", "-o", str(tmp_path / "bad.html"))
    assert code == 1 and "re-verification failed" in err and "iris" in err
    assert (tmp_path / "bad.html").exists() and "wrote" in text  # the report is still written
    code, _, _ = run(capsys, "--store", sqlite_uri, "audit", "clf", "-o", str(tmp_path / "b2.html"),
                     "--allow-changed")
    assert code == 0
    code, text, _ = run(capsys, "--store", sqlite_uri, "audit", "clf", "-o",
                        str(tmp_path / "b3.html"), "--json", "--allow-changed")
    d = json.loads(text)
    assert code == 0 and not d["ok"] and any("iris" in f and "changed" in f for f in d["failures"])
    # --json without -o: the evidence, exactly to_dict()
    code, text, _ = run(capsys, "--store", sqlite_uri, "audit", "clf", "--json", "--allow-changed")
    ro = lineage.connect(sqlite_uri, read_only=True)
    expected = json.loads(json.dumps(lineage.evidence.evidence(ro, "clf").to_dict(), default=str))
    got = json.loads(text)
    assert code == 0 and got.keys() == expected.keys()
    assert got["provenance"] == expected["provenance"] and got["target"] == expected["target"]
    code, text, _ = run(capsys, "--store", sqlite_uri, "audit", "clf")
    assert code == 1 and text.startswith("# Audit report: clf v1")
    # --no-record: nothing is added
    before = len(ro.artifacts(type="AuditReport"))
    run(capsys, "--store", sqlite_uri, "audit", "clf", "-o", str(tmp_path / "n.md"), "--no-record",
        "--allow-changed")
    assert len(lineage.connect(sqlite_uri, read_only=True).artifacts(type="AuditReport")) == before


def test_recorded_reports_show_in_the_raw_store(sqlite_store: lineage.Store, tmp_path: Path) -> None:
    """Any MLMD tool sees the report: an artifact of type AuditReport with the digest."""
    model = _pipeline(sqlite_store, tmp_path / "w")
    result = report.write_report(sqlite_store, model, tmp_path / "r.md")
    raw = sqlite_store.mlmd.get_artifacts_by_type("AuditReport")
    assert [a.properties["digest"].string_value for a in raw] == [result.digest]
    events = sqlite_store.mlmd.get_events_by_artifact_ids([raw[0].id])
    assert [e.type for e in events] == [pb.Event.OUTPUT]
