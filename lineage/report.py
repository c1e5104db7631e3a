"""Audit reports: one self-contained HTML (or Markdown) file per artifact, with a digest.

:func:`audit` answers, for one artifact (usually a model), "which data, code and parameters
produced this, and is that data still what was recorded?": the target with its
fingerprint, the lineage diagram (inline SVG), every dataset with its URI, version,
fingerprint and the result of re-verifying its content now, every step with params,
state, duration, code version and environment, the failed and cached executions along the
way, when and from which store (password redacted) the report was made.

Every value read from the store is HTML-escaped (Markdown-escaped too in ``.md``); the HTML
has no scripts, loads nothing from elsewhere (inline CSS and SVG only) and carries a
Content-Security-Policy that forbids it anyway.

The report embeds a SHA-256 digest of its own text (with the digest itself blanked out):
:func:`check` recomputes it, so a copy can be checked later for edits (CLI:
``lineage audit --check report.html``). The digest detects changes, it does not prove who
made the report: keep the digest somewhere else too (a ticket, a signed commit) if the
report itself could be replaced.
"""

from __future__ import annotations

import datetime as _dt
import hashlib
import html
import json
import os
import re
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import attrs

from lineage.errors import LineageError, RenderError

if TYPE_CHECKING:
    from lineage.artifacts import Artifact
    from lineage.records import Execution
    from lineage.store import Ref, Store

__all__ = ["ReportCheck", "audit", "check"]

_PLACEHOLDER = "sha256:" + "-" * 64
_DIGEST_MARK = re.compile(r'lineage-audit-digest(?:" content="|: )(sha256:[0-9a-f]{64})')
_NOT_COMPLETE = ("FAILED", "CACHED", "CANCELED", "RUNNING", "NEW", "UNKNOWN")
_MAX_ALONG_THE_WAY = 200
#: Verification results that mean the content is not what was recorded.
_BAD = ("changed", "missing", "unreadable")


# --- what goes into a report ------------------------------------------------------------


@attrs.define
class _Row:
    """One artifact of the report."""

    id: int
    type_name: str
    name: str
    version: Any
    uri: str
    fingerprint: str | None
    base_type: str | None
    status: str | None = None
    detail: str | None = None


@attrs.define
class _Step:
    """One execution of the report."""

    id: int
    name: str
    type_name: str
    state: str
    params: dict[str, Any]
    runs: list[str]
    started: str | None
    duration: str | None
    code: dict[str, str]
    environment: dict[str, str]
    packages: dict[str, str]
    error: str | None
    inputs: list[str]
    outputs: list[str]


@attrs.define
class _Report:
    target: _Row
    datasets: list[_Row]
    others: list[_Row]
    steps: list[_Step]
    along: list[_Step]
    generated_at: str
    store_uri: str
    version: str
    svg: str | None
    dot: str | None
    diagram_error: str | None
    training: list[Any] = attrs.field(factory=list)
    """:class:`lineage.metrics.TrainingFigures` of the runs of the steps (curves, matrices)."""


def _status_entries(verification: Any) -> Iterable[Any]:
    """The per-artifact entries of a ``Verification``, whatever its exact shape."""
    for attr in ("results", "items", "artifacts", "checks", "entries"):
        value = getattr(verification, attr, None)
        if isinstance(value, Mapping):
            return list(value.values())
        if isinstance(value, (list, tuple)):
            return list(value)
    to_dict = getattr(verification, "to_dict", None)
    data = to_dict() if callable(to_dict) else verification
    if isinstance(data, Mapping):
        for key in ("results", "items", "artifacts", "checks", "entries"):
            value = data.get(key)
            if isinstance(value, Mapping):
                return list(value.values())
            if isinstance(value, list):
                return value
    if isinstance(data, list):
        return data
    return []


def _field(entry: Any, *names: str) -> Any:
    for name in names:
        value = entry.get(name) if isinstance(entry, Mapping) else getattr(entry, name, None)
        if value is not None:
            return value
    return None


def _statuses(verification: Any) -> dict[int, tuple[str, str | None]]:
    """artifact id → (status, detail) from a ``Verification``."""
    out: dict[int, tuple[str, str | None]] = {}
    for entry in _status_entries(verification):
        ident = _field(entry, "id", "artifact_id")
        if ident is None:
            art = _field(entry, "artifact", "target")
            ident = _field(art, "id") if art is not None else None
        status = _field(entry, "status", "result", "state")
        if not isinstance(ident, int) or status is None:
            continue
        detail = _field(entry, "detail", "message", "reason", "error")
        if detail is None:
            now = _field(entry, "current", "fingerprint_now", "actual", "now")
            if now is not None and str(status).lower() == "changed":
                detail = f"now {now}"
        out[ident] = (str(getattr(status, "value", status)).lower(),
                      None if detail is None else str(detail))
    return out


def _row(artifact: Artifact, statuses: Mapping[int, tuple[str, str | None]]) -> _Row:
    ident = int(artifact.id or 0)
    status, detail = statuses.get(ident, (None, None))
    return _Row(
        id=ident,
        type_name=str(artifact.type_name),
        name=str(artifact.name) if artifact.name else f"(unnamed {artifact.type_name})",
        version=artifact.version,
        uri=str(artifact.uri or ""),
        fingerprint=artifact.fingerprint,
        base_type=getattr(artifact, "base_type", None),
        status=status,
        detail=detail,
    )


def _when(seconds: Any) -> str | None:
    if not isinstance(seconds, (int, float)) or isinstance(seconds, bool) or seconds <= 0:
        return None
    stamp = _dt.datetime.fromtimestamp(float(seconds), tz=_dt.timezone.utc)
    return stamp.isoformat(timespec="seconds").replace("+00:00", "Z")


def _duration(seconds: Any) -> str | None:
    if not isinstance(seconds, (int, float)) or isinstance(seconds, bool) or seconds < 0:
        return None
    if seconds < 1:
        return f"{seconds * 1000:.0f} ms"
    if seconds < 120:
        return f"{seconds:.1f} s"
    minutes, secs = divmod(int(seconds), 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours}h {minutes:02d}m {secs:02d}s" if hours else f"{minutes}m {secs:02d}s"


def _label(artifact: Artifact | None, ident: int) -> str:
    if artifact is None:
        return f"artifact:{ident}"
    name = artifact.name or f"(unnamed {artifact.type_name})"
    return f"{name} v{artifact.version}" if artifact.version is not None else str(name)


def _step(
    execution: Execution, runs: Sequence[str], names: Mapping[int, Artifact]
) -> _Step:
    props = execution.properties or {}
    start = props.get("start_time")
    end = props.get("end_time")
    duration = props.get("duration")
    if duration is None and isinstance(start, (int, float)) and isinstance(end, (int, float)):
        duration = end - start
    started = _when(start)
    shown_duration = _duration(duration)
    if started is None and execution.create_time:
        started = _when(execution.create_time / 1000)
    if shown_duration is None and execution.create_time and execution.update_time and \
            execution.state not in ("RUNNING", "NEW"):
        approx = _duration((execution.update_time - execution.create_time) / 1000)
        shown_duration = f"\u2248 {approx} (from MLMD times)" if approx else None
    code: dict[str, str] = {}
    for key in ("function", "script", "source_hash", "git_commit", "git_repo"):
        value = props.get(key)
        if value:
            code[key] = str(value)
    if props.get("git_dirty") is True:
        code["git_commit"] = code.get("git_commit", "?") + " (uncommitted changes)"
    environment = {k: str(props[k]) for k in ("python", "hostname") if props.get(k)}
    raw_packages = props.get("packages")
    packages = (
        {str(k): str(v) for k, v in sorted(raw_packages.items())}
        if isinstance(raw_packages, Mapping) else {}
    )
    return _Step(
        id=execution.id,
        name=str(execution.name),
        type_name=str(execution.type_name),
        state=str(execution.state),
        params=dict(sorted((str(k), v) for k, v in (execution.params or {}).items())),
        runs=list(runs),
        started=started,
        duration=shown_duration,
        code=code,
        environment=environment,
        packages=packages,
        error=execution.error,
        inputs=[_label(names.get(i), i) for i in execution.inputs],
        outputs=[_label(names.get(i), i) for i in execution.outputs],
    )


def _along_the_way(
    store: Store, step_ids: set[int], runs: set[int | str], upstream: Sequence[int]
) -> list[Execution]:
    """Executions that did not produce the target but belong to its story: the failed,
    cached, cancelled or unfinished ones in the same runs (or, without runs, that read
    the same artifacts)."""
    found: dict[int, Execution] = {}
    if runs:
        for run in sorted(runs, key=str):
            try:
                for ex in store.executions(run=run):
                    found[ex.id] = ex
            except LineageError:
                continue
    else:
        events = store._batched("get_events_by_artifact_ids", sorted(set(upstream)))
        readers = {ev.execution_id for ev in events} - step_ids
        found.update(store.executions_by_id(readers))
    picked = [ex for ex in found.values() if ex.id not in step_ids and ex.state in _NOT_COMPLETE]
    return sorted(picked, key=lambda e: (e.create_time or 0, e.id))[:_MAX_ALONG_THE_WAY]


def _runs_of(prov: Any, execution_id: int) -> list[tuple[int | str, str]]:
    """The runs an execution of a provenance belongs to, as (reference, label): ``Run``
    contexts (TFX ``pipeline_run``) by id and user-given name; other context types
    (experiments, cache keys, TFX node contexts) are left out. Without typed runs, the
    context names of the graph."""
    typed = getattr(prov, "runs", None)
    if isinstance(typed, Mapping):
        out: list[tuple[int | str, str]] = []
        for ctx in typed.get(execution_id, ()) or ():
            if getattr(ctx, "type_name", None) in ("Run", "pipeline_run"):
                name = getattr(ctx, "run_name", None) or getattr(ctx, "name", None)
                experiment = getattr(ctx, "experiment", None)
                label = f"{name} (experiment {experiment})" if experiment else str(name)
                out.append((int(ctx.id), label))
        return out
    graph = getattr(prov, "graph", None)
    node = f"execution:{execution_id}"
    if graph is not None and node in graph:
        return [(str(r), str(r)) for r in graph.nodes[node].get("runs") or ()]
    return []


def _collect(store: Store, ref: Ref, *, fold: bool = True) -> _Report:
    from lineage import __version__
    from lineage.render import to_dot, to_svg

    prov = store.provenance(ref)
    shape = prov.to_dict()
    target_id = int(shape["target"]["id"])
    upstream = [int(a["id"]) for a in shape.get("artifacts", [])]
    dataset_ids = {int(a["id"]) for a in shape.get("datasets", [])}
    step_ids = [int(s["id"]) for s in shape.get("steps", [])]
    artifacts = store.artifacts_by_id([target_id, *upstream])
    executions = store.executions_by_id(step_ids)
    try:
        statuses = _statuses(store.verify(ref))
    except LineageError as exc:
        statuses = {i: ("not verified", str(exc)) for i in [target_id, *upstream]}
    step_runs = {i: _runs_of(prov, i) for i in step_ids}
    along = _along_the_way(
        store, set(step_ids), {ref for rs in step_runs.values() for ref, _label in rs},
        [target_id, *upstream],
    )
    extra_ids = {
        i for ex in [*executions.values(), *along] for i in (*ex.inputs, *ex.outputs)
    } - set(artifacts)
    names = {**store.artifacts_by_id(extra_ids), **artifacts} if extra_ids else artifacts
    rows = {i: _row(a, statuses) for i, a in artifacts.items()}
    target = rows.get(target_id) or _row(prov.target, statuses)
    datasets = [rows[i] for i in upstream if i in rows and i in dataset_ids]
    others = [rows[i] for i in upstream if i in rows and i not in dataset_ids]
    steps = [_step(executions[i], [label for _ref, label in step_runs[i]], names)
             for i in step_ids if i in executions]
    svg = dot = diagram_error = None
    try:
        dot = to_dot(prov, fold=fold)
        svg = _inline_svg(to_svg(prov, fold=fold))
    except RenderError as exc:
        diagram_error = str(exc)
    from lineage.metrics import training_figures

    training = training_figures(store, [r for i in step_ids for r, _label in step_runs[i]
                                        if isinstance(r, int)])
    return _Report(
        training=training,
        target=target,
        datasets=datasets,
        others=others,
        steps=steps,
        along=[_step(ex, [], names) for ex in along],
        generated_at=_dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")
        .replace("+00:00", "Z"),
        store_uri=store.uri,
        version=__version__,
        svg=svg,
        dot=dot,
        diagram_error=diagram_error,
    )


def _inline_svg(svg: str) -> str:
    """Graphviz's SVG without the XML prolog, DOCTYPE and comments, for inlining.

    Graphviz writes a node's tooltip as an ``<a xlink:title="…">`` around it; the report
    turns it into an SVG ``<title>`` element (what browsers show on hover), so that it holds
    no links and no store text in attributes. Store text cannot contain ``<a`` or ``</a>``
    here: Graphviz escapes ``<``.
    """
    svg = re.sub(r"<\?xml[^>]*\?>", "", svg)
    svg = re.sub(r"<!DOCTYPE[^>]*>", "", svg)
    svg = re.sub(r"<!--.*?-->", "", svg, flags=re.S)
    svg = re.sub(r'<a xlink:title="([^"]*)">', r"<title>\1</title>", svg)
    svg = svg.replace("</a>", "")
    return svg.strip()


# --- HTML ---------------------------------------------------------------------------------

_CSS = """
:root { color-scheme: light; }
body { font: 14px/1.45 -apple-system, "Segoe UI", Helvetica, Arial, sans-serif; color: #111827;
       margin: 2rem auto; max-width: 1200px; padding: 0 1rem; }
h1 { font-size: 1.6rem; margin-bottom: .2rem; }
h2 { font-size: 1.2rem; margin-top: 2rem; border-bottom: 1px solid #e5e7eb; padding-bottom: .2rem; }
.meta, .note { color: #4b5563; }
table { border-collapse: collapse; width: 100%; margin: .5rem 0; }
th, td { border: 1px solid #e5e7eb; padding: .3rem .5rem; text-align: left; vertical-align: top;
         overflow-wrap: anywhere; }
th { background: #f9fafb; font-weight: 600; white-space: nowrap; }
td.name { min-width: 8em; }
td.num { white-space: nowrap; }
code, .mono { font-family: ui-monospace, "DejaVu Sans Mono", Menlo, monospace; font-size: .85em; }
.status { font-weight: 600; padding: 0 .35rem; border-radius: .25rem; white-space: nowrap; }
.s-ok, .s-complete { background: #dcfce7; color: #166534; }
.s-changed, .s-failed { background: #fee2e2; color: #991b1b; }
.s-missing, .s-unreadable, .s-running, .s-canceled { background: #fef3c7; color: #92400e; }
.s-cached, .s-none, .s-skipped, .s-notverified, .s-new, .s-unknown { background: #e5e7eb; color: #374151; }
figure { margin: 0; overflow-x: auto; border: 1px solid #e5e7eb; padding: .5rem; }
figure svg { max-width: 100%; height: auto; }
ul.kv { list-style: none; margin: 0; padding: 0; }
details summary { cursor: pointer; color: #1d4ed8; }
footer { margin-top: 2.5rem; color: #4b5563; font-size: .9em; }
"""


def _h(value: Any) -> str:
    """HTML-escape any value as text (the only way store values reach the HTML)."""
    if value is None:
        return '<span class="note">\u2014</span>'
    text = value if isinstance(value, str) else _plain(value)
    return html.escape(text, quote=True)


def _plain(value: Any) -> str:
    if isinstance(value, float):
        return repr(value)
    if isinstance(value, (dict, list, tuple)):
        try:
            return json.dumps(value, sort_keys=True, default=str, ensure_ascii=False)
        except (TypeError, ValueError):
            return repr(value)
    return str(value)


def _css_class(status: str | None) -> str:
    word = re.sub(r"[^a-z]", "", (status or "none").lower()) or "none"
    return f"status s-{word}"


def _status_html(status: str | None, detail: str | None) -> str:
    if status is None:
        return '<span class="status s-none">not checked</span>'
    out = f'<span class="{_css_class(status)}">{_h(status)}</span>'
    if detail:
        out += f" {_h(detail)}"
    return out


def _kv_html(values: Mapping[str, Any], *, mono: bool = False) -> str:
    if not values:
        return _h(None)
    cls = ' class="mono"' if mono else ""
    items = "".join(f"<li><b>{_h(k)}</b> = <span{cls}>{_h(v)}</span></li>"
                    for k, v in values.items())
    return f'<ul class="kv">{items}</ul>'


def _artifact_table(rows: Sequence[_Row], table_id: str) -> str:
    if not rows:
        return f'<p class="note" id="{table_id}">None.</p>'
    head = ("<tr><th>name</th><th>version</th><th>type</th><th>uri</th><th>fingerprint</th>"
            "<th>verified now</th></tr>")
    body = "".join(
        f'<tr><td class="name">{_h(r.name)}</td><td class="num">{_h(r.version)}</td>'
        f'<td class="num">{_h(r.type_name)}</td>'
        f'<td class="mono">{_h(r.uri)}</td><td class="mono">{_h(r.fingerprint)}</td>'
        f"<td>{_status_html(r.status, r.detail)}</td></tr>"
        for r in rows
    )
    return f'<table id="{table_id}"><thead>{head}</thead><tbody>{body}</tbody></table>'


def _packages_html(packages: Mapping[str, str]) -> str:
    if not packages:
        return ""
    items = ", ".join(f"{_h(k)}=={_h(v)}" for k, v in packages.items())
    return (f"<details><summary>{len(packages)} packages</summary>"
            f'<span class="mono">{items}</span></details>')


def _steps_table(steps: Sequence[_Step], table_id: str) -> str:
    if not steps:
        return f'<p class="note" id="{table_id}">None.</p>'
    head = ("<tr><th>#</th><th>step</th><th>state</th><th>started / duration</th>"
            "<th>params</th><th>code</th><th>environment</th><th>inputs \u2192 outputs</th></tr>")
    rows = []
    for number, s in enumerate(steps, 1):
        state = f'<span class="{_css_class(s.state)}">{_h(s.state)}</span>'
        if s.error:
            state += f'<br><span class="mono">{_h(s.error)}</span>'
        name = f"<b>{_h(s.name)}</b>"
        if s.type_name != s.name:
            name += f'<br><span class="note mono">{_h(s.type_name)}</span>'
        if s.runs:
            name += f'<br><span class="note">run: {_h(", ".join(s.runs))}</span>'
        timing = f"{_h(s.started)}<br>{_h(s.duration)}"
        env = _kv_html(s.environment) + _packages_html(s.packages)
        io = (f"{_h(', '.join(s.inputs) or None)}<br>\u2192 "
              f"{_h(', '.join(s.outputs) or None)}")
        rows.append(
            f'<tr><td>{number}</td><td class="name">{name}</td><td>{state}</td><td>{timing}</td>'
            f"<td>{_kv_html(s.params, mono=True)}</td><td>{_kv_html(s.code, mono=True)}</td>"
            f"<td>{env}</td><td>{io}</td></tr>"
        )
    return f'<table id="{table_id}"><thead>{head}</thead><tbody>{"".join(rows)}</tbody></table>'


def _verdict(report: _Report) -> str:
    rows = [report.target, *report.datasets, *report.others]
    bad = [r for r in rows if r.status in _BAD]
    checked = [r for r in rows if r.status in _BAD or r.status == "ok"]
    failed = [s for s in report.steps if s.state == "FAILED"]
    parts = []
    if bad:
        parts.append(f"{len(bad)} of {len(checked)} re-verified artifacts do not match what "
                     "was recorded")
    elif checked:
        parts.append(f"all {len(checked)} re-verified artifacts match what was recorded")
    else:
        parts.append("no artifact could be re-verified")
    if len(checked) < len(rows):
        parts.append(f"{len(rows) - len(checked)} not re-verifiable (in-memory or remote "
                     "content, or no fingerprint)")
    if failed:
        parts.append(f"{len(failed)} step(s) of the lineage failed")
    if report.along:
        parts.append(f"{len(report.along)} failed, cached or unfinished execution(s) nearby")
    return "; ".join(parts) + "."


def _html(report: _Report) -> str:
    t = report.target
    title = f"Audit report: {t.name}" + (f" v{t.version}" if t.version is not None else "")
    target_rows = [
        ("type", _h(t.type_name)), ("name", _h(t.name)), ("version", _h(t.version)),
        ("id", _h(f"artifact:{t.id}")), ("uri", f'<span class="mono">{_h(t.uri)}</span>'),
        ("fingerprint", f'<span class="mono">{_h(t.fingerprint)}</span>'),
        ("verified now", _status_html(t.status, t.detail)),
    ]
    target_table = "".join(f"<tr><th>{k}</th><td>{v}</td></tr>" for k, v in target_rows)
    if report.svg is not None:
        diagram = f'<figure id="diagram">{report.svg}</figure>'
    else:
        diagram = f'<p class="note" id="diagram">Diagram not available: {_h(report.diagram_error)}</p>'
    csp = ("default-src 'none'; style-src 'unsafe-inline'; img-src data:; "
           "base-uri 'none'; form-action 'none'")
    return f"""<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta http-equiv="Content-Security-Policy" content="{csp}">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta name="generator" content="lineage {_h(report.version)}">
<meta name="lineage-audit-digest" content="{_PLACEHOLDER}">
<title>{_h(title)}</title>
<style>{_CSS}</style>
</head>
<body>
<header>
<h1>{_h(title)}</h1>
<p class="meta">Generated <time id="generated-at">{_h(report.generated_at)}</time> by lineage
{_h(report.version)} from store <code id="store-uri">{_h(report.store_uri)}</code>.</p>
<p id="verdict"><b>Summary:</b> {_h(_verdict(report))}</p>
</header>
<section id="target-section"><h2>Target</h2>
<table id="target"><tbody>{target_table}</tbody></table></section>
<section id="diagram-section"><h2>Lineage</h2>
{diagram}</section>
<section id="datasets-section"><h2>Datasets ({len(report.datasets)})</h2>
{_artifact_table(report.datasets, "datasets")}</section>
<section id="artifacts-section"><h2>Other upstream artifacts ({len(report.others)})</h2>
{_artifact_table(report.others, "artifacts")}</section>
<section id="steps-section"><h2>Steps ({len(report.steps)}, roots first)</h2>
{_steps_table(report.steps, "steps")}</section>
{_training_html(report.training)}<section id="along-section"><h2>Failed, cached and unfinished executions along the way ({len(report.along)})</h2>
<p class="note">Executions in the same runs (or reading the same artifacts) that did not
produce the target.</p>
{_steps_table(report.along, "along")}</section>
<footer>
<p>Report digest <code id="digest">{_PLACEHOLDER}</code>: SHA-256 of this file with the digest
blanked out. Check a copy with <code>lineage audit --check FILE</code>.</p>
</footer>
</body>
</html>
"""


def _training_html(training: Sequence[Any]) -> str:
    """The curves and latest confusion matrix of the runs that logged them."""
    if not training:
        return ""
    parts = ['<section id="training-section"><h2>Training</h2>']
    for t in training:
        parts.append(f"<h3>Run {_h(t.run)}</h3>")
        if t.final:
            parts.append(f"<div>Final metrics: {_kv_html(t.final)}</div>")
        if t.curves_svg is not None:
            parts.append(f'<figure class="curves">{_inline_svg(t.curves_svg)}</figure>')
        if t.matrix_svg is not None:
            parts.append(f'<figure class="confusion">{_inline_svg(t.matrix_svg)}</figure>')
        elif t.matrix is not None:
            parts.append(f"<pre>{_h(str(t.matrix))}</pre>")
    parts.append("</section>\n")
    return "\n".join(parts)


def _md_training(training: Sequence[Any]) -> list[str]:
    lines: list[str] = []
    if not training:
        return lines
    lines += ["## Training", ""]
    for t in training:
        lines += [f"### Run {_m(t.run)}", ""]
        if t.final:
            lines += [f"Final metrics: {_md_kv(t.final)}", ""]
        if t.matrix is not None:
            m = t.matrix
            step = f" (step {m.step})" if m.step is not None else ""
            lines += [f"Latest confusion matrix{step}, true by row, predicted by column:", "",
                      "| true \\ predicted | " + " | ".join(_m(x) for x in m.labels) + " |",
                      "| --- " * (len(m.labels) + 1) + "|",
                      *("| " + _m(label) + " | " + " | ".join(str(c) for c in row) + " |"
                        for label, row in zip(m.labels, m.matrix, strict=True)), ""]
    return lines


# --- Markdown -------------------------------------------------------------------------------

# Punctuation that is markup anywhere in a line (line-start markers such as ``#``, ``-``,
# ``1.`` cannot occur: every value follows a label); ``@`` stops e-mail autolinks.
_MD_SPECIAL = re.compile(r"([\\`*_{}\[\]()|~@!])")


def _m(value: Any) -> str:
    """Escape any value for Markdown text and table cells (no live markup, no links)."""
    if value is None:
        return "\u2014"
    text = value if isinstance(value, str) else _plain(value)
    text = re.sub(r"[\r\n\t]+", " ", text)
    text = _MD_SPECIAL.sub(r"\\\1", text)
    # No autolinks: ``https://…`` and ``www.…`` stay text.
    text = text.replace("://", "\\://").replace("www.", "www\\.")
    return html.escape(text, quote=False)


def _md_kv(values: Mapping[str, Any]) -> str:
    return "<br>".join(f"{_m(k)} = {_m(v)}" for k, v in values.items()) or "\u2014"


def _md_status(status: str | None, detail: str | None) -> str:
    if status is None:
        return "not checked"
    text = f"**{_m(status)}**"
    return f"{text} {_m(detail)}" if detail else text


def _md_artifacts(rows: Sequence[_Row]) -> list[str]:
    if not rows:
        return ["None.", ""]
    out = ["| name | version | type | uri | fingerprint | verified now |",
           "| --- | --- | --- | --- | --- | --- |"]
    out.extend(
        f"| {_m(r.name)} | {_m(r.version)} | {_m(r.type_name)} | {_m(r.uri)} | "
        f"{_m(r.fingerprint)} | {_md_status(r.status, r.detail)} |"
        for r in rows
    )
    return [*out, ""]


def _md_steps(steps: Sequence[_Step]) -> list[str]:
    if not steps:
        return ["None.", ""]
    out = ["| # | step | state | started / duration | params | code | environment | "
           "inputs \u2192 outputs |",
           "| --- | --- | --- | --- | --- | --- | --- | --- |"]
    for number, s in enumerate(steps, 1):
        name = f"**{_m(s.name)}**" + (f"<br>run: {_m(', '.join(s.runs))}" if s.runs else "")
        state = _m(s.state) + (f"<br>{_m(s.error)}" if s.error else "")
        env = dict(s.environment)
        if s.packages:
            env["packages"] = f"{len(s.packages)} recorded"
        out.append(
            f"| {number} | {name} | {state} | {_m(s.started)}<br>{_m(s.duration)} | "
            f"{_md_kv(s.params)} | {_md_kv(s.code)} | {_md_kv(env)} | "
            f"{_m(', '.join(s.inputs) or None)} \u2192 {_m(', '.join(s.outputs) or None)} |"
        )
    return [*out, ""]


def _markdown(report: _Report) -> str:
    t = report.target
    title = f"{t.name}" + (f" v{t.version}" if t.version is not None else "")
    lines = [
        f"# Audit report: {_m(title)}",
        "",
        f"Generated {_m(report.generated_at)} by lineage {_m(report.version)} from store "
        f"{_m(report.store_uri)}.",
        "",
        f"**Summary:** {_m(_verdict(report))}",
        "",
        "## Target",
        "",
        "| field | value |",
        "| --- | --- |",
        f"| type | {_m(t.type_name)} |",
        f"| name | {_m(t.name)} |",
        f"| version | {_m(t.version)} |",
        f"| id | artifact:{t.id} |",
        f"| uri | {_m(t.uri)} |",
        f"| fingerprint | {_m(t.fingerprint)} |",
        f"| verified now | {_md_status(t.status, t.detail)} |",
        "",
        "## Lineage",
        "",
    ]
    if report.dot is not None:
        longest = max((len(m) for m in re.findall(r"`+", report.dot)), default=0)
        fence = "`" * max(3, longest + 1)
        lines += [
            "<details><summary>Diagram (Graphviz DOT; render with <code>dot -Tsvg</code>)"
            "</summary>",
            "",
            f"{fence}dot",
            report.dot.rstrip("\n"),
            fence,
            "",
            "</details>",
            "",
        ]
    else:
        lines += [f"Diagram not available: {_m(report.diagram_error)}", ""]
    lines += [f"## Datasets ({len(report.datasets)})", "", *_md_artifacts(report.datasets)]
    lines += [f"## Other upstream artifacts ({len(report.others)})", "",
              *_md_artifacts(report.others)]
    lines += [f"## Steps ({len(report.steps)}, roots first)", "", *_md_steps(report.steps)]
    lines += _md_training(report.training)
    lines += [f"## Failed, cached and unfinished executions along the way ({len(report.along)})",
              "", *_md_steps(report.along)]
    lines += [
        "---",
        "",
        f"Report digest: {_PLACEHOLDER} (SHA-256 of this file with the digest blanked out; "
        "check a copy with `lineage audit --check FILE`).",
        "",
        f"<!-- lineage-audit-digest: {_PLACEHOLDER} -->",
        "",
    ]
    return "\n".join(lines)


# --- digest ----------------------------------------------------------------------------------


def _normalise(text: str) -> bytes:
    return text.replace("\r\n", "\n").encode("utf-8")


def _seal(text: str) -> str:
    digest = "sha256:" + hashlib.sha256(_normalise(text)).hexdigest()
    return text.replace(_PLACEHOLDER, digest)


@attrs.frozen
class ReportCheck:
    """The result of :func:`check`: truthy when the report is intact."""

    path: Path
    """The report checked."""
    ok: bool
    """Whether the digest recorded in the report matches its content."""
    recorded: str | None
    """The digest written in the report (``None`` if it has none)."""
    computed: str | None
    """The digest of the report's content as it is now."""
    message: str
    """One line for people."""

    def __bool__(self) -> bool:
        return self.ok


def check(path: str | os.PathLike[str]) -> ReportCheck:
    """Check that an audit report is unchanged since it was generated.

    Args:
        path: an ``.html`` or ``.md`` report written by :func:`audit`.

    Returns:
        A :class:`ReportCheck`, truthy when the embedded digest matches the content.

    Raises:
        RenderError: the file cannot be read.

    Example:
        >>> import tempfile, pathlib
        >>> p = pathlib.Path(tempfile.mkdtemp()) / "r.md"
        >>> _ = p.write_text(_seal("hello\\n<!-- lineage-audit-digest: " + _PLACEHOLDER + " -->\\n"))
        >>> bool(check(p))
        True
        >>> _ = p.write_text(p.read_text().replace("hello", "hallo"))
        >>> check(p).ok
        False
    """
    file = Path(path)
    try:
        text = file.read_bytes().decode("utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise RenderError(f"cannot read the report {file}: {exc}") from exc
    match = _DIGEST_MARK.search(text)
    if match is None:
        return ReportCheck(file, False, None, None,
                           f"{file}: no lineage audit digest found; not a report made by "
                           "`lineage audit`, or the digest was removed")
    recorded = match.group(1)
    computed = "sha256:" + hashlib.sha256(
        _normalise(text.replace(recorded, _PLACEHOLDER))
    ).hexdigest()
    if computed == recorded:
        return ReportCheck(file, True, recorded, computed,
                           f"{file}: intact (digest {recorded})")
    return ReportCheck(file, False, recorded, computed,
                       f"{file}: MODIFIED since it was generated (recorded digest {recorded}, "
                       f"content now {computed})")


# --- entry point --------------------------------------------------------------------------


def audit(
    store: Store, ref: Ref, path: str | os.PathLike[str] | None = None, *,
    format: str | None = None, fold: bool = True,
) -> str | Path:
    """Write (or return) the audit report of one artifact.

    Args:
        store: the store to read (a read-only store is enough).
        ref: the artifact (usually a model): an Artifact, an id, ``"name"``, ``"name@3"``
            or ``"artifact:12"``.
        path: where to write; ``.md`` writes Markdown, anything else HTML. ``None``
            returns the text instead.
        format: ``"html"`` or ``"md"``, overriding the suffix.
        fold: draw each call of the provenance once (repeats and cache hits folded, see
            :func:`lineage.render.to_dot`); ``False`` draws every execution.

    Returns:
        The path written, or the report text when ``path`` is ``None``.

    Raises:
        NotFound: ``ref`` names no artifact. RenderError: the file cannot be written.

    Example:
        >>> import lineage
        >>> store = lineage.connect(":memory:")
        >>> m = store.put(lineage.Metrics({"acc": 0.9}, name="eval"))
        >>> text = lineage.report.audit(store, "eval")
        >>> "<h1>Audit report: eval v1</h1>" in text
        True
    """
    fmt = (format or (Path(path).suffix.lstrip(".") if path is not None else "html")).lower()
    if fmt in ("markdown", "md"):
        fmt = "md"
    elif fmt in ("html", "htm", ""):
        fmt = "html"
    else:
        raise RenderError(f"unknown report format {fmt!r}: write a .html or a .md file")
    report = _collect(store, ref, fold=fold)
    text = _seal(_markdown(report) if fmt == "md" else _html(report))
    if path is None:
        return text
    file = Path(path)
    try:
        file.parent.mkdir(parents=True, exist_ok=True)
        file.write_bytes(text.encode("utf-8"))
    except OSError as exc:
        raise RenderError(f"cannot write the report to {file}: {exc}") from exc
    return file
