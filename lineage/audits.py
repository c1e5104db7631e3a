"""Audit reports the store vouches for: recording a report, and checking one against the
store that made it.

A report written by :func:`lineage.report.audit` against a writable store is recorded
there: an ``AuditReport`` artifact (the report file, with its fingerprint and the digest
the report embeds in ``digest``, the audited artifact's id in ``target``, and a signature
when the report was signed) written by an ``audit`` execution that read the audited
artifact. The report is then downstream of what it audits (``impact`` lists it).

:func:`check_against_store` accepts a report only if

1. it agrees with its own embedded digest (nothing was edited, or the digest was
   recomputed: see 2),
2. the store recorded that digest (an ``AuditReport``): a report edited and re-sealed, or
   made from another (fabricated) store, has a digest the store never recorded,
3. the facts the report states (its machine-readable facts block: fingerprints, versions,
   names and URIs of artifacts, steps' states, params and code, runs' params) still
   match the store, record by record, and
4. with a key, the signature (recorded in the store, or in ``FILE.sig`` beside the report)
   is that key's Ed25519 signature of the digest.

Without a store only 1 (and 4, from ``FILE.sig``) can be checked, and the result says so.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

from lineage.artifacts import Artifact
from lineage.errors import LineageError, SignatureError

if TYPE_CHECKING:
    from lineage.store import Store

__all__ = ["AUDIT_STEP", "AuditReport", "find_reports", "record_report", "signature_message"]

AUDIT_STEP = "audit"


class AuditReport(Artifact):
    """A written audit report (see :mod:`lineage.audits`)."""

    digest: str
    format: str
    target: int
    signature: str
    public_key: str
    key_id: str


def signature_message(digest: str) -> bytes:
    """The bytes an audit report's signature signs: a context string and the digest.

    Example:
        >>> signature_message("sha256:ab")
        b'lineage-audit-report/v1 sha256:ab'
    """
    return b"lineage-audit-report/v1 " + digest.encode("ascii")


def record_report(
    store: Store, target: Artifact, path: Path, *, digest: str, fmt: str,
    signature: dict[str, str] | None = None,
) -> AuditReport:
    """Record a written report in ``store`` (an ``audit`` execution: target → report)."""
    from lineage._signoff import record_signoff

    label = f"{target.name}@{target.version}" if target.version else str(target.name)
    props: dict[str, Any] = {"digest": digest, "format": fmt, "target": int(target.id or 0)}
    if signature:
        props.update(signature=signature["signature"], public_key=signature["public_key"],
                     key_id=signature["key_id"])
    report = AuditReport(path.resolve(), name=f"audit of {label}", **props)
    recorded = record_signoff(store, AUDIT_STEP, target, report, {"format": fmt})
    assert isinstance(recorded, AuditReport)
    return recorded


def find_reports(store: Store, digest: str) -> list[AuditReport]:
    """The recorded reports whose embedded digest is ``digest`` (reads the AuditReport
    artifacts: one per report ever written against the store)."""
    return [a for a in store.artifacts(type=AuditReport.type_name)
            if isinstance(a, AuditReport) and a.properties.get("digest") == digest]


def sig_path(report: Path) -> Path:
    """Where a report's detached signature lives: ``report.html.sig``."""
    return report.with_name(report.name + ".sig")


def write_signature(report: Path, digest: str, key: Any) -> dict[str, str]:
    """Sign a report's digest with ``key``; write ``FILE.sig`` (JSON) beside it."""
    from lineage.signing import key_id, public_key_to_b64, sign

    entry = {"type": "lineage-audit-report-signature/v1", "digest": digest,
             "signature": sign(signature_message(digest), key),
             "public_key": public_key_to_b64(key), "key_id": key_id(key)}
    sig_path(report).write_text(json.dumps(entry, indent=2, sort_keys=True) + "\n")
    return entry


def read_signature(report: Path) -> dict[str, Any] | None:
    """The detached signature beside a report, if any."""
    path = sig_path(report)
    if not path.exists():
        return None
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise SignatureError(f"cannot read the signature {path}: {exc}") from exc
    return data if isinstance(data, dict) else None


def check_signature(digest: str, entry: dict[str, Any] | None, key: Any) -> tuple[bool, str]:
    """Whether ``entry`` (a signature record) signs ``digest`` with ``key`` (a public key
    file or object; ``None``: the public key the entry names)."""
    from lineage.signing import key_id, public_key_from_b64, verify

    if not entry or not entry.get("signature"):
        return False, "the report is not signed"
    try:
        public = load_any_public(key) if key is not None else public_key_from_b64(
            str(entry.get("public_key") or ""))
    except SignatureError as exc:
        return False, str(exc)
    if not verify(signature_message(digest), str(entry["signature"]), public):
        return False, f"the signature does not verify with key {key_id(public)[:16]}…"
    return True, f"signed with key {key_id(public)[:16]}…"


def load_any_public(key: Any) -> Any:
    from lineage.signing import load_public_key

    return load_public_key(key)


def compare_facts(store: Store, facts: dict[str, Any]) -> list[str]:
    """What the store holds differently from the facts a report states, one line each."""
    from lineage.evidence import artifact_facts, execution_facts, run_facts

    problems: list[str] = []
    if not isinstance(facts, dict) or facts.get("format") != 1:
        return ["the report's facts block is missing or of an unknown format"]
    arts = facts.get("artifacts") or {}
    execs = facts.get("executions") or {}
    runs = facts.get("runs") or {}
    try:
        stored_arts = store.artifacts_by_id(int(i) for i in arts)
        stored_execs = store.executions_by_id(int(i) for i in execs)
        protos = store._batched("get_contexts_by_id", sorted(int(i) for i in runs))
        stored_runs = {r.id: r for r in store._runs_from_protos(protos)}
    except (LineageError, ValueError, TypeError) as exc:
        return [f"cannot read the records the report names: {exc}"]

    def differ(kind: str, ref: str, stated: dict[str, Any], now: dict[str, Any]) -> None:
        for key in sorted(set(stated) | set(now)):
            if _norm(stated.get(key)) != _norm(now.get(key)):
                problems.append(f"{ref}: {kind} {key} is {_short(now.get(key))} in the store, "
                                f"the report says {_short(stated.get(key))}")

    for i, stated in sorted(arts.items(), key=lambda kv: int(kv[0])):
        found = stored_arts.get(int(i))
        if found is None:
            problems.append(f"artifact:{i}: not in the store")
        else:
            differ("artifact", f"artifact:{i}", stated, artifact_facts(found))
    for i, stated in sorted(execs.items(), key=lambda kv: int(kv[0])):
        found_e = stored_execs.get(int(i))
        if found_e is None:
            problems.append(f"execution:{i}: not in the store")
        else:
            differ("execution", f"execution:{i}", stated, execution_facts(found_e))
    for i, stated in sorted(runs.items(), key=lambda kv: int(kv[0])):
        found_r = stored_runs.get(int(i))
        if found_r is None:
            problems.append(f"context:{i}: not in the store")
        else:
            differ("run", f"context:{i}", stated, run_facts(found_r))
    return problems


def _norm(value: Any) -> str:
    return json.dumps(value, sort_keys=True, default=str)


def _short(value: Any, limit: int = 80) -> str:
    text = _norm(value)
    return text if len(text) <= limit else text[: limit - 1] + "…"


def public_key_arg(key: str | os.PathLike[str] | None) -> Any:
    """A public key given on the command line (a PEM file), loaded, or ``None``."""
    return load_any_public(key) if key is not None else None
