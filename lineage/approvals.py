"""Approvals: a dated, optionally signed sign-off of one artifact, recorded in the store.

``lineage.approve(store, ref, by="Jane Doe", note="ok for production", key="key.pem")``
(CLI: ``lineage approve REF --by NAME [--note TEXT] [--key KEY.pem]``) records:

- an ``Approval`` artifact whose content is the approval *statement*, canonical JSON of
  ``{"type": "lineage-approval/v1", "artifact": {id, type, name, version, fingerprint},
  "by", "note", "time"}`` (so its fingerprint is the statement's digest), with the same
  fields as properties, and with a key, the Ed25519 ``signature`` of the statement, the
  ``public_key`` (base64 DER) and its ``key_id``;
- an ``approve`` execution that reads the approved artifact (INPUT) and writes the
  approval (OUTPUT): the approval is downstream of what it approves (``impact``).

:func:`approvals_of` reads the approvals of an artifact and checks each one: the
statement re-derived from the record matches the approval's fingerprint, the signature
(if any) verifies, and the approved artifact still has the fingerprint that was approved.
``store.verify()`` reports them (``Verification.approvals``); reports show them.

Example:
    >>> import lineage
    >>> store = lineage.connect(":memory:")
    >>> m = store.put(lineage.Model(content=b"w", name="clf"))
    >>> a = lineage.approve(store, "clf", by="Jane Doe", note="ok")
    >>> [(c.by, c.status) for c in approvals_of(store, "clf")]
    [('Jane Doe', 'unsigned')]
"""

from __future__ import annotations

import datetime as _dt
import json
import os
from typing import TYPE_CHECKING, Any

import attrs
from ml_metadata.proto import metadata_store_pb2 as pb

from lineage._signoff import record_signoff
from lineage.artifacts import Artifact
from lineage.errors import SignatureError, StepError

if TYPE_CHECKING:
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    from lineage.store import Ref, Store

__all__ = ["Approval", "ApprovalCheck", "approvals_of", "approve"]

STATEMENT_TYPE = "lineage-approval/v1"
APPROVE_STEP = "approve"


class Approval(Artifact):
    """A recorded sign-off of one artifact (see :mod:`lineage.approvals`)."""

    by: str
    note: str
    time: str
    target: int
    target_fingerprint: str
    signature: str
    public_key: str
    key_id: str

    def statement(self) -> dict[str, Any]:
        """The signed statement, re-derived from the record."""
        p = self.properties
        return {
            "type": STATEMENT_TYPE,
            "artifact": p.get("artifact") if isinstance(p.get("artifact"), dict) else {},
            "by": p.get("by"), "note": p.get("note") or "", "time": p.get("time"),
        }

    def recorded_content(self) -> tuple[Any, bool] | None:
        """The content the fingerprint was computed from (exactly)."""
        return self.statement(), True


def _canonical(statement: dict[str, Any]) -> bytes:
    return json.dumps(statement, sort_keys=True, separators=(",", ":"),
                      ensure_ascii=False).encode("utf-8")


@attrs.define(eq=False)
class ApprovalCheck:
    """One approval of an artifact, checked against the record."""

    approval: Approval
    """The recorded approval."""
    status: str
    """``ok``; ``unsigned`` (fine, but nothing proves who wrote it); ``bad signature``;
    ``changed`` (the record no longer matches its statement); ``stale`` (the artifact's
    fingerprint is not the approved one)."""
    detail: str = ""
    """Why, for anything but ``ok``."""

    @property
    def ok(self) -> bool:
        """Whether nothing is wrong (an unsigned approval is not wrong)."""
        return self.status in ("ok", "unsigned")

    @property
    def by(self) -> str:
        """Who approved."""
        return str(self.approval.properties.get("by") or "")

    @property
    def signed(self) -> bool:
        """Whether the approval carries a signature."""
        return bool(self.approval.properties.get("signature"))

    def to_dict(self) -> dict[str, Any]:
        """JSON shape of one checked approval."""
        p = self.approval.properties
        return {"ref": f"artifact:{self.approval.id}", "by": p.get("by"),
                "note": p.get("note") or "", "time": p.get("time"),
                "target": p.get("target"), "target_fingerprint": p.get("target_fingerprint"),
                "signed": self.signed, "key_id": p.get("key_id") or None,
                "status": self.status, "detail": self.detail}


def _check(approval: Approval, current: Artifact | None,
           key: Any = None) -> ApprovalCheck:
    from lineage.fingerprint import fingerprint_content
    from lineage.signing import key_id, public_key_from_b64, verify

    statement = approval.statement()
    if fingerprint_content(statement) != approval.fingerprint:
        return ApprovalCheck(approval, "changed",
                             "the recorded approval no longer matches the statement it was "
                             "recorded with (its properties were edited)")
    p = approval.properties
    status, detail = "ok", ""
    if p.get("signature"):
        try:
            public = public_key_from_b64(str(p.get("public_key") or ""))
            good = verify(_canonical(statement), str(p["signature"]), public)
        except SignatureError as exc:
            return ApprovalCheck(approval, "bad signature", str(exc))
        if not good:
            return ApprovalCheck(approval, "bad signature",
                                 "the signature does not verify with the recorded public key")
        if key is not None and key_id(public) != key_id(key):
            return ApprovalCheck(approval, "bad signature",
                                 f"signed with key {key_id(public)[:16]}…, not the key given")
    else:
        status, detail = "unsigned", "no signature: nothing but the store vouches for who approved"
    approved = p.get("target_fingerprint")
    if current is not None and approved and current.fingerprint != approved:
        return ApprovalCheck(approval, "stale",
                             f"approved content {approved}, the artifact now records "
                             f"{current.fingerprint}")
    return ApprovalCheck(approval, status, detail)


def approve(
    store: Store, ref: Ref, *, by: str, note: str = "",
    key: Ed25519PrivateKey | str | os.PathLike[str] | None = None,
) -> Approval:
    """Record a dated approval of an artifact, signed with ``key`` when given.

    Args:
        store: a writable store.
        ref: the artifact approved.
        by: who approves (a name; required).
        note: what was approved and why.
        key: an Ed25519 private key (PEM PKCS#8 file) to sign the approval with.

    Returns:
        The recorded :class:`Approval`.

    Raises:
        StepError: ``by`` is empty. SignatureError: the key cannot be used.
        ReadOnlyStore: the store is read-only. NotFound: ``ref`` names nothing.
    """
    from lineage.signing import key_id, load_private_key, public_key_to_b64, sign

    if not isinstance(by, str) or not by.strip():
        raise StepError("an approval needs the name of who approves: by='Jane Doe' (--by NAME)")
    if not isinstance(note, str):
        raise StepError(f"note= takes text, got {type(note).__name__}")
    if "\x00" in by or "\x00" in note:  # MLMD's SQL backends cut strings at NUL
        raise StepError("an approval's by= and note= cannot contain NUL characters")
    store._check_writable("record an approval")
    private = load_private_key(key) if key is not None else None
    target = store.get(ref)
    when = _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds").replace("+00:00", "Z")
    statement = {
        "type": STATEMENT_TYPE,
        "artifact": {"id": target.id, "type": target.type_name, "name": target.name,
                     "version": target.version, "fingerprint": target.fingerprint},
        "by": by, "note": note or "", "time": when,
    }
    props: dict[str, Any] = {
        "artifact": statement["artifact"], "by": by, "note": note or "", "time": when,
        "target": int(target.id or 0), "target_fingerprint": target.fingerprint or "",
    }
    if private is not None:
        props.update(signature=sign(_canonical(statement), private),
                     public_key=public_key_to_b64(private), key_id=key_id(private))
    label = f"{target.name}@{target.version}" if target.version else str(target.name)
    approval = Approval(content=statement, name=f"approval of {label}", **props)
    recorded = record_signoff(store, APPROVE_STEP, target, approval, {"by": by})
    assert isinstance(recorded, Approval)
    return recorded


def approvals_of(store: Store, ref: Ref | None = None, *, key: Any = None) -> list[ApprovalCheck]:
    """The approvals of an artifact (``None``: every approval in the store), checked.

    Args:
        store: the store.
        ref: the artifact.
        key: a public key the signatures must be made with (else any valid signature).
    """
    if ref is None:
        approvals = [a for a in store.artifacts(type=Approval.type_name) if isinstance(a, Approval)]
    else:
        target = store.get(ref)
        events = store._call("get_events_by_artifact_ids", [int(target.id or 0)])
        readers = {ev.execution_id for ev in events if ev.type == pb.Event.INPUT}
        if not readers:
            return []
        execs = store.executions_by_id(readers)
        out_ids = {i for e in execs.values() if e.type_name == APPROVE_STEP for i in e.outputs}
        approvals = [a for a in store.artifacts_by_id(out_ids).values() if isinstance(a, Approval)]
    targets = store.artifacts_by_id({int(a.properties.get("target") or 0) for a in approvals})
    return [_check(a, targets.get(int(a.properties.get("target") or 0)), key)
            for a in sorted(approvals, key=lambda a: a.id or 0)]
