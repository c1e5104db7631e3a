"""The exceptions of ``lineage`` and the one boundary where MLMD errors become them.

Every error raised on purpose by ``lineage`` derives from :class:`LineageError`::

    LineageError
    ├── StoreError                 the metadata store failed or refused (carries .uri)
    │   ├── ConnectionFailed       could not open or reach the store
    │   ├── ReadOnlyStore          a write on a store opened with read_only=True
    │   ├── ConcurrentWriteError   a write kept conflicting with other writers
    │   └── TypeConflict           a type declaration clashes with the stored type
    ├── RefError                   a reference does not name exactly one record (carries .ref)
    │   ├── NotFound               nothing matches the reference
    │   ├── AmbiguousRef           several records match (e.g. the same name in two types)
    │   └── InvalidRef             the reference is malformed
    ├── ArtifactError              an artifact cannot be built or recorded
    │   └── FingerprintError       its content cannot be read for a fingerprint
    ├── StepError                  a step is declared or called wrongly (carries .step)
    ├── TagError                   a tag, note or alias cannot be recorded as given
    ├── BundleError                an export bundle cannot be read (corrupt, wrong version)
    ├── ContentError               kept content cannot be kept or given back (carries .ref)
    │   ├── NotKept                the version's content was never kept
    │   ├── MissingObject          a kept object is not in the object store (carries .key)
    │   └── CorruptObject          a kept object does not match its fingerprint (carries .key)
    ├── SearchError                a run search expression is malformed or names no key
    ├── RenderError                a diagram cannot be drawn (e.g. Graphviz is missing)
    └── SignatureError             a key cannot be used, or a signature does not verify

Warnings (something was recorded, but not as asked) derive from :class:`LineageWarning`::

    LineageWarning
    ├── RecordingWarning           a step ran, but recording its outputs failed
    ├── CacheWarning               a cache=True call was not looked up (the message says why)
    └── KeepWarning                content was recorded but not kept (too big, copy failed)

MLMD's own exceptions (``ml_metadata.errors``) and the plain ``RuntimeError`` its
extension raises for connection problems are translated in :func:`translate`, and only
there; callers see the original as ``__cause__``. Passwords are redacted from every
message.
"""

from __future__ import annotations

from collections.abc import Iterable

from ml_metadata import errors as _mlmd_errors

__all__ = [
    "AmbiguousRef",
    "ArtifactError",
    "BundleError",
    "CacheWarning",
    "ConcurrentWriteError",
    "ConnectionFailed",
    "ContentError",
    "CorruptObject",
    "FingerprintError",
    "InvalidRef",
    "KeepWarning",
    "LineageError",
    "LineageWarning",
    "MissingObject",
    "NotFound",
    "NotKept",
    "ReadOnlyStore",
    "RecordingWarning",
    "RefError",
    "RenderError",
    "SearchError",
    "SignatureError",
    "StepError",
    "StoreError",
    "TagError",
    "TypeConflict",
]


class LineageError(Exception):
    """Base of every error ``lineage`` raises on purpose."""


class StoreError(LineageError):
    """The metadata store failed or refused an operation.

    Attributes:
        uri: the store's URI, password redacted.
    """

    def __init__(self, message: str, *, uri: str | None = None) -> None:
        super().__init__(message)
        self.uri = uri


class ConnectionFailed(StoreError):
    """Raised when a store cannot be opened or reached."""


class ReadOnlyStore(StoreError):
    """Raised by every write method of a store opened with ``read_only=True``."""


class ConcurrentWriteError(StoreError):
    """Raised when a write still conflicts with other writers after the retries."""


class TypeConflict(StoreError):
    """Raised when a declared type clashes with the type already stored under its name."""


class RefError(LineageError):
    """A reference does not name exactly one record.

    Attributes:
        ref: the reference as given.
    """

    def __init__(self, message: str, *, ref: object = None) -> None:
        super().__init__(message)
        self.ref = ref


class NotFound(RefError):
    """Raised when no artifact, execution or run matches a reference."""


class AmbiguousRef(RefError):
    """Raised when a name matches records of several types."""


class InvalidRef(RefError):
    """Raised when a reference has a form ``lineage`` does not understand."""


class ArtifactError(LineageError):
    """Raised when an artifact cannot be built or recorded as given."""


class FingerprintError(ArtifactError):
    """Raised when content cannot be read or digested.

    Attributes:
        path: the path or object that could not be fingerprinted.
    """

    def __init__(self, message: str, *, path: object = None) -> None:
        super().__init__(message)
        self.path = path


class StepError(LineageError):
    """Raised when a step is declared or called in a way that cannot be recorded.

    Attributes:
        step: the step's name.
    """

    def __init__(self, message: str, *, step: str | None = None) -> None:
        super().__init__(message)
        self.step = step


class TagError(LineageError):
    """Raised when a tag, note or alias cannot be recorded as given (a malformed key or
    alias name, a value that is not a scalar)."""


class RenderError(LineageError):
    """Raised when a diagram or report cannot be produced."""


class SignatureError(LineageError):
    """Raised when a signing key cannot be read or used, or a signature or attestation
    does not verify."""


class BundleError(LineageError):
    """Raised when a bundle to import is corrupt, of an unknown format version, or
    inconsistent (a record of an undeclared type, an event to a missing record).

    Attributes:
        source: the file (or ``"<bytes>"``) the bundle was read from.
    """

    def __init__(self, message: str, *, source: object = None) -> None:
        super().__init__(message)
        self.source = source


class ContentError(LineageError):
    """Raised when the content of a recorded version cannot be kept or given back.

    Attributes:
        ref: the artifact (``"artifact:12"``) whose content was asked for.
    """

    def __init__(self, message: str, *, ref: object = None) -> None:
        super().__init__(message)
        self.ref = ref


class NotKept(ContentError):
    """Raised when a version's content was never kept (opted out, over the size limit,
    remote, or recorded before keeping), so it cannot be checked out."""


class MissingObject(ContentError):
    """Raised when an object a version needs is in none of the object stores looked at.

    Attributes:
        key: the object's key (``"sha256/ab/cdef…"``).
    """

    def __init__(self, message: str, *, ref: object = None, key: str | None = None) -> None:
        super().__init__(message, ref=ref)
        self.key = key


class CorruptObject(ContentError):
    """Raised when a kept object's bytes do not match the fingerprint it is kept under.

    Attributes:
        key: the object's key.
    """

    def __init__(self, message: str, *, ref: object = None, key: str | None = None) -> None:
        super().__init__(message, ref=ref)
        self.key = key


class SearchError(LineageError):
    """Raised when a run search cannot be run as asked: a malformed ``--where`` or ``--sort``
    expression, or a key that no run has.

    Attributes:
        expression: the expression as given.
    """

    def __init__(self, message: str, *, expression: str | None = None) -> None:
        super().__init__(message)
        self.expression = expression


# --- the MLMD boundary -------------------------------------------------------------

class LineageWarning(UserWarning):
    """Base of the warnings ``lineage`` gives: something was recorded, but not as asked."""


class RecordingWarning(LineageWarning):
    """A step's body ran but recording it failed afterwards: the step is recorded FAILED
    with that error, and its return value is passed on to the caller."""


class CacheWarning(LineageWarning):
    """A ``cache=True`` step call was not looked up in the cache (the message says why:
    an argument that cannot be keyed exactly, an input without a fingerprint, a return
    value that mixes artifacts and other values)."""


class KeepWarning(LineageWarning):
    """Content was recorded but not kept (:mod:`lineage.keeping`): over the size limit,
    or the copy into the object store failed (the message says why and what to do)."""


def redact(text: str, secrets: Iterable[str] = ()) -> str:
    """Return ``text`` with every password in URIs and every given secret replaced by ``***``.

    Runs in linear time on any input (a long error message cannot stall an error path).

    Example:
        >>> redact("postgresql://me:hunter2@db:5432/meta")
        'postgresql://me:***@db:5432/meta'
    """
    from lineage.secrets import redact_userinfo

    text = redact_userinfo(text, "***")
    for secret in secrets:
        if secret:
            text = text.replace(secret, "***")
    return text


#: Which of our errors each MLMD status error becomes. A test checks every class in
#: ``ml_metadata.errors`` has an entry.
MLMD_ERROR_MAP: dict[type[Exception], type[StoreError]] = {
    _mlmd_errors.AbortedError: ConcurrentWriteError,
    _mlmd_errors.AlreadyExistsError: StoreError,
    _mlmd_errors.CancelledError: StoreError,
    _mlmd_errors.DataLossError: StoreError,
    _mlmd_errors.DeadlineExceededError: ConnectionFailed,
    _mlmd_errors.FailedPreconditionError: StoreError,
    _mlmd_errors.InternalError: StoreError,
    _mlmd_errors.InvalidArgumentError: StoreError,
    _mlmd_errors.NotFoundError: StoreError,
    _mlmd_errors.OutOfRangeError: StoreError,
    _mlmd_errors.PermissionDeniedError: StoreError,
    _mlmd_errors.ResourceExhaustedError: StoreError,
    _mlmd_errors.StatusError: StoreError,
    _mlmd_errors.UnauthenticatedError: ConnectionFailed,
    _mlmd_errors.UnavailableError: ConnectionFailed,
    _mlmd_errors.UnimplementedError: StoreError,
    _mlmd_errors.UnknownError: StoreError,
}


#: Texts of MySQL's and PostgreSQL's errors for a name over the 255 characters of MLMD's
#: ``VARCHAR(255)`` columns (SQLite does not enforce the length).
_TOO_LONG = ("data too long for column 'name'", "value too long for type character varying")


def translate(
    exc: BaseException, *, uri: str | None, action: str, secrets: Iterable[str] = ()
) -> StoreError:
    """Turn an exception raised by ml_metadata into the matching :class:`StoreError`.

    Args:
        exc: what ml_metadata raised (a ``StatusError`` or the extension's ``RuntimeError``).
        uri: the store's URI, already redacted.
        action: what we were doing, for the message (``"open the store"``).
        secrets: strings to redact from the message (the password).

    Returns:
        The error to raise, ``raise translate(...) from exc``.
    """
    from lineage import _faults

    secrets = list(secrets)
    text = str(getattr(exc, "message", None) or exc)
    detail = _faults.short_detail(redact(text, secrets))
    where = (f" {uri}" if action.endswith("store") else f" on store {uri}") if uri else ""
    cls: type[StoreError]
    if isinstance(exc, _mlmd_errors.StatusError):
        cls = next(
            (ours for theirs, ours in MLMD_ERROR_MAP.items()
             if type(exc) is theirs),
            StoreError,
        )
    else:
        cls = ConnectionFailed if action.startswith("open") else StoreError
    cause = _faults.known_cause(detail)
    if cause is not None:  # one line naming the cause; no server hint for a file's fault
        if cause.kind == "read_only" and not action.startswith("open"):
            cls = ReadOnlyStore
        return cls(f"could not {action}{where}: {cause.message}.", uri=uri)
    hint = ""
    if cls is ConnectionFailed and (uri is None or "://" in uri):  # a server, not a file
        hint = " Check that the server is running and the URI, user and password are right."
    elif cls is ConcurrentWriteError:
        hint = " Other processes kept the store busy; retry, or use PostgreSQL for many writers."
    elif any(t in detail.lower() for t in _TOO_LONG):
        hint = (" MLMD's MySQL and PostgreSQL schemas hold at most 255 characters in a name"
                " (of an artifact, type, step, run or parameter); use a shorter name.")
    elif "max_allowed_packet" in detail or "server has gone away" in detail.lower():
        hint = (" The MySQL server dropped the request; if it was large, it exceeded the"
                " server's max_allowed_packet: store big values in files and record their"
                " path, or raise max_allowed_packet.")
    return cls(f"could not {action}{where}: {detail}.{hint}", uri=uri)
