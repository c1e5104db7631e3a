"""A Model Card (Mitchell et al., "Model Cards for Model Reporting") in Markdown, filled
from the record.

Every section of the original proposal is there. What the store knows is filled in
(details of the model and how it was trained, metrics with the data behind each number,
training and evaluation data with their sources and shapes, the candidates it was chosen
from, the environment, approvals, warnings); what only a person can write (intended use,
factors, ethical considerations, licence, contact) is marked ``TO DO`` with the question
to answer. Properties the user recorded on the model (``license``, ``intended_use``,
``contact``, ...) fill the matching fields instead.

Example:
    >>> import lineage
    >>> store = lineage.connect(":memory:")
    >>> m = store.put(lineage.Model(content=b"w", name="clf", license="MIT"))
    >>> card = store.export("clf", "model-card").document
    >>> card.splitlines()[0], "TO DO" in card, "MIT" in card
    ('# Model card: clf v1', True, True)
"""

from __future__ import annotations

import datetime as _dt
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from lineage.evidence import Evidence
    from lineage.store import Ref, Store

__all__ = ["TODO", "model_card"]

#: The marker of what a person must write.
TODO = "TO DO"

#: Model properties that fill a field of the card (property → field).
_FIELDS = {
    "license": "Licence", "licence": "Licence", "citation": "Citation",
    "contact": "Contact", "owner": "Owners", "owners": "Owners", "description": "Description",
    "intended_use": "Intended use", "out_of_scope": "Out-of-scope uses",
    "ethical_considerations": "Ethical considerations", "caveats": "Caveats",
}


def _text(value: Any) -> str:
    """Plain text for a Markdown cell or line: no line breaks, no table pipes, no HTML."""
    if value is None:
        return "\u2014"
    if isinstance(value, float):
        text = f"{value:.6g}"
    elif isinstance(value, Mapping):
        text = ", ".join(f"{k}={_text(v)}" for k, v in value.items())
    elif isinstance(value, (list, tuple)):
        text = ", ".join(_text(v) for v in value)
    else:
        text = str(value)
    text = " ".join(text.split())
    for char, escaped in (("\\", "\\\\"), ("|", "\\|"), ("<", "&lt;"), (">", "&gt;"),
                          ("`", "\\`"), ("*", "\\*"), ("_", "\\_"), ("[", "\\["), ("]", "\\]")):
        text = text.replace(char, escaped)
    return text


def _todo(question: str) -> str:
    return f"**{TODO}:** {question}"


def _when(seconds: Any) -> str | None:
    if not isinstance(seconds, (int, float)) or isinstance(seconds, bool) or seconds <= 0:
        return None
    return _dt.datetime.fromtimestamp(float(seconds), tz=_dt.timezone.utc).strftime(
        "%Y-%m-%d %H:%M UTC")


def _table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> list[str]:
    if not rows:
        return []
    return ["| " + " | ".join(header) + " |", "|" + " --- |" * len(header),
            *("| " + " | ".join(r) + " |" for r in rows), ""]


def _dataset_rows(ev: Evidence, ids: Sequence[str]) -> list[list[str]]:
    from lineage.report import _shape_text, _source_text

    by_ref = {d["artifact"]: d for d in ev.data}
    rows = []
    for ref in ids:
        d = by_ref.get(ref)
        art = ev.artifacts.get(int(ref.split(":", 1)[1]))
        if d is None and art is None:
            continue
        if d is None:
            assert art is not None
            rows.append([ref, _text(f"{art.name} v{art.version}"), _text(art.properties.get("split")),
                         "\u2014", "\u2014", _text(art.fingerprint)])
            continue
        rows.append([ref, _text(f"{d['name']} v{d['version']}"), _text(d.get("split")),
                     _text(_shape_text(d.get("shape"))), _text(_source_text(d["source"])),
                     _text(d.get("fingerprint"))])
    return rows


def _card(ev: Evidence, store_uri: str) -> str:
    t = ev.target
    props = t.properties
    given = {field: props[key] for key, field in _FIELDS.items() if props.get(key)}
    prov = ev.provenance
    producers = [s for s in prov.steps if t.id in s.outputs]
    trainers = [s for s in prov.steps if s.base_type == "TRAIN"] or producers
    models = [a for a in prov.artifacts if getattr(a, "base_type", None) == "MODEL"]
    algorithm = props.get("algorithm") or next(
        (m.properties.get("algorithm") for m in models if m.properties.get("algorithm")), None)
    finished = max((s.properties.get("end_time") or 0 for s in producers), default=None)
    who = ev.accountability[0] if ev.accountability else {}
    lines = [
        f"# Model card: {_text(t.name)} v{_text(t.version)}",
        "",
        f"Filled by lineage from the record of the store {_text(store_uri)} on "
        f"{_dt.datetime.now(_dt.timezone.utc).strftime('%Y-%m-%d')}. Sections and fields marked "
        f"**{TODO}** need a person; everything else is read from the record and can be "
        "checked with `lineage audit` and `lineage verify`.",
        "",
        "## Model details",
        "",
        f"- **Name and version:** {_text(t.name)} v{_text(t.version)} (artifact:{t.id}, "
        f"type {_text(t.type_name)})",
        f"- **Fingerprint:** {_text(t.fingerprint)}; **location:** {_text(t.uri or None)}",
        f"- **Model type / algorithm:** {_text(algorithm) if algorithm else _todo('what kind of model is this?')}",
        f"- **Date:** {_text(_when(finished)) if finished else _todo('when was it made?')}",
    ]
    for s in trainers:
        lines.append(f"- **Trained by:** step {_text(s.name)} (execution:{s.id}, "
                     f"{_text(s.properties.get('function'))}) with params {_text(s.params) or 'none'}")
    if who:
        lines.append(f"- **Recorded by:** {_text(who.get('user'))} (git author "
                     f"{_text(who.get('git_author'))}, host {_text(who.get('host'))}"
                     + (f", CI {_text(who['ci'])}" if who.get("ci") else "") + ")")
    if ev.previous is not None:
        lines.append(f"- **Previous version:** v{_text(ev.previous.version)} "
                     f"(artifact:{ev.previous.id})")
    for field in ("Description", "Owners", "Licence", "Citation", "Contact"):
        lines.append(f"- **{field}:** " + (_text(given[field]) if field in given else
                                           _todo(f"{field.lower()}?")))
    lines += ["", "## Intended use", ""]
    lines.append("- **Primary intended uses:** " + (_text(given["Intended use"]) if
                 "Intended use" in given else _todo("what is it for, and for whom?")))
    lines.append("- **Out-of-scope uses:** " + (_text(given["Out-of-scope uses"]) if
                 "Out-of-scope uses" in given else _todo("what must it not be used for?")))
    lines += ["", "## Factors", "",
              _todo("which groups, instruments and environments matter for this model, and "
                    "which were evaluated? The record holds the splits and data sources below, "
                    "not who or what the data represents."), ""]
    lines += ["## Metrics", ""]
    names = sorted({r["metric"] for r in ev.evaluation})
    lines.append(f"Recorded metrics: {_text(', '.join(names)) if names else 'none'}. "
                 + _todo("why these metrics, and which decision thresholds apply?"))
    lines += ["", "## Evaluation data", ""]
    eval_data = sorted({d for r in ev.evaluation if r.get("model") or r["recorded_as"] != "logged"
                        for d in r.get("data") or []})
    rows = _dataset_rows(ev, eval_data)
    lines += _table(["id", "dataset", "split", "shape", "source", "fingerprint"], rows) or \
        ["No evaluation data is recorded.", ""]
    lines += ["## Training data", ""]
    train_data = sorted({f"artifact:{i}" for s in trainers for i in s.inputs
                         if getattr(ev.artifacts.get(i), "base_type", None) == "DATASET"}
                        | {d["artifact"] for d in ev.data if d.get("root")})
    lines += _table(["id", "dataset", "split", "shape", "source", "fingerprint"],
                    _dataset_rows(ev, train_data)) or ["No training data is recorded.", ""]
    datasheets = [d for d in ev.data if d["datasheet"]]
    for d in datasheets:
        lines.append(f"- {_text(d['name'])}: {_text(d['datasheet'])}")
    if datasheets:
        lines.append("")
    lines += ["## Quantitative analyses", ""]
    lines += _table(["metric", "value", "computed by", "on data", "model"],
                    [[_text(r["metric"]), _text(r["value"]),
                      _text(f"{r['step']} ({r['execution']})" if r.get("execution") else r.get("run")),
                      _text(", ".join(r.get("data") or []) or None),
                      _text(", ".join(r.get("model") or []) or None)]
                     for r in ev.evaluation]) or ["No metric is recorded.", ""]
    for sel in ev.selection:
        lines.append(f"Chosen among {len(sel['candidates'])} version(s) of {_text(sel['name'])}:")
        lines.append("")
        lines += _table(["id", "version", "", "metrics", "params"],
                        [[c["artifact"], _text(c["version"]),
                          "chosen" if c["chosen"] else "candidate", _text(c["metrics"]),
                          _text(c["params"])] for c in sel["candidates"]])
        picked = "; ".join(f"step {p['step']} ({p['execution']}) {_text(p['rule'] or p['params'])}"
                           for p in sel["picked_by"])
        lines += [f"Picked by: {_text(picked) if picked else 'not recorded'}.", ""]
    lines.append(_todo("results per factor (subgroup), and their uncertainty."))
    lines += ["", "## Ethical considerations", "",
              _text(given["Ethical considerations"]) if "Ethical considerations" in given else
              _todo("sensitive data, risks and harms, mitigations, use cases to avoid."), ""]
    lines += ["## Caveats and recommendations", ""]
    for w in ev.warnings:
        lines.append(f"- From the record: {_text(w)}")
    lines.append("- " + (_text(given["Caveats"]) if "Caveats" in given else
                         _todo("known limitations and recommendations for users.")))
    lines += ["", "## Provenance and verification", ""]
    for env in ev.environments:
        if env.get("environment"):
            lines.append(f"- **Environment:** {env['environment']}: {_text(env.get('python'))} on "
                         f"{_text(env.get('os'))}, CPU {_text(env.get('cpu'))}, GPUs "
                         f"{_text(env.get('gpus') or 'none found')}, "
                         f"{len(env.get('packages') or {})} packages")
    for code in ev.recipe["code"]:
        lines.append(f"- **Code:** git commit {_text(code['commit'])}"
                     + (" (with uncommitted changes)" if code["dirty"] else ""))
    if ev.approvals:
        for a in ev.approvals:
            d = a.to_dict()
            lines.append(f"- **Approved** by {_text(d['by'])} on {_text(d['time'])}"
                         + (f" ({_text(d['note'])})" if d["note"] else "")
                         + f": {_text(a.status)}")
    else:
        lines.append("- **Approvals:** none recorded (`lineage approve REF --by NAME`)")
    lines.append(f"- Check it: `lineage verify artifact:{t.id}`, `lineage audit artifact:{t.id} "
                 f"-o audit.html`, `lineage attest artifact:{t.id} -o model.intoto.json --key "
                 f"key.pem`, `lineage reproduce artifact:{t.id}`.")
    lines.append("")
    return "\n".join(lines)


def model_card(store: Store, ref: Ref) -> str:
    """The Model Card (Markdown) of an artifact, filled from the record."""
    from lineage.evidence import evidence

    return _card(evidence(store, ref), store.uri)
