"""``lineage ui``: the store in a browser, read-only, for people and auditors.

Pages: ``/`` (experiments and runs, sortable and filterable), ``/runs/{run}``,
``/compare?runs=a,b``, ``/artifacts/{id}``, ``/executions/{id}``, ``/diff?a=&b=``. JSON:
``/api/runs``, ``/api/runs/{run}/metrics``, ``/api/artifacts/{id}`` and its
``/provenance``, ``/impact`` and ``/verify``, ``/api/executions/{id}``,
``/api/diff?a=&b=``, described by ``/api/openapi.json``.

The stack is Starlette (routing, static files), uvicorn (the server) and Jinja2 (templates
with autoescape), the ``ui`` extra: ``pip install 'mlmd-lineage[ui]'``.

Example:
    >>> import lineage
    >>> from lineage.ui import create_app
    >>> app = create_app(lineage.connect(":memory:", read_only=True))
    >>> sorted(r.path for r in app.routes if r.path.startswith("/api/runs"))
    ['/api/runs', '/api/runs/{run:path}', '/api/runs/{run:path}/metrics']
"""

from __future__ import annotations

import contextlib
import ipaddress
import os
import sys
import threading
import webbrowser
from typing import TYPE_CHECKING, Any

from lineage.errors import LineageError

if TYPE_CHECKING:
    from starlette.applications import Starlette

    from lineage.store import Store

__all__ = ["DEFAULT_HOST", "DEFAULT_PORT", "UIError", "create_app", "is_loopback", "serve"]

DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 8765
_INSTALL = ("the web UI needs the 'ui' extra: pip install 'mlmd-lineage[ui]' "
            "(Starlette, uvicorn, Jinja2, matplotlib)")


class UIError(LineageError):
    """Raised when the web UI cannot start (a missing extra, a port in use)."""


def _load() -> Any:
    try:
        from lineage.ui import _app
    except ImportError as exc:
        raise UIError(f"{_INSTALL} ({exc})") from exc
    return _app


def create_app(store: Store, *, token: str | None = None,
               allowed_hosts: list[str] | None = None) -> Starlette:
    """The ASGI application serving ``store`` (see :func:`lineage.ui._app.create_app`).

    Raises:
        UIError: the ``ui`` extra is not installed.
    """
    app: Starlette = _load().create_app(store, token=token, allowed_hosts=allowed_hosts)
    return app


def is_loopback(host: str) -> bool:
    """Whether ``host`` is only reachable from this machine.

    Example:
        >>> is_loopback("127.0.0.1"), is_loopback("localhost"), is_loopback("0.0.0.0")
        (True, True, False)
    """
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def url_of(host: str, port: int, token: str | None = None) -> str:
    """The URL to open (``http://127.0.0.1:8765/``, with ``?token=`` when one is set).

    Example:
        >>> url_of("::1", 8000)
        'http://[::1]:8000/'
    """
    shown = f"[{host}]" if ":" in host and not host.startswith("[") else host
    if host in ("0.0.0.0", "::"):
        shown = "127.0.0.1"
    return f"http://{shown}:{port}/" + (f"?token={token}" if token else "")


def serve(
    uri: str | os.PathLike[str] | None = None,
    *,
    host: str = DEFAULT_HOST,
    port: int = DEFAULT_PORT,
    open_browser: bool = False,
    token: str | None = None,
    store: Store | None = None,
) -> None:
    """Serve a store read-only until Ctrl-C: print the URL, then answer requests.

    Args:
        uri: the store (as :func:`lineage.connect` takes it); opened with ``read_only=True``.
        host: the address to bind; anything but a loopback address prints a warning.
        port: the TCP port.
        open_browser: open the URL in the default browser once serving.
        token: require this token on every request (give it to your team with the URL).
        store: an already open store to serve instead of ``uri``.

    Raises:
        UIError: the ``ui`` extra is missing, or the port cannot be bound.
    """
    app_module = _load()
    try:
        import uvicorn
    except ImportError as exc:  # pragma: no cover - part of the extra
        raise UIError(_INSTALL) from exc
    from lineage.store import connect

    served = store if store is not None else connect(uri, read_only=True)
    loopback = is_loopback(host)
    allowed = ["127.0.0.1", "localhost", "::1", "[::1]"] if loopback else None
    app = app_module.create_app(served, token=token, allowed_hosts=allowed)
    url = url_of(host, port, token)
    if not loopback:
        print(f"warning: serving {served.uri} on {host}, reachable from other machines"
              + ("" if token else "; anyone who can reach it can read the store (use --token)"),
              file=sys.stderr)
    print(f"lineage ui: serving {served.uri} (read-only) at {url}  (Ctrl-C to stop)", flush=True)
    config = uvicorn.Config(app, host=host, port=port, log_level="warning", access_log=False,
                            server_header=False)
    server = uvicorn.Server(config)
    if open_browser:
        threading.Timer(0.8, webbrowser.open, args=(url,)).start()
    try:
        with contextlib.suppress(KeyboardInterrupt):  # uvicorn re-raises Ctrl-C once stopped
            server.run()
    except SystemExit:  # uvicorn exits when it cannot bind
        raise UIError(f"could not serve on {host}:{port}: the address is in use or not "
                      "allowed (try another --port)") from None
    if not server.started:
        raise UIError(f"could not serve on {host}:{port} (is the port in use? try --port)")
