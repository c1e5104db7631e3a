"""What each page and API call reads from the store: only what it shows, a page at a time.

Every function here takes a (read-only) :class:`~lineage.store.Store`, calls the library's
own reads and queries, and returns plain data for a template or a JSON answer. Nothing here
writes, and nothing builds HTML: the templates (Jinja2, autoescaped) do.
"""

from __future__ import annotations

import datetime
import re
from collections.abc import Callable, Iterable, Sequence
from typing import TYPE_CHECKING, Any

from lineage import _convert
from lineage.errors import InvalidRef, NotFound, RefError
from lineage.records import Execution
from lineage.search import RunSearch, RunSummary, _summary, duration_text, experiments, shown_params

if TYPE_CHECKING:
    from lineage.artifacts import Artifact
    from lineage.records import Run
    from lineage.store import Store

#: Runs per page of the home page and default page of ``/api/runs``.
PAGE = 50
#: At most this many rows of one list on a page (steps, artifacts, versions, impact).
ROWS = 200
#: Newest versions listed on an artifact page.
VERSIONS = 20
_ARTIFACT_REF = re.compile(r"^(artifact:)?\d+$")
#: Execution properties shown under "code" and "environment" on an execution page.
CODE = ("function", "script", "source_hash", "git_repo", "git_commit", "git_dirty", "returns",
        "cache_key")
ENVIRONMENT = ("python", "hostname", "recorded_by")
TIMING = ("start_time", "end_time", "duration")


def link(key: str) -> str | None:
    """The page of a graph node: ``artifact:3`` → ``/artifacts/3``, ``execution:5`` →
    ``/executions/5`` (what diagrams link their nodes to)."""
    kind, _, ident = key.partition(":")
    if not ident.isdigit():
        return None
    if kind == "artifact":
        return f"/artifacts/{ident}"
    if kind == "execution":
        return f"/executions/{ident}"
    return None


def run_url(ref: str) -> str:
    """The page of a run (``context:12`` → ``/runs/context:12``)."""
    return f"/runs/{ref}"


def when(seconds: Any) -> str:
    """A time stamp (seconds since the epoch) as ``2025-01-31 12:00:00 UTC``; ``-`` for none."""
    if isinstance(seconds, bool) or not isinstance(seconds, (int, float)):
        return "-"
    return datetime.datetime.fromtimestamp(seconds, datetime.timezone.utc).strftime(
        "%Y-%m-%d %H:%M:%S UTC")


def when_ms(ms: Any) -> str:
    """A time stamp in milliseconds (MLMD's create times) as :func:`when`."""
    if isinstance(ms, bool) or not isinstance(ms, (int, float)) or not ms:
        return "-"
    return when(ms / 1000)


# --- refs -------------------------------------------------------------------------------------


def artifact_ref(text: str) -> int | str:
    """A URL path segment as an artifact reference: an id (``12``, ``artifact:12``) or a
    name ref (``clf``, ``clf@2``).

    Raises:
        InvalidRef: empty or malformed.
    """
    text = text.strip()
    if not text:
        raise InvalidRef("an empty artifact reference", ref=text)
    if _ARTIFACT_REF.match(text):
        return int(text.rsplit(":", 1)[-1])
    if text.startswith("artifact:"):
        raise InvalidRef(f"{text!r}: expected artifact:<id>", ref=text)
    return text


def execution_id(text: str) -> int:
    """``"5"`` or ``"execution:5"`` → 5.

    Raises:
        InvalidRef: anything else.
    """
    raw = text.strip().removeprefix("execution:")
    if not raw.isdigit():
        raise InvalidRef(f"{text!r} is not an execution id: expected a number or execution:<id>",
                         ref=text)
    return int(raw)


def run_ref(text: str) -> str | int:
    """A URL path segment as a run reference (a name, ``context:12``, ``experiment/name``)."""
    text = text.strip()
    if not text:
        raise InvalidRef("an empty run reference", ref=text)
    if text.startswith("context:") and not text[len("context:"):].isdigit():
        raise InvalidRef(f"{text!r}: expected context:<id>", ref=text)
    return text


# --- runs -------------------------------------------------------------------------------------


def search(store: Store, *, experiment: str | None, where: Sequence[str], sort: str | None,
           limit: int, offset: int) -> RunSearch:
    """A page of runs (the home page and ``/api/runs``)."""
    return store.search_runs(experiment=experiment or None, where=list(where), sort=sort or None,
                             limit=limit, offset=offset)


def home(store: Store, *, experiment: str | None, where: Sequence[str], sort: str | None,
         page: int, per_page: int = PAGE) -> dict[str, Any]:
    """The home page: experiments, and a page of runs with their params and metrics."""
    found = search(store, experiment=experiment, where=where, sort=sort or "-id",
                   limit=per_page, offset=(page - 1) * per_page)
    metrics = sorted({k for r in found.runs for k in r.metrics})[:12]
    params = shown_params(found, limit=12)
    return {
        "experiments": experiments(store),
        "experiment": experiment or "",
        "where": "; ".join(where),
        "sort": sort or "",
        "search": found,
        "runs": [_run_row(r) for r in found.runs],
        "metric_keys": metrics,
        "param_keys": params,
        "page": page,
        "has_next": found.more,
        "pages": None if found.total is None else max(1, -(-found.total // per_page)),
        "per_page": per_page,
    }


def _run_row(r: RunSummary) -> dict[str, Any]:
    return {
        "ref": r.ref, "url": run_url(r.ref), "name": r.name, "run_name": r.run_name,
        "experiment": r.experiment, "status": r.status or "-", "start": when(r.start_time),
        "duration": duration_text(r.duration) if r.end_time is not None else (
            "running" if r.status == "RUNNING" else "-"),
        "params": r.params, "metrics": r.metrics,
    }


def _run_context(store: Store, ref: str | int) -> tuple[Any, Run]:
    ctx = store._resolve_run(ref)
    return ctx, store._runs_from_protos([ctx])[0]


def _step_rows(execs: Iterable[Execution]) -> list[dict[str, Any]]:
    return [{"id": e.id, "url": f"/executions/{e.id}", "name": e.name, "state": e.state,
             "params": e.params, "start": when(e.properties.get("start_time")),
             "duration": duration_text(e.properties.get("duration"))
             if isinstance(e.properties.get("duration"), (int, float)) else "-",
             "error": e.error, "inputs": e.inputs, "outputs": e.outputs} for e in execs]


def _artifact_row(a: Artifact) -> dict[str, Any]:
    return {"id": a.id, "url": f"/artifacts/{a.id}", "type": a.type_name, "name": a.name,
            "version": a.version, "uri": a.uri, "fingerprint": a.fingerprint}


def run_status(store: Store, ref: str | int) -> dict[str, Any]:
    """What a run page polls while the run is RUNNING: status, steps and their states, and how
    many points each metric series has (``/api/runs/{run}``)."""
    ctx, run = _run_context(store, ref)
    summary = _summary(run)
    protos = sorted(store._call("get_executions_by_context", ctx.id, missing=[]),
                    key=lambda p: p.id)
    states = {p.id: _convert.execution_from_proto(p, store._types(
        "execution", [p.type_id]).get(p.type_id), ()) for p in protos[:ROWS]}
    from lineage.metrics import run_metrics

    series = run_metrics(store, ctx.id).series
    return {
        **summary.to_dict(),
        "steps": [{"id": e.id, "name": e.name, "state": e.state} for e in states.values()],
        "step_count": len(protos),
        "points": {k: len(v) for k, v in sorted(series.items())},
    }


def run_page(store: Store, ref: str | int) -> dict[str, Any]:
    """A run: params, config files, metrics and curves, steps with states, artifacts."""
    ctx, run = _run_context(store, ref)
    summary = _summary(run)
    protos = sorted(store._call("get_executions_by_context", ctx.id, missing=[]),
                    key=lambda p: p.id)
    execs = store._executions_from_protos(protos[:ROWS])
    step_params: dict[str, Any] = {}
    types = store._types("execution", (p.type_id for p in protos))
    for proto in protos:  # later calls of a step overwrite earlier ones, as in compare
        ex = _convert.execution_from_proto(proto, types.get(proto.type_id), ())
        step_params.update({f"{ex.name}.{k}": v for k, v in ex.params.items()})
    arts = store._artifacts_from_protos(
        list(store._call("get_artifacts_by_context", ctx.id, missing=[])))
    arts.sort(key=lambda a: a.id or 0)
    config = run.properties.get("config")
    configs = ([{"file": str(k), "id": v, "url": f"/artifacts/{v}"}
                for k, v in sorted(config.items()) if isinstance(v, int)]
               if isinstance(config, dict) else [])
    from lineage.metrics import run_metrics

    metrics = run_metrics(store, ctx.id)
    return {
        "run": _run_row(summary),
        "summary": summary,
        "ref": summary.ref,
        "run_params": dict(sorted(run.params.items())),
        "step_params": dict(sorted(step_params.items())),
        "configs": configs,
        "final": dict(sorted(metrics.final.items())),
        "series": sorted(metrics.series),
        "points": sum(len(v) for v in metrics.series.values()),
        "confusion": confusion_steps(store, ctx.id),
        "steps": _step_rows(execs),
        "step_count": len(protos),
        "artifacts": [_artifact_row(a) for a in arts[:ROWS]],
        "artifact_count": len(arts),
        "live": summary.status == "RUNNING",
        "start": when(summary.start_time), "end": when(summary.end_time),
        "duration": duration_text(summary.duration),
    }


def _confusion_reader() -> Callable[..., Any] | None:
    """``lineage.metrics.confusion_matrices(store, run)`` once confusion matrices are
    recorded (issue 12): a list of ``{"step", "matrix", "labels"}``, oldest first."""
    from lineage import metrics

    reader = getattr(metrics, "confusion_matrices", None)
    return reader if callable(reader) else None


def confusion_steps(store: Store, run_id: int) -> list[Any]:
    """The steps at which the run recorded a confusion matrix (empty until recorded)."""
    reader = _confusion_reader()
    if reader is None:
        return []
    return [m.get("step") if isinstance(m, dict) else getattr(m, "step", None)
            for m in reader(store, run_id)]


def confusion(store: Store, ref: str | int, step: int | None) -> tuple[Any, Any]:
    """The matrix and labels recorded at ``step`` (the latest when ``None``).

    Raises:
        NotFound: none recorded (at that step).
    """
    ctx = store._resolve_run(ref)
    reader = _confusion_reader()
    found = list(reader(store, ctx.id)) if reader is not None else []

    def field(m: Any, name: str) -> Any:
        return m.get(name) if isinstance(m, dict) else getattr(m, name, None)

    if step is not None:
        found = [m for m in found if field(m, "step") == step]
    if not found:
        at = f" at step {step}" if step is not None else ""
        raise NotFound(f"run {ctx.name!r} recorded no confusion matrix{at}", ref=ref)
    return field(found[-1], "matrix"), field(found[-1], "labels")


# --- artifacts --------------------------------------------------------------------------------


def artifact(store: Store, ref: int | str) -> Artifact:
    """The artifact a URL names."""
    return store.get(ref)


def artifact_dict(a: Artifact) -> dict[str, Any]:
    """``/api/artifacts/{id}``: what ``lineage show REF --json`` prints."""
    from lineage._convert import jsonable as _jsonable

    out: dict[str, Any] = _jsonable({
        **a.to_dict(), "base_type": a.base_type, "properties": a.properties, "state": a.state,
        "create_time": a.create_time, "previous_version": a.previous_version})
    return out


def versions(store: Store, a: Artifact) -> list[dict[str, Any]]:
    """The newest :data:`VERSIONS` versions of the artifact's name, newest first (one indexed
    lookup each; none for artifacts without versions)."""
    if not a.name or not isinstance(a.version, int):
        return []
    latest = store._latest_version(a.type_name, a.name)
    top = max(a.version, _convert.artifact_from_proto(latest, None).version or 0) \
        if latest is not None else a.version
    out = []
    for v in range(top, max(0, top - VERSIONS), -1):
        got = store._call("get_artifact_by_type_and_name", a.type_name,
                          _convert.mlmd_artifact_name(a.name, v), missing=None)
        if got is not None and got.id:
            out.append({"version": v, "id": got.id, "url": f"/artifacts/{got.id}",
                        "current": got.id == a.id, "create": when_ms(got.create_time_since_epoch)})
    return out


def artifact_page(store: Store, ref: int | str) -> dict[str, Any]:
    """An artifact: properties, versions, provenance (diagram and steps), impact."""
    from lineage.render import to_svg

    a = store.get(ref)
    prov = store.provenance(a.id or 0)
    imp = store.impact(a.id or 0)
    impact_rows: list[dict[str, Any]] = []
    for kind, records in sorted(imp.by_type.items()):
        for rec in records[:ROWS]:
            is_exec = isinstance(rec, Execution)
            version = None if isinstance(rec, Execution) else rec.version
            impact_rows.append({
                "group": kind, "id": rec.id,
                "url": f"/executions/{rec.id}" if is_exec else f"/artifacts/{rec.id}",
                "ref": rec.ref, "name": rec.name,
                "detail": rec.state if isinstance(rec, Execution) else
                f"v{version}" if version else ""})
    return {
        "a": a,
        "ref": f"artifact:{a.id}",
        "properties": dict(sorted(a.properties.items())),
        "versions": versions(store, a),
        "diagram": svg_body(to_svg(prov, link=link)),
        "steps": [_provenance_step(prov, s) for s in prov.steps[:ROWS]],
        "step_count": len(prov.steps),
        "datasets": [_artifact_row(d) for d in prov.datasets[:ROWS]],
        "upstream_count": len(prov.artifacts),
        "impact": impact_rows,
        "impact_counts": {k: len(v) for k, v in sorted(imp.by_type.items())},
        "impact_diagram": svg_body(to_svg(imp, link=link)) if imp.artifacts or imp.executions
        else None,
        "created": when_ms(a.create_time),
    }


def _provenance_step(prov: Any, step: Execution) -> dict[str, Any]:
    out: dict[str, Any] = prov.step_dict(step)
    names = set(out.get("runs") or ())
    out["url"] = f"/executions/{step.id}"
    out["run_links"] = [{"name": r.name, "url": run_url(r.ref)}
                        for r in prov.runs.get(step.id, []) if r.name in names]
    return out


def svg_body(svg: str) -> str:
    """Graphviz's SVG without the XML prolog and DOCTYPE, to inline in a page."""
    start = svg.find("<svg")
    return svg[start:] if start >= 0 else svg


# --- executions -------------------------------------------------------------------------------


def execution(store: Store, eid: int) -> Execution:
    """One execution, with its inputs and outputs.

    Raises:
        NotFound: no execution has that id.
    """
    found = store.executions_by_id([eid])
    if eid not in found:
        raise NotFound(f"no execution with id {eid} in {store.uri}", ref=f"execution:{eid}")
    return found[eid]


def execution_dict(ex: Execution) -> dict[str, Any]:
    """``/api/executions/{id}``: what ``lineage show execution:ID --json`` prints."""
    from lineage._convert import jsonable as _jsonable

    out: dict[str, Any] = _jsonable({
        **ex.to_dict(), "error": ex.error, "base_type": ex.base_type,
        "properties": ex.properties, "create_time": ex.create_time})
    return out


def execution_page(store: Store, eid: int) -> dict[str, Any]:
    """An execution: params, code, environment, timing, error and traceback, inputs, outputs,
    its run and the executions it refers to (parent, cached from)."""
    ex = execution(store, eid)
    arts = store.artifacts_by_id([*ex.inputs[:ROWS], *ex.outputs[:ROWS]])
    props = ex.properties

    def rows(ids: Sequence[int]) -> list[dict[str, Any]]:
        return [_artifact_row(arts[i]) if i in arts else
                {"id": i, "url": f"/artifacts/{i}", "type": "?", "name": f"artifact:{i}",
                 "version": None, "uri": "", "fingerprint": None} for i in ids[:ROWS]]

    run = None
    run_id = props.get("run_context")
    if isinstance(run_id, int) and run_id:
        got = store._call("get_contexts_by_id", [run_id])
        if got:
            run = {"name": got[0].name, "url": run_url(f"context:{run_id}")}
    related = [{"what": what, "url": f"/executions/{props[key]}", "ref": f"execution:{props[key]}"}
               for key, what in (("parent_execution", "called by"), ("cached_from", "cached from"))
               if isinstance(props.get(key), int) and props.get(key)]
    used = set(CODE) | set(ENVIRONMENT) | set(TIMING) | {
        "error", "traceback", "packages", "metrics", "metric_series", "run_context",
        "parent_execution", "cached_from"}
    packages = props.get("packages")
    return {
        "ex": ex,
        "params": dict(sorted(ex.params.items())),
        "code": {k: props[k] for k in CODE if props.get(k) not in (None, "")},
        "environment": {k: props[k] for k in ENVIRONMENT if props.get(k) not in (None, "")},
        "packages": dict(sorted(packages.items())) if isinstance(packages, dict) else {},
        "timing": {"start": when(props.get("start_time")), "end": when(props.get("end_time")),
                   "duration": duration_text(props.get("duration"))
                   if isinstance(props.get("duration"), (int, float)) else "-"},
        "metrics": props.get("metrics") if isinstance(props.get("metrics"), dict) else {},
        "traceback": props.get("traceback") or None,
        "other": {k: v for k, v in sorted(props.items()) if k not in used},
        "inputs": rows(ex.inputs), "outputs": rows(ex.outputs),
        "run": run, "related": related, "created": when_ms(ex.create_time),
    }


# --- diff and compare -------------------------------------------------------------------------


def diff_page(store: Store, a: str, b: str) -> dict[str, Any]:
    """Two artifacts' lineages side by side: what differs, and the diff diagram."""
    from lineage.render import to_svg

    d = store.diff(artifact_ref(a), artifact_ref(b))
    return {"d": d, "data": d.to_dict(), "diagram": svg_body(to_svg(d, link=link))}


def compare_refs(raw: Iterable[str]) -> list[str | int]:
    """``runs=a,b`` and repeated ``run=`` values → run refs, in order, without repeats."""
    refs: list[str | int] = []
    for value in raw:
        for part in value.split(","):
            part = part.strip()
            if part and part not in refs:
                refs.append(run_ref(part))
    if not refs:
        raise InvalidRef("name the runs to compare: /compare?runs=a,b", ref="")
    return refs


def compare_page(store: Store, refs: Sequence[str | int]) -> dict[str, Any]:
    """The comparison table of runs and whether they have curves."""
    c = store.compare(list(refs))
    from lineage.metrics import run_metrics

    has_series = any(run_metrics(store, r.id).series for r in c.runs)
    return {"c": c, "refs": [r.ref for r in c.runs], "has_series": has_series,
            "runs": [{"name": r.name, "url": run_url(r.ref)} for r in c.runs]}


def is_ref_error(exc: BaseException) -> bool:
    """Whether an error is about what was asked (a 4xx), not the server."""
    return isinstance(exc, RefError)
