"""The Starlette application: routes, pages, JSON, and the safety rules every answer follows.

Handlers are plain (sync) functions: Starlette runs them in its thread pool, and every
store call goes through ``Store._call`` and its lock. Each handler reads what its page
shows (see :mod:`lineage.ui._views`) and renders a Jinja2 template with autoescape on, so
every recorded string is escaped; the only markup inserted unescaped is Graphviz's SVG of
our own diagrams, whose labels :mod:`lineage.render` escapes.
"""

from __future__ import annotations

import hmac
import json
import math
from collections.abc import Awaitable, Callable, MutableMapping
from http import HTTPStatus
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import quote, urlencode

import jinja2
from markupsafe import Markup
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.middleware.trustedhost import TrustedHostMiddleware
from starlette.requests import Request
from starlette.responses import (
    HTMLResponse,
    JSONResponse,
    PlainTextResponse,
    RedirectResponse,
    Response,
)
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles

from lineage import __version__
from lineage.errors import LineageError, NotFound, RefError, SearchError
from lineage.ui import _views
from lineage.ui._openapi import openapi

if TYPE_CHECKING:
    from lineage.store import Store

HERE = Path(__file__).resolve().parent
TOKEN_COOKIE = "lineage_token"

#: The policy of every page: scripts and styles only from our own static files, nothing
#: from elsewhere, no frames, no inline script.
CSP = ("default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
       "connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'")
#: Pictures (matplotlib SVG carries inline style) and the audit report (inline CSS).
CSP_DOCUMENT = ("default-src 'none'; style-src 'unsafe-inline'; img-src data:; "
                "frame-ancestors 'none'; base-uri 'none'; form-action 'none'")
HEADERS = {
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "X-Frame-Options": "DENY",
    "Cross-Origin-Opener-Policy": "same-origin",
    "Cross-Origin-Resource-Policy": "same-origin",
}

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]


# --- templates --------------------------------------------------------------------------------


def _fmt(value: Any) -> str:
    """A recorded value as short text (floats to 6 significant digits)."""
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:.6g}" if math.isfinite(value) else repr(value)
    if isinstance(value, (dict, list)):
        return json.dumps(value, default=str, ensure_ascii=False)
    return str(value)


def _art(value: Any) -> str:
    """Artifact dicts (``to_dict()``) as ``"iris v2 (artifact:3)"``; ``-`` for none."""
    items = value if isinstance(value, list) else [value] if value else []
    labels = [f"{x.get('name') or x.get('uri')} v{x.get('version')} (artifact:{x.get('id')})"
              if isinstance(x, dict) else _fmt(x) for x in items]
    return ", ".join(labels) or "-"


def _environment() -> jinja2.Environment:
    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(str(HERE / "templates")),
        autoescape=True,  # every {{ value }} is HTML-escaped; attributes too
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters["fmt"] = _fmt
    env.filters["art"] = _art
    env.filters["q"] = lambda v: quote(str(v), safe=":@")
    env.globals["version"] = __version__
    return env


# --- security ---------------------------------------------------------------------------------


class _Guard:
    """ASGI middleware: security headers on every answer; with a token, refuse requests that
    do not carry it (``Authorization: Bearer``, the cookie, or ``?token=`` once, which sets
    the cookie and redirects to the same URL without it)."""

    def __init__(self, app: ASGIApp, token: str | None) -> None:
        self.app = app
        self.token = token

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        if self.token is not None:
            request = Request(scope)
            given = request.query_params.get("token")
            if given is not None and hmac.compare_digest(given.encode(), self.token.encode()):
                query = [(k, v) for k, v in request.query_params.multi_items() if k != "token"]
                url = request.url.path + (f"?{urlencode(query)}" if query else "")
                response: Response = RedirectResponse(url, status_code=303)
                response.set_cookie(TOKEN_COOKIE, self.token, httponly=True, samesite="strict")
                await self._send_with_headers(response, scope, receive, send)
                return
            if not self._allowed(request):
                response = _error(request, 401, "this server needs its token: open the URL "
                                  "`lineage ui` printed (with ?token=...)")
                await self._send_with_headers(response, scope, receive, send)
                return

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = message.setdefault("headers", [])
                names = {k.lower() for k, _ in headers}
                for key, value in HEADERS.items():
                    headers.append((key.lower().encode(), value.encode()))
                if b"content-security-policy" not in names:
                    headers.append((b"content-security-policy", CSP.encode()))
            await send(message)

        await self.app(scope, receive, send_with_headers)

    def _allowed(self, request: Request) -> bool:
        assert self.token is not None
        wanted = self.token.encode()
        auth = request.headers.get("authorization", "")
        if auth.lower().startswith("bearer ") and hmac.compare_digest(
                auth[7:].strip().encode(), wanted):
            return True
        cookie = request.cookies.get(TOKEN_COOKIE)
        return cookie is not None and hmac.compare_digest(cookie.encode(), wanted)

    async def _send_with_headers(self, response: Response, scope: Scope, receive: Receive,
                                 send: Send) -> None:
        for key, value in HEADERS.items():
            response.headers[key] = value
        response.headers.setdefault("content-security-policy", CSP)
        await response(scope, receive, send)


# --- answers ----------------------------------------------------------------------------------


def _wants_json(request: Request) -> bool:
    return request.url.path.startswith("/api/")


def _error(request: Request, status: int, message: str) -> Response:
    """A readable error page (or JSON for the API): never a traceback."""
    if _wants_json(request):
        return JSONResponse({"error": message, "status": status}, status_code=status)
    title = HTTPStatus(status).phrase if status in HTTPStatus._value2member_map_ else "Error"
    html = _ENV.get_template("error.html").render(
        title=f"{status} {title}", message=message, status=status, store=_store_uri(request))
    return HTMLResponse(html, status_code=status)


def _status_of(exc: BaseException) -> int:
    if isinstance(exc, NotFound):
        return 404
    if isinstance(exc, (RefError, SearchError)):
        return 400
    return 500


async def _lineage_error(request: Request, exc: Exception) -> Response:
    return _error(request, _status_of(exc), " ".join(str(exc).split()))


async def _http_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, HTTPException)
    return _error(request, exc.status_code, exc.detail or HTTPStatus(exc.status_code).phrase)


async def _internal_error(request: Request, exc: Exception) -> Response:
    return _error(request, 500, f"internal error: {type(exc).__name__} (see the server's log)")


def _store(request: Request) -> Store:
    store: Store = request.app.state.store
    return store


def _store_uri(request: Request) -> str:
    try:
        return _store(request).uri
    except AttributeError:  # pragma: no cover - before startup
        return ""


def _page(request: Request, template: str, **context: Any) -> HTMLResponse:
    html = _ENV.get_template(template).render(
        store=_store(request).uri, request_path=request.url.path, **context)
    return HTMLResponse(html)


def _json_response(value: Any) -> JSONResponse:
    return JSONResponse(value)


def _int(request: Request, name: str, default: int, *, low: int = 0, high: int = 10**9) -> int:
    raw = request.query_params.get(name)
    if raw is None or raw == "":
        return default
    try:
        value = int(raw)
    except ValueError:
        raise HTTPException(400, f"{name}={raw!r}: give a whole number") from None
    if not low <= value <= high:
        raise HTTPException(400, f"{name}={value}: give a number from {low} to {high}")
    return value


def _wheres(request: Request) -> list[str]:
    """``where`` parameters; a page's text box may hold several filters split by ``;``."""
    out: list[str] = []
    for raw in request.query_params.getlist("where"):
        out.extend(part.strip() for part in raw.split(";") if part.strip())
    return out


def _svg(text: str | bytes) -> Response:
    return Response(text, media_type="image/svg+xml",
                    headers={"content-security-policy": CSP_DOCUMENT,
                             "cache-control": "no-cache"})


# --- pages ------------------------------------------------------------------------------------


def home(request: Request) -> Response:
    experiment = request.query_params.get("experiment") or None
    sort = request.query_params.get("sort") or None
    page = _int(request, "page", 1, low=1)
    per_page = _int(request, "n", _views.PAGE, low=1, high=500)
    data = _views.home(_store(request), experiment=experiment, where=_wheres(request),
                       sort=sort, page=page, per_page=per_page)

    def url(**change: Any) -> str:
        params = {"experiment": data["experiment"], "where": data["where"],
                  "sort": data["sort"], "page": str(page),
                  "n": "" if per_page == _views.PAGE else str(per_page)}
        params.update({k: str(v) for k, v in change.items()})
        return "/?" + urlencode({k: v for k, v in params.items() if v not in ("", None)})

    def sort_url(key: str) -> str:
        current = data["sort"] or "-id"
        return url(sort=f"-{key}" if current == key else key, page=1)

    return _page(request, "home.html", url=url, sort_url=sort_url, **data)


def find(request: Request) -> Response:
    """The search box: a ref goes straight to its page; a name lists what matches."""
    store = _store(request)
    q = (request.query_params.get("q") or "").strip()
    if not q:
        return RedirectResponse("/", status_code=303)
    if q.startswith("execution:"):
        return RedirectResponse(f"/executions/{_views.execution_id(q)}", status_code=303)
    hits: list[dict[str, str]] = []
    try:
        ctx = store._resolve_run(q)
        hits.append({"kind": "run", "label": ctx.name,
                     "url": _views.run_url(f"context:{ctx.id}")})
    except LineageError:
        pass
    try:
        art = store.get(_views.artifact_ref(q))
        hits.append({"kind": "artifact", "label": f"{art.type_name} {art.name} v{art.version}",
                     "url": f"/artifacts/{art.id}"})
    except LineageError:
        pass
    if len(hits) == 1:
        return RedirectResponse(hits[0]["url"], status_code=303)
    needle = q.lower()
    for r in store.search_runs(step_params=False):
        if needle in r.name.lower() and not any(h["url"] == _views.run_url(r.ref) for h in hits):
            hits.append({"kind": "run", "label": r.name, "url": _views.run_url(r.ref)})
        if len(hits) >= _views.ROWS:
            break
    return _page(request, "search.html", q=q, hits=hits)


def run_page(request: Request) -> Response:
    ref = _views.run_ref(request.path_params["run"])
    data = _views.run_page(_store(request), ref)
    return _page(request, "run.html", **data)


def run_curves(request: Request) -> Response:
    from lineage.plot import plot_runs

    ref = _views.run_ref(request.path_params["run"])
    metrics = request.query_params.getlist("metric") or None
    chart = plot_runs(_store(request), [ref], metrics)
    assert not isinstance(chart, Path)
    return _svg(chart.to_svg())


def run_confusion(request: Request) -> Response:
    from lineage.plot import confusion_matrix

    ref = _views.run_ref(request.path_params["run"])
    step = request.query_params.get("step")
    at = _int(request, "step", 0, low=-(10**12), high=10**12) if step not in (None, "") else None
    matrix, labels = _views.confusion(_store(request), ref, at)
    title = "confusion matrix" + (f" (step {at})" if at is not None else "")
    return _svg(confusion_matrix(matrix, labels, title=title).to_svg())


def compare_page(request: Request) -> Response:
    refs = _views.compare_refs([*request.query_params.getlist("runs"),
                                *request.query_params.getlist("run")])
    data = _views.compare_page(_store(request), refs)
    curves = "/compare/curves.svg?" + urlencode({"runs": ",".join(data["refs"])})
    return _page(request, "compare.html", curves_url=curves, **data)


def compare_curves(request: Request) -> Response:
    from lineage.plot import plot_runs

    refs = _views.compare_refs(request.query_params.getlist("runs"))
    chart = plot_runs(_store(request), refs, request.query_params.getlist("metric") or None)
    assert not isinstance(chart, Path)
    return _svg(chart.to_svg())


def artifact_page(request: Request) -> Response:
    ref = _views.artifact_ref(request.path_params["ref"])
    data = _views.artifact_page(_store(request), ref)
    data["diagram"] = Markup(data["diagram"])  # Graphviz SVG of our diagram: labels escaped
    if data["impact_diagram"] is not None:
        data["impact_diagram"] = Markup(data["impact_diagram"])
    return _page(request, "artifact.html", **data)


def audit_report(request: Request) -> Response:
    from lineage.report import audit

    store = _store(request)
    art = store.get(_views.artifact_ref(request.path_params["ref"]))
    text = audit(store, art.id or 0)
    assert isinstance(text, str)
    headers = {"content-security-policy": CSP_DOCUMENT}
    if request.query_params.get("download"):
        name = f"audit-{art.name or 'artifact'}-v{art.version or 0}-{art.id}.html"
        safe = "".join(c if c.isalnum() or c in "-_." else "_" for c in name)
        headers["content-disposition"] = f'attachment; filename="{safe}"'
    return HTMLResponse(text, headers=headers)


def execution_page(request: Request) -> Response:
    eid = _views.execution_id(request.path_params["id"])
    return _page(request, "execution.html", **_views.execution_page(_store(request), eid))


def diff_page(request: Request) -> Response:
    a = (request.query_params.get("a") or "").strip()
    b = (request.query_params.get("b") or "").strip()
    if not a or not b:
        return _page(request, "diff.html", a=a, b=b, d=None, data=None, diagram=None)
    data = _views.diff_page(_store(request), a, b)
    data["diagram"] = Markup(data["diagram"])
    return _page(request, "diff.html", a=a, b=b, **data)


# --- JSON -------------------------------------------------------------------------------------


def api_runs(request: Request) -> Response:
    found = _views.search(
        _store(request), experiment=request.query_params.get("experiment") or None,
        where=_wheres(request), sort=request.query_params.get("sort") or None,
        limit=_int(request, "limit", _views.PAGE, low=1, high=1000),
        offset=_int(request, "offset", 0))
    return _json_response(found.to_dict())


def api_run(request: Request) -> Response:
    ref = _views.run_ref(request.path_params["run"])
    return _json_response(_views.run_status(_store(request), ref))


def api_run_metrics(request: Request) -> Response:
    from lineage._convert import jsonable as _jsonable
    from lineage.metrics import run_metrics

    ref = _views.run_ref(request.path_params["run"])
    return _json_response(_jsonable(run_metrics(_store(request), ref).to_dict()))


def api_artifact(request: Request) -> Response:
    art = _store(request).get(_views.artifact_ref(request.path_params["ref"]))
    return _json_response(_views.artifact_dict(art))


def api_provenance(request: Request) -> Response:
    store = _store(request)
    return _json_response(store.provenance(_views.artifact_ref(request.path_params["ref"]))
                          .to_dict())


def api_impact(request: Request) -> Response:
    store = _store(request)
    return _json_response(store.impact(_views.artifact_ref(request.path_params["ref"]))
                          .to_dict())


def api_verify(request: Request) -> Response:
    store = _store(request)
    return _json_response(store.verify(_views.artifact_ref(request.path_params["ref"]))
                          .to_dict())


def api_execution(request: Request) -> Response:
    eid = _views.execution_id(request.path_params["id"])
    return _json_response(_views.execution_dict(_views.execution(_store(request), eid)))


def api_diff(request: Request) -> Response:
    a = (request.query_params.get("a") or "").strip()
    b = (request.query_params.get("b") or "").strip()
    if not a or not b:
        raise HTTPException(400, "give both artifacts: /api/diff?a=REF&b=REF")
    store = _store(request)
    return _json_response(store.diff(_views.artifact_ref(a), _views.artifact_ref(b)).to_dict())


def api_schema(request: Request) -> Response:
    return _json_response(openapi())


def favicon(request: Request) -> Response:
    return Response(status_code=204)


def robots(request: Request) -> Response:
    return PlainTextResponse("User-agent: *\nDisallow: /\n")


_ENV = _environment()

ROUTES = [
    Route("/", home),
    Route("/search", find),
    Route("/runs/{run:path}/curves.svg", run_curves),
    Route("/runs/{run:path}/confusion.svg", run_confusion),
    Route("/runs/{run:path}", run_page),
    Route("/compare/curves.svg", compare_curves),
    Route("/compare", compare_page),
    Route("/artifacts/{ref:path}/audit.html", audit_report),
    Route("/artifacts/{ref:path}", artifact_page),
    Route("/executions/{id}", execution_page),
    Route("/diff", diff_page),
    Route("/api/openapi.json", api_schema),
    Route("/api/runs", api_runs),
    Route("/api/runs/{run:path}/metrics", api_run_metrics),
    Route("/api/runs/{run:path}", api_run),
    Route("/api/artifacts/{ref:path}/provenance", api_provenance),
    Route("/api/artifacts/{ref:path}/impact", api_impact),
    Route("/api/artifacts/{ref:path}/verify", api_verify),
    Route("/api/artifacts/{ref:path}", api_artifact),
    Route("/api/executions/{id}", api_execution),
    Route("/api/diff", api_diff),
    Route("/favicon.ico", favicon),
    Route("/robots.txt", robots),
    Mount("/static", StaticFiles(directory=str(HERE / "static")), name="static"),
]


def create_app(store: Store, *, token: str | None = None,
               allowed_hosts: list[str] | None = None) -> Starlette:
    """The web application serving ``store`` (open it with ``read_only=True``).

    Args:
        store: the store to serve.
        token: when given, every request must carry it (see :class:`_Guard`).
        allowed_hosts: accepted ``Host`` headers (``None``: any); a server on a loopback
            address accepts only loopback names, so a web page elsewhere cannot reach it
            through DNS rebinding.
    """
    middleware = [Middleware(_Guard, token=token)]
    if allowed_hosts:
        middleware.append(Middleware(TrustedHostMiddleware, allowed_hosts=allowed_hosts))
    app = Starlette(
        routes=ROUTES,
        middleware=middleware,
        exception_handlers={
            LineageError: _lineage_error,
            HTTPException: _http_error,
            Exception: _internal_error,
        },
    )
    app.state.store = store
    return app
