"""Plain text of query results for people: what ``print(result)`` and the CLI show.

The query results' ``__str__`` (``Provenance``, ``Impact``, ``LineageDiff``,
``Verification``, ``Comparison``) and the ``lineage`` command's tables call these
functions; they read the results' fields and ``to_dict()``, never the store.

Example:
    >>> print(table([["artifact:1", "iris"]], ["ref", "name"]))
    ref         name
    ----------  ----
    artifact:1  iris
"""

from __future__ import annotations

import datetime
import html
import json
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from lineage import _fold
from lineage.artifacts import Artifact

if TYPE_CHECKING:
    from lineage.queries import Comparison, Impact, LineageDiff, Provenance, Verification

#: Steps deeper than this in a provenance tree are not drawn (``--json`` has them all).
TREE_DEPTH = 40

ART_HEADER = ["ref", "type", "name", "version", "fingerprint", "uri"]


# --- small pieces -------------------------------------------------------------------------


def short_fp(fp: str | None) -> str:
    """A fingerprint cut to 12 hex digits (``"-"`` for none).

    Example:
        >>> short_fp("sha256:0123456789abcdef0123")
        'sha256:0123456789ab'
    """
    if not fp:
        return "-"
    algo, _, hexd = fp.partition(":")
    return f"{algo}:{hexd[:12]}" if hexd else fp[:19]


def label(a: Artifact | dict[str, Any]) -> str:
    """``"Model clf v2"``: type, name (or uri, or id) and version of an artifact or its dict.

    Example:
        >>> label({"type": "Model", "name": "clf", "version": 2})
        'Model clf v2'
    """
    d = a.to_dict() if isinstance(a, Artifact) else a
    name = d.get("name") or d.get("uri") or f"#{d.get('id')}"
    version = f" v{d['version']}" if d.get("version") is not None else ""
    return f"{d.get('type')} {name}{version}"


def value(v: Any) -> str:
    """One value, short: floats to 6 digits, long text cut at 40 characters.

    Example:
        >>> value(0.1 + 0.2), value({"a": 1})
        ('0.3', '{"a": 1}')
    """
    if isinstance(v, float):
        return f"{v:.6g}"
    text = json.dumps(v, default=str) if isinstance(v, (dict, list)) else str(v)
    return text if len(text) <= 40 else text[:37] + "..."


def full(v: Any, indent: int = 4, width: int = 100) -> str:
    """One value in full, never cut: long text wrapped onto continuation lines indented by
    ``indent`` spaces (what ``lineage show`` and ``lineage diff`` print).

    Example:
        >>> print(full("x" * 12, indent=2, width=8))
        xxxxxxxx
          xxxx
    """
    if isinstance(v, float):
        text = repr(v)
    else:
        text = json.dumps(v, default=str) if isinstance(v, (dict, list)) else str(v)
    lines = []
    for line in text.splitlines() or [""]:
        while len(line) > width:
            lines.append(line[:width])
            line = line[width:]
        lines.append(line)
    return ("\n" + " " * indent).join(lines)


def params(values: dict[str, Any], limit: int = 6) -> str:
    """``"epochs=10 lr=0.05"``: parameters by name, at most ``limit`` of them.

    Example:
        >>> params({"lr": 0.05, "epochs": 10})
        'epochs=10 lr=0.05'
    """
    items = [f"{k}={value(v)}" for k, v in sorted(values.items())]
    if len(items) > limit:
        items = [*items[:limit], f"(+{len(items) - limit})"]
    return " ".join(items)


def time(v: Any) -> str:
    """A time stamp (seconds since the epoch) in ISO 8601, UTC; anything else as :func:`value`.

    Example:
        >>> time(0)
        '1970-01-01T00:00:00+00:00'
    """
    if isinstance(v, (int, float)) and not isinstance(v, bool):
        return datetime.datetime.fromtimestamp(v, datetime.timezone.utc).isoformat(
            timespec="seconds")
    return value(v)


def table(rows: Sequence[Sequence[str]], header: Sequence[str]) -> str:
    """Left-aligned columns under a header and a dashed rule."""
    cells = [list(header), *[list(r) for r in rows]]
    widths = [max(len(r[i]) for r in cells) for i in range(len(header))]
    lines = ["  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip() for r in cells]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)


def artifact_rows(arts: Sequence[Artifact]) -> list[list[str]]:
    """Rows of :data:`ART_HEADER` for artifacts."""
    return [[f"artifact:{a.id}", a.type_name, a.name or "-",
             str(a.version) if a.version is not None else "-", short_fp(a.fingerprint),
             a.uri or "(in memory)"] for a in arts]


def step_line(step: dict[str, Any]) -> str:
    """One step of a provenance tree: name, ref, state, run (experiment), params, error.

    Example:
        >>> step_line({"name": "train", "id": 4, "state": "COMPLETE", "runs": ["b"],
        ...            "experiment": "iris", "params": {"lr": 0.1}, "error": None})
        'train  execution:4  COMPLETE  run b (iris)  lr=0.1'
    """
    run = ""
    if step.get("runs"):
        run = f"  run {', '.join(step['runs'])}"
        if step.get("experiment"):
            run += f" ({step['experiment']})"
    text = params(step.get("params") or {})
    err = f"  error: {step['error']}" if step.get("error") else ""
    return f"{step['name']}  execution:{step['id']}  {step['state']}{run}" + (
        f"  {text}" if text else "") + err


def _plural(n: int, word: str) -> str:
    return f"{n} {word}" if n == 1 else f"{n} {word}s"


# --- query results ------------------------------------------------------------------------


def provenance(p: Provenance) -> str:
    """The provenance tree (target first, each step under what it produced), a summary
    line and the datasets table."""
    d = p.to_dict()
    lines = [f"{label(d['target'])}  artifact:{d['target']['id']}  "
             f"{short_fp(d['target']['fingerprint'])}"]
    steps = {s["id"]: s for s in d["steps"]}
    arts = {a["id"]: a for a in d["artifacts"]}
    arts[d["target"]["id"]] = d["target"]
    _kept, alias = _fold.distinct(p.steps)
    producers: dict[int, list[int]] = {}
    for s in d["steps"]:
        for o in s["outputs"]:
            producers.setdefault(o, []).append(s["id"])
    shown: set[int] = set()
    expanded: set[int] = set()

    def tree(art_id: int, prefix: str, depth: int) -> None:
        kids = [sid for sid in producers.get(art_id, []) if sid not in alias]
        reused = [sid for sid in producers.get(art_id, []) if sid in alias]
        items: list[int | None] = [*kids, *([None] if reused else [])]
        for i, sid in enumerate(items):
            last = i == len(items) - 1
            branch, cont = ("└── ", "    ") if last else ("├── ", "│   ")
            if sid is None:  # repeats of a call shown here (cache hits): one line, no subtree
                hits = ", ".join(
                    f"execution:{r} {steps[r]['state']}"
                    + (f" (run {', '.join(steps[r]['runs'])})" if steps[r].get("runs") else "")
                    for r in reused
                )
                lines.append(f"{prefix}{branch}also produced by the same call: {hits}")
                continue
            if sid in shown:
                lines.append(f"{prefix}{branch}{steps[sid]['name']}  execution:{sid}  (shown above)")
                continue
            shown.add(sid)
            lines.append(f"{prefix}{branch}{step_line(steps[sid])}")
            if depth >= TREE_DEPTH:
                lines.append(f"{prefix}{cont}└── … deeper steps not drawn; use --json for all of them")
                continue
            ins = [a for a in steps[sid]["inputs"] if a in arts]
            for j, aid in enumerate(ins):
                alast = j == len(ins) - 1
                abranch, acont = ("└── ", "    ") if alast else ("├── ", "│   ")
                a = arts[aid]
                again = "  (shown above)" if aid in expanded and producers.get(aid) else ""
                lines.append(f"{prefix}{cont}{abranch}{label(a)}  artifact:{aid}  "
                             f"{short_fp(a['fingerprint'])}{again}")
                if not again:
                    expanded.add(aid)
                    tree(aid, prefix + cont + acont, depth + 1)

    tree(d["target"]["id"], "", 0)
    lines.append("")
    lines.append(f"{len(d['steps'])} steps, {len(d['artifacts'])} upstream artifacts, "
                 f"{len(d['datasets'])} datasets, roots: "
                 + (", ".join(f"artifact:{r}" for r in d["roots"]) or "-"))
    if d["datasets"]:
        lines.append("")
        lines.append(table(artifact_rows(p.datasets), ART_HEADER))
    return "\n".join(lines)


def provenance_repr(p: Provenance) -> str:
    """``<Provenance of Model clf v2: 6 steps, 3 datasets>``."""
    return (f"<Provenance of {label(p.target)}: {_plural(len(p.steps), 'step')}, "
            f"{_plural(len(p.datasets), 'dataset')}>")


def impact(imp: Impact) -> str:
    """What is downstream, by artifact type and step name."""
    d = imp.to_dict()
    lines = [f"downstream of {label(d['source'])}  artifact:{d['source']['id']}: "
             f"{len(d['artifacts'])} artifacts, {len(d['executions'])} executions"]
    for type_name, items in d["by_type"].items():
        lines.append(f"  {type_name} ({len(items)})")
        for x in items:
            extra = f" v{x['version']}" if x.get("version") is not None else ""
            state = f"  {x['state']}" if "state" in x else ""
            lines.append(f"    {x['ref']}  {x.get('name') or '-'}{extra}{state}")
    return "\n".join(lines)


def impact_repr(imp: Impact) -> str:
    """``<Impact of Dataset iris v1: 3 artifacts, 4 executions>``."""
    return (f"<Impact of {label(imp.source)}: {_plural(len(imp.artifacts), 'artifact')}, "
            f"{_plural(len(imp.executions), 'execution')}>")


def diff(dif: LineageDiff) -> str:
    """The two targets, then one line per difference (datasets, params, code, environment,
    steps in one lineage only)."""
    d = dif.to_dict()
    lines = [f"a: {label(d['a'])}  artifact:{d['a']['id']}",
             f"b: {label(d['b'])}  artifact:{d['b']['id']}"]
    if dif.is_empty:
        lines.append("same lineage: same datasets, params, code and environment")
        return "\n".join(lines)
    if d["datasets"]:
        lines.append("datasets:")
        for x in d["datasets"]:
            a = ", ".join(f"v{i['version']} {short_fp(i['fingerprint'])}" for i in x["a"]) or "-"
            b = ", ".join(f"v{i['version']} {short_fp(i['fingerprint'])}" for i in x["b"]) or "-"
            lines.append(f"  {x['type']} {x['name']}: {a} -> {b}  ({x['status']})")
    for title in ("params", "code", "environment"):
        if d[title]:
            lines.append(f"{title}:")
            for step, changes in d[title].items():
                for k, ab in changes.items():
                    lines.append(f"  {step}.{k}: {full(ab['a'])} -> {full(ab['b'])}")
    if d["only_in_a"]:
        lines.append("steps only in a: " + ", ".join(d["only_in_a"]))
    if d["only_in_b"]:
        lines.append("steps only in b: " + ", ".join(d["only_in_b"]))
    return "\n".join(lines)


def diff_repr(dif: LineageDiff) -> str:
    """``<LineageDiff Model clf v1 vs Model clf v2: params differ>``."""
    what = [name for name, got in (
        ("datasets", dif.datasets), ("params", dif.params), ("code", dif.code),
        ("environment", dif.environment), ("steps", dif.only_in_a or dif.only_in_b)) if got]
    summary = f"{', '.join(what)} differ" if what else "same lineage"
    return f"<LineageDiff {label(dif.a.target)} vs {label(dif.b.target)}: {summary}>"


def verification(v: Verification) -> str:
    """One row per checked artifact, then ``OK: ...`` or ``FAILED: ...`` with the counts."""
    rows = [[f"artifact:{r.artifact.id}", label(r.artifact), r.status.upper(),
             short_fp(r.recorded), short_fp(r.current), r.detail] for r in v.results]
    lines = [table(rows, ["ref", "artifact", "status", "recorded", "now", "detail"])] if rows else []
    counts = ", ".join(f"{n} {s}" for s, n in v.counts.items()) or "no artifacts"
    lines.append(f"{_verdict(v)}: {counts}")
    return "\n".join(lines)


def _verdict(v: Verification) -> str:
    if v.ok:
        return "OK"
    if all(r.status in ("skipped", "elsewhere") for r in v.results):
        return "NOT VERIFIED (nothing could be checked here)"
    return "FAILED"


def verification_repr(v: Verification) -> str:
    """``<Verification FAILED: 1 changed, 3 ok>``."""
    counts = ", ".join(f"{n} {s}" for s, n in v.counts.items()) or "no artifacts"
    return f"<Verification {_verdict(v)}: {counts}>"


_ABSENT: Any = object()


def cell(v: Any) -> str:
    """One cell of a comparison (``"-"`` for a value a run does not have)."""
    if v is _ABSENT:
        return "-"
    if isinstance(v, float):
        return f"{v:.6g}"
    text = str(v)
    return text if len(text) <= 40 else text[:37] + "..."


def comparison(c: Comparison) -> str:
    """A table: one column per run, one row per value, ``*`` where they differ."""
    if not c.runs:
        return "(no runs)"
    header = ["", *[r.name for r in c.runs]]
    rows = [header]
    for col in c.columns:
        mark = "*" if col.differs else " "
        rows.append([f"{mark} {col.name}", *[cell(v.get(col.name, _ABSENT)) for v in c.values]])
    widths = [max(len(r[i]) for r in rows) for i in range(len(header))]
    lines = ["  ".join(x.ljust(w) for x, w in zip(r, widths, strict=True)).rstrip()
             for r in rows]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)


def comparison_html(c: Comparison) -> str:
    """The comparison as an HTML table (what Jupyter shows): one column per run, one row
    per value; rows that differ come first, marked and shaded. Every value is escaped.

    Example:
        >>> import lineage
        >>> comparison_html(lineage.connect(":memory:").compare([]))
        '<p>(no runs)</p>'
    """
    if not c.runs:
        return "<p>(no runs)</p>"
    esc = html.escape
    head = "".join(f"<th>{esc(r.name)}</th>" for r in c.runs)
    rows = []
    for col in c.columns:
        mark = "* " if col.differs else ""
        style = ' style="background:#fef3c7"' if col.differs else ""
        cells = "".join(f"<td>{esc(cell(v.get(col.name, _ABSENT)))}</td>" for v in c.values)
        rows.append(f"<tr{style}><th style=\"text-align:left\" title=\"{esc(col.kind)}\">"
                    f"{esc(mark + col.name)}</th>{cells}</tr>")
    differ = sum(1 for col in c.columns if col.differs)
    caption = (f"{_plural(len(c.runs), 'run')}, {_plural(len(c.columns), 'value')}, "
               f"{differ} differ (marked *)")
    return (f"<table><caption>{esc(caption)}</caption><thead><tr><th></th>{head}</tr></thead>"
            f"<tbody>{''.join(rows)}</tbody></table>")


def comparison_repr(c: Comparison) -> str:
    """``<Comparison of 2 runs: 5 values, 3 differ>``."""
    differ = sum(1 for col in c.columns if col.differs)
    return (f"<Comparison of {_plural(len(c.runs), 'run')}: "
            f"{_plural(len(c.columns), 'value')}, {differ} differ>")
