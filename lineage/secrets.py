"""Secrets are redacted before they are written: params, config values, URLs and errors.

A value is replaced by the marker :data:`REDACTED` (``"<redacted>"``) before it reaches the
store, so no output made from the store (``ls``, ``show``, exports, audit reports, the
database itself) can show it. What is redacted:

- **params** (of steps, runs, ``log_params`` and config files) whose name looks secret:
  ``password``, ``api_key``, ``token``, ``secret`` and the others of
  :data:`DEFAULT_KEYS`, in any segment of a dotted key (``db.password``), as a suffix
  (``hf_token``, ``aws_secret_access_key``), in camelCase (``apiKey``) and inside dict
  values (``{"db": {"password": ...}}``). Numbers and strings are redacted; ``None`` and
  booleans are kept (they hold no secret).
- **credentials inside URLs**, in any string value and in artifact URIs:
  ``https://user:<redacted>@host/…``, ``s3://KEY:<redacted>@bucket/…``, and query
  parameters with secret names (``?token=<redacted>``, ``X-Amz-Signature``, ``sig``).
- **errors and tracebacks** of failed steps: URL credentials, ``name=value`` and
  ``"name": "value"`` pairs with secret names, ``Bearer``/``Basic`` credentials, and the
  values of the call's own secret params wherever they are quoted.

The list of secret names is extended or narrowed with :func:`configure` or the
``LINEAGE_SECRET_KEYS`` environment variable (comma separated; a leading ``-`` exempts a
name, e.g. ``LINEAGE_SECRET_KEYS="salt,-token"``). The store's own password is redacted
from every message separately (:func:`lineage.errors.redact`).

Example:
    >>> redact_params({"lr": 0.1, "api_key": "sk-123", "db": "postgresql://me:pw@h/x"})
    {'lr': 0.1, 'api_key': '<redacted>', 'db': 'postgresql://me:<redacted>@h/x'}
"""

from __future__ import annotations

import os
import re
import threading
from collections.abc import Iterable, Mapping
from typing import Any

__all__ = [
    "DEFAULT_KEYS",
    "ENV",
    "REDACTED",
    "configure",
    "is_secret_key",
    "redact_error",
    "redact_params",
    "redact_text",
    "redact_url",
    "redact_userinfo",
    "redact_value",
    "secret_values",
]

#: What a redacted value is recorded as.
REDACTED = "<redacted>"

#: The environment variable that adds (``name``) or exempts (``-name``) secret names.
ENV = "LINEAGE_SECRET_KEYS"

#: Names whose values are secret: a key segment equal to one, or ending in ``_<name>``.
DEFAULT_KEYS = frozenset({
    "password", "passwd", "passphrase", "secret", "client_secret", "token", "api_key",
    "apikey", "access_key", "secret_key", "private_key", "account_key", "accountkey",
    "credential", "credentials", "auth", "authorization", "cookie",
})

#: Further names that are secret in URL query strings (AWS and Azure signed URLs).
_URL_QUERY_KEYS = frozenset({"sig", "signature", "x_amz_signature", "x_amz_credential"})

_lock = threading.Lock()
_configured: tuple[frozenset[str], frozenset[str]] = (frozenset(), frozenset())
_cache: dict[tuple[str, str | None], bool] = {}
_CACHE_MAX = 8192


def configure(*, add: Iterable[str] = (), exempt: Iterable[str] = ()) -> None:
    """Set the names this process treats as secret beyond (or instead of) the defaults.

    Each call replaces the previous configuration; ``configure()`` restores the defaults.
    ``LINEAGE_SECRET_KEYS`` applies on top.

    Args:
        add: more secret names (``"salt"``, ``"dsn"``).
        exempt: names that are not secret here: a default name (``"token"``: then
            ``max_token`` and ``hf_token`` are kept too) or one exact key
            (``"cfg.token_budget"``).

    Example:
        >>> configure(add=["salt"], exempt=["token"])
        >>> is_secret_key("salt"), is_secret_key("token"), is_secret_key("password")
        (True, False, True)
        >>> configure()
        >>> is_secret_key("token")
        True
    """
    global _configured
    with _lock:
        _configured = (frozenset(_norm(k) for k in add), frozenset(_norm(k) for k in exempt))
        _cache.clear()


_CAMEL = re.compile(r"(?<=[a-z0-9])(?=[A-Z])|(?<=[A-Z])(?=[A-Z][a-z])")


def _norm(segment: str) -> str:
    return _CAMEL.sub("_", segment.strip()).lower().replace("-", "_").replace(" ", "_")


def _names(env: str | None) -> tuple[frozenset[str], frozenset[str]]:
    add, exempt = _configured
    if env:
        extra = [e.strip() for e in env.split(",") if e.strip()]
        add = add | {_norm(e) for e in extra if not e.startswith("-")}
        exempt = exempt | {_norm(e[1:]) for e in extra if e.startswith("-")}
    return (DEFAULT_KEYS | add) - exempt, exempt


def _matches(segment: str, names: frozenset[str]) -> bool:
    if segment in names:
        return True
    last = segment.rfind("_")
    while last > 0:  # "aws_secret_access_key": "access_key", "secret_access_key", "key"
        if segment[last + 1:] in names:
            return True
        last = segment.rfind("_", 0, last)
    return False


def is_secret_key(key: str, *, _query: bool = False) -> bool:
    """Whether a param (or dict key, or URL query parameter) name marks a secret value.

    Example:
        >>> [is_secret_key(k) for k in ("password", "db.password", "apiKey", "hf_token",
        ...                             "max_tokens", "token_count", "lr")]
        [True, True, True, True, False, False, False]
    """
    env = os.environ.get(ENV)
    cache_key = (f"?{key}" if _query else key, env)
    hit = _cache.get(cache_key)
    if hit is not None:
        return hit
    names, exempt = _names(env)
    if _query:
        names = names | _URL_QUERY_KEYS
    full = _norm(key)
    found = full not in exempt and any(
        _matches(_norm(seg), names) for seg in re.split(r"[.\[\]/]", key) if seg
    )
    if len(_cache) >= _CACHE_MAX:
        _cache.clear()
    _cache[cache_key] = found
    return found


# --- URLs -------------------------------------------------------------------------------

_STOP = re.compile(r"[\s@]")
_STOP_OR_SLASH = re.compile(r"[\s@/?#]")
_QUERY_PAIR = re.compile(r"([?&;])([^=&#\s]{1,128})=([^&#\s]*)")


def redact_url(text: str) -> str:
    """``text`` with the passwords of URLs and secret query parameters redacted.

    Runs in linear time on any input.

    Example:
        >>> redact_url("s3://AKIA1:wJalr/XUt@bucket/data.csv")
        's3://AKIA1:<redacted>@bucket/data.csv'
        >>> redact_url("https://h/x?X-Amz-Signature=abc&part=2")
        'https://h/x?X-Amz-Signature=<redacted>&part=2'
    """
    if "://" not in text:
        return text
    return redact_userinfo(_redact_query(text))


def redact_userinfo(text: str, marker: str = REDACTED) -> str:
    """Replace the password of every ``scheme://user:password@`` in ``text`` by ``marker``.

    Runs in linear time on any input (a password may hold ``@``: the last one before the
    host counts, as in ``urllib.parse``).

    Example:
        >>> redact_userinfo("a postgresql://me:p@ss@db:5432/x b", "***")
        'a postgresql://me:***@db:5432/x b'
    """
    out: list[str] = []
    done = 0
    i = text.find("://")
    while i != -1:
        start = i + 3
        j = i
        while j > 0 and i - j < 32 and (text[j - 1].isascii() and (
                text[j - 1].isalnum() or text[j - 1] in "+.-")):
            j -= 1
        stop = _STOP.search(text, start)
        end = stop.start() if stop else len(text)
        if j < i and text[j].isalpha() and stop is not None and stop.group() == "@":
            more = _STOP_OR_SLASH.search(text, end + 1)
            while more is not None and more.group() == "@":
                end = more.start()
                more = _STOP_OR_SLASH.search(text, end + 1)
            colon = text.find(":", start, end)
            if colon != -1 and "/" not in text[start:colon] and end > colon + 1:
                out.append(text[done:colon + 1])
                out.append(marker)
                done = end
            i = text.find("://", end + 1)
        else:
            i = text.find("://", max(end, start))
    if not out:
        return text
    out.append(text[done:])
    return "".join(out)


def _redact_query(text: str) -> str:
    if "=" not in text:
        return text

    def one(m: re.Match[str]) -> str:
        if m.group(3) and m.group(3) != REDACTED and is_secret_key(m.group(2), _query=True):
            return f"{m.group(1)}{m.group(2)}={REDACTED}"
        return m.group(0)

    return _QUERY_PAIR.sub(one, text)


# --- params -----------------------------------------------------------------------------


def redact_value(key: str, value: Any) -> Any:
    """The value to record for the param ``key``: :data:`REDACTED` for a secret, URL
    credentials redacted in strings, dict values checked by their own keys.

    Example:
        >>> redact_value("token", 12345), redact_value("use_auth", True)
        ('<redacted>', True)
        >>> redact_value("db", {"user": "me", "password": "pw"})
        {'user': 'me', 'password': '<redacted>'}
    """
    if value is None or isinstance(value, bool):
        return value
    if is_secret_key(key):
        return REDACTED if value != "" else value
    return _scrub(value, 0)


def _scrub(value: Any, depth: int) -> Any:
    if isinstance(value, str):
        return redact_url(value) if "://" in value else value
    if depth > 64:
        return value
    if isinstance(value, Mapping):
        return {k: (redact_value(k, v) if isinstance(k, str) else _scrub(v, depth + 1))
                for k, v in value.items()}
    if isinstance(value, list):
        return [_scrub(v, depth + 1) for v in value]
    if isinstance(value, tuple):
        return tuple(_scrub(v, depth + 1) for v in value)
    return value


def redact_params(params: Mapping[str, Any]) -> dict[str, Any]:
    """A copy of ``params`` with every secret value redacted (see :func:`redact_value`).

    Example:
        >>> redact_params({"cfg.db.password": "pw", "cfg.db.host": "h"})
        {'cfg.db.password': '<redacted>', 'cfg.db.host': 'h'}
    """
    return {k: redact_value(k, v) for k, v in params.items()}


def secret_values(params: Mapping[str, Any]) -> list[str]:
    """The clear-text values of the secret params in ``params`` (to redact from errors):
    strings and numbers of at least 4 characters, nested dict values included.

    Example:
        >>> secret_values({"token": "abcd1234", "lr": 0.1, "pin": 7})
        ['abcd1234']
    """
    found: list[str] = []

    def walk(key: str, value: Any, depth: int) -> None:
        if isinstance(value, Mapping) and depth < 64:
            for k, v in value.items():
                walk(str(k), v, depth + 1)
        elif is_secret_key(key) and not isinstance(value, bool) and isinstance(
                value, (str, int, float)):
            text = str(value)
            if len(text) >= 4 and text != REDACTED:
                found.append(text)

    for key, value in params.items():
        walk(key, value, 0)
    return found


# --- free text: errors and tracebacks ---------------------------------------------------

# ``name=value``, ``name: value``, ``"name": "value"``: the name and separator are matched,
# the value only after a secret name. Bounded repeats and no rescans: linear time.
_PAIR = re.compile(r"(?P<key>[A-Za-z_][A-Za-z0-9_.-]{0,63})[\"']?[ \t]{0,3}[=:][ \t]{0,3}[\"']?")
_VALUE = re.compile(r"[^\s\"',;&)}\]]+")
_AUTH_SCHEME = re.compile(
    r"\b(?P<scheme>Bearer|Basic|Token)[ \t]{1,3}(?P<value>[A-Za-z0-9._~+/=-]{8,4096})"
)


#: How much of an error or traceback is redacted and kept (the store keeps 2,000 bytes).
ERROR_WINDOW = 32_000


def redact_error(text: str, values: Iterable[str] = (), *, keep_end: bool = False) -> str:
    """An error message (or traceback, ``keep_end=True``) to record: its first (last)
    :data:`ERROR_WINDOW` characters, redacted with :func:`redact_text`.

    Example:
        >>> redact_error("ConnectionError: https://bot:tok3n@api.example/v1")
        'ConnectionError: https://bot:<redacted>@api.example/v1'
    """
    if len(text) > ERROR_WINDOW:
        text = text[-ERROR_WINDOW:] if keep_end else text[:ERROR_WINDOW]
    return redact_text(text, values)


def _may_hold_secret_name(text: str) -> bool:
    low = text.lower()
    names, _exempt = _names(os.environ.get(ENV))
    return any(name.replace("_", "") in low.replace("_", "") if "_" in name else name in low
               for name in names)


def redact_text(text: str, values: Iterable[str] = ()) -> str:
    """Free text (an error message, a traceback) with secrets redacted: URL credentials,
    ``name=value`` / ``"name": "value"`` pairs with secret names, ``Bearer`` credentials,
    and each of ``values`` (the call's secret params) wherever it is quoted.

    Runs in linear time on any input.

    Example:
        >>> redact_text('login failed: password="hunter22" for https://me:pw@h/x')
        'login failed: password="<redacted>" for https://me:<redacted>@h/x'
        >>> redact_text("bad key sk-ABCDEF", values=["sk-ABCDEF"])
        'bad key <redacted>'
    """
    for value in sorted(set(values), key=len, reverse=True):
        if value and value in text:
            text = text.replace(value, REDACTED)
    text = redact_url(text)
    text = _AUTH_SCHEME.sub(lambda m: f"{m['scheme']} {REDACTED}", text)
    if ("=" in text or ":" in text) and _may_hold_secret_name(text):
        out: list[str] = []
        done = 0
        for m in _PAIR.finditer(text):
            if m.start() < done or not is_secret_key(m["key"]):
                continue
            found = _VALUE.match(text, m.end())
            if found is None or found.group() == REDACTED:
                continue
            out.append(text[done:m.end()])
            out.append(REDACTED)
            done = found.end()
        if out:
            out.append(text[done:])
            text = "".join(out)
    return text
