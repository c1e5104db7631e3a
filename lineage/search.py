"""Run search: list runs with their status, times, params and final metrics; filter and sort.

``store.search_runs(...)`` (and ``lineage ls runs``) reads runs through the store's own
reads and answers a :class:`RunSearch`: one :class:`RunSummary` per run.

- **Keys.** ``name``, ``run_name``, ``experiment``, ``status``, ``start``, ``end``,
  ``duration`` and ``id`` are fields of every run. Any other key names a final metric if a
  run logged it (``f1``), else a param: the run's own (``lr``, config values such as
  ``train.lr``) or a step's, as ``<step>.<param>`` (``train.lr``), as ``compare`` shows
  them. ``metrics.f1`` and ``params.lr`` say which one explicitly. ``tags.KEY`` is a tag
  of the run and ``note`` its note (``lineage tag``, ``lineage note``; read in one more
  call when a filter or the sort names them), unless a metric or param has that name.
- **Filters** (``where``): ``KEY OP VALUE`` with ``=`` (or ``==``), ``!=``, ``<``,
  ``<=``, ``>``, ``>=``. Numbers compare as numbers (``C=1`` matches ``1.0``), ``true`` /
  ``false`` as booleans, anything else (quotes optional) as text; ``start`` and ``end``
  also take an ISO date (``start>=2025-01-31``). A run without the key never matches.
  Several filters must all hold. A key that no run has is an error, not an empty answer.
- **Sort**: ``KEY`` (lowest first) or ``-KEY`` (highest first, e.g. ``-f1`` = best
  first); runs without the key come last either way. Without a sort, runs come in the
  order they were recorded.

Cost: the runs are one read (``store.runs()``); final metrics and run params are
properties of the run context. Step params cost one ``get_executions_by_context`` call
per run (MLMD has no batched form of it), made only for the runs returned, or for every
candidate run when a filter or the sort needs a step param. With no filter and no sort
(or ``id`` / ``-id``) and a ``limit``, only the newest (or oldest) contexts are read, so a
page of the newest runs costs the same in a small and in a big store.
"""

from __future__ import annotations

import datetime
import math
import re
from collections.abc import Iterable, Iterator, Sequence
from typing import TYPE_CHECKING, Any

import attrs
from ml_metadata.metadata_store import metadata_store

from lineage import _convert, _runref, _text
from lineage._schema import EXPERIMENT_TYPE, RUN_TYPE
from lineage.errors import NotFound, SearchError
from lineage.records import Run

if TYPE_CHECKING:
    import pandas

    from lineage.store import Store

__all__ = [
    "Filter", "RunSearch", "RunSummary", "experiments", "parse_filter", "parse_sort",
    "search_runs",
]

#: Keys every run has (``start`` and ``end`` are seconds since the epoch).
FIELDS = ("id", "name", "run_name", "experiment", "status", "start", "end", "duration")
_ALIASES = {"start_time": "start", "end_time": "end", "ref": "id"}
_OPS = ("==", "!=", "<=", ">=", "=", "<", ">")
_FILTER = re.compile(r"^\s*(?P<key>[^<>=!]*?)\s*(?P<op>==|!=|<=|>=|=|<|>)\s*(?P<value>.*?)\s*$",
                     re.S)
_MISSING: Any = object()


# --- records --------------------------------------------------------------------------------


@attrs.define(eq=False)
class RunSummary:
    """One run as a search shows it: status, times, params and final metrics.

    Example:
        >>> r = RunSummary(id=3, name="baseline", run_name="baseline", experiment="iris",
        ...                status="COMPLETE", start_time=10.0, end_time=12.5,
        ...                params={"lr": 0.1}, metrics={"f1": 0.9})
        >>> r.ref, r.duration, r.value("f1"), r.value("train.lr") is None
        ('context:3', 2.5, 0.9, True)
    """

    id: int
    """MLMD context id."""
    name: str
    """The run's unique name (``baseline-2``)."""
    run_name: str | None = None
    """The name the user gave."""
    experiment: str | None = None
    """The experiment's name."""
    status: str | None = None
    """``RUNNING``, ``COMPLETE``, ``FAILED`` or ``CANCELED`` (``None`` for foreign runs)."""
    start_time: float | None = None
    """Seconds since the epoch."""
    end_time: float | None = None
    """Seconds since the epoch; ``None`` while running."""
    params: dict[str, Any] = attrs.field(factory=dict)
    """Run params, then step params as ``<step>.<param>`` (when read)."""
    metrics: dict[str, Any] = attrs.field(factory=dict)
    """Final value of each metric logged in the run and its steps."""
    type_name: str = RUN_TYPE
    """The context type (``Run``)."""
    step_params_read: bool = False
    """Whether ``params`` includes the steps' params."""
    tags: dict[str, Any] = attrs.field(factory=dict)
    """The run's tags (read when a filter or the sort names ``tags.KEY`` or ``note``)."""
    note: str | None = None
    """The run's note (read likewise)."""

    @property
    def ref(self) -> str:
        """``"context:<id>"``, a run reference that never means another run."""
        return f"context:{self.id}"

    @property
    def duration(self) -> float | None:
        """Seconds from start to end (``None`` while running)."""
        if self.start_time is None or self.end_time is None:
            return None
        return round(self.end_time - self.start_time, 3)

    def value(self, key: str, default: Any = None) -> Any:
        """The value of a search key for this run (see the module docs), else ``default``."""
        got = _lookup(self, key)
        return default if got is _MISSING else got

    def to_dict(self) -> dict[str, Any]:
        """JSON shape: ``Run.to_dict()``'s keys plus ``ref``, ``status``, times and ``metrics``."""
        return {
            "id": self.id,
            "ref": self.ref,
            "type": self.type_name,
            "name": self.name,
            "run_name": self.run_name,
            "experiment": self.experiment,
            "status": self.status,
            "start_time": self.start_time,
            "end_time": self.end_time,
            "duration": self.duration,
            "params": _convert.jsonable(self.params),
            "metrics": _convert.jsonable(self.metrics),
        }


@attrs.define(eq=False)
class RunSearch:
    """The answer of a run search: the runs, and how they were asked for.

    Iterating gives the :class:`RunSummary` records; ``len()`` counts them.

    Example:
        >>> import lineage
        >>> store = lineage.connect(":memory:")
        >>> for lr in (0.1, 0.01):
        ...     with lineage.run("r", experiment="demo", store=store, params={"lr": lr}):
        ...         lineage.log_metrics({"f1": 0.8 + lr})
        >>> found = store.search_runs(where="lr<0.05")
        >>> [(r.name, r.metrics["f1"]) for r in found]
        [('r-2', 0.81)]
        >>> [r.name for r in store.search_runs(sort="-f1", limit=1)]
        ['r']
    """

    runs: list[RunSummary]
    """The runs found, sorted, after ``offset`` and ``limit``."""
    total: int | None
    """How many runs matched before ``offset``/``limit``; ``None`` when not counted
    (a page of the newest runs)."""
    more: bool = False
    """Whether more runs match after this page."""
    experiment: str | None = None
    """The experiment asked for."""
    where: list[str] = attrs.field(factory=list)
    """The filters, as given."""
    sort: str | None = None
    """The sort key, as given."""
    limit: int | None = None
    """The page size asked for."""
    offset: int = 0
    """How many matching runs were skipped."""

    def __iter__(self) -> Iterator[RunSummary]:
        return iter(self.runs)

    def __len__(self) -> int:
        return len(self.runs)

    def __getitem__(self, index: int) -> RunSummary:
        return self.runs[index]

    def to_dict(self) -> dict[str, Any]:
        """``runs`` (each :meth:`RunSummary.to_dict`), ``total``, ``more`` and the query."""
        return {
            "runs": [r.to_dict() for r in self.runs],
            "total": self.total,
            "more": self.more,
            "experiment": self.experiment,
            "where": list(self.where),
            "sort": self.sort,
            "limit": self.limit,
            "offset": self.offset,
        }

    def to_pandas(self) -> pandas.DataFrame:
        """A DataFrame, one row per run (index: the run's name): ``experiment``, ``status``,
        ``start``, ``end`` (UTC times), ``duration`` (seconds), then ``params.<key>`` and
        ``metrics.<key>`` columns (as MLflow's ``search_runs`` names them)."""
        try:
            import pandas as pd
        except ImportError as exc:  # pragma: no cover - depends on the environment
            raise ImportError("RunSearch.to_pandas() needs pandas: pip install pandas") from exc
        params = sorted({k for r in self.runs for k in r.params})
        metrics = sorted({k for r in self.runs for k in r.metrics})
        rows = []
        for r in self.runs:
            row: dict[str, Any] = {
                "id": r.id, "experiment": r.experiment, "status": r.status,
                "start": _timestamp(r.start_time), "end": _timestamp(r.end_time),
                "duration": r.duration,
            }
            row.update({f"params.{k}": r.params.get(k) for k in params})
            row.update({f"metrics.{k}": r.metrics.get(k) for k in metrics})
            rows.append(row)
        columns = ["id", "experiment", "status", "start", "end", "duration",
                   *(f"params.{k}" for k in params), *(f"metrics.{k}" for k in metrics)]
        return pd.DataFrame(rows, columns=columns,
                            index=pd.Index([r.name for r in self.runs], name="run"))

    def __str__(self) -> str:
        """A table for people: status, start, duration, the metrics, and the params that
        differ between the runs or that the search names (``--json`` has them all)."""
        return _table(self)

    def __repr__(self) -> str:
        total = "" if self.total is None else f" of {self.total}"
        return f"<RunSearch: {len(self.runs)} run(s){total}>"


# --- expressions ----------------------------------------------------------------------------


@attrs.frozen
class Filter:
    """One parsed ``KEY OP VALUE`` filter.

    Example:
        >>> f = parse_filter("train.lr=0.05")
        >>> f.key, f.op, f.value
        ('train.lr', '=', 0.05)
        >>> f.matches(0.05), f.matches(0.1), f.matches(None)
        (True, False, False)
    """

    key: str
    """The key (see the module docs)."""
    op: str
    """One of ``=``, ``!=``, ``<``, ``<=``, ``>``, ``>=``."""
    value: Any
    """The value, parsed: a number, a bool, ``None`` or text."""
    text: str
    """The value as written (quotes removed)."""
    expression: str
    """The whole expression as given."""

    def matches(self, actual: Any) -> bool:
        """Whether a run's value satisfies the filter (a missing value never does)."""
        if actual is _MISSING:
            return False
        if self.op in ("=", "!="):
            return _equal(actual, self.value, self.text) == (self.op == "=")
        a, b = _comparable(actual), _comparable(self.value)
        if a is None or b is None or a[0] != b[0]:
            return False
        left, right = a[1], b[1]
        if self.op == "<":
            return bool(left < right)
        if self.op == "<=":
            return bool(left <= right)
        if self.op == ">":
            return bool(left > right)
        return bool(left >= right)


def parse_filter(expression: str) -> Filter:
    """Parse ``"KEY OP VALUE"`` (``"f1>0.9"``, ``"train.lr = 0.05"``, ``"status!=FAILED"``).

    Raises:
        SearchError: not of that form.

    Example:
        >>> parse_filter("f1 >= 0.9").op
        '>='
        >>> parse_filter("status = 'FAILED'").value
        'FAILED'
    """
    if not isinstance(expression, str):
        raise SearchError(f"a filter is a string like 'f1>0.9', got {expression!r}",
                          expression=str(expression))
    match = _FILTER.match(expression)
    hint = "write KEY OP VALUE with OP one of = != < <= > >=, e.g. 'f1>0.9' or 'train.lr=0.05'"
    if match is None:
        raise SearchError(f"cannot read the filter {expression!r}: {hint}", expression=expression)
    key, op, raw = match.group("key"), match.group("op"), match.group("value")
    if not key:
        raise SearchError(f"the filter {expression!r} has no key: {hint}", expression=expression)
    if not raw or raw[0] in "<>=!":
        raise SearchError(f"the filter {expression!r} has no value after {op!r}: {hint}",
                          expression=expression)
    op = "=" if op == "==" else op
    key = _ALIASES.get(key, key)
    text, value = _parse_value(raw)
    if key in ("start", "end") and isinstance(value, str):
        value = _parse_date(value, expression)
    if op not in ("=", "!=") and _comparable(value) is None:
        raise SearchError(f"the filter {expression!r} compares with {op!r} a value that has no "
                          "order; use a number, a date or a text", expression=expression)
    return Filter(key=key, op=op, value=value, text=text, expression=expression)


def parse_sort(expression: str) -> tuple[str, bool]:
    """Parse ``"KEY"`` (lowest first) or ``"-KEY"`` (highest first) into (key, descending).

    Raises:
        SearchError: empty, or holding an operator.

    Example:
        >>> parse_sort("-f1"), parse_sort("start_time")
        (('f1', True), ('start', False))
    """
    text = expression.strip() if isinstance(expression, str) else ""
    descending = text.startswith("-")
    key = text[1:].strip() if descending or text.startswith("+") else text
    if not key or any(op in key for op in _OPS):
        raise SearchError(f"cannot sort by {expression!r}: give a key, e.g. 'f1' (lowest first) "
                          "or '-f1' (highest first)", expression=str(expression))
    return _ALIASES.get(key, key), descending


def _parse_value(raw: str) -> tuple[str, Any]:
    if len(raw) >= 2 and raw[0] == raw[-1] and raw[0] in "'\"":
        return raw[1:-1], raw[1:-1]
    low = raw.lower()
    if low in ("true", "false"):
        return raw, low == "true"
    if low in ("none", "null"):
        return raw, None
    try:
        return raw, int(raw)
    except ValueError:
        pass
    try:
        number = float(raw)
    except ValueError:
        return raw, raw
    return raw, number


def _parse_date(text: str, expression: str) -> float:
    try:
        when = datetime.datetime.fromisoformat(text)
    except ValueError:
        raise SearchError(f"the filter {expression!r}: {text!r} is not a date; write seconds since "
                          "the epoch or an ISO date such as 2025-01-31T12:00",
                          expression=expression) from None
    if when.tzinfo is None:
        when = when.replace(tzinfo=datetime.timezone.utc)
    return when.timestamp()


def _is_number(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool)


def _equal(actual: Any, wanted: Any, text: str) -> bool:
    if _is_number(actual) and _is_number(wanted):
        return bool(actual == wanted)
    if isinstance(actual, str):
        return actual == (wanted if isinstance(wanted, str) else text)
    if isinstance(actual, bool) or isinstance(wanted, bool) or actual is None or wanted is None:
        return actual is wanted
    return bool(actual == wanted)


def _comparable(v: Any) -> tuple[int, Any] | None:
    """A value ordered within its kind: (0, number) or (1, text); ``None`` for others."""
    if _is_number(v):
        return None if isinstance(v, float) and math.isnan(v) else (0, v)
    if isinstance(v, str):
        return (1, v)
    return None


# --- reading --------------------------------------------------------------------------------


def _lookup(run: RunSummary, key: str) -> Any:
    if key in FIELDS:
        return {
            "id": run.id, "name": run.name, "run_name": run.run_name,
            "experiment": run.experiment, "status": run.status, "start": run.start_time,
            "end": run.end_time, "duration": run.duration,
        }[key]
    if key.startswith("metrics.") and key not in run.metrics and key not in run.params:
        return run.metrics.get(key[len("metrics."):], _MISSING)
    if key.startswith("params.") and key not in run.metrics and key not in run.params:
        return run.params.get(key[len("params."):], _MISSING)
    if key in run.metrics:
        return run.metrics[key]
    found = run.params.get(key, _MISSING)
    if found is _MISSING and key.startswith("tags."):  # lineage.tags, after params so named
        return run.tags.get(key[len("tags."):], _MISSING)
    if found is _MISSING and key == "note":
        return run.note if run.note else _MISSING
    return found


def _matches(run: RunSummary, f: Filter) -> bool:
    if f.key == "name" and f.op in ("=", "!="):  # the unique name or the name the user gave
        hit = f.value in (run.name, run.run_name) or f.text in (run.name, run.run_name)
        return hit == (f.op == "=")
    return f.matches(_lookup(run, f.key))


def _number_or_none(v: Any) -> float | None:
    return float(v) if _is_number(v) else None


def _summary(run: Run) -> RunSummary:
    props = run.properties
    metrics = props.get("metrics")
    status = props.get("status")
    return RunSummary(
        id=run.id, name=run.name, run_name=run.run_name, experiment=run.experiment,
        status=status if isinstance(status, str) else None,
        start_time=_number_or_none(props.get("start_time")),
        end_time=_number_or_none(props.get("end_time")),
        params=dict(run.params), metrics=dict(metrics) if isinstance(metrics, dict) else {},
        type_name=run.type_name,
    )


def _add_step_params(store: Store, runs: Iterable[RunSummary]) -> None:
    """Add the params of each run's steps as ``<step>.<param>`` (one call per run: MLMD has
    no batched executions-by-contexts read), as ``store.compare`` shows them: every call
    of a step, and run params that clash with a step's as ``run.<key>``."""
    for run in runs:
        if run.step_params_read:
            continue
        protos = store._call("get_executions_by_context", run.id, missing=[])
        types = store._types("execution", (p.type_id for p in protos))
        steps = _runref.step_columns(
            _convert.execution_from_proto(p, types.get(p.type_id), ()) for p in protos)
        run.params = _runref.param_columns(run.params, steps)
        run.step_params_read = True


def _newest(store: Store, count: int, *, descending: bool) -> tuple[list[Run], bool]:
    """The first ``count`` runs in id order (newest first when ``descending``) and whether
    there are more, reading only as many contexts as needed (every context type shares one
    table; MLMD orders and limits it)."""
    run_type = store._type_named("context", RUN_TYPE)
    if run_type is None:
        return [], False
    limit = max(4 * count, 64)
    while True:
        options = metadata_store.ListOptions(
            limit=limit, order_by=metadata_store.OrderByField.ID, is_asc=not descending)
        protos = list(store._call("get_contexts", list_options=options))
        runs = [p for p in protos if p.type_id == run_type.id]
        if len(runs) > count or len(protos) < limit:
            return store._runs_from_protos(runs[:count]), len(runs) > count
        limit *= 4


def experiments(store: Store) -> list[str]:
    """The names of the store's experiments, sorted.

    Example:
        >>> import lineage
        >>> store = lineage.connect(":memory:")
        >>> with lineage.run("a", experiment="iris", store=store):
        ...     pass
        >>> experiments(store)
        ['iris']
    """
    if store._type_named("context", EXPERIMENT_TYPE) is None:
        return []
    return sorted(c.name for c in store._call("get_contexts_by_type", EXPERIMENT_TYPE))


def _sort_key(value: Any) -> tuple[int, Any]:
    got = _comparable(value)
    if got is not None:
        return got
    return (2, str(value))


def _known(key: str, runs: Sequence[RunSummary]) -> bool:
    return key in FIELDS or any(_lookup(r, key) is not _MISSING for r in runs)


def _unknown_key(key: str, runs: Sequence[RunSummary], what: str) -> SearchError:
    metrics = sorted({k for r in runs for k in r.metrics})
    params = sorted({k for r in runs for k in r.params})
    def some(keys: list[str]) -> str:
        return ", ".join(keys[:12]) + (", ..." if len(keys) > 12 else "") if keys else "none"
    return SearchError(
        f"no run has the key {key!r} ({what}); fields: {', '.join(FIELDS)}; metrics: "
        f"{some(metrics)}; params: {some(params)}", expression=key)


def search_runs(
    store: Store,
    *,
    experiment: str | None = None,
    where: str | Sequence[str] = (),
    sort: str | None = None,
    limit: int | None = None,
    offset: int = 0,
    step_params: bool = True,
) -> RunSearch:
    """Find runs by experiment, filters and sort (see the module docs for keys and syntax).

    Args:
        store: the store to read.
        experiment: only runs of this experiment.
        where: a filter (``"f1>0.9"``) or several, all of which must hold.
        sort: ``"KEY"`` (lowest first) or ``"-KEY"`` (highest first); default: the order
            the runs were recorded in.
        limit: at most this many runs.
        offset: skip this many matching runs first (pages).
        step_params: add the steps' params (``train.lr``) to each returned run's params.

    Raises:
        SearchError: a malformed filter or sort, or a key no run has.
        NotFound: no experiment of that name.

    Example:
        >>> import lineage
        >>> store = lineage.connect(":memory:")
        >>> with lineage.run("a", experiment="e", store=store):
        ...     lineage.log_metrics({"f1": 0.7})
        >>> lineage.search_runs(store, where=["f1>0.5", "status=COMPLETE"]).to_dict()["total"]
        1
    """
    filters = [parse_filter(where)] if isinstance(where, str) else [parse_filter(w) for w in where]
    order = parse_sort(sort) if sort is not None else None
    if limit is not None and (isinstance(limit, bool) or not isinstance(limit, int) or limit < 0):
        raise SearchError(f"limit={limit!r}: give a whole number >= 0", expression=str(limit))
    if isinstance(offset, bool) or not isinstance(offset, int) or offset < 0:
        raise SearchError(f"offset={offset!r}: give a whole number >= 0", expression=str(offset))
    asked = {"experiment": experiment, "where": [f.expression for f in filters], "sort": sort,
             "limit": limit, "offset": offset}

    if (not filters and experiment is None and limit is not None
            and (order is None or order[0] == "id")):
        runs, more = _newest(store, offset + limit, descending=bool(order and order[1]))
        page = [_summary(r) for r in runs[offset:]]
        if step_params:
            _add_step_params(store, page)
        return RunSearch(runs=page, total=None, more=more, **asked)  # type: ignore[arg-type]

    if experiment is not None and store._context_named(EXPERIMENT_TYPE, experiment) is None:
        known = experiments(store)
        raise NotFound(
            f"no experiment named {experiment!r} in {store.uri}"
            + (f"; experiments: {', '.join(known[:20])}" if known else ""),
            ref=experiment)
    candidates = [_summary(r) for r in store.runs(experiment=experiment)]
    keys = [f.key for f in filters] + ([order[0]] if order else [])
    if any(k.startswith("tags.") or k == "note" for k in keys):  # lineage.tags: one read
        from lineage.tags import all_annotations

        annotated = all_annotations(store)
        for r in candidates:
            hit = annotated.get(r.ref)
            if hit is not None:
                r.tags, r.note = dict(hit.tags), hit.note
    missing = [k for k in keys if not _known(k, candidates)]
    if missing and candidates:  # no runs at all: nothing to match, not an error
        # the key may be a step's param: read them for every candidate, then check again
        _add_step_params(store, candidates)
        for f in filters:
            if not _known(f.key, candidates):
                raise _unknown_key(f.key, candidates, f"in the filter {f.expression!r}")
        if order and not _known(order[0], candidates):
            raise _unknown_key(order[0], candidates, f"in the sort {sort!r}")
    found = [r for r in candidates if all(_matches(r, f) for f in filters)]
    if order is not None:
        key, descending = order
        present = [r for r in found if _lookup(r, key) not in (_MISSING, None)]
        absent = [r for r in found if _lookup(r, key) in (_MISSING, None)]
        present.sort(key=lambda r: _sort_key(_lookup(r, key)), reverse=descending)
        found = present + absent
    end = None if limit is None else offset + limit
    page = found[offset:end]
    if step_params:
        _add_step_params(store, page)
    return RunSearch(runs=page, total=len(found), more=end is not None and end < len(found),
                     **asked)  # type: ignore[arg-type]


# --- text -----------------------------------------------------------------------------------


def _timestamp(seconds: float | None) -> Any:
    if seconds is None:
        return None
    return datetime.datetime.fromtimestamp(seconds, datetime.timezone.utc)


def _when(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    return datetime.datetime.fromtimestamp(seconds, datetime.timezone.utc).strftime(
        "%Y-%m-%d %H:%M:%S")


def duration_text(seconds: float | None) -> str:
    """``"2.5s"``, ``"3m04s"``, ``"1h02m"`` (``"-"`` for none).

    Example:
        >>> duration_text(2.5), duration_text(184), duration_text(3720)
        ('2.5s', '3m04s', '1h02m')
    """
    if seconds is None:
        return "-"
    if seconds < 60:
        return f"{seconds:.3g}s"
    minutes, secs = divmod(round(seconds), 60)
    if minutes < 60:
        return f"{minutes}m{secs:02d}s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours}h{minutes:02d}m"


def shown_params(search: RunSearch, limit: int = 8) -> list[str]:
    """The param columns worth a table: those named by the search, then those that differ
    between the runs, then the rest, at most ``limit`` in all."""
    keys = sorted({k for r in search.runs for k in r.params})
    named = {f.key.removeprefix("params.") for f in map(parse_filter, search.where)}
    if search.sort:
        named.add(parse_sort(search.sort)[0].removeprefix("params."))

    def differs(k: str) -> bool:
        values = [r.params.get(k, _MISSING) for r in search.runs]
        return any(v is _MISSING or v != values[0] for v in values)

    ordered = sorted(keys, key=lambda k: (k not in named, not differs(k), k))
    return ordered[:limit]


def _table(search: RunSearch) -> str:
    if not search.runs:
        return "(no runs)"
    metrics = sorted({k for r in search.runs for k in r.metrics})[:8]
    params = shown_params(search)
    header = ["ref", "name", "experiment", "status", "start", "duration", *metrics, *params]
    rows = [[r.ref, r.name, r.experiment or "-", r.status or "-", _when(r.start_time),
             duration_text(r.duration) if r.end_time is not None else
             ("running" if r.status == "RUNNING" else "-"),
             *(_text.value(r.metrics[m]) if m in r.metrics else "-" for m in metrics),
             *(_text.value(r.params[p]) if p in r.params else "-" for p in params)]
            for r in search.runs]
    text = _text.table(rows, header)
    hidden = len({k for r in search.runs for k in r.params}) - len(params)
    notes = []
    if search.more or (search.total is not None and search.total > len(search.runs)):
        total = f" of {search.total}" if search.total is not None else ""
        notes.append(f"{len(search.runs)}{total} runs shown (--limit, --offset for more)")
    if hidden > 0:
        notes.append(f"{hidden} more param(s) in --json")
    return text + ("\n" + "; ".join(notes) if notes else "")


