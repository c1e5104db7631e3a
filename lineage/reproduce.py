"""Re-performance: run the recorded recipe of an artifact again, in a scratch folder, and
compare digests.

:func:`reproduce` (CLI: ``lineage reproduce REF``) takes the provenance of an artifact and,
step by step in topological order:

1. finds the code that ran: the step's function at the recorded git commit (``git
   archive`` into the scratch folder), or the working-tree file when the run was made
   from uncommitted changes, accepted only if the function's source hash is the recorded
   one;
2. restores the data no step produced (the roots) into the scratch folder, from the
   recorded location when its content still matches the fingerprint (or with
   ``store.checkout`` when the store keeps content);
3. calls each step's function in a separate Python process (the same interpreter) with
   the recorded params and the inputs re-made by the steps before it, recording into a
   scratch store, with the scratch copy of the code as the working copy (files a step
   writes next to its code or its inputs land in the scratch folder);
4. compares the fingerprint of every output with the recorded one.

It states plainly which steps could not be re-run and why (no code reference, the code
changed, an input is missing, a param cannot be passed back, the step failed), and, when
digests differ, what differs between the recorded environment and this one.

Nothing is written to the audited store or next to the recorded files (unless a step
writes to absolute paths of its own choosing: the result lists outputs written outside
the scratch folder).
"""

from __future__ import annotations

import ast
import hashlib
import json
import os
import shutil
import subprocess
import sys
import tarfile
import tempfile
import textwrap
from pathlib import Path
from typing import TYPE_CHECKING, Any

import attrs
from ml_metadata.proto import metadata_store_pb2 as pb

from lineage.errors import LineageError

if TYPE_CHECKING:
    from lineage.artifacts import Artifact
    from lineage.records import Execution
    from lineage.store import Ref, Store

__all__ = ["Reproduction", "StepResult", "reproduce"]

_TIMEOUT = 3600


@attrs.define(eq=False)
class StepResult:
    """What happened to one recorded step."""

    execution: str
    """``execution:N``: the recorded execution."""
    step: str
    status: str
    """``same`` (every output has the recorded digest), ``differs``, ``failed`` (the step
    raised), or ``not re-run``."""
    reason: str = ""
    """Why, for anything but ``same``."""
    outputs: list[dict[str, Any]] = attrs.field(factory=list)
    """Per output: ``path``, ``artifact`` (recorded), ``recorded`` and ``now`` digests,
    ``uri`` (where the re-run wrote it)."""

    def to_dict(self) -> dict[str, Any]:
        """JSON shape."""
        return {"execution": self.execution, "step": self.step, "status": self.status,
                "reason": self.reason, "outputs": self.outputs}


@attrs.define(eq=False)
class Reproduction:
    """The result of :func:`reproduce`."""

    target: Artifact
    """The artifact re-performed."""
    folder: Path
    """The scratch folder (code, data, outputs, store)."""
    steps: list[StepResult]
    """One result per distinct recorded step, in topological order."""
    target_status: str
    """``same``, ``differs`` or ``not reproduced``."""
    target_now: str | None
    """The digest the re-run gave the target."""
    environment: dict[str, Any]
    """What differs between the recorded environment and this one (``python``,
    ``os``, ``packages``: name → [recorded, now])."""
    notes: list[str] = attrs.field(factory=list)
    """Other things an auditor must know (code taken from the working tree, …)."""

    @property
    def ok(self) -> bool:
        """Whether the target was re-made with its recorded digest."""
        return self.target_status == "same"

    def to_dict(self) -> dict[str, Any]:
        """JSON shape (what ``lineage reproduce REF --json`` prints)."""
        return {"target": {"artifact": f"artifact:{self.target.id}", "name": self.target.name,
                           "version": self.target.version, "recorded": self.target.fingerprint,
                           "now": self.target_now, "status": self.target_status},
                "ok": self.ok, "folder": str(self.folder),
                "steps": [s.to_dict() for s in self.steps],
                "environment": self.environment, "notes": self.notes}

    def __str__(self) -> str:
        t = self.target
        lines = [f"re-performing {t.type_name} {t.name} v{t.version} (artifact:{t.id}) in "
                 f"{self.folder}"]
        for s in self.steps:
            line = f"  {s.execution:<14} {s.step:<16} {s.status}"
            if s.reason:
                line += f": {s.reason}"
            lines.append(line)
            for o in s.outputs:
                if o.get("recorded") != o.get("now"):
                    lines.append(f"      {o['path']}: recorded {o.get('recorded')}, now {o.get('now')}")
        if self.target_status == "same":
            lines.append(f"SAME: the target was re-made with its recorded digest {t.fingerprint}")
        elif self.target_status == "differs":
            lines.append(f"DIFFERS: the target was re-made with {self.target_now}, recorded "
                         f"{t.fingerprint}")
        else:
            lines.append("NOT REPRODUCED: the target could not be re-made (see the steps above)")
        if self.environment:
            diffs = [f"{k}: {v[0]} -> {v[1]}" for k, v in self.environment.get("packages", {}).items()]
            diffs += [f"{k}: {v[0]} -> {v[1]}" for k, v in self.environment.items() if k != "packages"]
            lines.append("environment differences (recorded -> now): " + ("; ".join(diffs[:12])
                         + (f"; and {len(diffs) - 12} more" if len(diffs) > 12 else "")))
        lines += [f"note: {n}" for n in self.notes]
        return "\n".join(lines)


# --- finding the code ----------------------------------------------------------------------


def _function_source_hash(file: Path, qualname: str) -> str | None:
    """The source hash :func:`lineage._env.code_facts` gives ``qualname`` defined in
    ``file`` (decorators included, dedented), without importing it."""
    try:
        text = file.read_text(encoding="utf-8")
        tree = ast.parse(text)
    except (OSError, SyntaxError, UnicodeDecodeError, ValueError):
        return None
    lines = text.splitlines(keepends=True)
    node: Any = tree
    for part in qualname.split("."):
        found = None
        for child in getattr(node, "body", []):
            if isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)) and \
                    child.name == part:
                found = child
        if found is None:
            return None
        node = found
    start = min([node.lineno, *(d.lineno for d in node.decorator_list)])
    source = textwrap.dedent("".join(lines[start - 1:node.end_lineno]))
    return "sha256:" + hashlib.sha256(source.encode("utf-8")).hexdigest()


def _git_archive(repo: str, commit: str, into: Path) -> str | None:
    """Extract the tree of ``commit`` into ``into``; return why not, or None."""
    into.mkdir(parents=True, exist_ok=True)
    try:
        done = subprocess.run(["git", "-C", repo, "archive", "--format=tar", commit],
                              capture_output=True, timeout=300, check=False)
    except (OSError, subprocess.SubprocessError) as exc:
        return f"git archive failed: {exc}"
    if done.returncode != 0:
        return (f"commit {commit[:12]} is not in {repo}: "
                f"{done.stderr.decode(errors='replace').strip()[:200]}")
    import io

    with tarfile.open(fileobj=io.BytesIO(done.stdout)) as tar:
        tar.extractall(into, filter="data")
    return None


# --- the plan -------------------------------------------------------------------------------


def _event_paths(store: Store, execution_ids: list[int]) -> dict[int, list[dict[str, Any]]]:
    events = store._batched("get_events_by_execution_ids", sorted(set(execution_ids)))
    out: dict[int, list[dict[str, Any]]] = {}
    for ev in events:
        kind = "input" if ev.type == pb.Event.INPUT else "output" if ev.type == pb.Event.OUTPUT \
            else None
        if kind is None:
            continue
        path = [s.key if s.HasField("key") else int(s.index) for s in ev.path.steps]
        out.setdefault(ev.execution_id, []).append(
            {"kind": kind, "artifact": ev.artifact_id, "path": path})
    return out


def _artifact_spec(a: Artifact, local: str | None) -> dict[str, Any]:
    return {"id": a.id, "type": a.type_name, "name": a.name, "uri": local,
            "properties": {k: v for k, v in a.properties.items()
                           if isinstance(v, (str, int, float, bool, dict, list))},
            "fingerprint": a.fingerprint}


def _distinct_steps(steps: list[Execution]) -> list[Execution]:
    seen: set[tuple[str, tuple[int, ...]]] = set()
    out = []
    for s in steps:
        key = (s.name, tuple(sorted(s.outputs)))
        if key in seen:
            continue
        seen.add(key)
        out.append(s)
    return out


def _environment_diff(recorded: dict[str, Any] | None) -> dict[str, Any]:
    from lineage._env import environment_facts

    if not recorded:
        return {}
    now = environment_facts()
    out: dict[str, Any] = {}
    for key in ("python", "os", "machine", "cpu"):
        if recorded.get(key) != now.get(key):
            out[key] = [recorded.get(key), now.get(key)]
    old = recorded.get("packages") or {}
    new = now["packages"]
    packages = {k: [old.get(k), new.get(k)] for k in sorted(set(old) | set(new))
                if old.get(k) != new.get(k)}
    if packages:
        out["packages"] = packages
    return out


def reproduce(
    store: Store, ref: Ref, folder: str | os.PathLike[str] | None = None, *,
    timeout: float = _TIMEOUT,
) -> Reproduction:
    """Re-run the recorded steps behind ``ref`` in a scratch folder; compare digests.

    Args:
        store: the store (read only: nothing is written to it).
        ref: the artifact to re-perform.
        folder: the scratch folder (created; default: a new temporary folder, kept so the
            outputs can be inspected).
        timeout: seconds the re-run may take.

    Raises:
        NotFound: ``ref`` names nothing.
    """
    from lineage.environment import environment_of

    prov = store.provenance(ref)
    target = prov.target
    scratch = Path(folder) if folder is not None else Path(tempfile.mkdtemp(prefix="lineage-reproduce-"))
    scratch.mkdir(parents=True, exist_ok=True)
    steps = _distinct_steps(list(prov.steps))
    events = _event_paths(store, [s.id for s in steps])
    arts: dict[int, Artifact] = {int(a.id or 0): a for a in [target, *prov.artifacts]}
    produced = {e["artifact"] for s in steps for e in events.get(s.id, []) if e["kind"] == "output"}
    notes: list[str] = []
    results: dict[int, StepResult] = {}

    # code: one scratch tree per (repo, commit)
    trees: dict[tuple[str, str], Path | str] = {}
    plan_steps: list[dict[str, Any]] = []
    copies: dict[Path, Path] = {}
    for s in steps:
        p = s.properties
        result = StepResult(s.ref, s.name, "not re-run")
        function = p.get("function")
        if not s.ours or not isinstance(function, str) or "." not in function:
            result.reason = "not recorded by a lineage step: no function to call"
            results[s.id] = result
            continue
        if s.state not in ("COMPLETE", "CACHED"):
            result.reason = f"the recorded execution is {s.state}: it produced nothing to compare"
            results[s.id] = result
            continue
        flattened = [k for k in s.params if "." in k]
        if flattened:
            result.reason = (f"params {', '.join(flattened[:3])} were flattened from an object "
                             "and cannot be passed back")
            results[s.id] = result
            continue
        module, _, qualname = function.partition(".")
        while qualname and "." in qualname and module and not qualname.split(".")[0][:1].isupper():
            # pipeline.sub.func: module names may have dots; try the longest module prefix
            head, _, rest = qualname.partition(".")
            module, qualname = f"{module}.{head}", rest
        source_file = p.get("source_file") or p.get("script")
        recorded_hash = p.get("source_hash")
        repo, commit = p.get("git_repo"), p.get("git_commit")
        candidates: list[tuple[str, Path]] = []
        if isinstance(repo, str) and isinstance(commit, str) and isinstance(source_file, str):
            key = (repo, commit)
            if key not in trees:
                where = scratch / "code" / f"{len(trees)}"
                why = _git_archive(repo, commit, where)
                trees[key] = where if why is None else why
            tree = trees[key]
            try:
                rel = Path(source_file).resolve().relative_to(Path(repo).resolve())
            except ValueError:
                rel = None
            if isinstance(tree, Path) and rel is not None:
                candidates.append((f"commit {commit[:12]}", tree / rel))
            if isinstance(tree, Path) and rel is not None and Path(source_file).is_file():
                candidates.append(("the working tree", Path(source_file)))
        elif isinstance(source_file, str) and Path(source_file).is_file():
            candidates.append(("the working tree", Path(source_file)))
        chosen = None
        for label, file in candidates:
            if file.is_file() and _function_source_hash(file, qualname) == recorded_hash:
                chosen = (label, file)
                break
        if chosen is None:
            places = " or ".join(label for label, _ in candidates) or "no recorded file"
            result.reason = (f"the recorded code of {function} (source {recorded_hash}) is not in "
                             f"{places}: the code changed, or was never committed")
            if isinstance(repo, str) and isinstance(commit, str) and isinstance(trees.get((repo, commit)), str):
                result.reason += f" ({trees[(repo, commit)]})"
            results[s.id] = result
            continue
        label, file = chosen
        if label == "the working tree":
            tree_root = trees.get((str(repo), str(commit))) if isinstance(repo, str) else None
            if isinstance(tree_root, Path) and isinstance(repo, str):
                rel = Path(source_file).resolve().relative_to(Path(repo).resolve())  # type: ignore[arg-type]
                (tree_root / rel).parent.mkdir(parents=True, exist_ok=True)
                shutil.copy2(file, tree_root / rel)  # overlay: the scratch copy is the code
                file = tree_root / rel
            else:  # no git: a scratch copy of the file's folder (its Python files)
                folder_copy = copies.get(file.parent)
                if folder_copy is None:
                    folder_copy = copies[file.parent] = scratch / "code" / f"wt{len(copies)}"
                    folder_copy.mkdir(parents=True, exist_ok=True)
                    for sibling in file.parent.glob("*.py"):
                        shutil.copy2(sibling, folder_copy / sibling.name)
                file = folder_copy / file.name
            why = ("the run was made from uncommitted changes" if isinstance(commit, str)
                   else "it is in no git commit")
            note = (f"the code of {Path(str(source_file)).name} was taken from the working tree "
                    f"({why}; the source hashes of its steps match the record)")
            if note not in notes:
                notes.append(note)
        ev_list = events.get(s.id, [])
        missing_outputs = {e["artifact"] for e in ev_list} - set(arts)
        if missing_outputs:
            arts.update(store.artifacts_by_id(missing_outputs))
        ev_list = [{**e, "fingerprint": getattr(arts.get(e["artifact"]), "fingerprint", None)}
                   for e in ev_list]
        if module == "__main__":
            module = f"_lineage_reproduced_{file.stem}"
        plan_steps.append({
            "execution": s.id, "ref": s.ref, "step": s.name, "module": module,
            "qualname": qualname, "file": str(file), "params": s.params,
            "inputs": [e for e in ev_list if e["kind"] == "input"],
            "outputs": [e for e in ev_list if e["kind"] == "output"],
        })
        results[s.id] = result

    # data: inputs no re-run step produces
    roots: dict[str, Any] = {}
    for st in plan_steps:
        for e in st["inputs"]:
            a_id = e["artifact"]
            if a_id in produced or str(a_id) in roots:
                continue
            a = arts.get(a_id) or store.artifacts_by_id([a_id]).get(a_id)
            if a is None:
                roots[str(a_id)] = {"missing": f"artifact:{a_id} is not in the store"}
                continue
            roots[str(a_id)] = _restore(store, a, scratch / "data" / str(a_id))

    env_rec = None
    env_ids = sorted({x for s in steps if isinstance(x := s.properties.get("environment"), int)})
    if env_ids:
        env = environment_of(store, env_ids[0])
        if env is not None:
            env_rec = dict(env.properties)
    environment = _environment_diff(env_rec)

    plan: dict[str, Any] = {"steps": plan_steps, "roots": roots, "store": str(scratch / "store" / "metadata.sqlite"),
            "scratch": str(scratch)}
    plan_file = scratch / "plan.json"
    plan_file.write_text(json.dumps(plan, indent=1, default=str))
    outcome: dict[str, Any] = {}
    if plan_steps:
        cwd = Path(plan_steps[0]["file"]).parent
        env_vars = {**os.environ, "LINEAGE_URI": str(plan["store"]), "PYTHONHASHSEED": "0"}
        try:
            done = subprocess.run(
                [sys.executable, "-m", "lineage.reproduce", str(plan_file)],
                cwd=cwd, env=env_vars, capture_output=True, text=True, timeout=timeout,
                check=False)
            (scratch / "worker.log").write_text(done.stdout + done.stderr)
            if (scratch / "result.json").exists():
                outcome = json.loads((scratch / "result.json").read_text())
            else:
                notes.append("the re-run process ended without a result: "
                             + (done.stderr.strip().splitlines() or ["no output"])[-1][:300])
        except subprocess.TimeoutExpired:
            notes.append(f"the re-run took longer than {timeout:.0f} s and was stopped")

    for st in plan_steps:
        got = outcome.get(str(st["execution"]))
        result = results[st["execution"]]
        if got is None:
            result.reason = result.reason or "not reached (an earlier step could not run)"
            continue
        result.status = got["status"]
        result.reason = got.get("reason", "")
        result.outputs = got.get("outputs", [])
        for o in result.outputs:
            uri = o.get("uri") or ""
            if uri and not Path(uri).resolve().is_relative_to(scratch.resolve()):
                notes.append(f"{st['ref']} wrote {o['path']} to {uri}, outside the scratch folder")
    if any(r.status == "differs" for r in results.values()) and not environment and env_rec:
        notes.append("the environment is the recorded one: the differences come from the code "
                     "being non-deterministic (time, randomness without a seed, ordering)")
    target_now = None
    for r in results.values():
        for o in r.outputs:
            if o.get("artifact") == target.id:
                target_now = o.get("now")
    if target_now is None:
        status = "not reproduced"
    else:
        status = "same" if target_now == target.fingerprint else "differs"
    return Reproduction(target=target, folder=scratch, steps=[results[s.id] for s in steps],
                        target_status=status, target_now=target_now, environment=environment,
                        notes=notes)


def _restore(store: Store, a: Artifact, into: Path) -> dict[str, Any]:
    """Copy a root input into the scratch folder if its content is the recorded one."""
    from lineage.fingerprint import fingerprint

    spec = _artifact_spec(a, None)
    path = a.path
    if path is None:
        spec["uri"] = a.uri or None  # in-memory (or remote) content: passed as recorded
        return spec
    p = Path(path)
    if p.exists() and a.fingerprint:
        try:
            ok = fingerprint(p, algo=a.fingerprint.split(":", 1)[0], progress=False) == a.fingerprint
        except LineageError:
            ok = False
        if ok:
            into.mkdir(parents=True, exist_ok=True)
            local = into / p.name
            if p.is_dir():
                shutil.copytree(p, local, dirs_exist_ok=True)
            else:
                shutil.copy2(p, local)
            spec["uri"] = str(local)
            return spec
    checkout = getattr(store, "checkout", None)
    if callable(checkout):
        try:
            into.mkdir(parents=True, exist_ok=True)
            local = into / (p.name or f"artifact-{a.id}")
            checkout(a, local)
            spec["uri"] = str(local)
            return spec
        except LineageError as exc:
            return {"missing": f"artifact:{a.id} at {p} changed or is gone, and the store could "
                               f"not restore it: {exc}"}
    why = "is gone" if not p.exists() else "changed since it was recorded"
    return {"missing": f"the input {a.type_name} {a.name} v{a.version} (artifact:{a.id}) at {p} "
                       f"{why}, and the store keeps no copy to restore"}


# --- the worker (a separate process) --------------------------------------------------------


def _worker(plan_file: Path) -> int:  # pragma: no cover - runs in a child process
    import importlib.util

    import lineage
    from lineage.artifacts import Metrics, artifact_class
    from lineage.steps import _outputs

    plan = json.loads(plan_file.read_text())
    scratch = Path(plan["scratch"])
    store = lineage.connect(plan["store"])
    made: dict[int, Any] = {}
    for key, spec in plan["roots"].items():
        if "missing" in spec:
            continue
        cls = artifact_class(spec["type"])
        props = dict(spec["properties"])
        if issubclass(cls, Metrics) and not spec["uri"]:
            made[int(key)] = Metrics({k: v for k, v in props.items()
                                      if isinstance(v, (int, float)) and not isinstance(v, bool)},
                                     name=spec["name"])
        elif spec["uri"]:
            made[int(key)] = cls(spec["uri"], name=spec["name"], **{
                k: v for k, v in props.items() if k in cls.property_types or k not in ("content",)})
    results: dict[str, Any] = {}
    modules: dict[str, Any] = {}
    with lineage.run("reproduce", experiment="reproduce", store=store):
        for st in plan["steps"]:
            missing = [e for e in st["inputs"] if e["artifact"] not in made]
            if missing:
                why = [plan["roots"].get(str(e["artifact"]), {}).get("missing")
                       or f"artifact:{e['artifact']} was not re-made" for e in missing]
                results[str(st["execution"])] = {"status": "not re-run",
                                                 "reason": "; ".join(dict.fromkeys(why))}
                continue
            try:
                file = st["file"]
                mod = modules.get(file)
                if mod is None:
                    sys.path.insert(0, str(Path(file).parent))
                    spec = importlib.util.spec_from_file_location(st["module"], file)
                    assert spec is not None and spec.loader is not None
                    mod = importlib.util.module_from_spec(spec)
                    sys.modules[st["module"]] = mod
                    spec.loader.exec_module(mod)
                    modules[file] = mod
                func: Any = mod
                for part in st["qualname"].split("."):
                    func = getattr(func, part)
                step_spec = getattr(func, "__lineage_step__", None)
                if step_spec is not None:
                    step_spec.store = None  # record into the scratch run, never elsewhere
                    step_spec.cache = False
                kwargs: dict[str, Any] = dict(st["params"])
                for e in st["inputs"]:
                    path, art = e["path"], made[e["artifact"]]
                    if len(path) == 1:
                        kwargs[path[0]] = art
                    elif isinstance(path[1], int):
                        kwargs.setdefault(path[0], [])
                        while len(kwargs[path[0]]) <= path[1]:
                            kwargs[path[0]].append(None)
                        kwargs[path[0]][path[1]] = art
                    else:
                        kwargs.setdefault(path[0], {})[path[1]] = art
                result = func(**kwargs)
            except Exception as exc:
                results[str(st["execution"])] = {"status": "failed",
                                                 "reason": f"{type(exc).__name__}: {exc}"[:500]}
                continue
            _shape, produced = _outputs(result)
            by_path = {json.dumps(p): a for p, a in produced}
            outputs = []
            same = True
            for e in st["outputs"]:
                art = by_path.get(json.dumps(e["path"]))
                recorded = e.get("fingerprint")
                if art is None:
                    outputs.append({"path": _path_text(e["path"]), "artifact": e["artifact"],
                                    "recorded": recorded, "now": None, "uri": None})
                    same = False
                    continue
                if art.id is None:
                    store.put(art)
                made[e["artifact"]] = art
                outputs.append({"path": _path_text(e["path"]), "artifact": e["artifact"],
                                "recorded": recorded, "now": art.fingerprint,
                                "uri": str(art.uri or "")})
                same = same and art.fingerprint == recorded
            results[str(st["execution"])] = {
                "status": "same" if same else "differs",
                "reason": "" if same else "an output's digest differs from the recorded one",
                "outputs": outputs}
    (scratch / "result.json").write_text(json.dumps(results, indent=1, default=str))
    return 0


def _path_text(path: list[Any]) -> str:
    out = ""
    for part in path:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out


if __name__ == "__main__":  # pragma: no cover - the worker process
    raise SystemExit(_worker(Path(sys.argv[1])))
