"""Signed, portable provenance: in-toto Statement v1 with a SLSA provenance v1 predicate,
in a DSSE envelope signed with Ed25519, checked by independent implementations
(securesystemslib's DSSE verification, the in-toto attestation Python bindings) and by
`lineage attest --verify`: a tampered subject and a wrong key both fail."""

from __future__ import annotations

import base64
import copy
import hashlib
import json
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives import serialization
from demo_store import record_demo
from google.protobuf import json_format

import lineage
import lineage.attest
from lineage.attest import PAYLOAD_TYPE, PREDICATE_TYPE, STATEMENT_TYPE, attest, write_attestation
from lineage.cli import main
from lineage.signing import generate_key, key_id

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    folder = tmp_path_factory.mktemp("demo")
    uri, out, _ = record_demo(folder)
    keys = folder / "keys"
    key, pub = generate_key(keys / "signer.pem")
    _, other = generate_key(keys / "other.pem")
    return {"uri": uri, "out": out, "store": lineage.connect(uri, read_only=True),
            "key": key, "pub": pub, "other": other, "folder": folder}


def _sslib_key(pub: Path) -> Any:
    """Our public key as securesystemslib sees it (raw Ed25519, hex)."""
    from securesystemslib.signer import SSlibKey

    public = serialization.load_pem_public_key(pub.read_bytes())
    raw = public.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    return SSlibKey(key_id(pub), "ed25519", "ed25519", {"public": raw.hex()})


def _sslib_verify(envelope: dict[str, Any], pub: Path) -> bytes:
    from securesystemslib.dsse import Envelope

    env = Envelope.from_dict(copy.deepcopy(envelope))  # from_dict consumes its input
    env.verify([_sslib_key(pub)], 1)  # raises VerificationError
    payload: bytes = env.payload
    return payload


def test_statement_states_the_record(demo: dict[str, Any]) -> None:
    store: lineage.Store = demo["store"]
    deployed = store.get("clf-serving")
    statement = attest(store, deployed)
    assert statement["_type"] == STATEMENT_TYPE and statement["predicateType"] == PREDICATE_TYPE
    [subject] = statement["subject"]
    served = Path(str(deployed.path))
    assert subject["name"] == served.name
    assert subject["digest"] == {"sha256": hashlib.sha256(served.read_bytes()).hexdigest()}
    assert "sha256:" + subject["digest"]["sha256"] == deployed.fingerprint
    build = statement["predicate"]["buildDefinition"]
    prov = store.provenance(deployed)
    deps = {d["annotations"]["lineage.artifact"]: d for d in build["resolvedDependencies"]
            if "lineage.artifact" in d.get("annotations", {})}
    for a in prov.datasets:
        algo, hexd = str(a.fingerprint).split(":")
        assert deps[f"artifact:{a.id}"]["digest"] == {algo: hexd}
        assert deps[f"artifact:{a.id}"]["annotations"]["lineage.role"] == "dataset"
    config = store.get("params.yaml")
    assert deps[f"artifact:{config.id}"]["annotations"]["lineage.role"] == "config"
    commits = {s.properties["git_commit"] for s in prov.steps}
    assert {d["digest"]["gitCommit"] for d in build["resolvedDependencies"]
            if "gitCommit" in d.get("digest", {})} == commits
    steps = {s["execution"]: s for s in build["externalParameters"]["steps"]}
    for s in prov.steps:
        if s.state == "COMPLETE":
            assert steps[s.ref]["params"] == s.params
    run = statement["predicate"]["runDetails"]
    assert run["builder"]["id"].startswith("urn:mlmd-lineage:")
    assert run["metadata"]["invocationId"].startswith("lineage:deploy:")
    assert run["metadata"]["startedOn"] <= run["metadata"]["finishedOn"]
    assert run["builder"]["builderDependencies"][0]["name"] == "environment"


def test_the_in_toto_bindings_accept_the_statement(demo: dict[str, Any]) -> None:
    from in_toto_attestation.predicates.provenance.v1 import provenance_pb2
    from in_toto_attestation.v1 import statement_pb2
    from in_toto_attestation.v1.statement import Statement

    statement = attest(demo["store"], "clf-serving")
    proto = json_format.ParseDict(statement, statement_pb2.Statement())
    Statement.copy_from_pb(proto).validate()  # raises ValueError if malformed
    # the predicate is exactly SLSA provenance v1 (unknown fields would fail to parse)
    predicate = json_format.ParseDict(statement["predicate"], provenance_pb2.Provenance())
    assert predicate.build_definition.build_type == lineage.attest.BUILD_TYPE
    assert len(predicate.build_definition.resolved_dependencies) >= 4
    assert predicate.run_details.builder.version["mlmd-lineage"] == lineage.__version__


def test_signed_envelope_verifies_independently(demo: dict[str, Any], tmp_path: Path) -> None:
    path = write_attestation(demo["store"], "clf-serving", tmp_path / "m.intoto.json", key=demo["key"])
    envelope = json.loads(path.read_text())
    assert envelope["payloadType"] == PAYLOAD_TYPE == "application/vnd.in-toto+json"
    assert envelope["signatures"][0]["keyid"] == key_id(demo["pub"])
    payload = _sslib_verify(envelope, demo["pub"])
    assert json.loads(payload) == attest(demo["store"], "clf-serving")
    check = lineage.attest.verify_attestation(path, demo["pub"])
    assert check.ok and check.subjects == (("model.pkl", "ok"),)


def test_a_wrong_key_fails_both_verifiers(demo: dict[str, Any], tmp_path: Path) -> None:
    from securesystemslib.exceptions import VerificationError

    path = write_attestation(demo["store"], "clf-serving", tmp_path / "m.json", key=demo["key"])
    envelope = json.loads(path.read_text())
    other = _sslib_key(demo["other"])
    other.keyid = envelope["signatures"][0]["keyid"]  # even claiming the signer's key id
    from securesystemslib.dsse import Envelope

    with pytest.raises(VerificationError):
        Envelope.from_dict(copy.deepcopy(envelope)).verify([other], 1)
    check = lineage.attest.verify_attestation(path, demo["other"])
    assert not check.ok and "no signature" in check.message


def test_a_tampered_subject_fails_both_verifiers(demo: dict[str, Any], tmp_path: Path) -> None:
    from securesystemslib.exceptions import VerificationError

    path = write_attestation(demo["store"], "clf-serving", tmp_path / "m.json", key=demo["key"])
    envelope = json.loads(path.read_text())
    statement = json.loads(base64.b64decode(envelope["payload"]))
    statement["subject"][0]["digest"]["sha256"] = "0" * 64  # claim other content
    forged = {**envelope, "payload": base64.b64encode(json.dumps(statement).encode()).decode()}
    (tmp_path / "forged.json").write_text(json.dumps(forged))
    with pytest.raises(VerificationError):
        _sslib_verify(forged, demo["pub"])
    assert not lineage.attest.verify_attestation(tmp_path / "forged.json", demo["pub"]).ok
    # a genuine envelope, but the file on disk is not the attested one
    copy = tmp_path / "model.pkl"
    copy.write_bytes(Path(str(demo["store"].get("clf-serving").path)).read_bytes() + b"x")
    check = lineage.attest.verify_attestation(path, demo["pub"], artifact=copy)
    assert not check.ok and check.subjects == (("model.pkl", "changed"),)
    _sslib_verify(envelope, demo["pub"])  # the signature itself is fine
    copy.write_bytes(Path(str(demo["store"].get("clf-serving").path)).read_bytes())
    assert lineage.attest.verify_attestation(path, demo["pub"], artifact=copy).ok


def test_unsigned_statements_are_not_accepted(demo: dict[str, Any], tmp_path: Path) -> None:
    path = write_attestation(demo["store"], "clf-serving", tmp_path / "s.json")
    assert json.loads(path.read_text())["_type"] == STATEMENT_TYPE
    check = lineage.attest.verify_attestation(path, demo["pub"])
    assert not check.ok and "not a signed DSSE envelope" in check.message


def test_folder_and_in_memory_subjects(sqlite_store: lineage.Store, tmp_path: Path) -> None:
    folder = tmp_path / "model"
    (folder / "sub").mkdir(parents=True)
    (folder / "weights.bin").write_bytes(b"w")
    (folder / "sub" / "config.json").write_text("{}")
    sqlite_store.put(lineage.Model(folder, name="folder-model"))
    subjects = attest(sqlite_store, "folder-model")["subject"]
    assert [s["name"] for s in subjects] == ["model/sub/config.json", "model/weights.bin"]
    assert subjects[1]["digest"]["sha256"] == hashlib.sha256(b"w").hexdigest()
    m = sqlite_store.put(lineage.Metrics({"acc": 0.9}, name="eval"))
    [subject] = attest(sqlite_store, "eval")["subject"]
    assert subject == {"name": f"lineage:artifact/{m.id}",
                       "digest": {"sha256": str(m.fingerprint).split(":")[1]}}
    key, pub = generate_key(tmp_path / "k.pem")
    path = write_attestation(sqlite_store, "folder-model", tmp_path / "f.json", key=key)
    assert lineage.attest.verify_attestation(path, pub, artifact=folder).ok
    (folder / "weights.bin").write_bytes(b"changed")
    check = lineage.attest.verify_attestation(path, pub, artifact=folder)
    assert not check.ok and ("model/weights.bin", "changed") in check.subjects
    with pytest.raises(lineage.ArtifactError, match="changed since it was recorded"):
        attest(sqlite_store, "folder-model")


def test_cli_attest_and_verify(demo: dict[str, Any], tmp_path: Path,
                               capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "m.intoto.json"
    code = main(["--store", demo["uri"], "attest", "clf-serving", "-o", str(out), "--key", str(demo["key"])])
    assert code == 0 and "DSSE envelope (signed)" in capsys.readouterr().out
    assert main(["attest", "--verify", str(out), "--key", str(demo["pub"])]) == 0
    assert "verified" in capsys.readouterr().out
    assert main(["attest", "--verify", str(out), "--key", str(demo["other"])]) == 1
    assert "REJECTED" in capsys.readouterr().out
    assert main(["attest", "--verify", str(out), "--key", str(demo["pub"]), "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["signed_by"] == key_id(demo["pub"])
    # the demo writes a verified attestation next to its report
    written = demo["out"] / "clf-serving.intoto.json"
    demo_pub = demo["out"] / "keys" / "demo-key.pub.pem"
    assert main(["attest", "--verify", str(written), "--key", str(demo_pub)]) == 0
    _sslib_verify(json.loads(written.read_text()), demo_pub)
