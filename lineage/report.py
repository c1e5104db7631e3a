"""Audit reports: one self-contained HTML (or Markdown) file per artifact, anchored in the
store that made it.

:func:`audit` answers, for one artifact (usually a model), "which data, code and parameters
produced this, is that data still what was recorded, and can it be re-performed?". The
report's sections, each read from the store (:mod:`lineage.evidence`):

- **Target** with its fingerprint and re-verification now, and its approvals;
- **Lineage**: the diagram at its natural size (scrolls; a full-size SVG beside the file);
- **Evaluation**: every metric, with the step, the test data and the model behind it,
  and the logged curves;
- **Selection**: the other candidates and the recorded step (and rule) that picked it;
- **Data**: every dataset with its source, shape, split and datasheet fields, and its
  re-verification now; the other upstream artifacts;
- **Steps**, roots first, with ids, params, state, timing, code, environment, inputs and
  outputs; **Config**: the runs' params and config files, with warnings; **Environment**:
  the frozen environments (every package, OS, CPU, GPU);
- **Change history**: the previous version and the lineage diff against it;
- **Accountability**: who ran each run and step (OS user, git author, CI job, host);
- the failed, cached and unfinished executions along the way;
- **Re-performance**: the exact recipe (data versions, git commit, environment, command
  and params; ``lineage reproduce``);
- the machine-readable **facts** the store must still hold, and the digest.

Every value read from the store is HTML-escaped (Markdown-escaped too in ``.md``); the HTML
has no scripts, loads nothing from elsewhere (inline CSS and SVG; the one link points to
the diagram file written beside it) and carries a Content-Security-Policy that forbids
it anyway.

The report embeds a SHA-256 digest of its own text (with the digest itself blanked out):
:func:`check` recomputes it. Written against a writable store, the report is also
recorded there (an ``AuditReport`` artifact with that digest, written by an ``audit``
execution that read the target: :mod:`lineage.audits`), and ``check(path, store)``
accepts it only if the store recorded its digest and the facts it states still match the
store. ``key=`` signs the digest with an Ed25519 key (``FILE.sig`` beside the report, and
the store record).
"""

from __future__ import annotations

import base64
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
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    from lineage.artifacts import Artifact
    from lineage.evidence import Evidence
    from lineage.records import Execution
    from lineage.store import Ref, Store

__all__ = ["AuditResult", "ReportCheck", "audit", "check", "write_report"]

_PLACEHOLDER = "sha256:" + "-" * 64
# Where the digest goes while the text is built: a control character no escaped store
# value can contain (``_clean`` replaces them), so only these places receive the digest.
_SENTINEL = "\x00lineage-digest\x00"
_HTML_DIGEST = re.compile(r'<meta name="lineage-audit-digest" content="(sha256:[0-9a-f-]{64})">')
_MD_DIGEST = re.compile(r"<!-- lineage-audit-digest: (sha256:[0-9a-f-]{64}) -->\s*\Z")
_HTML_FACTS = re.compile(r'<pre id="lineage-facts">([^<]*)</pre>')
_MD_FACTS = re.compile(r"<!-- lineage-facts -->\n```json\n([^<`]*)\n```")
_NOT_COMPLETE = ("FAILED", "CACHED", "CANCELED", "RUNNING", "NEW", "UNKNOWN")
_MAX_ALONG_THE_WAY = 200
#: Verification results that mean the content is not what was recorded.
_BAD = ("changed", "missing", "unreadable")
_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")


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
    properties: dict[str, Any] = attrs.field(factory=dict)
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
    repeats: list[str] = attrs.field(factory=list)
    """Other executions folded into this row: the same call repeated (a cache hit
    re-emitting its outputs, an identical re-run), ``execution:N STATE (run ...)``."""


def _fold(executions: Sequence[Execution], make: Any, *, same_state: bool) -> list[_Step]:
    """One row per distinct call: executions of the same step with the same inputs,
    outputs and params (and, ``same_state``, state and error) fold into the first one."""
    rows: list[_Step] = []
    first: dict[str, _Step] = {}
    for ex in executions:
        key = json.dumps([ex.name, sorted(ex.inputs), sorted(ex.outputs),
                          _plain(dict(sorted(ex.params.items()))),
                          ex.state if same_state else ex.state == "FAILED",
                          ex.error if same_state else None], default=str)
        row = _step_of(ex, make)
        if key in first and (same_state or ex.state == "CACHED"):
            runs = f" ({', '.join(row.runs)})" if row.runs else ""
            first[key].repeats.append(f"execution:{ex.id} {ex.state}{runs}")
            continue
        first.setdefault(key, row)
        rows.append(row)
    return rows


def _count_steps(steps: Sequence[_Step]) -> str:
    repeats = sum(len(s.repeats) for s in steps)
    if not repeats:
        return str(len(steps))
    return f"{len(steps)} calls, {len(steps) + repeats} executions with repeats folded"


def _step_of(ex: Execution, make: Any) -> _Step:
    step: _Step = make(ex)
    return step


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
    evidence: Evidence
    facts: str
    diagram_file: str | None = None
    """The name of the full-size diagram written beside the report, if any."""
    training: list[Any] = attrs.field(factory=list)
    """:class:`lineage.metrics.TrainingFigures` of the runs of the steps (curves, matrices)."""


def _row(artifact: Artifact, ev: Evidence) -> _Row:
    ident = int(artifact.id or 0)
    check = ev.check_of(ident)
    status = check.status if check is not None else (
        "not verified" if ev.verify_error else None)
    detail = (check.detail or None) if check is not None else ev.verify_error
    if check is not None and check.status == "changed" and check.current:
        detail = f"{detail} (now {check.current})" if detail else f"now {check.current}"
    return _Row(
        id=ident,
        type_name=str(artifact.type_name),
        name=str(artifact.name) if artifact.name else f"(unnamed {artifact.type_name})",
        version=artifact.version,
        uri=str(artifact.uri or ""),
        fingerprint=artifact.fingerprint,
        base_type=getattr(artifact, "base_type", None),
        properties=dict(sorted(artifact.properties.items())),
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
    version = f" v{artifact.version}" if artifact.version is not None else ""
    return f"{name}{version} (artifact:{ident})"


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
    for key in ("function", "script", "source_file", "source_hash", "git_commit", "git_repo"):
        value = props.get(key)
        if value:
            code[key] = str(value)
    if props.get("git_dirty") is True:
        code["git_commit"] = code.get("git_commit", "?") + " (uncommitted changes)"
    environment = {k: str(props[k]) for k in ("python", "hostname", "user") if props.get(k)}
    if isinstance(props.get("environment"), int):
        environment["environment"] = f"artifact:{props['environment']}"
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
                out.append((int(ctx.id), f"{label} context:{ctx.id}"))
        return out
    graph = getattr(prov, "graph", None)
    node = f"execution:{execution_id}"
    if graph is not None and node in graph:
        return [(str(r), str(r)) for r in graph.nodes[node].get("runs") or ()]
    return []


def _facts_json(ev: Evidence) -> str:
    """The facts as JSON that can sit in HTML and Markdown unescaped: ASCII only, with
    ``<``, ``>``, ``&`` and backticks as ``\\u`` escapes (no markup, no fence can end)."""
    text = json.dumps(ev.facts(), sort_keys=True, indent=1, ensure_ascii=True, default=str)
    for char in "<>&`":
        text = text.replace(char, f"\\u{ord(char):04x}")
    return text


def _collect(store: Store, ref: Ref, *, fold: bool = True) -> _Report:
    from lineage import __version__
    from lineage.evidence import evidence
    from lineage.render import to_dot, to_svg

    ev = evidence(store, ref)
    prov = ev.provenance
    target_id = int(prov.target.id or 0)
    upstream = [int(a.id or 0) for a in prov.artifacts]
    dataset_ids = {int(a.id or 0) for a in prov.datasets}
    step_ids = [s.id for s in prov.steps]
    step_runs = {i: _runs_of(prov, i) for i in step_ids}
    along = _along_the_way(
        store, set(step_ids), {ref for rs in step_runs.values() for ref, _label in rs},
        [target_id, *upstream],
    )
    extra_ids = {
        i for ex in [*prov.steps, *along] for i in (*ex.inputs, *ex.outputs)
    } - set(ev.artifacts)
    names = {**store.artifacts_by_id(extra_ids), **ev.artifacts} if extra_ids else ev.artifacts
    rows = {i: _row(a, ev) for i, a in ev.artifacts.items()}
    target = rows.get(target_id) or _row(prov.target, ev)
    datasets = [rows[i] for i in upstream if i in rows and i in dataset_ids]
    others = [rows[i] for i in upstream if i in rows and i not in dataset_ids]
    steps = _fold(prov.steps, lambda s: _step(s, [label for _r, label in step_runs[s.id]], names),
                  same_state=False)
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
        along=_fold(along, lambda ex: _step(ex, [], names), same_state=True),
        generated_at=_dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")
        .replace("+00:00", "Z"),
        store_uri=store.uri,
        version=__version__,
        svg=svg,
        dot=dot,
        diagram_error=diagram_error,
        evidence=ev,
        facts=_facts_json(ev),
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


def _verification_failed(report: _Report) -> list[_Row]:
    return [r for r in [report.target, *report.datasets, *report.others] if r.status in _BAD]


def _verdict(report: _Report) -> str:
    rows = [report.target, *report.datasets, *report.others]
    bad = _verification_failed(report)
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
        parts.append(f"{len(rows) - len(checked)} not re-verifiable (remote content, or no "
                     "fingerprint)")
    if failed:
        parts.append(f"{len(failed)} step(s) of the lineage failed")
    if report.along:
        parts.append(f"{len(report.along)} failed, cached or unfinished execution(s) nearby")
    approvals = report.evidence.approvals
    if approvals:
        good = [a for a in approvals if a.status == "ok"]
        parts.append(f"{len(approvals)} approval(s), {len(good)} signed and verified")
    else:
        parts.append("no approval recorded")
    return "; ".join(parts) + "."


# --- shared text helpers ------------------------------------------------------------------


def _clean(text: str) -> str:
    """Control characters (terminal escapes, NUL) as visible ``\\xNN`` text."""
    return _CONTROL.sub(lambda m: f"\\x{ord(m.group(0)):02x}", text)


def _plain(value: Any) -> str:
    if isinstance(value, float):
        return repr(value)
    if isinstance(value, (dict, list, tuple)):
        try:
            return json.dumps(value, sort_keys=True, default=str, ensure_ascii=False)
        except (TypeError, ValueError):
            return repr(value)
    return str(value)


def _metric_value(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.6g}"
    return _plain(value)


def _shape_text(shape: Mapping[str, Any] | None) -> str | None:
    if not shape:
        return None
    rows = shape.get("rows", shape.get("num_rows", shape.get("n_rows")))
    cols = shape.get("columns", shape.get("num_columns", shape.get("n_columns")))
    if rows is not None or cols is not None:
        main = f"{rows if rows is not None else '?'} rows \u00d7 {cols if cols is not None else '?'} columns"
    else:
        main = _plain(shape.get("shape"))
    return f"{main} ({shape.get('from')})" if shape.get("from") else main


def _source_text(source: Mapping[str, Any]) -> str:
    if source.get("kind") == "step":
        bits = [f"produced by step {source.get('step')} ({source.get('execution')})"]
        if source.get("function"):
            bits.append(f"code {source.get('function')}")
        if source.get("source_file"):
            bits.append(f"in {source.get('source_file')}")
        if source.get("source_hash"):
            bits.append(f"source {source.get('source_hash')}")
        if source.get("git_commit"):
            bits.append(f"git {str(source.get('git_commit'))[:12]}")
        if source.get("inputs"):
            bits.append("from " + ", ".join(source["inputs"]))
        return "; ".join(bits)
    return str(source.get("text") or "")


def _ci_text(ci: Any) -> str | None:
    if not isinstance(ci, Mapping) or not ci:
        return None
    parts = [str(ci.get("system"))]
    for key in ("actor", "workflow", "job", "url"):
        if ci.get(key):
            parts.append(f"{key} {ci[key]}")
    return ", ".join(parts)


# --- HTML ---------------------------------------------------------------------------------

_CSS = """
:root { color-scheme: light; }
body { font: 14px/1.45 -apple-system, "Segoe UI", Helvetica, Arial, sans-serif; color: #111827;
       margin: 2rem auto; max-width: 1200px; padding: 0 1rem; }
h1 { font-size: 1.6rem; margin-bottom: .2rem; }
h2 { font-size: 1.2rem; margin-top: 2rem; border-bottom: 1px solid #e5e7eb; padding-bottom: .2rem; }
h3 { font-size: 1rem; margin: 1rem 0 .3rem; }
.meta, .note { color: #4b5563; }
.warnings { border-left: 4px solid #d97706; background: #fffbeb; padding: .4rem .8rem; }
table { border-collapse: collapse; width: 100%; margin: .5rem 0; }
th, td { border: 1px solid #e5e7eb; padding: .3rem .5rem; text-align: left; vertical-align: top;
         overflow-wrap: anywhere; }
th { background: #f9fafb; font-weight: 600; white-space: nowrap; }
td.name { min-width: 8em; }
td.num, td.ref, td:first-child, .nw { white-space: nowrap; }
code, .mono, pre { font-family: ui-monospace, "DejaVu Sans Mono", Menlo, monospace; font-size: .85em; }
pre { white-space: pre-wrap; overflow-wrap: anywhere; background: #f9fafb; padding: .5rem; }
.status { font-weight: 600; padding: 0 .35rem; border-radius: .25rem; white-space: nowrap; }
.s-ok, .s-complete, .s-same { background: #dcfce7; color: #166534; }
.s-changed, .s-failed, .s-badsignature, .s-stale, .s-differs { background: #fee2e2; color: #991b1b; }
.s-missing, .s-unreadable, .s-running, .s-canceled, .s-unsigned { background: #fef3c7; color: #92400e; }
.s-cached, .s-none, .s-skipped, .s-notverified, .s-new, .s-unknown, .s-elsewhere { background: #e5e7eb; color: #374151; }
figure { margin: 0; overflow: auto; max-height: 85vh; border: 1px solid #e5e7eb; padding: .5rem; }
figure svg { max-width: none; height: auto; }
figcaption { color: #4b5563; font-size: .9em; margin-top: .3rem; }
ul.kv { list-style: none; margin: 0; padding: 0; }
ul.packages { columns: 4 14em; margin: .3rem 0; padding-left: 1.2rem; font-size: .85em; }
details summary { cursor: pointer; color: #1d4ed8; }
footer { margin-top: 2.5rem; color: #4b5563; font-size: .9em; }
@page { size: A4 landscape; margin: 12mm; }
@media print {
  body { margin: 0; max-width: none; font-size: 10pt; }
  h2 { break-after: avoid; page-break-after: avoid; }
  h3 { break-after: avoid; page-break-after: avoid; }
  tr, figure, pre, .warnings { break-inside: avoid; page-break-inside: avoid; }
  thead { display: table-header-group; }
  figure { overflow: visible; max-height: none; border: none; padding: 0; }
  figure svg { max-width: 100%; max-height: 180mm; }
  #facts-section, .screen-only { display: none; }
  section { break-before: auto; }
}
"""


def _h(value: Any) -> str:
    """HTML-escape any value as text (the only way store values reach the HTML)."""
    if value is None:
        return '<span class="note">\u2014</span>'
    text = value if isinstance(value, str) else _plain(value)
    return html.escape(_clean(text), quote=True)


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


def _table(table_id: str, header: Sequence[str], rows: Iterable[Sequence[str]],
           empty: str = "None.") -> str:
    """A table whose cells are already HTML."""
    body = "".join("<tr>" + "".join(f"<td>{c}</td>" for c in row) + "</tr>" for row in rows)
    if not body:
        return f'<p class="note" id="{table_id}">{_h(empty)}</p>'
    head = "".join(f"<th>{_h(h)}</th>" for h in header)
    return f'<table id="{table_id}"><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>'


def _artifact_table(rows: Sequence[_Row], table_id: str) -> str:
    if not rows:
        return f'<p class="note" id="{table_id}">None.</p>'
    head = ("<tr><th>id</th><th>name</th><th>version</th><th>type</th><th>uri</th>"
            "<th>fingerprint</th><th>verified now</th><th>properties</th></tr>")
    body = "".join(
        f'<tr><td class="ref mono">artifact:{r.id}</td><td class="name">{_h(r.name)}</td>'
        f'<td class="num">{_h(r.version)}</td><td class="num">{_h(r.type_name)}</td>'
        f'<td class="mono">{_h(r.uri)}</td><td class="mono">{_h(r.fingerprint)}</td>'
        f"<td>{_status_html(r.status, r.detail)}</td><td>{_kv_html(_shown_props(r))}</td></tr>"
        for r in rows
    )
    return f'<table id="{table_id}"><thead>{head}</thead><tbody>{body}</tbody></table>'


def _shown_props(r: _Row) -> dict[str, Any]:
    """Properties worth a cell (an environment's package list has its own section)."""
    if r.type_name == "Environment":
        return {k: v for k, v in r.properties.items() if k in ("python", "os")}
    return r.properties


def _packages_html(packages: Mapping[str, str]) -> str:
    if not packages:
        return ""
    items = ", ".join(f"{_h(k)}=={_h(v)}" for k, v in packages.items())
    return (f"<details><summary>{len(packages)} imported ML packages</summary>"
            f'<span class="mono">{items}</span></details>')


def _steps_table(steps: Sequence[_Step], table_id: str) -> str:
    if not steps:
        return f'<p class="note" id="{table_id}">None.</p>'
    head = ("<tr><th>#</th><th>id</th><th>step</th><th>state</th><th>started / duration</th>"
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
        if s.repeats:
            name += (f'<br><span class="note">and {len(s.repeats)} repeat(s) of the same call: '
                     f'{_h("; ".join(s.repeats))}</span>')
        timing = f"{_h(s.started)}<br>{_h(s.duration)}"
        env = _kv_html(s.environment) + _packages_html(s.packages)
        io = (f"{_h(', '.join(s.inputs) or None)}<br>\u2192 "
              f"{_h(', '.join(s.outputs) or None)}")
        rows.append(
            f'<tr><td>{number}</td><td class="ref mono">execution:{s.id}</td>'
            f'<td class="name">{name}</td><td>{state}</td><td>{timing}</td>'
            f"<td>{_kv_html(s.params, mono=True)}</td><td>{_kv_html(s.code, mono=True)}</td>"
            f"<td>{env}</td><td>{io}</td></tr>"
        )
    return f'<table id="{table_id}"><thead>{head}</thead><tbody>{"".join(rows)}</tbody></table>'


def _refs_html(refs: Sequence[str], ev: Evidence) -> str:
    if not refs:
        return _h(None)
    out = []
    for ref in refs:
        ident = int(ref.split(":", 1)[1]) if ref.startswith("artifact:") else None
        art = ev.artifacts.get(ident) if ident is not None else None
        if art is not None:
            extra = f" split={art.properties['split']}" if art.properties.get("split") else ""
            out.append(f'<span class="mono">{_h(ref)}</span> {_h(art.name)} v{_h(art.version)}'
                       f"{_h(extra)}<br><span class=\"mono note\">{_h(art.fingerprint)}</span>")
        else:
            out.append(f'<span class="mono">{_h(ref)}</span>')
    return "<br>".join(out)


def _curves_svg(ev: Evidence) -> str | None:
    """The logged curves drawn by :mod:`lineage.plot` (matplotlib), when it is installed;
    ``None`` otherwise (the series table stands alone)."""
    import importlib

    if not ev.series:
        return None
    try:
        plot = importlib.import_module("lineage.plot")
    except ImportError:
        return None
    draw = getattr(plot, "curves", None)
    if not callable(draw):
        return None
    series: dict[str, dict[str, list[tuple[Any, Any]]]] = {}
    for s in ev.series:
        label = str(s.get("execution") or s.get("run"))
        series.setdefault(label, {})[str(s["metric"])] = [
            (p[0], p[1]) for p in s["points"] if isinstance(p, list) and len(p) == 2]
    try:
        svg = draw(series, title="Logged curves").to_svg()
    except (LineageError, ValueError, TypeError):
        return None
    return _inline_svg(str(svg))


def _evaluation_html(ev: Evidence) -> str:
    rows = [
        [f'<span class="mono">{_h(r.get("recorded_as") if str(r.get("recorded_as", "")).startswith("artifact:") else r.get("execution") or r.get("run"))}</span>',
         f"<b>{_h(r['metric'])}</b>", f'<span class="mono nw">{_h(_metric_value(r["value"]))}</span>',
         _h(r.get("recorded_as")),
         _h(f"{r['step']} ({r['execution']})" if r.get("execution") else None),
         _refs_html(r.get("data") or [], ev), _refs_html(r.get("model") or [], ev),
         _h(r.get("run"))]
        for r in ev.evaluation
    ]
    out = _table("evaluation", ["id", "metric", "value", "recorded as", "computed by",
                                "on data", "model", "run"], rows,
                 "No metric is recorded for this artifact, its upstream steps or the steps "
                 "that read it.")
    if ev.series:
        srows = []
        for s in ev.series:
            values = [p[1] for p in s["points"] if isinstance(p, list) and len(p) == 2]
            nums = [v for v in values if isinstance(v, (int, float))]
            srows.append([
                f'<span class="mono">{_h(s.get("execution") or s.get("run"))}</span>',
                f"<b>{_h(s['metric'])}</b>", _h(len(s["points"])),
                _h(f"{_metric_value(s['points'][0][0])} \u2192 {_metric_value(s['points'][-1][0])}"),
                _h(_metric_value(nums[0]) if nums else None),
                _h(_metric_value(nums[-1]) if nums else None),
                _h(f"{_metric_value(min(nums))} / {_metric_value(max(nums))}" if nums else None),
            ])
        out += "<h3>Curves (logged series)</h3>" + _table(
            "series", ["id", "metric", "points", "steps", "first", "last", "min / max"], srows)
        drawn = _curves_svg(ev)
        if drawn is not None:
            out += f'<figure id="curves">{drawn}</figure>'

    return out


def _selection_html(ev: Evidence) -> str:
    if not ev.selection:
        return ('<p class="note" id="selection">The target is not a model chosen among '
                "recorded versions.</p>")
    parts = []
    for sel in ev.selection:
        rows = [
            [f'<span class="mono">{_h(c["artifact"])}</span>',
             f"{_h(c['name'])} v{_h(c['version'])}",
             "<b>chosen</b>" if c["chosen"] else "candidate",
             _h(", ".join(c["runs"]) or None), _kv_html(c["metrics"], mono=True),
             _kv_html(c["params"], mono=True), _h(", ".join(c["produced_by"]) or None)]
            for c in sel["candidates"]
        ]
        parts.append(f"<h3>{_h(sel['name'])} v{_h(sel['version'])} "
                     f'(<span class="mono">{_h(sel["model"])}</span>) among '
                     f"{len(sel['candidates'])} version(s)</h3>")
        parts.append(_table("candidates", ["id", "model", "", "run", "metrics", "params",
                                           "produced by"], rows))
        if sel["picked_by"]:
            items = "".join(
                f'<li>step <b>{_h(p["step"])}</b> (<span class="mono">{_h(p["execution"])}</span>, '
                f"{_h(p['state'])}) read it; params: {_kv_html(p['params'], mono=True)}"
                + (f" rule: {_kv_html(p['rule'], mono=True)}" if p["rule"] else "") + "</li>"
                for p in sel["picked_by"])
            parts.append(f'<p>Picked by:</p><ul id="picked-by">{items}</ul>')
        else:
            parts.append('<p class="note" id="picked-by">No recorded rule or step picked this '
                         "version: the choice is not in the record (record it as a step that "
                         "reads the model, with the rule as a param).</p>")
    return f'<div id="selection">{"".join(parts)}</div>'


def _data_html(ev: Evidence) -> str:
    rows = []
    for d in ev.data:
        datasheet = _kv_html(d["datasheet"]) if d["datasheet"] else _h(None)
        rows.append([
            f'<span class="mono">{_h(d["artifact"])}</span>',
            f"<b>{_h(d['name'])}</b> v{_h(d['version'])}" + (" (root)" if d.get("root") else ""),
            _h(d.get("split")), _h(_shape_text(d.get("shape"))), _h(_source_text(d["source"])),
            datasheet,
        ])
    return _table("data", ["id", "dataset", "split", "shape", "source", "datasheet"], rows,
                  "No dataset upstream.")


def _folded_runs(config: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """Runs with the same params and config files (and status) folded into one entry."""
    out: dict[str, dict[str, Any]] = {}
    for run in config:
        key = json.dumps([run["params"], [(c["file"], c["artifact"], c["status"])
                                          for c in run["configs"]], run.get("status")],
                         sort_keys=True, default=str)
        if key in out:
            out[key]["name"] += f", {run['name']}"
            out[key]["run"] += f", {run['run']}"
        else:
            out[key] = dict(run)
    return list(out.values())


def _config_html(ev: Evidence) -> str:
    parts = []
    for run in _folded_runs(ev.config):
        parts.append(f"<h3>Run {_h(run['name'])} "
                     f'(<span class="mono">{_h(run["run"])}</span>, {_h(run.get("status"))})</h3>')
        parts.append(f"<p>Run params:</p>{_kv_html(run['params'], mono=True)}")
        files = [[f'<span class="mono">{_h(c["artifact"])}</span>', _h(c["file"]),
                  f'<span class="mono">{_h(c["uri"])}</span>',
                  f'<span class="mono">{_h(c["recorded"])}</span>',
                  _status_html(c["status"], c.get("current") if c["status"] != "ok" else None)]
                 for c in run["configs"]]
        if files:
            parts.append(_table(f"configs-{run['run'].split(',')[0].split(':')[-1]}",
                                ["id", "config file", "uri", "recorded", "now"], files))
    if not parts:
        return '<p class="note" id="config">No run recorded the steps.</p>'
    return f'<div id="config">{"".join(parts)}</div>'


def _environment_html(ev: Evidence) -> str:
    parts = []
    for env in ev.environments:
        head = (f'<span class="mono">{_h(env["environment"])}</span>'
                if env.get("environment") else "steps without a recorded environment")
        facts = {"python": env.get("python"), "os": env.get("os"), "machine": env.get("machine"),
                 "cpu": env.get("cpu"), "cpu count": env.get("cpu_count"),
                 "gpus": ", ".join(env.get("gpus") or []) or "none found",
                 "fingerprint": env.get("fingerprint"), "used by": ", ".join(env["used_by"])}
        parts.append(f"<h3>{head}</h3>{_kv_html({k: v for k, v in facts.items() if v is not None})}")
        if env.get("note"):
            parts.append(f'<p class="note">{_h(env["note"])}</p>')
        packages = env.get("packages") or {}
        items = "".join(f"<li>{_h(k)}=={_h(v)}</li>" for k, v in packages.items())
        parts.append(f"<p>{len(packages)} packages:</p><ul class=\"packages mono\">{items}</ul>")
    if not parts:
        return '<p class="note" id="environment">No step recorded its environment.</p>'
    return f'<div id="environment">{"".join(parts)}</div>'


def _history_html(ev: Evidence) -> str:
    if ev.previous is None:
        return '<p class="note" id="previous">This is the first recorded version.</p>'
    p = ev.previous
    out = (f'<p id="previous">Previous version: <span class="mono">artifact:{_h(p.id)}</span> '
           f"{_h(p.name)} v{_h(p.version)}, fingerprint "
           f'<span class="mono">{_h(p.fingerprint)}</span>.</p>')
    if ev.diff is None:
        return out
    d = ev.diff.to_dict()
    rows = []
    for ds in d.get("datasets", []):
        a = ", ".join(f"v{x.get('version')} {x.get('fingerprint')}" for x in ds.get("a", []))
        b = ", ".join(f"v{x.get('version')} {x.get('fingerprint')}" for x in ds.get("b", []))
        rows.append([_h("data"), _h(f"{ds.get('type')} {ds.get('name')}"), _h(a or None),
                     _h(b or None)])
    for kind in ("params", "code", "environment"):
        for step, changes in (d.get(kind) or {}).items():
            for key, pair in changes.items():
                rows.append([_h(kind), _h(f"{step}.{key}"),
                             f'<span class="mono">{_h(pair.get("a"))}</span>',
                             f'<span class="mono">{_h(pair.get("b"))}</span>'])
    for side, label in (("only_in_a", "only in the previous version"),
                        ("only_in_b", "only in this version")):
        for step in d.get(side) or []:
            rows.append([_h("step"), _h(step), _h(label if side == "only_in_a" else None),
                         _h(label if side == "only_in_b" else None)])
    return out + _table("diff", ["what", "where", "previous version", "this version"], rows,
                        "Nothing differs in their lineages (same data, params, code and "
                        "environment).")


def _approvals_html(ev: Evidence) -> str:
    rows = [[f'<span class="mono">{_h(a.to_dict()["ref"])}</span>', _h(a.by),
             _h(a.to_dict()["time"]), _h(a.to_dict()["note"] or None),
             _h(("signed, key " + str(a.to_dict()["key_id"])[:16] + "\u2026") if a.signed else "not signed"),
             _status_html(a.status, a.detail or None)]
            for a in ev.approvals]
    return _table("approvals", ["id", "approved by", "when (UTC)", "note", "signature", "check"],
                  rows, "No approval is recorded for this artifact "
                        "(lineage approve REF --by NAME [--note TEXT] [--key KEY.pem]).")


def _accountability_html(ev: Evidence) -> str:
    rows = [[f'<span class="mono">{_h(w["ref"])}</span>', _h(w["what"]), _h(w.get("user")),
             _h(w.get("git_author")), _h(_ci_text(w.get("ci"))), _h(w.get("host")),
             f'<span class="mono">{_h(w.get("command"))}</span>']
            for w in ev.accountability]
    return _table("accountability", ["id", "what", "OS user", "git author", "CI", "host",
                                     "command"], rows, "No run or step recorded who ran it.")


def _recipe_html(ev: Evidence) -> str:
    r = ev.recipe
    parts = ['<ol id="recipe">']
    data = "".join(
        f'<li><span class="mono">{_h(d["ref"])}</span> ({_h(d["type"])}, '
        f'<span class="mono">{_h(d["artifact"])}</span>) at <span class="mono">{_h(d["uri"])}</span>'
        f' with <span class="mono">{_h(d["fingerprint"])}</span>'
        + (f'; restore: <code>{_h(d["restore"])}</code>' if d.get("restore") else
           "; check with <code>sha256sum</code>") + "</li>"
        for d in r["data"])
    parts.append(f"<li><b>Data</b> to check out (the inputs no recorded step produced):"
                 f"<ul>{data or '<li>none</li>'}</ul></li>")
    code = "".join(
        f'<li><code>git -C {_h(c["repo"])} checkout {_h(c["commit"])}</code>'
        + (" <b>(the checkout was dirty: the commit alone does not hold the code that ran)</b>"
           if c["dirty"] else "") + f" for {_h(', '.join(c['steps']))}</li>"
        for c in r["code"])
    parts.append(f"<li><b>Code</b>:<ul>{code or '<li>no git commit recorded</li>'}</ul></li>")
    envs = "".join(
        f'<li>{_h(e["python"])} with the {_h(e["packages"])} packages of '
        f'<span class="mono">{_h(e["environment"])}</span> (listed under Environment; '
        "<code>pip install -r requirements.txt</code> with them)</li>"
        for e in r["environment"])
    parts.append(f"<li><b>Environment</b>:<ul>{envs or '<li>no frozen environment recorded</li>'}"
                 "</ul></li>")
    cmds = "".join(
        f'<li><code>{_h(c["command"])}</code>'
        + (f' from <span class="mono">{_h(c["cwd_repo"])}</span>' if c.get("cwd_repo") else "")
        + f" (runs {_h(', '.join(c['runs']) or None)}; steps {_h(', '.join(c['steps']))})</li>"
        for c in r["commands"])
    parts.append(f"<li><b>Command</b>:<ul>{cmds or '<li>no command recorded</li>'}</ul>"
                 f"Run params: {_kv_html(r['run_params'], mono=True)}</li>")
    steps = [[f'<span class="mono">{_h(s["execution"])}</span>', f"<b>{_h(s['step'])}</b>",
              _h(s["state"]), f'<span class="mono">{_h(s["function"])}</span>',
              f'<span class="mono">{_h(s["source_file"])}</span>',
              f'<span class="mono">{_h(s["source_hash"])}</span>', _kv_html(s["params"], mono=True)]
             for s in r["steps"]]
    parts.append("<li><b>Steps</b> in this order, with these params:"
                 + _table("recipe-steps", ["id", "step", "state", "function", "file",
                                           "source hash", "params"], steps) + "</li>")
    parts.append(f"<li><b>Compare</b> the result with <span class=\"mono\">"
                 f"{_h(r['target']['fingerprint'])}</span>; <code>{_h(r['reproduce'])}</code> "
                 "does all this in a scratch folder and says which steps cannot be re-run "
                 "and why.</li>")
    parts.append("</ol>")
    return "".join(parts)


def _html(report: _Report) -> str:
    t = report.target
    ev = report.evidence
    title = f"Audit report: {t.name}" + (f" v{t.version}" if t.version is not None else "")
    target_rows = [
        ("type", _h(t.type_name)), ("name", _h(t.name)), ("version", _h(t.version)),
        ("id", _h(f"artifact:{t.id}")), ("uri", f'<span class="mono">{_h(t.uri)}</span>'),
        ("fingerprint", f'<span class="mono">{_h(t.fingerprint)}</span>'),
        ("verified now", _status_html(t.status, t.detail)),
        ("properties", _kv_html(t.properties)),
    ]
    target_table = "".join(f"<tr><th>{k}</th><td>{v}</td></tr>" for k, v in target_rows)
    if report.svg is not None:
        link = (f'<p class="screen-only"><a href="{html.escape(report.diagram_file)}">Open the '
                "diagram at full size</a> (an SVG file beside this report).</p>"
                if report.diagram_file else "")
        diagram = (f'<figure id="diagram">{report.svg}<figcaption>Scroll to see all of it. '
                   "Node labels name records as in the tables (artifact and step names, "
                   "versions, fingerprints).</figcaption></figure>" + link)
    else:
        diagram = f'<p class="note" id="diagram">Diagram not available: {_h(report.diagram_error)}</p>'
    warnings = ""
    if ev.warnings:
        items = "".join(f"<li>{_h(w)}</li>" for w in ev.warnings)
        warnings = f'<div class="warnings" id="warnings"><b>Warnings</b><ul>{items}</ul></div>'
    csp = ("default-src 'none'; style-src 'unsafe-inline'; img-src data:; "
           "base-uri 'none'; form-action 'none'")
    return f"""<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta http-equiv="Content-Security-Policy" content="{csp}">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta name="generator" content="lineage {_h(report.version)}">
<meta name="lineage-audit-digest" content="{_SENTINEL}">
<title>{_h(title)}</title>
<style>{_CSS}</style>
</head>
<body>
<header>
<h1>{_h(title)}</h1>
<p class="meta">Generated <time id="generated-at">{_h(report.generated_at)}</time> by lineage
{_h(report.version)} from store <code id="store-uri">{_h(report.store_uri)}</code>.</p>
<p id="verdict"><b>Summary:</b> {_h(_verdict(report))}</p>
{warnings}
</header>
<section id="target-section"><h2>Target</h2>
<table id="target"><tbody>{target_table}</tbody></table>
<h3>Approvals ({len(ev.approvals)})</h3>
{_approvals_html(ev)}</section>
<section id="diagram-section"><h2>Lineage</h2>
{diagram}</section>
<section id="evaluation-section"><h2>Evaluation ({len(ev.evaluation)} values)</h2>
<p class="note">Every metric recorded by the steps upstream of the target or reading it,
and by their runs, with the data each was computed on.</p>
{_evaluation_html(ev)}</section>
<section id="selection-section"><h2>Selection</h2>
{_selection_html(ev)}</section>
<section id="datasets-section"><h2>Data ({len(report.datasets)} datasets)</h2>
{_data_html(ev)}
{_artifact_table(report.datasets, "datasets")}</section>
<section id="artifacts-section"><h2>Other upstream artifacts ({len(report.others)})</h2>
{_artifact_table(report.others, "artifacts")}</section>
<section id="steps-section"><h2>Steps ({_count_steps(report.steps)}, roots first)</h2>
{_steps_table(report.steps, "steps")}</section>
{_training_html(report.training)}<section id="config-section"><h2>Config and params</h2>
{_config_html(ev)}</section>
<section id="environment-section"><h2>Environment</h2>
{_environment_html(ev)}</section>
<section id="history-section"><h2>Change history</h2>
{_history_html(ev)}</section>
<section id="accountability-section"><h2>Accountability: who ran what</h2>
{_accountability_html(ev)}</section>
<section id="along-section"><h2>Failed, cached and unfinished executions along the way ({len(report.along)})</h2>
<p class="note">Executions in the same runs (or reading the same artifacts) that did not
produce the target.</p>
{_steps_table(report.along, "along")}</section>
<section id="recipe-section"><h2>Re-performance recipe</h2>
{_recipe_html(ev)}</section>
<details id="facts-section"><summary>Machine-readable facts (what <code>lineage audit --check</code>
compares with the store)</summary>
<pre id="lineage-facts">{report.facts}</pre></details>
<footer>
<p>Report digest <code id="digest">{_SENTINEL}</code>: SHA-256 of this file with the digest
blanked out. Check a copy with <code>lineage --store URI audit --check FILE</code> (the store
must have recorded this digest, and still hold the facts above).</p>
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
    text = _clean(re.sub(r"[\r\n\t]+", " ", text))
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


def _md_table(header: Sequence[str], rows: Sequence[Sequence[str]], empty: str = "None.") -> list[str]:
    """A table whose cells are already Markdown."""
    if not rows:
        return [_m(empty), ""]
    return ["| " + " | ".join(header) + " |", "|" + " --- |" * len(header),
            *("| " + " | ".join(r) + " |" for r in rows), ""]


def _md_artifacts(rows: Sequence[_Row]) -> list[str]:
    return _md_table(
        ["id", "name", "version", "type", "uri", "fingerprint", "verified now", "properties"],
        [[f"artifact:{r.id}", _m(r.name), _m(r.version), _m(r.type_name), _m(r.uri),
          _m(r.fingerprint), _md_status(r.status, r.detail), _md_kv(_shown_props(r))]
         for r in rows])


def _md_steps(steps: Sequence[_Step]) -> list[str]:
    rows = []
    for number, s in enumerate(steps, 1):
        name = f"**{_m(s.name)}**" + (f"<br>run: {_m(', '.join(s.runs))}" if s.runs else "")
        if s.repeats:
            name += f"<br>and {len(s.repeats)} repeat(s) of the same call: {_m('; '.join(s.repeats))}"
        state = _m(s.state) + (f"<br>{_m(s.error)}" if s.error else "")
        env = dict(s.environment)
        if s.packages:
            env["ML packages"] = ", ".join(f"{k}=={v}" for k, v in s.packages.items())
        rows.append([str(number), f"execution:{s.id}", name, state,
                     f"{_m(s.started)}<br>{_m(s.duration)}", _md_kv(s.params), _md_kv(s.code),
                     _md_kv(env),
                     f"{_m(', '.join(s.inputs) or None)} \u2192 {_m(', '.join(s.outputs) or None)}"])
    return _md_table(["#", "id", "step", "state", "started / duration", "params", "code",
                      "environment", "inputs \u2192 outputs"], rows)


def _md_refs(refs: Sequence[str], ev: Evidence) -> str:
    out = []
    for ref in refs:
        ident = int(ref.split(":", 1)[1]) if ref.startswith("artifact:") else None
        art = ev.artifacts.get(ident) if ident is not None else None
        if art is not None:
            split = f" split={art.properties['split']}" if art.properties.get("split") else ""
            out.append(f"{ref} {_m(art.name)} v{_m(art.version)}{_m(split)} {_m(art.fingerprint)}")
        else:
            out.append(ref)
    return "<br>".join(out) or "\u2014"


def _md_evidence(ev: Evidence) -> list[str]:
    lines = [f"## Evaluation ({len(ev.evaluation)} values)", ""]
    lines += _md_table(
        ["id", "metric", "value", "recorded as", "computed by", "on data", "model", "run"],
        [[_m(r.get("recorded_as") if str(r.get("recorded_as", "")).startswith("artifact:")
             else r.get("execution") or r.get("run")),
          f"**{_m(r['metric'])}**", _m(_metric_value(r["value"])), _m(r.get("recorded_as")),
          _m(f"{r['step']} ({r['execution']})" if r.get("execution") else None),
          _md_refs(r.get("data") or [], ev), _md_refs(r.get("model") or [], ev), _m(r.get("run"))]
         for r in ev.evaluation],
        "No metric is recorded for this artifact, its upstream steps or the steps that read it.")
    if ev.series:
        lines += ["Curves (logged series):", ""]
        rows = []
        for s in ev.series:
            nums = [p[1] for p in s["points"] if isinstance(p, list) and len(p) == 2
                    and isinstance(p[1], (int, float))]
            rows.append([_m(s.get("execution") or s.get("run")), _m(s["metric"]),
                         _m(len(s["points"])), _m(_metric_value(nums[0]) if nums else None),
                         _m(_metric_value(nums[-1]) if nums else None),
                         _m(f"{_metric_value(min(nums))} / {_metric_value(max(nums))}" if nums else None)])
        lines += _md_table(["id", "metric", "points", "first", "last", "min / max"], rows)
    lines += ["## Selection", ""]
    if not ev.selection:
        lines += ["The target is not a model chosen among recorded versions.", ""]
    for sel in ev.selection:
        lines += [f"{_m(sel['name'])} v{_m(sel['version'])} ({sel['model']}) among "
                  f"{len(sel['candidates'])} version(s):", ""]
        lines += _md_table(
            ["id", "model", "", "run", "metrics", "params", "produced by"],
            [[c["artifact"], f"{_m(c['name'])} v{_m(c['version'])}",
              "**chosen**" if c["chosen"] else "candidate", _m(", ".join(c["runs"]) or None),
              _md_kv(c["metrics"]), _md_kv(c["params"]), _m(", ".join(c["produced_by"]) or None)]
             for c in sel["candidates"]])
        if sel["picked_by"]:
            for p in sel["picked_by"]:
                rule = f"; rule: {_md_kv(p['rule'])}" if p["rule"] else ""
                lines.append(f"Picked by step **{_m(p['step'])}** ({p['execution']}, "
                             f"{_m(p['state'])}); params: {_md_kv(p['params'])}{rule}")
            lines.append("")
        else:
            lines += ["No recorded rule or step picked this version: the choice is not in the "
                      "record.", ""]
    return lines


def _md_data(ev: Evidence) -> list[str]:
    return _md_table(
        ["id", "dataset", "split", "shape", "source", "datasheet"],
        [[d["artifact"], f"**{_m(d['name'])}** v{_m(d['version'])}" + (" (root)" if d.get("root") else ""),
          _m(d.get("split")), _m(_shape_text(d.get("shape"))), _m(_source_text(d["source"])),
          _md_kv(d["datasheet"]) if d["datasheet"] else "\u2014"]
         for d in ev.data], "No dataset upstream.")


def _md_rest(ev: Evidence) -> list[str]:
    lines = ["## Config and params", ""]
    if not ev.config:
        lines += ["No run recorded the steps.", ""]
    for run in _folded_runs(ev.config):
        lines += [f"Run {_m(run['name'])} ({run['run']}, {_m(run.get('status'))}); params: "
                  f"{_md_kv(run['params'])}", ""]
        lines += _md_table(
            ["id", "config file", "uri", "recorded", "now"],
            [[c["artifact"], _m(c["file"]), _m(c["uri"]), _m(c["recorded"]),
              _md_status(c["status"], c.get("current") if c["status"] != "ok" else None)]
             for c in run["configs"]], "No config file.")
    lines += ["## Environment", ""]
    if not ev.environments:
        lines += ["No step recorded its environment.", ""]
    for env in ev.environments:
        head = env["environment"] or "steps without a recorded environment"
        gpus = ", ".join(env.get("gpus") or []) or "none found"
        lines += [f"**{_m(head)}**: {_m(env.get('python'))}; OS {_m(env.get('os'))}; "
                  f"machine {_m(env.get('machine'))}; CPU {_m(env.get('cpu'))} "
                  f"({_m(env.get('cpu_count'))}); GPUs {_m(gpus)}; fingerprint "
                  f"{_m(env.get('fingerprint'))}; used by {_m(', '.join(env['used_by']))}.", ""]
        if env.get("note"):
            lines += [_m(env["note"]), ""]
        packages = env.get("packages") or {}
        lines += [f"<details><summary>{len(packages)} packages</summary>", "",
                  "<br>".join(f"{_m(k)}=={_m(v)}" for k, v in packages.items()) or "\u2014", "",
                  "</details>", ""]
    lines += ["## Change history", ""]
    if ev.previous is None:
        lines += ["This is the first recorded version.", ""]
    else:
        p = ev.previous
        lines += [f"Previous version: artifact:{p.id} {_m(p.name)} v{_m(p.version)}, "
                  f"fingerprint {_m(p.fingerprint)}.", ""]
        if ev.diff is not None:
            d = ev.diff.to_dict()
            rows = []
            for ds in d.get("datasets", []):
                a = ", ".join(f"v{x.get('version')} {x.get('fingerprint')}" for x in ds.get("a", []))
                b = ", ".join(f"v{x.get('version')} {x.get('fingerprint')}" for x in ds.get("b", []))
                rows.append(["data", _m(f"{ds.get('type')} {ds.get('name')}"), _m(a or None),
                             _m(b or None)])
            for kind in ("params", "code", "environment"):
                for step, changes in (d.get(kind) or {}).items():
                    for key, pair in changes.items():
                        rows.append([kind, _m(f"{step}.{key}"), _m(pair.get("a")),
                                     _m(pair.get("b"))])
            for step in d.get("only_in_a") or []:
                rows.append(["step", _m(step), "only in the previous version", "\u2014"])
            for step in d.get("only_in_b") or []:
                rows.append(["step", _m(step), "\u2014", "only in this version"])
            lines += _md_table(["what", "where", "previous version", "this version"], rows,
                               "Nothing differs in their lineages.")
    lines += ["## Accountability: who ran what", ""]
    lines += _md_table(
        ["id", "what", "OS user", "git author", "CI", "host", "command"],
        [[w["ref"], _m(w["what"]), _m(w.get("user")), _m(w.get("git_author")),
          _m(_ci_text(w.get("ci"))), _m(w.get("host")), _m(w.get("command"))]
         for w in ev.accountability], "No run or step recorded who ran it.")
    return lines


def _md_recipe(ev: Evidence) -> list[str]:
    r = ev.recipe
    lines = ["## Re-performance recipe", "", "1. **Data** to check out (the inputs no recorded "
             "step produced):"]
    for d in r["data"] or [None]:
        if d is None:
            lines.append("   - none")
            continue
        how = f"restore: `{d['restore']}`" if d.get("restore") else "check with sha256sum"
        lines.append(f"   - {_m(d['ref'])} ({_m(d['type'])}, {d['artifact']}) at {_m(d['uri'])} "
                     f"with {_m(d['fingerprint'])}; {_m(how)}")
    lines.append("2. **Code**:")
    for c in r["code"] or [None]:
        if c is None:
            lines.append("   - no git commit recorded")
            continue
        dirty = " **(the checkout was dirty: the commit alone does not hold the code that ran)**" \
            if c["dirty"] else ""
        lines.append(f"   - git checkout {_m(c['commit'])} in {_m(c['repo'])}{dirty} "
                     f"for {_m(', '.join(c['steps']))}")
    lines.append("3. **Environment**:")
    for e in r["environment"] or [None]:
        if e is None:
            lines.append("   - no frozen environment recorded")
            continue
        lines.append(f"   - {_m(e['python'])} with the {e['packages']} packages of "
                     f"{e['environment']} (listed under Environment)")
    lines.append("4. **Command**:")
    for c in r["commands"] or [None]:
        if c is None:
            lines.append("   - no command recorded")
            continue
        where = f" from {_m(c['cwd_repo'])}" if c.get("cwd_repo") else ""
        lines.append(f"   - {_m(c['command'])}{where} (runs {_m(', '.join(c['runs']) or None)})")
    lines.append(f"   - run params: {_md_kv(r['run_params'])}")
    lines += ["5. **Steps** in this order, with these params:", ""]
    lines += _md_table(
        ["id", "step", "state", "function", "file", "source hash", "params"],
        [[s["execution"], f"**{_m(s['step'])}**", _m(s["state"]), _m(s["function"]),
          _m(s["source_file"]), _m(s["source_hash"]), _md_kv(s["params"])] for s in r["steps"]])
    lines += [f"6. **Compare** the result with {_m(r['target']['fingerprint'])}; "
              f"`{r['reproduce']}` does all this in a scratch folder and says which steps "
              "cannot be re-run and why.", ""]
    return lines


def _markdown(report: _Report, picture: str | None) -> str:
    t = report.target
    ev = report.evidence
    title = f"{t.name}" + (f" v{t.version}" if t.version is not None else "")
    lines = [
        f"# Audit report: {_m(title)}",
        "",
        f"Generated {_m(report.generated_at)} by lineage {_m(report.version)} from store "
        f"{_m(report.store_uri)}.",
        "",
        f"**Summary:** {_m(_verdict(report))}",
        "",
    ]
    if ev.warnings:
        lines += ["**Warnings:**", "", *(f"- {_m(w)}" for w in ev.warnings), ""]
    lines += [
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
        f"| properties | {_md_kv(t.properties)} |",
        "",
        f"### Approvals ({len(ev.approvals)})",
        "",
    ]
    lines += _md_table(
        ["id", "approved by", "when (UTC)", "note", "signature", "check"],
        [[a.to_dict()["ref"], _m(a.by), _m(a.to_dict()["time"]), _m(a.to_dict()["note"] or None),
          _m(("signed, key " + str(a.to_dict()["key_id"])[:16] + "\u2026") if a.signed else "not signed"),
          _md_status(a.status, a.detail or None)] for a in ev.approvals],
        "No approval is recorded for this artifact.")
    lines += ["## Lineage", ""]
    if picture is not None:
        lines += [f"![Lineage of {_m(title)}]({picture})", ""]
    else:
        lines += [f"Diagram not available: {_m(report.diagram_error)}", ""]
    lines += _md_evidence(ev)
    lines += [f"## Data ({len(report.datasets)} datasets)", "", *_md_data(ev),
              *_md_artifacts(report.datasets)]
    lines += [f"## Other upstream artifacts ({len(report.others)})", "",
              *_md_artifacts(report.others)]
    lines += [f"## Steps ({_count_steps(report.steps)}, roots first)", "", *_md_steps(report.steps)]
    lines += _md_training(report.training)
    lines += _md_rest(ev)
    lines += [f"## Failed, cached and unfinished executions along the way ({len(report.along)})",
              "", *_md_steps(report.along)]
    lines += _md_recipe(ev)
    lines += [
        "<details><summary>Machine-readable facts (what <code>lineage audit --check</code> "
        "compares with the store)</summary>",
        "",
        "<!-- lineage-facts -->",
        "```json",
        report.facts,
        "```",
        "",
        "</details>",
        "",
        "---",
        "",
        f"Report digest: {_SENTINEL} (SHA-256 of this file with the digest blanked out; "
        "check a copy with `lineage --store URI audit --check FILE`).",
        "",
        f"<!-- lineage-audit-digest: {_SENTINEL} -->",
        "",
    ]
    return "\n".join(lines)


# --- digest ----------------------------------------------------------------------------------


def _normalise(text: str) -> bytes:
    return text.replace("\r\n", "\n").encode("utf-8")


def _seal(text: str) -> tuple[str, str]:
    """Fill the digest into the places :data:`_SENTINEL` marks; return (text, digest)."""
    digest = "sha256:" + hashlib.sha256(_normalise(text.replace(_SENTINEL, _PLACEHOLDER))).hexdigest()
    return text.replace(_SENTINEL, digest), digest


def _find_digest(text: str) -> str | None:
    """The digest at its place: the ``<meta>`` in the HTML head, or the last line of a
    Markdown report (store values are escaped, so neither can come from them)."""
    head = text.split("</head>", 1)[0] if "</head>" in text else ""
    found = _HTML_DIGEST.search(head)
    if found:
        return found.group(1)
    found = _MD_DIGEST.search(text.replace("\r\n", "\n"))
    return found.group(1) if found else None


def facts_of(text: str) -> dict[str, Any] | None:
    """The facts block of a report's text, parsed (``None`` if absent or unreadable)."""
    found = _HTML_FACTS.search(text) or _MD_FACTS.search(text.replace("\r\n", "\n"))
    if not found:
        return None
    try:
        data = json.loads(html.unescape(found.group(1)))
    except ValueError:
        return None
    return data if isinstance(data, dict) else None


@attrs.frozen
class ReportCheck:
    """The result of :func:`check`: truthy when the report is accepted."""

    path: Path
    """The report checked."""
    ok: bool
    """Whether the report is accepted: intact, and (against a store) recorded with facts
    that still match, and (with a key) signed by that key."""
    recorded: str | None
    """The digest written in the report (``None`` if it has none)."""
    computed: str | None
    """The digest of the report's content as it is now."""
    message: str
    """One line for people."""
    against_store: bool = False
    """Whether a store was consulted (else only self-consistency was checked)."""
    recorded_as: str | None = None
    """``artifact:N``: the AuditReport record of this digest in the store, if found."""
    mismatches: tuple[str, ...] = ()
    """Facts the report states that the store no longer holds (one line each)."""
    signature: str | None = None
    """What the signature check found, when a key was given or a signature recorded."""

    def __bool__(self) -> bool:
        return self.ok

    def to_dict(self) -> dict[str, Any]:
        """JSON shape (what ``lineage audit --check FILE --json`` prints)."""
        return {"path": str(self.path), "ok": self.ok, "recorded": self.recorded,
                "computed": self.computed, "message": self.message,
                "against_store": self.against_store, "recorded_as": self.recorded_as,
                "mismatches": list(self.mismatches), "signature": self.signature}


def check(
    path: str | os.PathLike[str], store: Store | None = None, *,
    key: Any = None,
) -> ReportCheck:
    """Check an audit report: against its own digest, and against the store that made it.

    Without ``store`` only self-consistency is checked (and the message says so): anyone
    who edits a report can recompute its digest. With ``store`` the report is accepted
    only if the store recorded its digest (``AuditReport``) and every fact it states
    (artifact fingerprints, versions, names, URIs; steps' states, params and code; runs'
    params) still matches the store. With ``key`` (an Ed25519 public key PEM), the
    report's signature (recorded in the store, else ``FILE.sig``) must verify with it.

    Args:
        path: an ``.html`` or ``.md`` report written by :func:`audit`.
        store: the store the report was written against.
        key: a public key the report must be signed with.

    Returns:
        A :class:`ReportCheck`, truthy when the report is accepted.

    Raises:
        RenderError: the file cannot be read. SignatureError: the key cannot be read.

    Example:
        >>> import tempfile, pathlib
        >>> p = pathlib.Path(tempfile.mkdtemp()) / "r.md"
        >>> text, _ = _seal("hello\\n<!-- lineage-audit-digest: " + _SENTINEL + " -->\\n")
        >>> _ = p.write_text(text)
        >>> result = check(p)
        >>> result.ok, "self-consistency only" in result.message
        (True, True)
        >>> _ = p.write_text(p.read_text().replace("hello", "hallo"))
        >>> check(p).ok
        False
    """
    from lineage import audits

    file = Path(path)
    try:
        text = file.read_bytes().decode("utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise RenderError(f"cannot read the report {file}: {exc}") from exc
    recorded = _find_digest(text)
    if recorded is None:
        return ReportCheck(file, False, None, None,
                           f"{file}: no lineage audit digest found; not a report made by "
                           "`lineage audit`, or the digest was removed",
                           against_store=store is not None)
    computed = "sha256:" + hashlib.sha256(
        _normalise(text.replace(recorded, _PLACEHOLDER))
    ).hexdigest()
    if computed != recorded:
        return ReportCheck(file, False, recorded, computed,
                           f"{file}: MODIFIED since it was generated (recorded digest {recorded}, "
                           f"content now {computed})", against_store=store is not None)
    sig_note: str | None = None
    sig_ok = True
    if store is None:
        if key is not None:
            sig_ok, sig_note = audits.check_signature(recorded, audits.read_signature(file), key)
        msg = (f"{file}: intact (digest {recorded}); checked self-consistency only: no store "
               "was given, so nothing shows the store made this report (anyone who edits a "
               "report can recompute its digest); use `lineage --store URI audit --check FILE`")
        if sig_note:
            msg += f"; signature: {sig_note}"
        return ReportCheck(file, sig_ok, recorded, computed,
                           msg if sig_ok else f"{file}: REJECTED: {sig_note}",
                           signature=sig_note)
    found = audits.find_reports(store, recorded)
    if not found:
        return ReportCheck(
            file, False, recorded, computed,
            f"{file}: REJECTED: the store {store.uri} never recorded a report with digest "
            f"{recorded}: it was not written by `lineage audit` against this store, or it was "
            "edited and its digest recomputed", against_store=True)
    entry = found[-1]
    facts = facts_of(text)
    mismatches: list[str] = []
    if facts is None:
        mismatches.append("the report has no facts block")
    else:
        if int(facts.get("target") or 0) != int(entry.properties.get("target") or -1):
            mismatches.append(f"the report is about artifact:{facts.get('target')}, the store "
                              f"recorded it for artifact:{entry.properties.get('target')}")
        mismatches.extend(audits.compare_facts(store, facts))
    signed = {k: entry.properties.get(k) for k in ("signature", "public_key", "key_id")}
    if signed.get("signature") or key is not None:
        source = signed if signed.get("signature") else audits.read_signature(file)
        sig_ok, sig_note = audits.check_signature(recorded, source, key)
    ref = f"artifact:{entry.id}"
    if mismatches:
        shown = "; ".join(mismatches[:5]) + (f"; and {len(mismatches) - 5} more"
                                             if len(mismatches) > 5 else "")
        return ReportCheck(file, False, recorded, computed,
                           f"{file}: REJECTED: recorded by the store as {ref}, but "
                           f"{len(mismatches)} fact(s) no longer match it: {shown}",
                           against_store=True, recorded_as=ref, mismatches=tuple(mismatches),
                           signature=sig_note)
    if not sig_ok:
        return ReportCheck(file, False, recorded, computed,
                           f"{file}: REJECTED: {sig_note}", against_store=True,
                           recorded_as=ref, signature=sig_note)
    msg = (f"{file}: accepted: intact (digest {recorded}), recorded by the store {store.uri} "
           f"as {ref}, and the {_count_facts(facts)} it states still match the store")
    if sig_note:
        msg += f"; {sig_note}"
    return ReportCheck(file, True, recorded, computed, msg, against_store=True,
                       recorded_as=ref, signature=sig_note)


def _count_facts(facts: Mapping[str, Any] | None) -> str:
    if not facts:
        return "facts"
    n = sum(len(facts.get(k) or {}) for k in ("artifacts", "executions", "runs"))
    return f"{n} records"


# --- entry point --------------------------------------------------------------------------


@attrs.frozen
class AuditResult:
    """A report written (or made) by :func:`write_report`."""

    path: Path | None
    """Where it was written (``None``: only the text was made)."""
    text: str
    """The report."""
    digest: str
    """The digest it embeds."""
    recorded_as: str | None
    """``artifact:N``: its AuditReport record in the store, if it was recorded."""
    signature: Path | None
    """The detached signature written beside it, if it was signed."""
    failures: tuple[str, ...]
    """What its re-verification found wrong (changed, missing or unreadable content,
    approvals that do not check), one line each."""

    @property
    def ok(self) -> bool:
        """Whether the re-verification found nothing wrong."""
        return not self.failures

    def to_dict(self) -> dict[str, Any]:
        """JSON shape (what ``lineage audit REF -o FILE --json`` prints)."""
        return {"written": str(self.path) if self.path else None, "digest": self.digest,
                "recorded_as": self.recorded_as,
                "signature": str(self.signature) if self.signature else None,
                "ok": self.ok, "failures": list(self.failures)}


def _failures(report: _Report) -> tuple[str, ...]:
    out = [f"{r.type_name} {r.name} v{r.version} (artifact:{r.id}): {r.status}"
           + (f": {r.detail}" if r.detail else "") for r in _verification_failed(report)]
    ev = report.evidence
    if ev.verify_error:
        out.append(f"the content could not be re-verified: {ev.verify_error}")
    out += [f"approval artifact:{a.approval.id} by {a.by}: {a.status}: {a.detail}"
            for a in ev.approvals if not a.ok]
    return tuple(out)


def write_report(
    store: Store, ref: Ref, path: str | os.PathLike[str] | None = None, *,
    format: str | None = None,
    key: Ed25519PrivateKey | str | os.PathLike[str] | None = None,
    record: bool | None = None, fold: bool = True,
) -> AuditResult:
    """Make the audit report of one artifact, write it, sign it, record it (see
    :func:`audit`, which returns only the path or text).

    Raises:
        NotFound: ``ref`` names nothing. RenderError: the file cannot be written.
        SignatureError: the key cannot be used.
    """
    fmt = (format or (Path(path).suffix.lstrip(".") if path is not None else "html")).lower()
    if fmt in ("markdown", "md"):
        fmt = "md"
    elif fmt in ("html", "htm", ""):
        fmt = "html"
    else:
        raise RenderError(f"unknown report format {fmt!r}: write a .html or a .md file")
    if key is not None:
        from lineage.signing import load_private_key

        key = load_private_key(key)  # a bad key fails before anything is written
    report = _collect(store, ref, fold=fold)
    file = Path(path) if path is not None else None
    svg_name = None
    if file is not None and report.svg is not None:
        svg_name = f"{file.stem}.lineage.svg"
        report.diagram_file = svg_name
    if fmt == "md":
        if svg_name is not None:
            picture: str | None = svg_name
        elif report.svg is not None:
            picture = "data:image/svg+xml;base64," + base64.b64encode(
                report.svg.encode("utf-8")).decode("ascii")
        else:
            picture = None
        body = _markdown(report, picture)
    else:
        body = _html(report)
    text, digest = _seal(body)
    failures = _failures(report)
    if file is None:
        return AuditResult(None, text, digest, None, None, failures)
    try:
        file.parent.mkdir(parents=True, exist_ok=True)
        if svg_name is not None and report.svg is not None:
            (file.parent / svg_name).write_text(
                '<?xml version="1.0" encoding="UTF-8"?>\n' + report.svg + "\n", encoding="utf-8")
        file.write_bytes(text.encode("utf-8"))
    except OSError as exc:
        raise RenderError(f"cannot write the report to {file}: {exc}") from exc
    from lineage import audits

    signature = None
    if key is not None:
        signature = audits.write_signature(file, digest, key)
    if record is None:
        record = not store.read_only
    recorded_as = None
    if record:
        entry = audits.record_report(store, report.evidence.target, file, digest=digest,
                                     fmt=fmt, signature=signature)
        recorded_as = f"artifact:{entry.id}"
    return AuditResult(file, text, digest, recorded_as,
                       audits.sig_path(file) if signature else None, failures)


def audit(
    store: Store, ref: Ref, path: str | os.PathLike[str] | None = None, *,
    format: str | None = None,
    key: Ed25519PrivateKey | str | os.PathLike[str] | None = None,
    record: bool | None = None, fold: bool = True,
) -> str | Path:
    """Write (or return) the audit report of one artifact.

    Args:
        store: the store to read (a read-only store is enough; a writable one also records
            the report).
        ref: the artifact (usually a model): an Artifact, an id, ``"name"``, ``"name@3"``
            or ``"artifact:12"``.
        path: where to write; ``.md`` writes Markdown, anything else HTML. ``None``
            returns the text instead (not recorded). The diagram is also written beside it
            at full size (``report.html`` → ``report.lineage.svg``).
        format: ``"html"`` or ``"md"``, overriding the suffix.
        key: an Ed25519 private key (PEM PKCS#8) to sign the report's digest with
            (``FILE.sig`` beside it, and the store record).
        record: record the report in the store (default: when the store is writable).
        fold: draw each call of the provenance once (repeats and cache hits folded, see
            :func:`lineage.render.to_dot`); ``False`` draws every execution.

    Returns:
        The path written, or the report text when ``path`` is ``None``.

    Raises:
        NotFound: ``ref`` names nothing. RenderError: the file cannot be written.
        SignatureError: the key cannot be used.

    Example:
        >>> import lineage
        >>> store = lineage.connect(":memory:")
        >>> m = store.put(lineage.Metrics({"acc": 0.9}, name="eval"))
        >>> text = lineage.report.audit(store, "eval")
        >>> "<h1>Audit report: eval v1</h1>" in text
        True
    """
    result = write_report(store, ref, path, format=format, key=key, record=record, fold=fold)
    return result.path if result.path is not None else result.text
