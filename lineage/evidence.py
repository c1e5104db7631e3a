"""The evidence behind an artifact, gathered from the store for audits and model cards.

:func:`evidence` answers, for one artifact, what an auditor checks, each part read from
the record (nothing is inferred that the store does not hold):

- **evaluation**: every metric of the evaluations around the artifact (Metrics artifacts
  and metrics logged by steps upstream of it or reading it directly, and its runs' final
  metrics), each with the execution that produced it, the data it was computed on and
  the model it measured;
- **selection**: the other candidates (other versions of the same model in the store)
  with their metrics, and the recorded step that picked this one (the step that read it
  to produce the target, or a deployment that read it) with its params;
- **data**: per dataset its source (a ``source`` property given by the user, else the
  step and code that produced it), shape (``rows``/``columns`` properties, a Statistics
  artifact computed from it, or counted now in a CSV file whose content verified), split
  and the datasheet fields given (licence, description, citation, ...);
- **config**: the runs' params and config files, with warnings when a config file no
  longer matches its recorded fingerprint or a step ran from a dirty git checkout;
- **environment**: the frozen environments the steps ran in (every package, OS, CPU, GPU);
- **previous version** and the lineage diff against it;
- **approvals** recorded for the artifact, with their signatures checked;
- **accountability**: who ran each step and run (OS user, git author, CI job, host);
- **recipe**: the exact re-performance recipe (data versions, git commit, environment,
  command and params).

:meth:`Evidence.facts` is the part a later check can compare with the store (ids,
fingerprints, versions, params, code): see :mod:`lineage.audits`.

Example:
    >>> import lineage
    >>> store = lineage.connect(":memory:")
    >>> m = store.put(lineage.Model(content=b"w", name="clf"))
    >>> ev = lineage.evidence.evidence(store, "clf")
    >>> ev.target.name, ev.previous, ev.evaluation
    ('clf', None, [])
"""

from __future__ import annotations

import csv
import os
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import attrs

from lineage.artifacts import Artifact
from lineage.environment import Environment
from lineage.errors import LineageError
from lineage.records import Execution, Run

if TYPE_CHECKING:
    from lineage.approvals import ApprovalCheck
    from lineage.queries import ArtifactCheck, LineageDiff, Provenance
    from lineage.store import Ref, Store

__all__ = ["DATASHEET_FIELDS", "Evidence", "evidence"]

#: Dataset properties shown as datasheet fields when present (Datasheets for Datasets).
DATASHEET_FIELDS = (
    "source", "license", "licence", "description", "citation", "collection",
    "motivation", "preprocessing", "maintainer", "contact", "datasheet", "sensitive",
)
#: Properties that give a table's shape.
_SHAPE_KEYS = ("rows", "columns", "shape", "num_rows", "num_columns", "n_rows", "n_columns")
#: Largest CSV file whose rows and columns are counted for the report (bytes).
_COUNT_CSV_MAX = 64 * 1024 * 1024
#: Execution params whose name says they hold a selection rule.
_RULE_WORDS = ("rule", "select", "criterion", "criteria", "metric", "policy", "best")


def _ident(a: Artifact) -> int:
    return int(a.id or 0)


def art_dict(a: Artifact) -> dict[str, Any]:
    """An artifact as the evidence shows it: the API shape plus ``ref`` and properties."""
    return {**a.to_dict(), "ref": f"artifact:{_ident(a)}",
            "properties": dict(sorted(a.properties.items()))}


def _is(a: Artifact | None, base: str) -> bool:
    return a is not None and getattr(a, "base_type", None) == base


def _number(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool)


def _run_label(run: Run) -> str:
    name = run.run_name or run.name
    return f"{name} ({run.experiment})" if run.experiment else str(name)


# --- the container ----------------------------------------------------------------------


@attrs.define(eq=False)
class Evidence:
    """What the store holds about one artifact, gathered for an audit (see the module).

    Every list holds plain dicts (JSON-ready, what :meth:`to_dict` returns), each with the
    ``ref`` (``artifact:N``, ``execution:N``, ``context:N``) of the record it comes from.
    """

    target: Artifact
    """The artifact asked about."""
    provenance: Provenance
    """Its provenance (``store.provenance(ref)``)."""
    artifacts: dict[int, Artifact]
    """Every artifact the evidence names, by id."""
    executions: dict[int, Execution]
    """Every execution the evidence names, by id."""
    runs: dict[int, Run]
    """The runs of those executions, by context id."""
    checks: dict[int, ArtifactCheck]
    """Re-verification now, by artifact id (the target and its provenance)."""
    verify_error: str | None
    """Why the content could not be re-verified, if it could not."""
    evaluation: list[dict[str, Any]]
    """One row per metric value: ``metric``, ``value``, ``recorded_as``, ``execution``,
    ``data`` (the datasets it was computed on), ``model``, ``run``."""
    series: list[dict[str, Any]]
    """Logged metric series (curves): ``metric``, ``execution``/``run``, ``points``."""
    selection: list[dict[str, Any]]
    """Per model that was chosen among versions: ``model``, ``candidates``, ``picked_by``."""
    data: list[dict[str, Any]]
    """One row per dataset: ``source``, ``shape``, ``split``, ``datasheet``, ``producer``."""
    config: list[dict[str, Any]]
    """One row per run: ``params``, ``configs`` (file, recorded and current fingerprint)."""
    environments: list[dict[str, Any]]
    """One row per environment the steps ran in, with the steps that ran in it."""
    previous: Artifact | None
    """The previous version of the target, if any."""
    diff: LineageDiff | None
    """The lineage diff from the previous version to the target."""
    approvals: list[ApprovalCheck]
    """Approvals recorded for the target, checked."""
    accountability: list[dict[str, Any]]
    """Who ran each run and step: ``ref``, ``user``, ``git_author``, ``ci``, ``host``."""
    recipe: dict[str, Any]
    """How to re-perform the target: ``data``, ``code``, ``environment``, ``commands``,
    ``steps`` (see :mod:`lineage.reproduce`)."""
    warnings: list[str]
    """What an auditor must know: changed configs, dirty checkouts, changed content."""

    @property
    def steps(self) -> list[Execution]:
        """The executions of the provenance, roots first."""
        return list(self.provenance.steps)

    def check_of(self, artifact_id: int) -> ArtifactCheck | None:
        """The re-verification of one artifact, if it was re-verified."""
        return self.checks.get(artifact_id)

    def facts(self) -> dict[str, Any]:
        """What a report states that the store must still hold: artifacts (type, name,
        version, fingerprint, uri), executions (step, state, params, code) and runs
        (params), by id. JSON-ready, canonical (sorted)."""
        return {
            "format": 1,
            "target": _ident(self.target),
            "artifacts": {str(i): artifact_facts(a) for i, a in sorted(self.artifacts.items())},
            "executions": {str(i): execution_facts(e)
                           for i, e in sorted(self.executions.items())},
            "runs": {str(i): run_facts(r) for i, r in sorted(self.runs.items())},
        }

    def to_dict(self) -> dict[str, Any]:
        """Every section as JSON (what ``lineage audit REF --json`` prints)."""
        from lineage._convert import jsonable as _jsonable

        out: dict[str, Any] = _jsonable({
            "target": art_dict(self.target),
            "provenance": self.provenance.to_dict(),
            "verification": {
                str(i): {"status": c.status, "recorded": c.recorded, "current": c.current,
                         "detail": c.detail}
                for i, c in sorted(self.checks.items())
            },
            "evaluation": self.evaluation,
            "series": self.series,
            "selection": self.selection,
            "data": self.data,
            "config": self.config,
            "environments": self.environments,
            "previous": art_dict(self.previous) if self.previous is not None else None,
            "diff": self.diff.to_dict() if self.diff is not None else None,
            "approvals": [a.to_dict() for a in self.approvals],
            "accountability": self.accountability,
            "recipe": self.recipe,
            "warnings": self.warnings,
        })
        return out


def artifact_facts(a: Artifact) -> dict[str, Any]:
    """The facts of one artifact a report states."""
    return {"type": a.type_name, "name": a.name, "version": a.version,
            "fingerprint": a.fingerprint, "uri": a.uri or ""}


def execution_facts(e: Execution) -> dict[str, Any]:
    """The facts of one execution a report states."""
    from lineage._convert import jsonable as _jsonable

    props = e.properties
    out: dict[str, Any] = _jsonable({
        "step": e.name, "state": e.state, "params": dict(sorted(e.params.items())),
        "source_hash": props.get("source_hash"), "git_commit": props.get("git_commit"),
        "inputs": sorted(e.inputs), "outputs": sorted(e.outputs),
    })
    return out


def run_facts(r: Run) -> dict[str, Any]:
    """The facts of one run a report states."""
    from lineage._convert import jsonable as _jsonable

    out: dict[str, Any] = _jsonable({"name": r.name, "params": dict(sorted(r.params.items()))})
    return out


# --- reading around the provenance ------------------------------------------------------


def _readers(store: Store, artifact_ids: Iterable[int]) -> dict[int, list[Execution]]:
    """artifact id → the executions that read it (INPUT events), oldest first."""
    from ml_metadata.proto import metadata_store_pb2 as pb

    return _by_event(store, artifact_ids, pb.Event.INPUT)


def _by_event(store: Store, artifact_ids: Iterable[int], kind: int) -> dict[int, list[Execution]]:
    """artifact id → the executions with an event of ``kind`` on it, oldest first."""
    ids = sorted(set(artifact_ids))
    if not ids:
        return {}
    events = store._batched("get_events_by_artifact_ids", ids)
    by_art: dict[int, set[int]] = {}
    for ev in events:
        if ev.type == kind:
            by_art.setdefault(ev.artifact_id, set()).add(ev.execution_id)
    execs = store.executions_by_id({e for s in by_art.values() for e in s})
    return {a: sorted((execs[e] for e in s if e in execs), key=lambda x: (x.create_time or 0, x.id))
            for a, s in by_art.items()}


def _runs_of(store: Store, executions: Iterable[Execution], known: Mapping[int, list[Run]]
             ) -> dict[int, list[Run]]:
    """execution id → its runs (from the provenance when known, else read)."""
    from lineage.queries import _contexts_of

    out = {e.id: list(known[e.id]) for e in executions if e.id in known}
    missing = [e for e in executions if e.id not in out]
    if missing:
        protos = store._batched("get_executions_by_id", [e.id for e in missing])
        out.update(_contexts_of(store, protos))
    return {k: [r for r in v if r.type_name != "Experiment"] for k, v in out.items()}


# --- the sections ------------------------------------------------------------------------


def _datasets_of(ex: Execution, arts: Mapping[int, Artifact]) -> list[str]:
    return [f"artifact:{i}" for i in ex.inputs if _is(arts.get(i), "DATASET")]


def _models_of(ex: Execution, arts: Mapping[int, Artifact]) -> list[str]:
    return [f"artifact:{i}" for i in ex.inputs if _is(arts.get(i), "MODEL")]


def _evaluation(
    evaluations: Sequence[Execution], arts: Mapping[int, Artifact],
    runs: Mapping[int, list[Run]], run_records: Mapping[int, Run],
) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    rows: list[dict[str, Any]] = []
    series: list[dict[str, Any]] = []
    seen: set[tuple[int, str]] = set()
    for ex in evaluations:
        run_names = [_run_label(r) for r in runs.get(ex.id, [])]
        base = {"execution": ex.ref, "step": ex.name, "data": _datasets_of(ex, arts),
                "model": _models_of(ex, arts), "run": ", ".join(run_names) or None}
        for out_id in ex.outputs:
            art = arts.get(out_id)
            if not _is(art, "METRICS") or art is None:
                continue
            for key, value in sorted(art.properties.items()):
                if _number(value):
                    rows.append({"metric": key, "value": value, "recorded_as": f"artifact:{out_id}",
                                 **base})
                    seen.add((ex.id, key))
        logged = ex.properties.get("metrics")
        if isinstance(logged, Mapping):
            for key, value in sorted(logged.items()):
                # a value the step also returned in a Metrics artifact is listed once
                if _number(value) and (ex.id, key) not in seen:
                    rows.append({"metric": key, "value": value, "recorded_as": "logged", **base})
                    seen.add((ex.id, key))
        points = ex.properties.get("metric_series")
        if isinstance(points, Mapping):
            for key, pts in sorted(points.items()):
                if isinstance(pts, list) and pts:
                    series.append({"metric": key, "execution": ex.ref, "step": ex.name,
                                   "points": pts})
    by_steps = {r["metric"] for r in rows}  # a run's final metrics roll up its steps'
    for run in sorted(run_records.values(), key=lambda r: r.id):
        final = run.properties.get("metrics")
        if isinstance(final, Mapping):
            for key, value in sorted(final.items()):
                if _number(value) and key not in by_steps:
                    rows.append({"metric": key, "value": value, "recorded_as": "run metric",
                                 "execution": None, "step": None, "data": [], "model": [],
                                 "run": f"{_run_label(run)} context:{run.id}"})
        points = run.properties.get("metric_series")
        if isinstance(points, Mapping):
            for key, pts in sorted(points.items()):
                if isinstance(pts, list) and pts and not any(
                        s["metric"] == key for s in series):
                    series.append({"metric": key, "run": f"context:{run.id}",
                                   "step": None, "execution": None, "points": pts})
    return rows, series


def _metrics_of(ex_list: Sequence[Execution], arts: Mapping[int, Artifact]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for ex in ex_list:
        logged = ex.properties.get("metrics")
        if isinstance(logged, Mapping):
            out.update({k: v for k, v in logged.items() if _number(v)})
        for i in ex.outputs:
            art = arts.get(i)
            if _is(art, "METRICS") and art is not None:
                out.update({k: v for k, v in art.properties.items() if _number(v)})
    return dict(sorted(out.items()))


def _shape_from_csv(path: str) -> dict[str, Any] | None:
    p = Path(path)
    if p.suffix.lower() not in (".csv", ".tsv") or not p.is_file():
        return None
    if p.stat().st_size > _COUNT_CSV_MAX:
        return None
    delimiter = "\t" if p.suffix.lower() == ".tsv" else ","
    try:
        with p.open(newline="", encoding="utf-8", errors="replace") as f:
            reader = csv.reader(f, delimiter=delimiter)
            header = next(reader, None)
            rows = sum(1 for _ in reader)
    except (OSError, csv.Error):
        return None
    if header is None:
        return None
    return {"rows": rows, "columns": len(header), "from": "counted in the verified file"}


def _config_and_warnings(
    store: Store, run_records: Mapping[int, Run], steps: Sequence[Execution],
    arts: dict[int, Artifact], checks: dict[int, ArtifactCheck],
) -> tuple[list[dict[str, Any]], list[str]]:
    from lineage.queries import _check

    rows: list[dict[str, Any]] = []
    warnings: list[str] = []
    config_ids: dict[int, list[tuple[str, int]]] = {}
    for run in run_records.values():
        cfg = run.properties.get("config")
        if isinstance(cfg, Mapping):
            config_ids[run.id] = [(str(k), int(v)) for k, v in cfg.items() if isinstance(v, int)]
    wanted = {i for pairs in config_ids.values() for _n, i in pairs} - set(arts)
    arts.update(store.artifacts_by_id(wanted))
    for run in sorted(run_records.values(), key=lambda r: r.id):
        files = []
        for name, art_id in config_ids.get(run.id, []):
            art = arts.get(art_id)
            if art is None:
                continue
            check = checks.get(art_id) or _check(art)
            checks[art_id] = check
            files.append({"file": name, "artifact": f"artifact:{art_id}", "uri": art.uri,
                          "recorded": art.fingerprint, "current": check.current,
                          "status": check.status})
            if check.status != "ok":
                warnings.append(
                    f"config {name} of run {_run_label(run)} ({check.status}): "
                    f"{check.detail or 'it no longer matches what was recorded'}; the params "
                    "shown are the recorded ones, not the file's current values")
        rows.append({"run": f"context:{run.id}", "name": _run_label(run),
                     "status": run.properties.get("status"),
                     "params": dict(sorted(run.params.items())), "configs": files})
    dirty: dict[str, list[str]] = {}
    for ex in steps:
        if ex.properties.get("git_dirty") is True:
            commit = str(ex.properties.get("git_commit", "?"))
            dirty.setdefault(commit, []).append(f"{ex.name} ({ex.ref})")
    for commit, which in dirty.items():
        warnings.append(
            f"{len(which)} step(s) ran from a git checkout of commit {commit[:12]} with "
            f"uncommitted changes: {', '.join(which)}; the commit alone does not hold the "
            "code that ran (the steps' source hashes, under Steps, say what did)")
    return rows, warnings


def _environments(
    store: Store, executions: Sequence[Execution], run_records: Mapping[int, Run],
    arts: dict[int, Artifact],
) -> list[dict[str, Any]]:
    users: dict[int | None, list[str]] = {}
    for ex in executions:
        env = ex.properties.get("environment")
        users.setdefault(env if isinstance(env, int) else None, []).append(ex.ref)
    for run in run_records.values():
        env = run.properties.get("environment")
        if isinstance(env, int):
            users.setdefault(env, []).append(f"context:{run.id}")
    ids = {i for i in users if i is not None} - set(arts)
    arts.update(store.artifacts_by_id(ids))
    rows = []
    for env_id, refs in sorted(users.items(), key=lambda kv: (kv[0] is None, kv[0] or 0)):
        env = arts.get(env_id) if env_id is not None else None
        if isinstance(env, Environment):
            props = env.properties
            rows.append({
                "environment": f"artifact:{env_id}", "fingerprint": env.fingerprint,
                "python": props.get("python"), "os": props.get("os"),
                "machine": props.get("machine"), "cpu": props.get("cpu"),
                "cpu_count": props.get("cpu_count"), "gpus": props.get("gpus") or [],
                "packages": env.packages, "used_by": refs,
            })
        else:
            ml: dict[str, str] = {}
            python = None
            for ex in executions:
                if ex.ref in refs:
                    got = ex.properties.get("packages")
                    if isinstance(got, Mapping):
                        ml.update({str(k): str(v) for k, v in got.items()})
                    python = python or ex.properties.get("python")
            rows.append({"environment": None, "fingerprint": None, "python": python,
                         "os": None, "machine": None, "cpu": None, "cpu_count": None,
                         "gpus": [], "packages": dict(sorted(ml.items())), "used_by": refs,
                         "note": "no frozen environment recorded: only the versions of the "
                                 "ML packages the step had imported"})
    return rows


def _who(record: Execution | Run) -> dict[str, Any]:
    props = record.properties
    ci = props.get("ci")
    return {"user": props.get("user"), "git_author": props.get("git_author"),
            "ci": dict(ci) if isinstance(ci, Mapping) else None,
            "host": props.get("hostname"), "command": props.get("command")}


def _fold(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Rows that say the same (who, where, how) folded into one listing every record."""
    import json

    out: dict[str, dict[str, Any]] = {}
    for row in rows:
        key = json.dumps({k: v for k, v in row.items() if k not in ("ref", "what")},
                         sort_keys=True, default=str)
        if key in out:
            out[key]["ref"] += f", {row['ref']}"
            if row["what"] not in out[key]["what"].split("; "):
                out[key]["what"] += f"; {row['what']}"
        else:
            out[key] = dict(row)
    return list(out.values())


def _relative(path: str | None, root: str | None) -> str | None:
    if not path:
        return None
    if root:
        try:
            return os.path.relpath(path, root) if Path(path).is_relative_to(root) else path
        except ValueError:
            return path
    return path


def _recipe(
    store: Store, target: Artifact, prov: Provenance, arts: Mapping[int, Artifact],
    run_records: Mapping[int, Run], envs: Sequence[dict[str, Any]],
) -> dict[str, Any]:
    produced = {i for s in prov.steps for i in s.outputs}
    inputs = sorted({i for s in prov.steps for i in s.inputs} - produced)
    has_checkout = callable(getattr(store, "checkout", None))
    data = []
    for i in inputs:
        a = arts.get(i)
        if a is None:
            continue
        ref = f"{a.name}@{a.version}" if a.name and a.version else f"artifact:{i}"
        data.append({"artifact": f"artifact:{i}", "ref": ref, "type": a.type_name,
                     "fingerprint": a.fingerprint, "uri": a.uri,
                     "restore": (f"lineage checkout {ref} -o {a.uri}" if has_checkout and a.uri
                                 else None)})
    code: dict[tuple[str, str], dict[str, Any]] = {}
    commands: dict[str, dict[str, Any]] = {}
    steps = []
    outputs_seen: set[tuple[str, tuple[int, ...]]] = set()
    for s in prov.steps:
        p = s.properties
        key = (s.name, tuple(sorted(s.outputs)))
        if s.state == "CACHED" and key in outputs_seen:
            continue  # a cache hit re-emitting what an earlier call produced: nothing to redo
        outputs_seen.add(key)
        repo, commit = p.get("git_repo"), p.get("git_commit")
        if isinstance(repo, str) and isinstance(commit, str):
            entry = code.setdefault((repo, commit), {"repo": repo, "commit": commit,
                                                      "dirty": False, "steps": []})
            entry["dirty"] = entry["dirty"] or p.get("git_dirty") is True
            entry["steps"].append(s.ref)
        command = p.get("command")
        if isinstance(command, str) and command:
            runs = [f"context:{r.id}" for r in prov.runs.get(s.id, []) if r.type_name == "Run"]
            c = commands.setdefault(command, {"command": command, "cwd_repo": repo,
                                              "runs": [], "steps": []})
            c["steps"].append(s.ref)
            c["runs"] = sorted(set(c["runs"]) | set(runs))
        steps.append({
            "execution": s.ref, "step": s.name, "state": s.state,
            "function": p.get("function"),
            "source_file": _relative(p.get("source_file") or None, repo if isinstance(repo, str) else None),
            "source_hash": p.get("source_hash"), "params": dict(sorted(s.params.items())),
            "cached_from": p.get("cached_from"),
        })
    run_params = {f"context:{r.id}": dict(sorted(r.params.items()))
                  for r in sorted(run_records.values(), key=lambda r: r.id) if r.params}
    env_rows = [e for e in envs if e.get("environment")]
    return {
        "target": {"artifact": f"artifact:{_ident(target)}", "fingerprint": target.fingerprint},
        "data": data,
        "code": list(code.values()),
        "environment": [{"environment": e["environment"], "python": e["python"],
                         "packages": len(e["packages"])} for e in env_rows],
        "commands": list(commands.values()),
        "run_params": run_params,
        "steps": steps,
        "reproduce": f"lineage reproduce artifact:{_ident(target)}",
    }


# --- the entry point -----------------------------------------------------------------------


def evidence(store: Store, ref: Ref) -> Evidence:
    """Gather the evidence of one artifact (see the module docstring).

    Raises:
        NotFound: ``ref`` names nothing.
    """
    from lineage.approvals import approvals_of

    prov = store.provenance(ref)
    target: Artifact = prov.target
    arts: dict[int, Artifact] = {_ident(a): a for a in [target, *prov.artifacts]}
    steps: list[Execution] = list(prov.steps)
    execs: dict[int, Execution] = {s.id: s for s in steps}
    warnings: list[str] = []

    # re-verification now
    checks: dict[int, ArtifactCheck] = {}
    verify_error = None
    try:
        checks = {_ident(c.artifact): c for c in store.verify(ref).results}
    except LineageError as exc:
        verify_error = str(exc)

    # evaluations: executions upstream or reading the target (or an upstream model)
    # that produced Metrics or logged metrics
    models = [a for a in arts.values() if _is(a, "MODEL")]
    readers = _readers(store, [_ident(target), *(_ident(m) for m in models)])
    around = {e.id: e for es in readers.values() for e in es}
    extra = {i for e in around.values() for i in (*e.inputs, *e.outputs)} - set(arts)
    arts.update(store.artifacts_by_id(extra))
    candidates_exec = [*steps, *[e for i, e in sorted(around.items()) if i not in execs]]
    evaluations = [e for e in candidates_exec if e.state in ("COMPLETE", "CACHED") and (
        isinstance(e.properties.get("metrics"), Mapping) or isinstance(
            e.properties.get("metric_series"), Mapping)
        or any(_is(arts.get(i), "METRICS") for i in e.outputs))]
    # a CACHED execution repeats the call it reused: count one of them
    distinct: dict[tuple[Any, ...], Execution] = {}
    for e in evaluations:
        key = (e.name, tuple(sorted(e.inputs)), tuple(sorted(e.outputs)))
        distinct.setdefault(key, e)
    evaluations = list(distinct.values())
    for e in evaluations:
        execs.setdefault(e.id, e)
    runs = _runs_of(store, list(execs.values()), prov.runs)
    run_records: dict[int, Run] = {r.id: r for rs in runs.values() for r in rs
                                   if r.type_name != "Experiment"}
    own_runs = {r.id: r for s in steps for r in runs.get(s.id, [])}
    evaluation, series = _evaluation(evaluations, arts, runs, own_runs)

    # selection: models chosen among versions of the same name
    selection = []
    picked: list[Artifact] = [target] if _is(target, "MODEL") else []
    producers = [s for s in steps if _ident(target) in s.outputs]
    for s in producers:
        picked.extend(arts[i] for i in s.inputs if _is(arts.get(i), "MODEL"))
    seen_models: set[int] = set()
    for model in picked:
        if _ident(model) in seen_models or not model.name:
            continue
        seen_models.add(_ident(model))
        versions = [a for a in store.artifacts(type=model.type_name, name=model.name)
                    if _ident(a) != _ident(model)]
        cand_readers = _readers(store, [_ident(a) for a in versions])
        cand_producers = _producers(store, [_ident(a) for a in versions])
        rows = []
        for a in [model, *versions]:
            readers_of = readers.get(_ident(a), []) if a is model else cand_readers.get(_ident(a), [])
            outs = {i for e in readers_of for i in e.outputs} - set(arts)
            if outs:
                arts.update(store.artifacts_by_id(outs))
            made_by = (cand_producers.get(_ident(a), []) if a is not model
                       else [s for s in steps if _ident(a) in s.outputs])
            for e in made_by:
                execs.setdefault(e.id, e)
            made_runs = _runs_of(store, made_by, prov.runs)
            rows.append({
                "artifact": f"artifact:{_ident(a)}", "name": a.name, "version": a.version,
                "fingerprint": a.fingerprint, "chosen": a is model,
                "produced_by": [e.ref for e in made_by],
                "params": {f"{e.name}.{k}": v for e in made_by for k, v in sorted(e.params.items())},
                "runs": sorted({_run_label(r) for rs in made_runs.values() for r in rs}),
                "metrics": _metrics_of(readers_of, arts),
            })
            arts.setdefault(_ident(a), a)
        pickers = [e for e in readers.get(_ident(model), [])
                   if e.base_type == "DEPLOY" or _ident(target) in e.outputs
                   or any(w in k.lower() for k in e.params for w in _RULE_WORDS)]
        if model is target:
            pickers = [e for e in pickers if e.base_type == "DEPLOY" or any(
                w in k.lower() for k in e.params for w in _RULE_WORDS)]
        for e in pickers:
            execs.setdefault(e.id, e)
        if not versions and not pickers:
            continue  # the only version, picked by nothing recorded: no choice to show
        selection.append({
            "model": f"artifact:{_ident(model)}", "name": model.name, "version": model.version,
            "candidates": rows,
            "picked_by": [{"execution": e.ref, "step": e.name, "state": e.state,
                           "params": dict(sorted(e.params.items())),
                           "rule": {k: v for k, v in sorted(e.params.items())
                                    if any(w in k.lower() for w in _RULE_WORDS)}}
                          for e in pickers],
        })

    # data
    produced_by: dict[int, list[Execution]] = {}
    for s in steps:
        for i in s.outputs:
            produced_by.setdefault(i, []).append(s)
    stats_readers = _readers(store, [_ident(d) for d in prov.datasets])
    stat_outputs = {i for es in stats_readers.values() for e in es for i in e.outputs} - set(arts)
    arts.update(store.artifacts_by_id(stat_outputs))
    data = []
    for d in prov.datasets:
        props = d.properties
        datasheet = {k: props[k] for k in DATASHEET_FIELDS if props.get(k) not in (None, "")}
        producers_of = [p for p in produced_by.get(_ident(d), []) if p.state == "COMPLETE"] or \
            produced_by.get(_ident(d), [])
        producer = producers_of[0] if producers_of else None
        source: dict[str, Any]
        if "source" in datasheet:
            source = {"kind": "given", "text": str(datasheet["source"])}
        elif producer is not None:
            pp = producer.properties
            source = {"kind": "step", "execution": producer.ref, "step": producer.name,
                      "function": pp.get("function"),
                      "source_file": _relative(pp.get("source_file") or None,
                                               pp.get("git_repo") if isinstance(pp.get("git_repo"), str) else None),
                      "source_hash": pp.get("source_hash"), "git_commit": pp.get("git_commit"),
                      "inputs": [f"artifact:{i}" for i in producer.inputs]}
        else:
            source = {"kind": "none", "text": "no source recorded: the data was given as a file "
                      "(record it with source=... on the Dataset)"}
        shape: dict[str, Any] | None = None
        given = {k: props[k] for k in _SHAPE_KEYS if k in props}
        if given:
            shape = {**given, "from": "recorded properties"}
        else:
            for e in stats_readers.get(_ident(d), []):
                for i in e.outputs:
                    st = arts.get(i)
                    if _is(st, "STATISTICS") and st is not None and any(
                            k in st.properties for k in _SHAPE_KEYS):
                        shape = {**{k: st.properties[k] for k in _SHAPE_KEYS if k in st.properties},
                                 "from": f"{st.type_name} {st.name} v{st.version} artifact:{i}"}
                        break
                if shape:
                    break
        check = checks.get(_ident(d))
        if shape is None and check is not None and check.status == "ok" and d.path is not None:
            shape = _shape_from_csv(str(d.path))
        data.append({
            "artifact": f"artifact:{_ident(d)}", "name": d.name, "version": d.version,
            "uri": d.uri, "fingerprint": d.fingerprint, "split": props.get("split"),
            "source": source, "shape": shape, "datasheet": datasheet,
            "root": _ident(d) in prov.roots,
        })

    for c in checks.values():
        if c.status in ("changed", "missing", "unreadable"):
            warnings.append(f"{c.artifact.type_name} {c.artifact.name} v{c.artifact.version} "
                            f"(artifact:{_ident(c.artifact)}) is {c.status} now: {c.detail}")
    config, more_warnings = _config_and_warnings(store, own_runs, steps, arts, checks)
    warnings.extend(more_warnings)

    environments = _environments(store, steps, own_runs, arts)
    if len([e for e in environments if e.get("environment")]) > 1:
        warnings.append(f"the steps ran in {len(environments)} different environments: "
                        "see Environment for what differs")

    previous = diff = None
    if target.previous_version:
        previous = store.artifacts_by_id([target.previous_version]).get(target.previous_version)
        if previous is not None:
            arts.setdefault(_ident(previous), previous)
            try:
                diff = store.diff(previous, target)
            except LineageError as exc:
                warnings.append(f"the diff against the previous version failed: {exc}")

    approvals = approvals_of(store, target)
    for signoff in approvals:
        arts.setdefault(_ident(signoff.approval), signoff.approval)
        if not signoff.ok:
            warnings.append(f"approval artifact:{_ident(signoff.approval)} by {signoff.by}: "
                            f"{signoff.status}: {signoff.detail}")

    all_runs = _runs_of(store, list(execs.values()), prov.runs)
    run_records.update({r.id: r for rs in all_runs.values() for r in rs})
    accountability = _fold([
        {"ref": f"context:{r.id}", "what": f"run {_run_label(r)}", **_who(r)}
        for r in sorted(own_runs.values(), key=lambda r: r.id)
    ] + [{"ref": s.ref, "what": f"step {s.name}", **_who(s)} for s in steps])
    recipe = _recipe(store, target, prov, arts, own_runs, environments)
    return Evidence(
        target=target, provenance=prov, artifacts=arts, executions=execs, runs=run_records,
        checks=checks, verify_error=verify_error, evaluation=evaluation, series=series,
        selection=selection, data=data, config=config, environments=environments,
        previous=previous, diff=diff, approvals=approvals, accountability=accountability,
        recipe=recipe, warnings=warnings,
    )


def _producers(store: Store, artifact_ids: Iterable[int]) -> dict[int, list[Execution]]:
    """artifact id → the executions that wrote it (OUTPUT events), oldest first."""
    from ml_metadata.proto import metadata_store_pb2 as pb

    return _by_event(store, artifact_ids, pb.Event.OUTPUT)
