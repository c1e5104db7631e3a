"""Reading runs and resolving run references: one identity per run, never another run.

A run is one of our ``Run`` contexts, or a run of another convention the queries
understand: TFX's ``pipeline_run`` (child of a ``pipeline`` context), Kubeflow's
``system.PipelineRun``. Its experiment is our ``experiment`` property, else its parent
context's name (the TFX pipeline).

A run reference is:

- a :class:`~lineage.Run`, or its id: an int, ``"context:N"``, or ``"N"``;
- its unique name (``"baseline-2"``: the context name, unique per context type);
- ``"experiment/name"``: the run of that experiment whose unique name, or the name the
  user gave (``run_name``), is ``name``.

A reference that could mean several runs (``"2"`` when run ``2`` is also a context id,
``"iris/baseline"`` when experiment iris ran ``baseline`` twice) is an error listing the
candidates: no reference ever silently means another run.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

from ml_metadata.proto import metadata_store_pb2 as pb

from lineage import _convert
from lineage._schema import EXPERIMENT_TYPE, RUN_TYPE
from lineage.errors import AmbiguousRef, InvalidRef, NotFound
from lineage.records import Execution, Run

if TYPE_CHECKING:
    from lineage.store import Store

__all__ = [
    "clashes",
    "is_run_type",
    "list_runs",
    "param_columns",
    "resolve_run",
    "run_types",
    "step_columns",
]

#: Context types whose children are runs (our experiments, TFX and Kubeflow pipelines).
_PARENT_TYPES = (EXPERIMENT_TYPE, "pipeline", "system.Pipeline")


def is_run_type(type_name: str) -> bool:
    """Our ``Run``, TFX's ``pipeline_run``, Kubeflow's ``system.PipelineRun``.

    Example:
        >>> [is_run_type(t) for t in ("Run", "pipeline_run", "system.PipelineRun", "node")]
        [True, True, True, False]
    """
    return type_name == RUN_TYPE or type_name.lower().replace("_", "").endswith("run")


def run_types(store: Store) -> list[pb.ContextType]:
    """The context types of this store that hold runs."""
    return [t for t in store._call("get_context_types") if is_run_type(t.name)]


def _parents(store: Store, protos: Sequence[pb.Context]) -> dict[int, str]:
    """Run context id → experiment name, for runs without our ``experiment`` property: one
    ``get_children_contexts_by_context`` per pipeline/experiment context (they are few)
    rather than one parent lookup per run."""
    wanted = {p.id for p in protos if not _experiment_property(p)}
    if not wanted:
        return {}
    out: dict[int, str] = {}
    for type_name in _PARENT_TYPES:
        if store._type_named("context", type_name) is None:
            continue
        for parent in store._call("get_contexts_by_type", type_name):
            for child in store._call("get_children_contexts_by_context", parent.id, missing=[]):
                if child.id in wanted:
                    out.setdefault(child.id, parent.name)
    for cid in sorted(wanted - out.keys()):  # a parent of another type: ask each
        found = store._call("get_parent_contexts_by_context", cid, missing=[])
        if found:
            out[cid] = found[0].name
    return out


def _experiment_property(proto: pb.Context) -> str | None:
    value = proto.properties.get("experiment")  # [] would add an empty entry
    return value.string_value or None if value is not None else None


def records(store: Store, protos: Sequence[pb.Context]) -> list[Run]:
    """Run records of contexts, with their experiments (batched, see :func:`_parents`)."""
    types = store._types("context", (p.type_id for p in protos))
    parents = _parents(store, [p for p in protos if p.id])
    return [_convert.context_from_proto(p, types.get(p.type_id), parents.get(p.id))
            for p in protos]


def _run_protos(store: Store) -> list[pb.Context]:
    return [c for t in run_types(store) for c in store._call("get_contexts_by_type", t.name)]


def experiment_context(store: Store, name: str) -> pb.Context | None:
    """The context of an experiment (ours, or a TFX/Kubeflow pipeline) named ``name``."""
    for type_name in _PARENT_TYPES:
        if store._type_named("context", type_name) is None:
            continue
        got = store._call("get_context_by_type_and_name", type_name, name, missing=None)
        if got is not None and got.id and got.name == name:
            return got
    return None


def list_runs(store: Store, experiment: str | None = None, name: str | None = None) -> list[Run]:
    """The runs of every convention, oldest first (see :meth:`lineage.Store.runs`)."""
    if experiment is not None:
        parent = experiment_context(store, experiment)
        protos: list[pb.Context] = [] if parent is None else [
            c for c in store._call("get_children_contexts_by_context", parent.id)
            if _is_run(store, c)]
    else:
        protos = _run_protos(store)
    if name is not None:
        protos = [p for p in protos if name == p.name or (
            "run_name" in p.properties and p.properties["run_name"].string_value == name)]
    runs = records(store, protos)
    if experiment is not None:
        runs = [r for r in runs if r.experiment == experiment]
    return sorted(runs, key=lambda r: (r.create_time or 0, r.id))


def _is_run(store: Store, ctx: pb.Context) -> bool:
    types = store._types("context", [ctx.type_id])
    t = types.get(ctx.type_id)
    return t is not None and is_run_type(t.name)


def _describe(run: Run) -> str:
    where = f" in experiment {run.experiment}" if run.experiment else ""
    named = f" (named {run.run_name!r})" if run.run_name and run.run_name != run.name else ""
    return f"context:{run.id} {run.name!r}{named}{where}"


def resolve_run(store: Store, ref: str | int | Run) -> pb.Context:
    """The context a run reference names (see the module docstring).

    Raises:
        NotFound: nothing matches. AmbiguousRef: several runs match; the message lists
            them. InvalidRef: not a run reference.
    """
    if isinstance(ref, Run):
        ref = ref.id
    if isinstance(ref, bool) or not isinstance(ref, (int, str)):
        raise InvalidRef(f"{ref!r} is not a run reference: use a run name, 'context:12', 12 "
                         "or 'experiment/name'", ref=ref)
    if isinstance(ref, str) and ref.startswith("context:"):
        number = ref.split(":", 1)[1]
        if not number.isdigit():
            raise InvalidRef(f"{ref!r}: expected 'context:<id>'", ref=ref)
        ref = int(number)
    if isinstance(ref, int):
        found = _by_id(store, ref)
        if found is None:
            raise NotFound(f"no run or context with id {ref} in {store.uri}; `lineage ls runs` "
                           "lists them", ref=ref)
        return found
    if not ref:
        raise InvalidRef("an empty string is not a run reference", ref=ref)
    candidates: dict[int, pb.Context] = {}
    for t in run_types(store):
        got = store._call("get_context_by_type_and_name", t.name, ref, missing=None)
        if got is not None and got.id and got.name == ref:
            candidates[got.id] = got
    if ref.isdigit():
        by_id = _by_id(store, int(ref))
        if by_id is not None and _is_run(store, by_id):
            candidates[by_id.id] = by_id
    for cut in [i for i, ch in enumerate(ref) if ch == "/"]:
        experiment, name = ref[:cut], ref[cut + 1:]
        if name:
            for run in list_runs(store, experiment=experiment):
                if name in (run.name, run.run_name):
                    candidates.setdefault(run.id, _by_id(store, run.id) or pb.Context())
    if len(candidates) == 1:
        return next(iter(candidates.values()))
    if candidates:
        runs = records(store, [candidates[k] for k in sorted(candidates)])
        raise AmbiguousRef(
            f"{ref!r} could mean several runs: {'; '.join(map(_describe, runs))}; give one "
            "of these (context:N, or its unique name)", ref=ref)
    shared = list_runs(store, name=ref)
    hint = (f"; runs the user named {ref!r}: " + "; ".join(map(_describe, shared))
            if shared else "")
    raise NotFound(f"no run {ref!r} in {store.uri}{hint}; `lineage ls runs` lists the runs "
                   "(a run is its unique name, context:N, or experiment/name)", ref=ref)


def _by_id(store: Store, context_id: int) -> pb.Context | None:
    if not 0 < context_id < 2**63:
        return None
    found = store._call("get_contexts_by_id", [context_id])
    return found[0] if found else None


def step_columns(executions: Iterable[Execution]) -> dict[str, Any]:
    """The params of a run's steps as columns ``<step>.<param>``: every call shows, the
    second call of a step as ``<step>#2.<param>`` (by execution id), so two Trainers of a
    pipeline run, or a step called once per fold, are never merged or dropped.

    Example:
        >>> from lineage.records import Execution
        >>> calls = [Execution(id=i, type_name="fit", name="fit", state="COMPLETE",
        ...                    params={"k": i}) for i in (1, 2)]
        >>> step_columns(calls)
        {'fit.k': 1, 'fit#2.k': 2}
    """
    out: dict[str, Any] = {}
    calls: dict[str, int] = {}
    for ex in sorted(executions, key=lambda e: e.id):
        calls[ex.name] = calls.get(ex.name, 0) + 1
        label = ex.name if calls[ex.name] == 1 else f"{ex.name}#{calls[ex.name]}"
        for key, value in ex.params.items():
            out[f"{label}.{key}"] = value
    return out


def clashes(run_params: Mapping[str, Any], steps: Mapping[str, Any]) -> set[str]:
    """Run params (config file keys such as ``train.lr``) that would share a column with
    a step's param: they are shown as ``run.<key>`` (see :func:`param_columns`)."""
    return {k for k in run_params if k in steps or k.startswith("run.")}


def param_columns(run_params: Mapping[str, Any], steps: Mapping[str, Any],
                  renamed: set[str] | frozenset[str] = frozenset()) -> dict[str, Any]:
    """A run's params and its steps' params as columns, never sharing one: run params in
    ``renamed`` (or clashing here) become ``run.<key>``.

    Example:
        >>> param_columns({"train.lr": 0.1, "seed": 7}, {"train.lr": 0.05})
        {'run.train.lr': 0.1, 'seed': 7, 'train.lr': 0.05}
    """
    moved = set(renamed) | clashes(run_params, steps)
    out = {(f"run.{k}" if k in moved else k): v for k, v in run_params.items()}
    out.update(steps)
    return out

