"""Graphviz diagrams of lineage graphs and query results (this module never touches a store).

:func:`render` draws a ``networkx`` lineage graph (``store.graph()``), a ``Provenance``,
an ``Impact`` or a ``LineageDiff`` with Graphviz's ``dot``. The visual language:

========================  ==================================================================
what                      how it is drawn
========================  ==================================================================
dataset (base DATASET)    blue cylinder
model (base MODEL)        violet 3-D box
metrics (base METRICS)    pink note
statistics                teal folder
config (``Config``)       orange tab
other artifacts           white ellipse
execution (a step)        rounded box, filled by state: COMPLETE green, FAILED red (thick
                          border), CACHED grey (dashed), RUNNING amber, CANCELED light grey
                          (dotted), other states white
context (``contexts=``)   grey octagon
run                       dashed cluster around its executions and what they produced
provenance target /       thick blue double border and a "target" / "source" badge
impact source
verification              a status badge and border: ok green, changed / missing red,
                          unreadable amber, skipped grey
diff                      thick border and a badge: "changed (A)" / "changed (B)" orange,
                          "only in A" red dashed, "only in B" green
========================  ==================================================================

Artifact labels show name, version, type and a short fingerprint (metrics also show up to
``params`` values); execution labels show the step name, its state and up to ``params``
parameters (sorted by name), and the error of a failed step. Declared and pending events
are dashed edges, internal events dotted.

Output is deterministic: nodes, edges and clusters are sorted, DOT ids come from MLMD ids,
so the same store gives byte-identical DOT. Every text from the store goes into an
HTML-like label with ``&``, ``<``, ``>``, quotes escaped, backslashes doubled (Graphviz
expands ``\\N``-style escapes even inside HTML labels), control characters replaced,
non-ASCII written as numeric character references and long texts shortened: a name like
``x"]; evil -> y; <script>`` is shown as text, never interpreted. The DOT file is pure
ASCII.

Each call is drawn once (``fold=True``, see :mod:`lineage._fold`): identical re-runs and
cache hits of a call are one box with a count and the runs they belong to
(``\u00d74 \u00b7 runs baseline, tuned, tuned-2``), every execution listed in the SVG tooltip;
a step called ``fan_out`` times or more in one run with other params is one box with the
range of its params (``k = 0\u20269``); the picture of a target draws its steps in the runs
that made it, naming other runs where a cache hit reused them. Edge labels (event paths)
are shown where they tell the ends apart (a step with several inputs or outputs of the
same type); run clusters are ordered by time. A ``Verification`` is drawn as the lineage
it checked, each artifact badged and bordered by its status.

``max_nodes`` keeps big graphs readable: structurally identical nodes (same kind, type and
state, with equivalent neighbours, e.g. 500 copies of one preprocessing step) are drawn as
one counted node (``\u00d7500``), largest groups first, until at most ``max_nodes`` nodes remain.
"""

from __future__ import annotations

import hashlib
import itertools
import json
import os
import re
import urllib.parse
from collections import Counter, defaultdict
from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import attrs
import graphviz
import networkx as nx

from lineage import _fold
from lineage.errors import RenderError

__all__ = ["DEFAULT_FAN_OUT", "DEFAULT_MAX_NODES", "FORMATS", "render", "to_dot", "to_graphviz",
           "to_svg"]

#: Output formats :func:`render` writes, by file suffix.
FORMATS = ("svg", "png", "pdf", "dot")
_FORMAT_ALIASES = {"gv": "dot", "jpeg": "jpg"}
_PIPE_FORMATS = frozenset({"svg", "png", "pdf", "jpg"})

#: Above this many nodes, :func:`render` collapses repeated structure unless told otherwise.
DEFAULT_MAX_NODES = 200

_INSTALL_HINT = (
    "Graphviz's `dot` program was not found on PATH; install Graphviz "
    "(Debian/Ubuntu: apt-get install graphviz; macOS: brew install graphviz) "
    "or render to .dot, which needs no Graphviz"
)

_FONT = "Helvetica"
_KIND_RANK = {"context": 0, "artifact": 1, "execution": 2}
_KEY = re.compile(r"^(artifact|execution|context):(\d+)$")
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f\ud800-\udfff]")
_NAME_LIMIT = 40
_VALUE_LIMIT = 28


# --- styles ---------------------------------------------------------------------------


@attrs.frozen
class _Style:
    """How one category of node is drawn."""

    shape: str
    fill: str
    border: str
    style: str = "filled"
    penwidth: float = 1.2


_ARTIFACT_STYLES: dict[str, _Style] = {
    "dataset": _Style("cylinder", "#dbeafe", "#1e40af"),
    "model": _Style("box3d", "#ede9fe", "#5b21b6"),
    "metrics": _Style("note", "#fce7f3", "#9d174d"),
    "statistics": _Style("folder", "#ccfbf1", "#0f766e"),
    "config": _Style("tab", "#ffedd5", "#9a3412"),
    "other": _Style("ellipse", "#ffffff", "#4b5563"),
}
_EXECUTION_STYLES: dict[str, _Style] = {
    "COMPLETE": _Style("box", "#dcfce7", "#15803d", "filled,rounded"),
    "FAILED": _Style("box", "#fecaca", "#b91c1c", "filled,rounded", 2.5),
    "CACHED": _Style("box", "#e5e7eb", "#6b7280", "filled,rounded,dashed"),
    "RUNNING": _Style("box", "#fde68a", "#b45309", "filled,rounded", 2.0),
    "CANCELED": _Style("box", "#f3f4f6", "#9ca3af", "filled,rounded,dotted"),
    "other": _Style("box", "#ffffff", "#6b7280", "filled,rounded"),
}
_CONTEXT_STYLE = _Style("octagon", "#f3f4f6", "#6b7280")
_DIFF_COLORS = {"changed": "#ea580c", "only_a": "#dc2626", "only_b": "#16a34a"}
_HIGHLIGHT = "#1d4ed8"
#: Verification status → badge and border colour.
_VERIFY_BADGES = {
    "ok": ("\u2713 ok", "#15803d"),
    "changed": ("\u2260 changed", "#dc2626"),
    "missing": ("\u2717 missing", "#dc2626"),
    "unreadable": ("? unreadable", "#b45309"),
    "skipped": ("\u2013 skipped", "#6b7280"),
}
_EDGE_STYLES = {
    "DECLARED_INPUT": "dashed",
    "DECLARED_OUTPUT": "dashed",
    "PENDING_OUTPUT": "dashed",
    "INTERNAL_INPUT": "dotted",
    "INTERNAL_OUTPUT": "dotted",
    "ASSOCIATION": "dotted",
    "ATTRIBUTION": "dotted",
    "PARENT": "dotted",
}


def _artifact_category(data: Mapping[str, Any]) -> str:
    base = str(data.get("base_type") or "").upper()
    type_name = str(data.get("type_name") or "")
    if base == "DATASET":
        return "dataset"
    if base == "MODEL":
        return "model"
    if base == "METRICS":
        return "metrics"
    if base == "STATISTICS":
        return "statistics"
    if type_name == "Config" or type_name.lower().endswith("config"):
        return "config"
    return "other"


# --- text -----------------------------------------------------------------------------


def _text(value: Any, limit: int = _NAME_LIMIT) -> str:
    """``value`` as one line of display text: controls replaced, shortened in the middle."""
    text = value if isinstance(value, str) else _format_value(value)
    text = text.replace("\r\n", " ").replace("\n", " ").replace("\r", " ").replace("\t", " ")
    text = _CONTROL.sub("\ufffd", text)
    if len(text) > limit:
        head = (limit * 2) // 3
        tail = limit - head - 1
        text = text[:head] + "\u2026" + (text[-tail:] if tail > 0 else "")
    return text


def _esc(text: str) -> str:
    """Escape display text for a Graphviz HTML-like label; the result is ASCII."""
    out: list[str] = []
    for ch in text:
        if ch == "&":
            out.append("&amp;")
        elif ch == "<":
            out.append("&lt;")
        elif ch == ">":
            out.append("&gt;")
        elif ch == '"':
            out.append("&quot;")
        elif ch == "'":
            out.append("&#39;")
        elif ch == "\\":
            out.append("\\\\")  # Graphviz expands \N, \G, \\ … even in HTML labels
        elif ord(ch) > 126 or ord(ch) < 32:
            out.append(f"&#{ord(ch)};")
        else:
            out.append(ch)
    return "".join(out)


def _format_value(value: Any) -> str:
    if isinstance(value, float):
        text = repr(value)
        return text if len(text) <= 10 else format(value, ".6g")
    if isinstance(value, (dict, list, tuple)):
        try:
            return json.dumps(value, sort_keys=True, separators=(",", ":"), default=str)
        except (TypeError, ValueError):
            return repr(value)
    return str(value)


def _short_fingerprint(fp: Any) -> str | None:
    if not isinstance(fp, str) or not fp:
        return None
    algo, _, digest = fp.partition(":")
    return f"{algo}:{digest[:10]}" if digest else fp[:16]


def _font(text: str, *, size: int | None = None, color: str | None = None,
          bold: bool = False, face: str | None = None) -> str:
    """Wrap already escaped text in FONT (and B) tags."""
    if bold:
        text = f"<B>{text}</B>"
    attrs_ = []
    if size is not None:
        attrs_.append(f'POINT-SIZE="{size}"')
    if color is not None:
        attrs_.append(f'COLOR="{color}"')
    if face is not None:
        attrs_.append(f'FACE="{face}"')
    return f"<FONT {' '.join(attrs_)}>{text}</FONT>" if attrs_ else text


def _table(rows: Sequence[str]) -> str:
    body = "".join(f"<TR><TD>{row}</TD></TR>" for row in rows)
    return f'<<TABLE BORDER="0" CELLBORDER="0" CELLSPACING="0" CELLPADDING="1">{body}</TABLE>>'


# --- what to draw -----------------------------------------------------------------------


@attrs.define
class _View:
    """A graph plus what to emphasise, taken from a query result."""

    graph: nx.MultiDiGraph
    title: str | None = None
    highlight: dict[str, str] = attrs.field(factory=dict)  # node → badge text
    sides: dict[str, str] = attrs.field(factory=dict)  # node → "A", "B" or "A+B"
    run_of: dict[str, str | None] = attrs.field(factory=dict)  # execution node → run label
    targets: list[str] = attrs.field(factory=list)  # what the picture focuses on (upstream)
    captions: list[str] = attrs.field(factory=list)  # lines under the title


def _get(obj: Any, name: str) -> Any:
    if isinstance(obj, Mapping):
        return obj.get(name)
    return getattr(obj, name, None)


def _artifact_key(obj: Any) -> str | None:
    if obj is None:
        return None
    if isinstance(obj, str) and _KEY.match(obj):
        return obj
    if isinstance(obj, int) and not isinstance(obj, bool):
        return f"artifact:{obj}"
    ident = _get(obj, "id")
    return f"artifact:{ident}" if isinstance(ident, int) else None


def _describe(obj: Any) -> str:
    if obj is None:
        return "?"
    name = _get(obj, "name")
    version = _get(obj, "version")
    type_name = _get(obj, "type_name") or _get(obj, "type")
    text = str(name) if name else f"artifact {_get(obj, 'id')}"
    if version is not None:
        text += f" v{version}"
    if type_name:
        text += f" ({type_name})"
    return text


#: Context types drawn as run clusters, best first; other typed contexts are not clusters.
_RUN_TYPES = ("Run", "pipeline_run")
_HASH_NAME = re.compile(r"(^|:)[0-9a-f]{32,}$")


def _typed_runs(obj: Any) -> dict[str, str | None]:
    """Execution node → run label, from the ``runs`` of a query result (exec id → contexts
    with ``type_name``): the ``Run`` (or TFX ``pipeline_run``) context, else no cluster."""
    out: dict[str, str | None] = {}
    for source in (obj, getattr(obj, "a", None), getattr(obj, "b", None)):
        runs = getattr(source, "runs", None)
        if not isinstance(runs, Mapping):
            continue
        for exec_id, contexts in runs.items():
            best: tuple[int, str] | None = None
            for ctx in contexts or ():
                type_name = _get(ctx, "type_name")
                if type_name in _RUN_TYPES:
                    # the unique name: two runs both called "tuned" are tuned and tuned-2
                    label = str(_get(ctx, "name") or _get(ctx, "run_name"))
                    rank = (_RUN_TYPES.index(type_name), label)
                    best = rank if best is None or rank < best else best
            out[f"execution:{exec_id}"] = best[1] if best else None
    return out


def _view_of(obj: Any) -> _View:
    """Dispatch on duck typing (class names of :mod:`lineage.queries`, not imports)."""
    view = _view_of_kind(obj)
    view.run_of.update(_typed_runs(obj))
    return view


def _view_of_kind(obj: Any) -> _View:
    if isinstance(obj, nx.Graph):
        graph = obj if isinstance(obj, nx.MultiDiGraph) else nx.MultiDiGraph(obj)
        return _View(graph)
    graph = getattr(obj, "graph", None)
    cls = type(obj).__name__
    if not isinstance(graph, nx.Graph):
        raise RenderError(
            f"cannot draw a {cls}: give a lineage graph (store.graph()), a Provenance, an "
            "Impact, a LineageDiff or a Verification"
        )
    if not isinstance(graph, nx.MultiDiGraph):
        graph = nx.MultiDiGraph(graph)
    a, b = getattr(obj, "a", None), getattr(obj, "b", None)
    if cls == "LineageDiff" or (a is not None and b is not None):
        sides: dict[str, str] = {}
        for label, side in (("A", a), ("B", b)):
            side_graph = getattr(side, "graph", None)
            if isinstance(side_graph, nx.Graph):
                for node in side_graph:
                    sides[node] = "A+B" if node in sides else label
        highlight = {}
        for label, side in (("A", a), ("B", b)):
            key = _artifact_key(getattr(side, "target", None))
            if key is not None:
                highlight[key] = f"target {label}" if key not in highlight else "target A+B"
        title = (
            f"Diff: A = {_describe(getattr(a, 'target', None))}   "
            f"B = {_describe(getattr(b, 'target', None))}"
        )
        return _View(graph, title, highlight, sides, targets=sorted(highlight))
    if cls == "Verification" or (hasattr(obj, "results") and hasattr(obj, "counts")):
        target = getattr(obj, "target", None)
        key = _artifact_key(target)
        counts = getattr(obj, "counts", None) or {}
        verdict = "OK" if getattr(obj, "ok", True) else "FAILED"
        summary = ", ".join(f"{n} {status}" for status, n in dict(counts).items())
        what = _describe(target) if target is not None else "every recorded artifact"
        return _View(graph, f"Verification of {what}: {verdict}"
                     + (f" ({summary})" if summary else ""),
                     {key: "target"} if key else {}, targets=[key] if key else [])
    if cls == "Provenance" or hasattr(obj, "target"):
        target = getattr(obj, "target", None)
        key = _artifact_key(target)
        return _View(graph, f"Provenance of {_describe(target)}",
                     {key: "target"} if key else {}, targets=[key] if key else [])
    if cls == "Impact" or hasattr(obj, "source"):
        source = getattr(obj, "source", None)
        key = _artifact_key(source)
        return _View(graph, f"Impact of {_describe(source)}", {key: "source"} if key else {})
    return _View(graph, None)


# --- folding repeats ------------------------------------------------------------------

#: From this many calls of one step in one run (other params or inputs), one box.
DEFAULT_FAN_OUT = _fold.DEFAULT_FAN_OUT


def _plural(n: int, word: str, many: str | None = None) -> str:
    return f"{n} {word}" if n == 1 else f"{n} {many or word + 's'}"


def _fold_view(view: _View, fan_out: int | None, focus: bool) -> _View:
    """The view with each call drawn once (see :mod:`lineage._fold`)."""
    folded = _fold.fold_graph(
        view.graph, run_of=_run_resolver(view), targets=view.targets if focus else (),
        fan_out=fan_out, keep=set(view.highlight),
    )
    where = folded.where
    highlight: dict[str, str] = {}
    for node, badge in view.highlight.items():
        highlight.setdefault(where.get(node, node), badge)
    sides: dict[str, str] = {}
    for node, side in sorted(view.sides.items()):
        drawn = where.get(node, node)
        sides[drawn] = side if sides.get(drawn) in (None, side) else "A+B"
    captions = list(view.captions)
    if folded.boxes < folded.executions:
        captions.append(f"{_plural(folded.executions, 'execution')} drawn as "
                        f"{_plural(folded.boxes, 'box', 'boxes')}: repeats of a call and "
                        "cache hits folded")
    if folded.fanned:
        names = ", ".join(_text(n, 24) for n in folded.fanned[:4])
        more = f" +{len(folded.fanned) - 4}" if len(folded.fanned) > 4 else ""
        captions.append(f"fan-out: the calls of {names}{more} in one run drawn as one box")
    if folded.reused:
        captions.append("cache hits reuse " + ", ".join(
            f"run {run} ({_plural(n, 'call')})" for run, n in folded.reused.items()))
    return _View(folded.graph, view.title, highlight, sides, dict(folded.run_of),
                 list(view.targets), captions)


# --- collapsing repeated structure ----------------------------------------------------


def _node_sort_key(node: Any) -> tuple[int, int, str]:
    text = str(node)
    match = _KEY.match(text)
    if match:
        return (_KIND_RANK[match.group(1)], int(match.group(2)), text)
    return (3, 0, text)


def _kind(node: Any, data: Mapping[str, Any]) -> str:
    kind = data.get("kind")
    if kind in _KIND_RANK:
        return str(kind)
    match = _KEY.match(str(node))
    return match.group(1) if match else "artifact"


def _digest(value: Any) -> str:
    return hashlib.sha1(repr(value).encode("utf-8", "backslashreplace")).hexdigest()[:16]


def _merge(nodes: Sequence[Any], color: Mapping[Any, str], max_nodes: int) -> tuple[set[str], int]:
    """The colours to merge, largest classes first, and the node count that leaves."""
    by_color: dict[str, list[Any]] = defaultdict(list)
    for node in nodes:
        by_color[color[node]].append(node)
    classes = sorted(by_color.values(), key=lambda m: (-len(m), _node_sort_key(m[0])))
    count = len(nodes)
    merged: set[str] = set()
    for members in classes:
        if count <= max_nodes or len(members) < 2:
            break
        merged.add(color[members[0]])
        count -= len(members) - 1
    return merged, count


def _groups(graph: nx.MultiDiGraph, max_nodes: int | None, keep: Iterable[Any]) -> list[list[Any]]:
    """Partition the nodes into groups to draw as one node each (sorted, deterministic)."""
    nodes = sorted(graph.nodes, key=_node_sort_key)
    if not max_nodes or len(nodes) <= max_nodes:
        return [[n] for n in nodes]
    kept = set(keep)
    color: dict[Any, str] = {}
    for node in nodes:
        data = graph.nodes[node]
        kind = _kind(node, data)
        if node in kept:
            color[node] = _digest(("keep", str(node)))
        elif kind == "execution":
            color[node] = _digest((kind, data.get("type_name"), data.get("state"), data.get("diff")))
        else:
            color[node] = _digest((kind, data.get("type_name"), data.get("base_type"),
                                   data.get("diff")))
    # A few rounds of colour refinement (Weisfeiler-Lehman with neighbour *sets*): nodes
    # that end with the same colour have the same local structure.
    rounds = [color]
    for _ in range(3):
        refined = {
            node: color[node] if node in kept else _digest((
                color[node],
                sorted({color[p] for p in graph.predecessors(node)}),
                sorted({color[s] for s in graph.successors(node)}),
            ))
            for node in nodes
        }
        if len(set(refined.values())) == len(set(color.values())):
            break
        color = refined
        rounds.append(color)
    # The finest partition that gets under max_nodes; when even the coarsest (kind, type
    # and state only) does not, the coarsest.
    for color in reversed(rounds):
        merged, count = _merge(nodes, color, max_nodes)
        if count <= max_nodes:
            break
    by_color: dict[str, list[Any]] = defaultdict(list)
    for node in nodes:
        by_color[color[node]].append(node)
    groups = []
    for members in by_color.values():
        if color[members[0]] in merged:
            groups.append(members)
        else:
            groups.extend([m] for m in members)
    return sorted(groups, key=lambda m: _node_sort_key(m[0]))


# --- labels ----------------------------------------------------------------------------


def _badges(view: _View, node: Any, data: Mapping[str, Any]) -> tuple[list[str], str | None]:
    """Badge rows (escaped) and the border colour that goes with them."""
    rows: list[str] = []
    border: str | None = None
    diff = data.get("diff")
    if diff in _DIFF_COLORS:
        color = _DIFF_COLORS[str(diff)]
        if diff == "changed":
            side = view.sides.get(str(node))
            text = f"\u2260 changed ({side})" if side in ("A", "B") else "\u2260 changed"
        elif diff == "only_a":
            text = "\u2212 only in A"
        else:
            text = "+ only in B"
        rows.append(_font(_esc(text), size=9, color=color, bold=True))
        border = color
    status = data.get("verify")
    if status in _VERIFY_BADGES:
        text, color = _VERIFY_BADGES[str(status)]
        rows.append(_font(_esc(text), size=9, color=color, bold=True))
        border = color
    badge = view.highlight.get(str(node))
    if badge:
        rows.append(_font(_esc(f"\u25ce {badge}"), size=9, color=_HIGHLIGHT, bold=True))
        border = _HIGHLIGHT
    return rows, border


def _kv_rows(values: Mapping[str, Any], limit: int, *, size: int = 9) -> list[str]:
    keys = sorted(values, key=str)
    rows = [
        _font(_esc(f"{_text(k, 18)} = {_text(values[k], _VALUE_LIMIT)}"), size=size,
              color="#374151")
        for k in keys[:limit]
    ]
    if len(keys) > limit:
        rows.append(_font(_esc(f"+{len(keys) - limit} more"), size=8, color="#6b7280"))
    return rows


def _display_name(node: Any, data: Mapping[str, Any]) -> str:
    name = data.get("name")
    if name:
        return str(name)
    uri = data.get("uri")
    if uri:
        parts = [p for p in str(uri).rstrip("/").split("/") if p]
        if len(parts) >= 2 and parts[-1].isdigit():  # TFX: …/Trainer/model/7
            return "/".join(parts[-2:])
        return parts[-1] if parts else str(uri)
    return f"{data.get('type_name') or _kind(node, data)} {data.get('id', '')}".strip()


def _artifact_rows(node: Any, data: Mapping[str, Any], params: int) -> list[str]:
    name = _esc(_text(_display_name(node, data)))
    version = data.get("version")
    head = _font(name, bold=True)
    if version is not None:
        head += " " + _font(_esc(f"v{_text(version, 12)}"), color="#374151")
    rows = [head]
    sub = _text(data.get("type_name") or "artifact", 24)
    fp = _short_fingerprint(data.get("fingerprint"))
    rows.append(_font(_esc(sub), size=9, color="#4b5563"))
    if fp:
        rows.append(_font(_esc(_text(fp, 24)), size=8, color="#4b5563", face="Courier"))
    if _artifact_category(data) == "metrics" and params:
        props = data.get("properties") or {}
        numbers = {k: v for k, v in props.items()
                   if isinstance(v, (int, float)) and not isinstance(v, bool)}
        rows.extend(_kv_rows(numbers, params))
    return rows


def _runs_text(runs: Sequence[str], limit: int = 3) -> str:
    """``runs baseline, tuned, tuned-2 +2``."""
    shown = ", ".join(_text(r, 24) for r in runs[:limit])
    more = f" +{len(runs) - limit}" if len(runs) > limit else ""
    return f"{'run' if len(runs) == 1 else 'runs'} {shown}{more}"


def _fold_rows(fold: _fold.Fold) -> list[str]:
    """What a folded box adds: how many executions, their runs, the run a cache hit reused."""
    rows = []
    if fold.kind == "repeat" and len(fold.members) > 1:
        text = f"\u00d7{len(fold.members)}" + (f" \u00b7 {_runs_text(fold.runs)}" if fold.runs else "")
        rows.append(_font(_esc(text), size=8, color="#374151"))
    elif fold.kind == "fan_out" and len(fold.members) > len(fold.calls):
        rows.append(_font(_esc(f"{_plural(len(fold.calls), 'call')}, "
                               f"{_plural(len(fold.members), 'execution')}"), size=8,
                          color="#374151"))
    if fold.reused is not None:
        rows.append(_font(_esc(f"cached \u2190 run {_text(fold.reused, 30)}"), size=8,
                          color="#4b5563"))
    return rows


def _param_range(values: Sequence[Any]) -> str:
    """``0\u20269`` for numbers, ``a \u2026 z (3 values)`` for anything else."""
    numbers = [v for v in values if isinstance(v, (int, float)) and not isinstance(v, bool)]
    if numbers and len(numbers) == len(values):
        low, high = min(numbers), max(numbers)
        return f"{_format_value(low)}\u2026{_format_value(high)}"
    texts = sorted({_format_value(v) for v in values})
    return f"{_text(texts[0], 12)} \u2026 {_text(texts[-1], 12)} ({len(texts)} values)"


def _split_params(all_params: Sequence[Mapping[str, Any]]) -> tuple[dict[str, Any], dict[str, list[Any]]]:
    """Params every call shares, and the others with each call's value."""
    keys = sorted({k for p in all_params for k in p}, key=str)
    common: dict[str, Any] = {}
    varying: dict[str, list[Any]] = {}
    for key in keys:
        values = {_format_value(p.get(key)) for p in all_params}
        if len(values) == 1 and all(key in p for p in all_params):
            common[key] = all_params[0][key]
        else:
            varying[key] = [p.get(key) for p in all_params]
    return common, varying


def _execution_rows(data: Mapping[str, Any], params: int) -> list[str]:
    fold = data.get("fold")
    name = _esc(_text(data.get("name") or data.get("type_name") or "execution"))
    state = str(data.get("state") or "UNKNOWN")
    head = _font(name, bold=True) + " " + _font(_esc(_text(state, 12)), size=8, color="#374151")
    if isinstance(fold, _fold.Fold) and fold.kind == "fan_out":
        first = {m: d for m, d in zip(fold.members, fold.data, strict=True)}
        common, varying = _split_params([first[call[0]].get("params") or {}
                                         for call in fold.calls])
        rows = [_font(_esc(f"\u00d7{len(fold.calls)}"), bold=True, color="#111827") + " " + head]
        rows.extend(_kv_rows(common, params))
        for key in list(varying)[:max(params, 1)]:
            rows.append(_font(_esc(f"{_text(key, 18)} = {_param_range(varying[key])}"), size=9,
                              color="#374151"))
        if len(varying) > max(params, 1):
            rows.append(_font(_esc(f"+{len(varying) - max(params, 1)} more varying"), size=8,
                              color="#6b7280"))
    else:
        rows = [head]
        rows.extend(_kv_rows(data.get("params") or {}, params))
    error = data.get("error")
    if error:
        rows.append(_font(_esc(_text(error, 48)), size=8, color="#991b1b"))
    if isinstance(fold, _fold.Fold):
        rows.extend(_fold_rows(fold))
    return rows


def _group_rows(members: Sequence[Any], datas: Sequence[Mapping[str, Any]],
                params: int) -> list[str]:
    first = datas[0]
    kind = _kind(members[0], first)
    names = sorted({_display_name(m, d) for m, d in zip(members, datas, strict=True)})
    name = names[0] if len(names) == 1 else f"{_text(names[0], 18)} \u2026 {_text(names[-1], 18)}"
    count = _font(_esc(f"\u00d7{len(members)}"), bold=True, color="#111827")
    rows = [count + " " + _font(_esc(_text(name)), bold=True)]
    if kind == "execution":
        rows[0] += " " + _font(_esc(_text(first.get("state") or "", 12)), size=8)
        common, varying = _split_params([d.get("params") or {} for d in datas])
        rows.extend(_kv_rows(common, params))
        for key, values in list(varying.items())[:2]:
            text = f"{key}: {len({_format_value(v) for v in values})} values"
            rows.append(_font(_esc(_text(text)), size=8, color="#6b7280"))
    else:
        rows.append(_font(_esc(_text(first.get("type_name") or kind, 24)), size=9,
                          color="#4b5563"))
        versions = sorted(d["version"] for d in datas if isinstance(d.get("version"), int))
        if versions:
            span = f"v{versions[0]}" if versions[0] == versions[-1] else \
                f"v{versions[0]}\u2013v{versions[-1]}"
            rows.append(_font(_esc(span), size=8, color="#4b5563"))
    return rows


# --- DOT ------------------------------------------------------------------------------


def _dot_id(graph: nx.MultiDiGraph, members: Sequence[Any]) -> str:
    match = _KEY.match(str(members[0]))
    base = f"{match.group(1)[0]}{match.group(2)}" if match else f"n{_digest(str(members[0]))}"
    if len(members) > 1:
        return f"g_{base}"
    fold = graph.nodes[members[0]].get("fold")
    if isinstance(fold, _fold.Fold) and fold.kind in ("fan_out", "artifacts"):
        return f"f_{base}"
    return base


def _href(link: Callable[[str], str | None] | None, members: Sequence[Any]) -> list[str]:
    """``URL``/``target`` attributes of a node drawn for one record, from
    ``link(node key)``; characters outside a safe set are percent-encoded, so nothing in a
    URL can end the DOT string or start a Graphviz escape."""
    if link is None or len(members) != 1:
        return []
    url = link(str(members[0]))
    if not url:
        return []
    safe = urllib.parse.quote(str(url), safe="/:?=&%#._~-+,;@")
    return [f'URL="{safe}"', 'target="_top"']



# --- tooltips ---------------------------------------------------------------------------

_TIP_LINES = 40


def _tip_esc(text: str) -> str:
    """Escape tooltip text for a quoted DOT string (ASCII; ``\\n`` between lines).

    Graphviz expands backslash escapes in tooltips twice in some versions, so a backslash
    from the store is shown as U+29F5 (a reverse solidus operator) rather than risking
    ``\\N`` becoming the node name.
    """
    out: list[str] = []
    for ch in text:
        if ch == "\n":
            out.append("\\n")
        elif ch == "\\":
            out.append("&#10741;")
        elif ch == "&":
            out.append("&amp;")
        elif ch == '"':
            out.append("&quot;")
        elif ch == "<":
            out.append("&lt;")
        elif ch == ">":
            out.append("&gt;")
        elif ord(ch) > 126 or ord(ch) < 32:
            out.append(f"&#{ord(ch)};")
        else:
            out.append(ch)
    return "".join(out)


def _ref(node: Any, data: Mapping[str, Any]) -> str:
    return str(node) if _KEY.match(str(node)) else f"{_kind(node, data)}:{data.get('id', '?')}"


def _params_line(values: Mapping[str, Any]) -> str:
    return " ".join(f"{k}={_format_value(v)}" for k, v in sorted(values.items(), key=str))


def _artifact_tip(node: Any, data: Mapping[str, Any]) -> list[str]:
    version = data.get("version")
    lines = [f"{_ref(node, data)} \u00b7 {data.get('type_name') or 'artifact'} "
             f"{_display_name(node, data)}" + (f" v{version}" if version is not None else "")]
    if data.get("fingerprint"):
        lines.append(str(data["fingerprint"]))
    if data.get("verify"):
        lines.append(f"verified: {data['verify']}")
    return lines


def _execution_tip(node: Any, data: Mapping[str, Any], run: str | None) -> list[str]:
    lines = [f"{_ref(node, data)} \u00b7 {data.get('name') or data.get('type_name')} "
             f"\u00b7 {data.get('state') or 'UNKNOWN'}" + (f" \u00b7 run {run}" if run else "")]
    if data.get("params"):
        lines.append(_params_line(data["params"]))
    cached = (data.get("properties") or {}).get("cached_from")
    if data.get("state") == "CACHED" and isinstance(cached, int):
        lines.append(f"cached from execution:{cached}")
    if data.get("error"):
        lines.append(str(data["error"]))
    return lines


def _member_line(node: Any, data: Mapping[str, Any], run: str | None) -> str:
    line = f"{_ref(node, data)} {data.get('state') or 'UNKNOWN'}" + (f" \u00b7 run {run}" if run else "")
    cached = (data.get("properties") or {}).get("cached_from")
    if data.get("state") == "CACHED" and isinstance(cached, int):
        line += f" \u00b7 cached from execution:{cached}"
    return line


def _tooltip(view: _View, members: Sequence[Any], run_of: Callable[[Any], str | None]) -> str:
    """The full story of a drawn node, for the SVG tooltip."""
    graph = view.graph
    node = members[0]
    data = graph.nodes[node]
    kind = _kind(node, data)
    fold = data.get("fold")
    lines: list[str]
    if len(members) > 1:
        lines = [f"\u00d7{len(members)} {data.get('type_name') or kind}"]
        lines += [f"{_ref(m, graph.nodes[m])} {_display_name(m, graph.nodes[m])}" for m in members]
    elif isinstance(fold, _fold.Fold) and fold.kind == "repeat" and len(fold.members) > 1:
        datas = dict(zip(fold.members, fold.data, strict=True))
        lines = [f"{data.get('name')}: one call, {len(fold.members)} executions"]
        if data.get("params"):
            lines.append(_params_line(data["params"]))
        lines += [_member_line(m, datas[m], fold.run_of.get(m)) for m in fold.members]
    elif isinstance(fold, _fold.Fold) and fold.kind == "fan_out":
        datas = dict(zip(fold.members, fold.data, strict=True))
        lines = [f"{data.get('name')}: {len(fold.calls)} calls"
                 + (f" in run {fold.home}" if fold.home else "")]
        for call in fold.calls:
            first = datas[call[0]]
            refs = ", ".join(f"{_ref(m, datas[m])}" + (
                f" {datas[m].get('state')}" if datas[m].get("state") != first.get("state") else "")
                for m in call)
            lines.append(f"{_params_line(first.get('params') or {}) or '(no params)'}: {refs}")
    elif isinstance(fold, _fold.Fold) and fold.kind == "artifacts":
        lines = [f"\u00d7{len(fold.members)} {data.get('type_name') or 'artifact'}"]
        for m, d in zip(fold.members, fold.data, strict=True):
            version = d.get("version")
            lines.append(f"{_ref(m, d)} {_display_name(m, d)}"
                         + (f" v{version}" if version is not None else "")
                         + (f" {_short_fingerprint(d.get('fingerprint'))}"
                            if d.get("fingerprint") else ""))
    elif kind == "execution":
        lines = _execution_tip(node, data, run_of(node))
    elif kind == "artifact":
        lines = _artifact_tip(node, data)
    else:
        lines = [f"{_ref(node, data)} \u00b7 {data.get('type_name') or 'context'} "
                 f"{_display_name(node, data)}"]
    if isinstance(fold, _fold.Fold) and fold.reused and len(members) == 1:
        lines.append(f"reuses a call of run {fold.reused}")
    if len(lines) > _TIP_LINES:
        lines = [*lines[:_TIP_LINES - 1], f"\u2026 and {len(lines) - _TIP_LINES + 1} more"]
    return "\n".join(_text(line, 160) for line in lines)


def _node_line(view: _View, dot_id: str, members: Sequence[Any], params: int,
               run_of: Callable[[Any], str | None],
               link: Callable[[str], str | None] | None = None) -> str:
    graph = view.graph
    node = members[0]
    data = graph.nodes[node]
    kind = _kind(node, data)
    fold = data.get("fold")
    if kind == "execution":
        style = _EXECUTION_STYLES.get(str(data.get("state")), _EXECUTION_STYLES["other"])
    elif kind == "context":
        style = _CONTEXT_STYLE
    else:
        style = _ARTIFACT_STYLES[_artifact_category(data)]
    several = len(members) > 1 or (isinstance(fold, _fold.Fold) and fold.kind != "repeat")
    if isinstance(fold, _fold.Fold) and fold.kind == "artifacts":
        rows = _group_rows(fold.members, fold.data, params)
    elif len(members) == 1:
        rows = _artifact_rows(node, data, params) if kind == "artifact" else (
            _execution_rows(data, params) if kind == "execution" else
            [_font(_esc(_text(_display_name(node, data))), bold=True),
             _font(_esc(_text(data.get("type_name") or "context", 24)), size=9)]
        )
    else:
        rows = _group_rows(members, [graph.nodes[m] for m in members], params)
    badges, border = _badges(view, node, data)
    attrs_ = [
        f"shape={style.shape}",
        f'style="{style.style}{",bold" if border else ""}"',
        f'fillcolor="{style.fill}"',
        f'color="{border or style.border}"',
        f"penwidth={3.0 if border else style.penwidth}",
    ]
    if several:
        attrs_.append("peripheries=2" if style.shape not in ("box3d", "cylinder") else
                      "penwidth=2.5")
    elif border == _HIGHLIGHT and style.shape not in ("box3d", "cylinder", "note", "tab",
                                                      "folder"):
        attrs_.append("peripheries=2")
    if data.get("diff") == "only_a":
        attrs_[1] = f'style="{style.style},dashed"'
    attrs_.append(f'tooltip="{_tip_esc(_tooltip(view, members, run_of))}"')
    attrs_.extend(_href(link, members))
    attrs_.append(f"label={_table(badges + rows)}")
    return f"{dot_id} [{', '.join(attrs_)}];"


def _run_resolver(view: _View) -> Callable[[Any], str | None]:
    """Execution node → the run it is drawn in: the run of the query result, else the
    ``Run`` (or TFX ``pipeline_run``) context among its ``runs``, else the widest named
    context that is no cache key; ``None`` for none."""
    graph = view.graph
    context_types = {
        str(data.get("name")): data.get("type_name")
        for node, data in graph.nodes(data=True) if _kind(node, data) == "context"
    }
    sizes: Counter[str] = Counter()
    for node, data in graph.nodes(data=True):
        if _kind(node, data) == "execution":
            sizes.update({str(r) for r in data.get("runs") or ()})

    run_contexts = {str(r) for r in graph.graph.get("run_contexts") or ()}

    def rank(name: str) -> int:
        kind = context_types.get(name)
        return _RUN_TYPES.index(kind) if kind in _RUN_TYPES else len(_RUN_TYPES)

    def run_of(node: Any) -> str | None:
        if str(node) in view.run_of:
            return view.run_of[str(node)]
        runs = sorted({str(r) for r in graph.nodes[node].get("runs") or ()})
        typed = [r for r in runs if context_types.get(r) in _RUN_TYPES or r in run_contexts]
        if typed:
            return min(typed, key=lambda r: (rank(r), r))
        if any(r in context_types for r in runs):
            return None  # typed contexts, none of them a run
        # Names only: skip cache keys (hashes); the widest remaining context is the run.
        named = [r for r in runs if not _HASH_NAME.search(r)]
        return max(named, key=lambda r: (sizes[r], r)) if named else None

    return run_of


def _cluster_names(view: _View, groups: Sequence[Sequence[Any]],
                   run_of: Callable[[Any], str | None]) -> dict[int, str]:
    """Group index → the run it is drawn in (executions by their runs, artifacts with their
    producers when those all belong to one run)."""
    graph = view.graph
    exec_run: dict[Any, str | None] = {}
    for node, data in graph.nodes(data=True):
        if _kind(node, data) == "execution":
            exec_run[node] = run_of(node)
    out: dict[int, str] = {}
    for index, members in enumerate(groups):
        runs: set[str | None] = set()
        for node in members:
            data = graph.nodes[node]
            kind = _kind(node, data)
            if kind == "execution":
                runs.add(exec_run[node])
            elif kind == "artifact":
                producers = [p for p in graph.predecessors(node) if p in exec_run]
                if producers:
                    runs.update(exec_run[p] for p in producers)
                else:
                    runs.add(None)
            else:
                runs.add(None)
        if len(runs) == 1 and (run := next(iter(runs))) is not None:
            out[index] = run
    return out


def _first_time(graph: nx.MultiDiGraph, groups: Sequence[Sequence[Any]],
                indexes: Iterable[int]) -> tuple[float, int]:
    """When the first execution of a cluster was recorded (create time, then id)."""
    times: list[tuple[float, int]] = []
    for index in indexes:
        for node in groups[index]:
            data = graph.nodes[node]
            if _kind(node, data) == "execution":
                created = data.get("create_time")
                ident = data.get("id")
                times.append((float(created) if isinstance(created, (int, float)) else
                              float("inf"), ident if isinstance(ident, int) else 0))
    return min(times, default=(float("inf"), 0))


def _edge_lines(graph: nx.MultiDiGraph, where: Mapping[Any, str],
                edge_labels: bool | str) -> list[str]:
    merged: dict[tuple[str, str, str], list[str]] = defaultdict(list)
    order: dict[str, tuple[int, int, str]] = {}
    ends: dict[str, tuple[str, Any]] = {}  # dot id → (kind, type name) of its first node
    for u, v, data in graph.edges(data=True):
        event = str(data.get("event_type") or "")
        merged[(where[u], where[v], event)].append(str(data.get("path") or ""))
        for node in (u, v):
            if where[node] not in order:
                order[where[node]] = _node_sort_key(node)
                node_data = graph.nodes[node]
                ends[where[node]] = (_kind(node, node_data), node_data.get("type_name"))
    # "auto": a path is shown where it tells the ends apart: a step with several inputs
    # (or outputs) of the same type.
    alike: dict[tuple[str, bool, Any], set[str]] = defaultdict(set)
    if edge_labels == "auto":
        for u, v, _event in merged:
            if ends[u][0] == "artifact" and ends[v][0] == "execution":
                alike[(v, True, ends[u][1])].add(u)
            elif ends[u][0] == "execution" and ends[v][0] == "artifact":
                alike[(u, False, ends[v][1])].add(v)

    def telling(u: str, v: str) -> bool:
        if edge_labels != "auto":
            return bool(edge_labels)
        if ends[u][0] == "artifact":
            return len(alike.get((v, True, ends[u][1]), ())) > 1
        return len(alike.get((u, False, ends[v][1]), ())) > 1

    lines = []
    for (u, v, event), paths in sorted(
        merged.items(), key=lambda kv: (order[kv[0][0]], order[kv[0][1]], kv[0])
    ):
        attrs_ = []
        style = _EDGE_STYLES.get(event)
        if style:
            attrs_.append(f"style={style}")
        if event == "PENDING_OUTPUT" or event in ("ASSOCIATION", "ATTRIBUTION", "PARENT"):
            attrs_.append('color="#9ca3af"')
        distinct = sorted(set(paths))
        text = ""
        if len(distinct) == 1 and distinct[0] and telling(u, v):
            text = _text(distinct[0], 24)
        if len(paths) > 1:
            text = (text + " " if text else "") + f"\u00d7{len(paths)}"
        if text:
            attrs_.append(f"label={_table([_font(_esc(text), size=8, color='#4b5563')])}")
        suffix = f" [{', '.join(attrs_)}]" if attrs_ else ""
        lines.append(f"{u} -> {v}{suffix};")
    return lines


def _legend_lines() -> list[str]:
    lines = ["subgraph cluster_legend {",
             f'  label=<{_font("legend", size=9, color="#6b7280")}>; style="rounded"; '
             'color="#d1d5db"; fontname="' + _FONT + '";']
    rows: list[list[tuple[str, _Style, str]]] = [
        [(f"legend_a_{cat}", style, cat) for cat, style in _ARTIFACT_STYLES.items()],
        [(f"legend_e_{state.lower()}", style,
          f"step {state.lower()}" if state != "other" else "step, other state")
         for state, style in _EXECUTION_STYLES.items()],
    ]
    for row in rows:
        for dot_id, style, text in row:
            lines.append(
                f'  {dot_id} [shape={style.shape}, style="{style.style}", '
                f'fillcolor="{style.fill}", color="{style.border}", penwidth={style.penwidth}, '
                f"label={_table([_font(_esc(text), size=9)])}];"
            )
        for left, right in itertools.pairwise([r[0] for r in row]):
            lines.append(f"  {left} -> {right} [style=invis];")
    lines.append("}")
    return lines


_OPTIONS = ("max_nodes", "rankdir", "title", "params", "clusters", "edge_labels", "legend",
            "highlight", "dpi", "fold", "fan_out", "focus", "link")


def to_dot(
    obj: Any,
    *,
    max_nodes: int | None = DEFAULT_MAX_NODES,
    rankdir: str = "LR",
    title: str | None = None,
    params: int = 4,
    clusters: bool = True,
    edge_labels: bool | str = "auto",
    legend: bool = False,
    highlight: Iterable[str] = (),
    dpi: int | None = None,
    fold: bool = True,
    fan_out: int | None = DEFAULT_FAN_OUT,
    focus: bool = True,
    link: Callable[[str], str | None] | None = None,
) -> str:
    """The Graphviz DOT source of a lineage graph or query result (deterministic, ASCII).

    Args:
        obj: a ``networkx`` lineage graph (``store.graph()``), a ``Provenance``, an
            ``Impact``, a ``LineageDiff`` or a ``Verification``.
        max_nodes: collapse repeated structure until at most this many nodes are drawn;
            ``None`` or ``0`` draws every node.
        rankdir: ``"LR"`` (left to right, the default) or ``"TB"`` (top to bottom).
        title: a caption; query results get one by default (``"Provenance of clf v2"``).
        params: how many parameters (metric values) to show per execution (metrics).
        clusters: draw runs as clusters (ordered by time).
        edge_labels: label edges with their event path (``"data"``, ``"examples[0]"``):
            ``"auto"`` (the default) where it tells the ends apart (a step with several
            inputs or outputs of the same type), ``True`` everywhere, ``False`` nowhere.
        legend: add a legend of shapes and colours.
        highlight: graph keys (``"artifact:3"``) to emphasise.
        dpi: resolution of PNG output (Graphviz's default is 96).
        fold: draw each call once: identical re-runs and cache hits become one box with a
            count and its runs (the SVG tooltip lists every execution); ``False`` draws
            every execution.
        fan_out: with ``fold``, a step called this many times or more in one run with
            other params or inputs is drawn as one box with the range of its params;
            ``None`` or ``0`` never.
        focus: with ``fold``, draw the steps of a target (provenance, diff, verification)
            in the runs that made it; other runs are named where a cache hit reused them.
        link: node key (``"artifact:3"``, ``"execution:5"``) → a URL for that node, or
            ``None`` for none; SVG output makes each node drawn for one record a link
            (collapsed groups get none). The web UI links nodes to their pages.

    Raises:
        RenderError: ``obj`` is not something that can be drawn, or an option is wrong.

    Example:
        >>> import networkx as nx
        >>> g = nx.MultiDiGraph()
        >>> g.add_node("artifact:1", kind="artifact", type_name="Dataset",
        ...            base_type="DATASET", name="iris", version=1)
        >>> g.add_node("execution:2", kind="execution", type_name="train", name="train",
        ...            state="COMPLETE", params={"lr": 0.1})
        >>> _ = g.add_edge("artifact:1", "execution:2", event_type="INPUT", path="data")
        >>> dot = to_dot(g)
        >>> "a1 -> e2" in dot and "shape=cylinder" in dot
        True
    """
    if rankdir not in ("LR", "TB", "RL", "BT"):
        raise RenderError(f"rankdir={rankdir!r}: use 'LR' (left to right) or 'TB' (top to bottom)")
    if max_nodes is not None and (not isinstance(max_nodes, int) or max_nodes < 0):
        raise RenderError(f"max_nodes={max_nodes!r}: give a positive number, or None for all")
    if dpi is not None and (not isinstance(dpi, int) or not 24 <= dpi <= 1200):
        raise RenderError(f"dpi={dpi!r}: give a whole number between 24 and 1200")
    if edge_labels not in (True, False, "auto"):
        raise RenderError(f"edge_labels={edge_labels!r}: use 'auto', True or False")
    if fan_out is not None and (not isinstance(fan_out, int) or isinstance(fan_out, bool)
                                or fan_out < 0):
        raise RenderError(f"fan_out={fan_out!r}: give a number of calls (2 or more), or None")
    view = _view_of(obj)
    if title is not None:
        view.title = title
    for key in highlight:
        view.highlight.setdefault(str(key), "highlighted")
    if fold:
        view = _fold_view(view, fan_out if fan_out and fan_out >= 2 else None, focus)
    graph = view.graph
    run_of = _run_resolver(view)
    groups = _groups(graph, max_nodes, keep=set(view.highlight) & set(graph.nodes))
    where: dict[Any, str] = {}
    ids: list[str] = []
    for members in groups:
        dot_id = _dot_id(graph, members)
        ids.append(dot_id)
        for node in members:
            where[node] = dot_id
    in_run = _cluster_names(view, groups, run_of) if clusters else {}

    lines = [
        "// lineage diagram, drawn by lineage.render (deterministic: same store, same DOT)",
        "digraph lineage {",
        f'  graph [rankdir={rankdir}, fontname="{_FONT}", fontsize=12, nodesep=0.25, '
        f'ranksep=0.4, bgcolor="white", pad=0.2, newrank=true{f", dpi={dpi}" if dpi else ""}];',
        f'  node [fontname="{_FONT}", fontsize=10, margin="0.1,0.05"];',
        f'  edge [fontname="{_FONT}", fontsize=8, color="#4b5563", arrowsize=0.7];',
    ]
    heading = ([_font(_esc(_text(view.title, 100)), size=13, bold=True)] if view.title else [])
    heading += [_font(_esc(_text(c, 120)), size=9, color="#4b5563") for c in view.captions]
    if heading:
        lines.append(f"  label={_table(heading)}; labelloc=t; labeljust=l;")
    if legend:
        lines.extend("  " + line for line in _legend_lines())
    by_run: dict[str, list[int]] = defaultdict(list)
    for index, run in in_run.items():
        by_run[run].append(index)
    for number, run in enumerate(sorted(by_run, key=lambda r: (_first_time(graph, groups,
                                                                          by_run[r]), r))):
        lines.append(f"  subgraph cluster_run{number} {{")
        lines.append(
            f"    label={_table([_font(_esc('run: ' + _text(run, 60)), size=10, color='#374151')])}; "
            'style="rounded,dashed"; color="#9ca3af"; bgcolor="#f9fafb"; labeljust=l;'
        )
        for index in sorted(by_run[run]):
            lines.append("    " + _node_line(view, ids[index], groups[index], params, run_of,
                                             link))
        lines.append("  }")
    for index, members in enumerate(groups):
        if index not in in_run:
            lines.append("  " + _node_line(view, ids[index], members, params, run_of, link))
    lines.extend("  " + line for line in _edge_lines(graph, where, edge_labels))
    lines.append("}")
    return "\n".join(lines) + "\n"


def _options(options: Mapping[str, Any]) -> dict[str, Any]:
    unknown = sorted(set(options) - set(_OPTIONS))
    if unknown:
        raise RenderError(f"unknown option(s) {unknown}; render() accepts {list(_OPTIONS)}")
    return dict(options)


def _pipe(source: str, fmt: str) -> bytes:
    try:
        data: bytes = graphviz.Source(source, engine="dot").pipe(format=fmt)
    except graphviz.ExecutableNotFound as exc:
        raise RenderError(_INSTALL_HINT) from exc
    except graphviz.CalledProcessError as exc:
        detail = (exc.stderr or b"").decode("utf-8", "replace").strip() if isinstance(
            exc.stderr, bytes) else str(exc.stderr or exc)
        raise RenderError(f"Graphviz could not draw the diagram as {fmt}: {detail}") from exc
    return data


def to_graphviz(obj: Any, **options: Any) -> graphviz.Source:
    """The diagram as a ``graphviz.Source`` (displays itself in Jupyter; ``.source`` is DOT).

    Example:
        >>> import networkx as nx
        >>> to_graphviz(nx.MultiDiGraph()).source.splitlines()[1]
        'digraph lineage {'
    """
    return graphviz.Source(to_dot(obj, **_options(options)), engine="dot", format="svg")


def to_svg(obj: Any, **options: Any) -> str:
    """The diagram as SVG text (what ``_repr_svg_`` of query results shows in Jupyter).

    Raises:
        RenderError: Graphviz's ``dot`` is not installed, or ``obj`` cannot be drawn.

    Example:
        >>> import networkx as nx
        >>> to_svg(nx.MultiDiGraph()).lstrip().startswith("<?xml")
        True
    """
    return _pipe(to_dot(obj, **_options(options)), "svg").decode("utf-8")


def render(
    obj: Any, path: str | os.PathLike[str] | None = None, format: str | None = None,
    **options: Any,
) -> graphviz.Source | Path:
    """Draw a lineage graph, ``Provenance``, ``Impact``, ``LineageDiff`` or ``Verification``
    with Graphviz.

    Args:
        obj: ``store.graph()``, ``store.provenance(ref)``, ``store.impact(ref)``,
            ``store.diff(a, b)`` or ``store.verify(ref)``.
        path: the file to write; ``None`` returns the ``graphviz.Source`` instead.
        format: ``svg``, ``png``, ``pdf`` or ``dot``; by default taken from the suffix of
            ``path``.
        **options: ``max_nodes``, ``rankdir``, ``title``, ``params``, ``clusters``,
            ``edge_labels``, ``legend``, ``highlight``, ``dpi``, ``fold``, ``fan_out``,
            ``focus`` (see :func:`to_dot`).

    Returns:
        The path written, or the ``graphviz.Source`` when ``path`` is ``None``.

    Raises:
        RenderError: Graphviz's ``dot`` is missing (the message says how to install it),
            the format is unknown, or ``obj`` cannot be drawn.

    Example:
        >>> import lineage, networkx as nx, tempfile, pathlib
        >>> out = pathlib.Path(tempfile.mkdtemp()) / "empty.dot"
        >>> lineage.render(nx.MultiDiGraph(), out).suffix
        '.dot'
        >>> type(lineage.render(nx.MultiDiGraph())).__name__
        'Source'
    """
    opts = _options(options)
    if path is None:
        src = to_graphviz(obj, **opts)
        if format is not None:
            src.format = _format(format, None)
        return src
    target = Path(path)
    fmt = _format(format, target)
    source = to_dot(obj, **opts)
    data = source.encode("ascii") if fmt == "dot" else _pipe(source, fmt)
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(data)
    except OSError as exc:
        raise RenderError(f"cannot write the diagram to {target}: {exc}") from exc
    return target


def _format(format: str | None, path: Path | None) -> str:
    fmt = (format or (path.suffix.lstrip(".") if path is not None else "")).lower()
    fmt = _FORMAT_ALIASES.get(fmt, fmt)
    if fmt == "dot" or fmt in _PIPE_FORMATS:
        return fmt
    where = f" for {path}" if path is not None else ""
    raise RenderError(
        f"unknown diagram format {fmt or '(none)'!r}{where}: use a .svg, .png, .pdf or .dot "
        "file name, or format="
    )


# ``lineage.render`` is this module's ``render`` function (re-exported by the package), so
# ``lineage.render.to_svg`` and friends are reachable from it too.
for _name in ("to_dot", "to_graphviz", "to_svg", "render", "FORMATS", "DEFAULT_MAX_NODES",
              "DEFAULT_FAN_OUT"):
    setattr(render, _name, globals()[_name])
