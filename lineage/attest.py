"""Portable, signed provenance: in-toto Statements with a SLSA provenance v1 predicate.

:func:`attest` turns the record of an artifact into an `in-toto Statement v1
<https://github.com/in-toto/attestation/blob/main/spec/v1/statement.md>`_ that anyone can
check without the store:

- ``subject``: the artifact's file (or every file of its folder, or its in-memory
  content) with its ``sha256`` digest, checked against the file on disk first;
- ``predicateType: https://slsa.dev/provenance/v1``, whose ``buildDefinition`` holds
  the steps' params (``externalParameters``), and among the ``resolvedDependencies`` the
  upstream artifacts (datasets, models, configs) with their digests and the git commits
  of the code; ``runDetails`` names the builder (the CI job, or the host), the
  invocation (the producing execution) and the start and end times.

With a key (Ed25519, PEM PKCS#8) the statement is wrapped in a DSSE envelope
(``payloadType: application/vnd.in-toto+json``, the statement base64 in ``payload``,
``signatures``), the format in-toto, SLSA and OpenSSF model signing verifiers read.
:func:`verify_attestation` checks an envelope against a public key and its subjects
against the files on disk.

Example:
    >>> import lineage, json, tempfile, pathlib
    >>> store = lineage.connect(":memory:")
    >>> f = pathlib.Path(tempfile.mkdtemp()) / "model.bin"; _ = f.write_bytes(b"w")
    >>> m = store.put(lineage.Model(f, name="clf"))
    >>> doc = attest(store, "clf")
    >>> doc["_type"], doc["subject"][0]["name"], doc["predicateType"]
    ('https://in-toto.io/Statement/v1', 'model.bin', 'https://slsa.dev/provenance/v1')
"""

from __future__ import annotations

import datetime as _dt
import hashlib
import json
import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

import attrs

from lineage.errors import ArtifactError, SignatureError

if TYPE_CHECKING:
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    from lineage.artifacts import Artifact
    from lineage.store import Ref, Store

__all__ = [
    "BUILD_TYPE",
    "PAYLOAD_TYPE",
    "PREDICATE_TYPE",
    "STATEMENT_TYPE",
    "AttestationCheck",
    "attest",
    "verify_attestation",
    "write_attestation",
]

STATEMENT_TYPE = "https://in-toto.io/Statement/v1"
PREDICATE_TYPE = "https://slsa.dev/provenance/v1"
PAYLOAD_TYPE = "application/vnd.in-toto+json"
#: The SLSA ``buildType`` of a pipeline recorded by ``lineage`` steps.
BUILD_TYPE = "urn:mlmd-lineage:build-type:steps:v1"


def _sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _rfc3339(seconds: Any) -> str | None:
    if not isinstance(seconds, (int, float)) or isinstance(seconds, bool) or seconds <= 0:
        return None
    stamp = _dt.datetime.fromtimestamp(float(seconds), tz=_dt.timezone.utc)
    return stamp.isoformat(timespec="seconds").replace("+00:00", "Z")


def _digest_of(fingerprint: str | None) -> dict[str, str]:
    """An in-toto DigestSet from a recorded ``algo:hex`` fingerprint."""
    if not fingerprint or ":" not in fingerprint:
        return {}
    algo, hexd = fingerprint.split(":", 1)
    return {algo: hexd}


def _subjects(a: Artifact) -> list[dict[str, Any]]:
    """The artifact's content as in-toto subjects, checked against the record first."""
    from lineage.fingerprint import fingerprint

    path = a.path
    if path is None:  # in-memory content, or a remote URI: the recorded digest is all we have
        digest = _digest_of(a.fingerprint)
        if not digest:
            raise ArtifactError(f"cannot attest {a!r}: no fingerprint was recorded")
        name = a.uri if a.uri else f"lineage:artifact/{a.id}"
        return [{"name": name, "digest": digest}]
    p = Path(path)
    if not p.exists():
        raise ArtifactError(f"cannot attest {a!r}: {p} does not exist")
    if a.fingerprint:
        now = fingerprint(p, algo=a.fingerprint.split(":", 1)[0], progress=False)
        if now != a.fingerprint:
            raise ArtifactError(
                f"cannot attest {a!r}: {p} changed since it was recorded (recorded "
                f"{a.fingerprint}, now {now}); `lineage verify` shows what changed")
    if p.is_file():
        return [{"name": p.name, "uri": p.resolve().as_uri(),
                 "digest": {"sha256": _sha256_file(p)}}]
    files = sorted(f for f in p.rglob("*") if f.is_file())
    return [{"name": f"{p.name}/{f.relative_to(p).as_posix()}", "uri": f.resolve().as_uri(),
             "digest": {"sha256": _sha256_file(f)}} for f in files]


def _dependency(a: Artifact, role: str) -> dict[str, Any]:
    uri = a.uri or f"lineage:artifact/{a.id}"
    path = a.path
    if path is not None and "://" not in (a.uri or ""):
        uri = Path(path).resolve().as_uri()
    out: dict[str, Any] = {
        "name": f"{a.type_name} {a.name} v{a.version}", "uri": uri,
        "annotations": {"lineage.artifact": f"artifact:{a.id}", "lineage.role": role,
                        "lineage.type": a.type_name},
    }
    digest = _digest_of(a.fingerprint)
    if digest:
        out["digest"] = digest
    if a.properties.get("split"):
        out["annotations"]["lineage.split"] = str(a.properties["split"])
    return out


def attest(store: Store, ref: Ref) -> dict[str, Any]:
    """The in-toto Statement (SLSA provenance v1) of an artifact, from the record.

    Raises:
        NotFound: ``ref`` names nothing. ArtifactError: the artifact's content changed
        since it was recorded, is missing, or has no fingerprint.
    """
    from lineage import __version__
    from lineage._convert import jsonable as _jsonable
    from lineage.evidence import evidence

    ev = evidence(store, ref)
    target = ev.target
    subjects = _subjects(target)
    prov = ev.provenance
    dependencies = [
        _dependency(a, "dataset" if getattr(a, "base_type", None) == "DATASET" else "input")
        for a in prov.artifacts
    ]
    config_ids = {c["artifact"] for run in ev.config for c in run["configs"]}
    for ref_text in sorted(config_ids):
        art = ev.artifacts.get(int(ref_text.split(":", 1)[1]))
        if art is not None and art.id not in {a.id for a in prov.artifacts}:
            dependencies.append(_dependency(art, "config"))
    for code in ev.recipe["code"]:
        dependencies.append({
            "uri": f"git+{Path(code['repo']).resolve().as_uri()}",
            "digest": {"gitCommit": code["commit"]},
            "annotations": {"lineage.role": "code", "lineage.dirty": bool(code["dirty"])},
        })
    steps = [{"execution": s["execution"], "step": s["step"], "state": s["state"],
              "function": s["function"], "sourceFile": s["source_file"],
              "sourceHash": s["source_hash"], "params": s["params"]}
             for s in ev.recipe["steps"]]
    starts: list[float] = [float(x) for s in prov.steps
                           if isinstance(x := s.properties.get("start_time"), (int, float))]
    ends: list[float] = [float(x) for s in prov.steps
                         if isinstance(x := s.properties.get("end_time"), (int, float))]
    producers = [s for s in prov.steps if target.id in s.outputs]
    ci = next((s.properties.get("ci") for s in producers if isinstance(s.properties.get("ci"), dict)),
              None)
    host = next((s.properties.get("hostname") for s in producers if s.properties.get("hostname")),
                None)
    if isinstance(ci, dict) and ci.get("url"):
        builder_id = str(ci["url"])
    elif isinstance(ci, dict) and ci.get("system"):
        builder_id = f"urn:mlmd-lineage:ci:{ci['system']}"
    else:
        builder_id = f"urn:mlmd-lineage:host:{host or 'unknown'}"
    env_deps = []
    for env in ev.environments:
        if env.get("environment") and env.get("fingerprint"):
            env_deps.append({"name": "environment", "uri": f"lineage:{env['environment']}",
                             "digest": _digest_of(env["fingerprint"]),
                             "annotations": {"python": env.get("python") or "",
                                             "os": env.get("os") or "",
                                             "packages": len(env.get("packages") or {})}})
    metadata: dict[str, Any] = {}
    if producers and producers[-1].mlmd_name:
        metadata["invocationId"] = f"lineage:{producers[-1].mlmd_name}"
    if starts:
        metadata["startedOn"] = _rfc3339(min(starts))
    if ends:
        metadata["finishedOn"] = _rfc3339(max(ends))
    statement = {
        "_type": STATEMENT_TYPE,
        "subject": subjects,
        "predicateType": PREDICATE_TYPE,
        "predicate": {
            "buildDefinition": {
                "buildType": BUILD_TYPE,
                "externalParameters": {
                    "target": {"artifact": f"artifact:{target.id}", "type": target.type_name,
                               "name": target.name, "version": target.version},
                    "steps": steps,
                    "runs": ev.recipe["run_params"],
                    "commands": [c["command"] for c in ev.recipe["commands"]],
                },
                "internalParameters": {"store": store.uri},
                "resolvedDependencies": dependencies,
            },
            "runDetails": {
                "builder": {
                    "id": builder_id,
                    "version": {"mlmd-lineage": __version__},
                    **({"builderDependencies": env_deps} if env_deps else {}),
                },
                "metadata": metadata,
            },
        },
    }
    out: dict[str, Any] = _jsonable(statement)
    return out


def _dumps(value: Any) -> bytes:
    return (json.dumps(value, indent=2, sort_keys=True, ensure_ascii=False) + "\n").encode("utf-8")


def write_attestation(
    store: Store, ref: Ref, path: str | os.PathLike[str], *,
    key: Ed25519PrivateKey | str | os.PathLike[str] | None = None,
) -> Path:
    """Write the attestation of ``ref``: the statement as JSON, or with ``key`` a DSSE
    envelope signed with it (``.intoto.json`` / ``.dsse.json`` are usual suffixes).

    Raises:
        SignatureError: the key cannot be used. ArtifactError: see :func:`attest`.
    """
    from lineage.signing import dsse_sign, load_private_key

    private = load_private_key(key) if key is not None else None
    statement = attest(store, ref)
    payload = json.dumps(statement, sort_keys=True, separators=(",", ":"),
                         ensure_ascii=False).encode("utf-8")
    document: Any = dsse_sign(payload, PAYLOAD_TYPE, private) if private is not None else statement
    out = Path(path)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_bytes(_dumps(document))
    return out


@attrs.frozen
class AttestationCheck:
    """The result of :func:`verify_attestation`: truthy when accepted."""

    path: Path
    ok: bool
    message: str
    subjects: tuple[tuple[str, str], ...] = ()
    """(subject name, ``ok`` / ``changed`` / ``missing`` / ``not checked``)."""
    signed_by: str | None = None
    """The key id that verified the envelope."""

    def __bool__(self) -> bool:
        return self.ok

    def to_dict(self) -> dict[str, Any]:
        """JSON shape (what ``lineage attest --verify FILE --json`` prints)."""
        return {"path": str(self.path), "ok": self.ok, "message": self.message,
                "subjects": [{"name": n, "status": s} for n, s in self.subjects],
                "signed_by": self.signed_by}


def _subject_file(subject: dict[str, Any], artifact: Path | None, count: int) -> Path | None:
    name = str(subject.get("name") or "")
    if artifact is not None:
        if artifact.is_file():
            return artifact if count == 1 else None
        parts = name.split("/", 1)
        return artifact / parts[1] if len(parts) == 2 else None
    uri = str(subject.get("uri") or "")
    if uri.startswith("file://"):
        from urllib.parse import unquote, urlparse

        return Path(unquote(urlparse(uri).path))
    return None


def verify_attestation(
    path: str | os.PathLike[str], key: Any, *, artifact: str | os.PathLike[str] | None = None,
) -> AttestationCheck:
    """Check a signed attestation: the envelope verifies with ``key`` (a public key PEM),
    it holds an in-toto Statement v1, and every subject's sha256 matches the file on disk
    (``artifact``: the file or folder to compare, else the subject's ``file://`` URI).

    Raises:
        SignatureError: the key cannot be read.
    """
    from lineage.signing import dsse_verify, key_id, load_public_key

    file = Path(path)
    public = load_public_key(key)
    try:
        document = json.loads(file.read_bytes())
    except (OSError, ValueError) as exc:
        return AttestationCheck(file, False, f"{file}: cannot read the attestation: {exc}")
    if not isinstance(document, dict) or "payloadType" not in document:
        return AttestationCheck(file, False, f"{file}: REJECTED: not a signed DSSE envelope (an "
                                "unsigned statement proves nothing; write it with --key)")
    if document.get("payloadType") != PAYLOAD_TYPE:
        return AttestationCheck(file, False, f"{file}: REJECTED: payloadType is "
                                f"{document.get('payloadType')!r}, not {PAYLOAD_TYPE}")
    try:
        payload = dsse_verify(document, public)
    except SignatureError as exc:
        return AttestationCheck(file, False, f"{file}: REJECTED: {exc}")
    try:
        statement = json.loads(payload)
    except ValueError as exc:
        return AttestationCheck(file, False, f"{file}: REJECTED: the payload is not JSON: {exc}")
    if not isinstance(statement, dict) or statement.get("_type") != STATEMENT_TYPE or \
            not isinstance(statement.get("subject"), list) or not statement["subject"]:
        return AttestationCheck(file, False, f"{file}: REJECTED: the payload is not an in-toto "
                                "Statement v1 with subjects")
    where = Path(artifact) if artifact is not None else None
    subjects = [s for s in statement["subject"] if isinstance(s, dict)]
    results: list[tuple[str, str]] = []
    for subject in subjects:
        name = str(subject.get("name") or "")
        wanted = (subject.get("digest") or {}).get("sha256")
        found = _subject_file(subject, where, len(subjects))
        if found is None or not wanted:
            results.append((name, "not checked"))
        elif not found.is_file():
            results.append((name, "missing"))
        else:
            results.append((name, "ok" if _sha256_file(found) == wanted else "changed"))
    signer = key_id(public)
    bad = [(n, s) for n, s in results if s != "ok"]
    if bad:
        detail = ", ".join(f"{n}: {s}" for n, s in bad[:5])
        return AttestationCheck(file, False, f"{file}: REJECTED: signed by key {signer[:16]}…, "
                                f"but subjects do not match the files on disk: {detail}",
                                tuple(results), signer)
    return AttestationCheck(file, True, f"{file}: verified: signed by key {signer[:16]}…, "
                            f"{len(results)} subject(s) match the files on disk",
                            tuple(results), signer)
