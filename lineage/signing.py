"""Ed25519 signatures and DSSE envelopes, for reports, approvals and attestations.

Keys are the PEM files OpenSSL and most tools write: a private key in PKCS#8
(``openssl genpkey -algorithm ed25519 -out key.pem``) and its public key in
SubjectPublicKeyInfo (``openssl pkey -in key.pem -pubout -out key.pub.pem``). The
``cryptography`` package does the cryptography (``pip install 'mlmd-lineage[sign]'``).

A key is named by its *key id*: the SHA-256 (hex) of its public key's DER encoding, which
anyone holding the public key can recompute (``openssl pkey -pubin -in key.pub.pem
-outform DER | sha256sum``).

DSSE (Dead Simple Signing Envelope, the envelope of in-toto attestations and OpenSSF
model signing) signs ``PAE(payloadType, payload)``::

    "DSSEv1" SP LEN(type) SP type SP LEN(body) SP body

with lengths as ASCII decimal byte counts.

Example:
    >>> import tempfile, pathlib
    >>> folder = pathlib.Path(tempfile.mkdtemp())
    >>> key, pub = generate_key(folder / "key.pem")
    >>> env = dsse_sign(b'{"a": 1}', "application/json", key)
    >>> dsse_verify(env, pub) == b'{"a": 1}'
    True
"""

from __future__ import annotations

import base64
import hashlib
import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

from lineage.errors import SignatureError

if TYPE_CHECKING:
    from cryptography.hazmat.primitives.asymmetric.ed25519 import (
        Ed25519PrivateKey,
        Ed25519PublicKey,
    )

__all__ = [
    "dsse_sign",
    "dsse_verify",
    "generate_key",
    "key_id",
    "load_private_key",
    "load_public_key",
    "pae",
    "public_key_from_b64",
    "public_key_to_b64",
    "sign",
    "verify",
]

def _need_crypto() -> None:
    try:
        import cryptography  # noqa: F401
    except ImportError as exc:  # pragma: no cover - depends on the environment
        raise SignatureError(
            "signing needs the cryptography package: pip install 'mlmd-lineage[sign]' "
            "(or pip install cryptography)"
        ) from exc


def load_private_key(key: Ed25519PrivateKey | str | os.PathLike[str]) -> Ed25519PrivateKey:
    """An Ed25519 private key from a PEM file (PKCS#8, unencrypted), or the key itself.

    Raises:
        SignatureError: the file is missing, unreadable, encrypted, or not an Ed25519 key.
    """
    _need_crypto()
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ed25519

    if isinstance(key, ed25519.Ed25519PrivateKey):
        return key
    path = Path(key)
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise SignatureError(f"cannot read the private key {path}: {exc.strerror or exc}") from exc
    try:
        loaded = serialization.load_pem_private_key(data, password=None)
    except (ValueError, TypeError) as exc:
        raise SignatureError(
            f"{path} is not an unencrypted PEM private key ({exc}); make one with "
            "`openssl genpkey -algorithm ed25519 -out key.pem`"
        ) from exc
    if not isinstance(loaded, ed25519.Ed25519PrivateKey):
        raise SignatureError(
            f"{path} holds a {type(loaded).__name__}; lineage signs with Ed25519 keys "
            "(`openssl genpkey -algorithm ed25519 -out key.pem`)"
        )
    return loaded


def load_public_key(
    key: Ed25519PublicKey | Ed25519PrivateKey | str | os.PathLike[str],
) -> Ed25519PublicKey:
    """An Ed25519 public key from a PEM file (SubjectPublicKeyInfo, or a private key's
    PEM, whose public half is taken), or the key itself.

    Raises:
        SignatureError: the file is missing, unreadable or not an Ed25519 key.
    """
    _need_crypto()
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ed25519

    if isinstance(key, ed25519.Ed25519PublicKey):
        return key
    if isinstance(key, ed25519.Ed25519PrivateKey):
        return key.public_key()
    path = Path(key)
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise SignatureError(f"cannot read the public key {path}: {exc.strerror or exc}") from exc
    loaded: Any
    try:
        loaded = serialization.load_pem_public_key(data)
    except (ValueError, TypeError):
        try:
            loaded = serialization.load_pem_private_key(data, password=None).public_key()
        except (ValueError, TypeError) as exc:
            raise SignatureError(
                f"{path} is not a PEM public key ({exc}); export one with "
                "`openssl pkey -in key.pem -pubout -out key.pub.pem`"
            ) from exc
    if not isinstance(loaded, ed25519.Ed25519PublicKey):
        raise SignatureError(f"{path} holds a {type(loaded).__name__}, not an Ed25519 public key")
    return loaded


def _public_der(key: Ed25519PublicKey) -> bytes:
    _need_crypto()
    from cryptography.hazmat.primitives import serialization

    der: bytes = key.public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    return der


def key_id(key: Ed25519PublicKey | Ed25519PrivateKey | str | os.PathLike[str]) -> str:
    """The key id: SHA-256 (hex) of the public key's DER SubjectPublicKeyInfo."""
    return hashlib.sha256(_public_der(load_public_key(key))).hexdigest()


def public_key_to_b64(key: Ed25519PublicKey | Ed25519PrivateKey | str | os.PathLike[str]) -> str:
    """The public key as base64 of its DER SubjectPublicKeyInfo (what records keep)."""
    return base64.b64encode(_public_der(load_public_key(key))).decode("ascii")


def public_key_from_b64(text: str) -> Ed25519PublicKey:
    """The inverse of :func:`public_key_to_b64`.

    Raises:
        SignatureError: not a base64 DER Ed25519 public key.
    """
    _need_crypto()
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ed25519

    try:
        loaded = serialization.load_der_public_key(base64.b64decode(text, validate=True))
    except (ValueError, TypeError) as exc:
        raise SignatureError(f"not a base64 DER public key: {exc}") from exc
    if not isinstance(loaded, ed25519.Ed25519PublicKey):
        raise SignatureError(f"a {type(loaded).__name__}, not an Ed25519 public key")
    return loaded


def generate_key(
    path: str | os.PathLike[str], public_path: str | os.PathLike[str] | None = None
) -> tuple[Path, Path]:
    """Write a new Ed25519 key pair: the private key (PKCS#8 PEM, mode 0600) at ``path``
    and its public key beside it (``key.pub.pem`` for ``key.pem``).

    Returns:
        (private key path, public key path).
    """
    _need_crypto()
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ed25519

    private = ed25519.Ed25519PrivateKey.generate()
    key_path = Path(path)
    pub_path = Path(public_path) if public_path is not None else key_path.with_name(
        key_path.name.removesuffix(".pem") + ".pub.pem")
    key_path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(key_path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as out:
        out.write(private.private_bytes(serialization.Encoding.PEM,
                                        serialization.PrivateFormat.PKCS8,
                                        serialization.NoEncryption()))
    pub_path.write_bytes(private.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo))
    return key_path, pub_path


def sign(message: bytes, key: Ed25519PrivateKey | str | os.PathLike[str]) -> str:
    """The Ed25519 signature of ``message``, base64."""
    return base64.b64encode(load_private_key(key).sign(message)).decode("ascii")


def verify(
    message: bytes, signature: str,
    key: Ed25519PublicKey | Ed25519PrivateKey | str | os.PathLike[str],
) -> bool:
    """Whether ``signature`` (base64) is ``key``'s Ed25519 signature of ``message``."""
    from cryptography.exceptions import InvalidSignature

    public = load_public_key(key)
    try:
        raw = base64.b64decode(signature, validate=True)
        public.verify(raw, message)
    except (InvalidSignature, ValueError, TypeError):
        return False
    return True


def pae(payload_type: str, payload: bytes) -> bytes:
    """DSSE's pre-authentication encoding of a payload and its type.

    Example:
        >>> pae("t", b"hi")
        b'DSSEv1 1 t 2 hi'
    """
    kind = payload_type.encode("utf-8")
    return b"DSSEv1 %d %s %d %s" % (len(kind), kind, len(payload), payload)


def dsse_sign(
    payload: bytes, payload_type: str, key: Ed25519PrivateKey | str | os.PathLike[str]
) -> dict[str, Any]:
    """A DSSE envelope of ``payload`` signed with ``key``: ``payload`` (base64),
    ``payloadType`` and ``signatures`` (``keyid``, ``sig``)."""
    private = load_private_key(key)
    return {
        "payload": base64.b64encode(payload).decode("ascii"),
        "payloadType": payload_type,
        "signatures": [{"keyid": key_id(private), "sig": sign(pae(payload_type, payload), private)}],
    }


def dsse_verify(
    envelope: Any, key: Ed25519PublicKey | Ed25519PrivateKey | str | os.PathLike[str]
) -> bytes:
    """The payload of a DSSE envelope, if one of its signatures is ``key``'s.

    Raises:
        SignatureError: the envelope is malformed or no signature verifies with ``key``.
    """
    if not isinstance(envelope, dict) or not isinstance(envelope.get("signatures"), list):
        raise SignatureError("not a DSSE envelope: expected payload, payloadType and signatures")
    kind = envelope.get("payloadType")
    encoded = envelope.get("payload")
    if not isinstance(kind, str) or not isinstance(encoded, str):
        raise SignatureError("not a DSSE envelope: payload and payloadType must be strings")
    try:
        payload = base64.b64decode(encoded, validate=True)
    except ValueError as exc:
        raise SignatureError(f"the envelope's payload is not base64: {exc}") from exc
    public = load_public_key(key)
    message = pae(kind, payload)
    for entry in envelope["signatures"]:
        sig = entry.get("sig") if isinstance(entry, dict) else None
        if isinstance(sig, str) and verify(message, sig, public):
            return payload
    raise SignatureError(
        f"no signature of the envelope verifies with the key {key_id(public)[:16]}…: the "
        "payload was changed, or it was signed with another key"
    )
