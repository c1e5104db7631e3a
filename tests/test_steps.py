"""``@lineage.step``: what a decorated call records, on SQLite files, in memory and PostgreSQL."""

from __future__ import annotations

import inspect
import signal
import subprocess
import sys
import textwrap
import threading
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from ml_metadata.proto import metadata_store_pb2 as pb

import lineage
from lineage import _convert
from lineage._recording import Pending as _Pending
from lineage._recording import put_execution as _put_execution
from lineage.steps import StepSpec

ROOT = Path(__file__).resolve().parents[1]


def _paths(store: lineage.Store, execution_id: int) -> dict[str, int]:
    """Event path → artifact id of an execution (INPUT paths prefixed ``in:``)."""
    out: dict[str, int] = {}
    for ev in store.mlmd.get_events_by_execution_ids([execution_id]):
        prefix = "in:" if ev.type == pb.Event.INPUT else "out:"
        out[prefix + _convert.event_path(ev)] = ev.artifact_id
    return out


def test_step_records_inputs_outputs_params_code_and_environment(
    store: lineage.Store, write_file: Callable[..., Path], tmp_path: Path
) -> None:
    import numpy  # noqa: F401  (an imported ML package is recorded with its version)

    data = store.put(lineage.Dataset(write_file("iris.csv", "a,b\n1,2\n"), name="iris"))

    @lineage.step(kind="train", store=store)
    def train(data: lineage.Dataset, lr: float = 0.1, epochs: int = 10) -> lineage.Model:
        out = tmp_path / "model.pkl"
        out.write_bytes(b"model for " + Path(data.uri).read_bytes())
        return lineage.Model(out, name="clf")

    model = train(data, lr=0.05)
    assert isinstance(model, lineage.Model) and model.id is not None and model.version == 1

    [execution] = store.executions(step="train")
    assert execution.state == "COMPLETE"
    assert execution.base_type == "TRAIN"
    assert execution.params == {"lr": 0.05, "epochs": 10}
    assert execution.inputs == [data.id] and execution.outputs == [model.id]
    assert _paths(store, execution.id) == {"in:data": data.id, "out:[0]": model.id}
    assert execution.mlmd_name is not None and execution.mlmd_name.startswith("train:")
    props = execution.properties
    assert props["recorded_by"] == f"lineage {lineage.__version__}"
    assert props["function"].endswith("train")
    assert props["source_hash"].startswith("sha256:") and len(props["source_hash"]) == 71
    assert props["hostname"] and props["python"].split()[-1] == ".".join(map(str, sys.version_info[:3]))
    assert "numpy" in props["packages"]
    assert props["end_time"] >= props["start_time"] and props["duration"] >= 0
    assert props["returns"] == "artifact"
    if (ROOT / ".git").exists():
        assert props["git_repo"] == str(ROOT)
        assert len(props["git_commit"]) == 40 and isinstance(props["git_dirty"], bool)
    assert store.get(model.id).fingerprint == lineage.fingerprint(tmp_path / "model.pkl")


def test_recording_an_input_never_changes_the_stored_artifact(
    store: lineage.Store, write_file: Callable[..., Path]
) -> None:
    data = store.put(
        lineage.Dataset(write_file("d.csv", "x\n1\n"), name="d", split="train", rows=1)
    )
    before = store.mlmd.get_artifacts_by_id([data.id])[0]

    @lineage.step(store=store)
    def read(data: lineage.Dataset, also: list[lineage.Dataset]) -> None:
        return None

    # The same stored artifact, passed as a fresh object with only an id, and in a list.
    stub = lineage.Dataset(content=b"x", name="d")
    stub.id = data.id
    read(stub, also=[data, data])
    after = store.mlmd.get_artifacts_by_id([data.id])[0]
    assert after == before  # every field: uri, name, properties, state, external_id, times
    [execution] = store.executions(step="read")
    # MLMD keeps one event per (artifact, execution, type): the first path names it.
    assert _paths(store, execution.id) == {"in:data": data.id}
    # an artifact this store object recorded is referenced by its event alone
    read(data, also=[])
    assert store.mlmd.get_artifacts_by_id([data.id])[0] == before
    assert [e.inputs for e in store.executions(step="read")] == [[data.id], [data.id]]


def test_unrecorded_inputs_are_recorded_with_the_call_and_filled_in(
    store: lineage.Store, write_file: Callable[..., Path]
) -> None:
    a = lineage.Dataset(write_file("a.csv", "1\n"), name="a")
    b = lineage.Dataset(write_file("b.csv", "2\n"), name="b")

    @lineage.step(store=store)
    def join(parts: dict[str, lineage.Dataset], *more: lineage.Dataset) -> None:
        return None

    c = lineage.Dataset(write_file("c.csv", "3\n"), name="c")
    join({"left": a, "right": b}, c)
    assert a.id and b.id and c.id and a.version == 1
    [execution] = store.executions(step="join")
    assert _paths(store, execution.id) == {
        "in:parts.left": a.id, "in:parts.right": b.id, "in:more[0]": c.id
    }
    assert execution.params == {}


def test_path_string_for_an_artifact_annotated_argument_is_put_as_that_type(
    store: lineage.Store, write_file: Callable[..., Path]
) -> None:
    path = write_file("raw.csv", "a\n1\n")
    seen: list[Any] = []

    @lineage.step(store=store)
    def load(data: lineage.Dataset, note: str = "x") -> None:
        seen.append(data)

    load(str(path))
    assert isinstance(seen[0], lineage.Dataset) and seen[0].id is not None
    [execution] = store.executions(step="load")
    assert execution.inputs == [seen[0].id] and execution.params == {"note": "x"}
    assert store.get(seen[0].id).type_name == "Dataset"


def test_outputs_tuple_dict_and_plain_values(store: lineage.Store, tmp_path: Path) -> None:
    def art(name: str) -> lineage.Artifact:
        path = tmp_path / f"{name}.bin"
        path.write_bytes(name.encode())
        return lineage.Artifact(path, name=name)

    @lineage.step(store=store)
    def pair() -> tuple[lineage.Artifact, lineage.Artifact]:
        return art("p0"), art("p1")

    @lineage.step(store=store)
    def named() -> dict[str, lineage.Artifact]:
        return {"train": art("tr"), "test": art("te")}

    @lineage.step(store=store)
    def plain() -> dict[str, float]:
        return {"acc": 0.5}

    @lineage.step(store=store)
    def mixed() -> tuple[lineage.Artifact, int]:
        return art("m"), 7

    p0, p1 = pair()
    parts = named()
    assert plain() == {"acc": 0.5}
    m, seven = mixed()
    assert seven == 7
    by_step = {e.name: e for e in store.executions()}
    assert _paths(store, by_step["pair"].id) == {"out:[0]": p0.id, "out:[1]": p1.id}
    assert _paths(store, by_step["named"].id) == {
        "out:train": parts["train"].id, "out:test": parts["test"].id
    }
    assert _paths(store, by_step["plain"].id) == {}
    assert _paths(store, by_step["mixed"].id) == {"out:[0]": m.id}
    assert by_step["mixed"].properties["returns"] == "other"
    assert by_step["plain"].state == "COMPLETE"


def test_a_failing_step_records_failed_and_reraises_the_same_exception(
    store: lineage.Store, write_file: Callable[..., Path], tmp_path: Path
) -> None:
    data = lineage.Dataset(write_file("in.csv", "1\n"), name="in")
    boom = ValueError("learning rate too high: 10")

    @lineage.step(store=store)
    def train(data: lineage.Dataset, lr: float = 10.0) -> lineage.Model:
        (tmp_path / "half.pkl").write_bytes(b"half")
        lineage.log_params(stage="fit")
        raise boom

    with pytest.raises(ValueError) as caught:
        train(data)
    assert caught.value is boom
    [execution] = store.executions(step="train")
    assert execution.state == "FAILED"
    assert execution.error == "ValueError: learning rate too high: 10"
    assert "raise boom" in execution.properties["traceback"]
    assert "ValueError: learning rate too high" in execution.properties["traceback"]
    assert execution.params == {"lr": 10.0, "stage": "fit"}
    assert execution.inputs == [data.id] and execution.outputs == []
    assert store.artifacts(type="Model") == []
    assert store.executions(state="FAILED")[0].id == execution.id


def test_keyboard_interrupt_records_canceled(store: lineage.Store) -> None:
    @lineage.step(store=store)
    def slow(n: int = 3) -> None:
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        slow()
    [execution] = store.executions(step="slow")
    assert execution.state == "CANCELED" and execution.error == "KeyboardInterrupt"


def test_an_output_that_cannot_be_read_fails_the_step_and_publishes_nothing(
    store: lineage.Store, tmp_path: Path
) -> None:
    @lineage.step(store=store)
    def ghost() -> lineage.Model:
        return lineage.Model(tmp_path / "never-written.pkl", name="ghost")

    with pytest.warns(lineage.RecordingWarning, match="never-written"):
        result = ghost()  # the body ran: its return value is passed on
    assert isinstance(result, lineage.Model) and result.id is None
    [execution] = store.executions(step="ghost")
    assert execution.state == "FAILED" and "FingerprintError" in (execution.error or "")
    assert store.artifacts(type="Model") == []


_KILLED = """
import os, signal, sys
sys.path.insert(0, {root!r})
import lineage
store = lineage.connect({uri!r})

@lineage.step(store=store)
def doomed(data: lineage.Dataset, lr: float = 0.3) -> None:
    os.kill(os.getpid(), signal.SIGKILL)

doomed(lineage.Dataset({data!r}, name="d"))
"""


@pytest.mark.parametrize("backend", ["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def test_a_step_killed_with_sigkill_leaves_a_running_execution(
    backend: str, request: pytest.FixtureRequest, write_file: Callable[..., Path]
) -> None:
    uri = request.getfixturevalue("sqlite_uri" if backend == "sqlite" else "pg_uri")
    data = write_file("d.csv", "1\n")
    script = _KILLED.format(root=str(ROOT), uri=uri, data=str(data))
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, timeout=120)
    assert done.returncode == -signal.SIGKILL, done.stderr.decode()[-2000:]
    store = lineage.connect(uri)
    [running] = store.executions(state="RUNNING")
    assert running.name == "doomed" and running.params == {"lr": 0.3}
    assert len(running.inputs) == 1 and running.outputs == []
    assert store.executions(state="COMPLETE") == []


def test_functools_wraps_keeps_name_doc_and_signature() -> None:
    def original(data: lineage.Dataset, lr: float = 0.1, *, seed: int = 0) -> lineage.Model:
        """Train a model."""
        raise NotImplementedError

    wrapped = lineage.step(original)
    options = lineage.step(name="fit", kind="train")(original)
    for fn in (wrapped, options):
        assert fn.__name__ == "original" and fn.__doc__ == "Train a model."
        assert inspect.signature(fn) == inspect.signature(original)
        assert fn.__wrapped__ is original  # type: ignore[attr-defined]
        assert isinstance(fn.__lineage_step__, StepSpec)  # type: ignore[attr-defined]
    assert options.__lineage_step__.name == "fit"  # type: ignore[attr-defined]
    assert options.__lineage_step__.kind == "train"  # type: ignore[attr-defined]


def test_decoration_time_validation_lists_every_problem() -> None:
    def f(x: int) -> int:
        return x

    with pytest.raises(lineage.StepError) as caught:
        lineage.step(name="", kind="fitting", cache="yes", store=42)(f)  # type: ignore[arg-type]
    message = str(caught.value)
    for fragment in ("name=''", "kind='fitting' is unknown", "cache='yes'", "store=42"):
        assert fragment in message
    assert "'deploy'" in message  # the valid kinds are listed

    def gen() -> Any:
        yield 1

    with pytest.raises(lineage.StepError, match="generator"):
        lineage.step(gen)

    async def coro() -> None:
        return None

    with pytest.raises(lineage.StepError, match="async"):
        lineage.step(coro)
    with pytest.raises(lineage.StepError, match="decorates functions"):
        lineage.step(42)


def test_a_wrong_call_raises_typeerror_and_records_nothing(store: lineage.Store) -> None:
    @lineage.step(store=store)
    def f(x: int) -> int:
        return x

    with pytest.raises(TypeError):
        f(1, 2)  # type: ignore[call-arg]
    assert store.executions() == []


def test_methods_classmethods_and_staticmethods(store: lineage.Store) -> None:
    class Trainer:
        def __init__(self, scale: int) -> None:
            self.scale = scale

        @lineage.step(store=store)
        def fit(self, x: int = 2) -> int:
            return self.scale * x

        @lineage.step(store=store)
        @classmethod
        def build(cls, n: int = 1) -> str:
            return f"{cls.__name__}{n}"

        @lineage.step(store=store)
        @staticmethod
        def helper(y: int = 5) -> int:
            return y + 1

    trainer = Trainer(3)
    assert trainer.fit(4) == 12
    assert Trainer.build(n=2) == "Trainer2"
    assert Trainer.helper() == 6
    params = {e.name: e.params for e in store.executions()}
    assert params == {"fit": {"x": 4}, "build": {"n": 2}, "helper": {"y": 5}}


def test_nested_steps_are_recorded_with_their_parent(store: lineage.Store) -> None:
    @lineage.step(store=store)
    def inner(k: int) -> int:
        lineage.log_metrics({"inner_metric": k})
        return k * 2

    @lineage.step(store=store)
    def outer(n: int = 2) -> int:
        total = sum(inner(k) for k in range(n))
        lineage.log_params(total=total)
        return total

    assert outer() == 2
    execs = {(e.name, e.params.get("k")): e for e in store.executions()}
    parent = execs[("outer", None)]
    assert parent.params == {"n": 2, "total": 2} and "metrics" not in parent.properties
    for k in range(2):
        child = execs[("inner", k)]
        assert child.properties["parent_execution"] == parent.id
        assert child.properties["metrics"] == {"inner_metric": k}
        assert child.state == "COMPLETE"


def test_log_metrics_in_a_step_keeps_the_whole_series(store: lineage.Store) -> None:
    @lineage.step(store=store)
    def fit(epochs: int = 4) -> None:
        for epoch in range(epochs):
            lineage.log_metrics({"loss": 1.0 / (epoch + 1), "acc": epoch / 10}, step=epoch)
        lineage.log_metrics({"final_f1": 0.875})

    fit()
    [execution] = store.executions(step="fit")
    assert execution.properties["metric_series"] == {
        "loss": [[0, 1.0], [1, 0.5], [2, 1 / 3], [3, 0.25]],
        "acc": [[0, 0.0], [1, 0.1], [2, 0.2], [3, 0.3]],
    }
    assert execution.properties["metrics"] == {"loss": 0.25, "acc": 0.3, "final_f1": 0.875}
    with pytest.raises(lineage.StepError, match=r"inside a @lineage\.step"):
        lineage.log_metrics({"x": 1})  # outside any step and run
    with pytest.raises(lineage.StepError, match=r"inside a @lineage\.step"):
        lineage.log_params(x=1)
    with pytest.raises(lineage.StepError, match="metrics are numbers"):
        lineage.log_metrics({"x": "high"})
    with pytest.raises(lineage.StepError, match="is an int"):
        lineage.log_metrics({"x": 1.0}, step=1.5)  # type: ignore[arg-type]


def test_two_threads_recording_at_once_keep_their_own_params(store: lineage.Store) -> None:
    @lineage.step(store=store)
    def work(thread: int, i: int) -> None:
        lineage.log_params(owner=thread)
        lineage.log_metrics({"i": i})

    errors: list[BaseException] = []

    def loop(thread: int) -> None:
        try:
            for i in range(25):
                work(thread, i)
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=loop, args=(t,)) for t in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    execs = store.executions(step="work")
    assert len(execs) == 50 and {e.state for e in execs} == {"COMPLETE"}
    assert all(e.params["owner"] == e.params["thread"] for e in execs)
    assert all(e.properties["metrics"] == {"i": e.params["i"]} for e in execs)
    assert sorted((e.params["thread"], e.params["i"]) for e in execs) == [
        (t, i) for t in range(2) for i in range(25)
    ]


def test_without_store_or_run_steps_record_into_the_default_store(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    uri = str(tmp_path / "default" / "metadata.sqlite")
    monkeypatch.setenv("LINEAGE_URI", uri)

    @lineage.step
    def hello(who: str = "world") -> str:
        return f"hello {who}"

    assert hello() == "hello world"
    [execution] = lineage.connect(uri).executions(step="hello")
    assert execution.params == {"who": "world"}


def test_a_retried_write_does_not_record_the_step_twice(sqlite_store: lineage.Store) -> None:
    """The outcome of a write is unknown (e.g. the connection dropped after the commit):
    writing the same execution again finds it by its unique name instead of adding one."""

    @lineage.step(store=sqlite_store)
    def f(x: int = 1) -> None:
        return None

    spec: StepSpec = f.__lineage_step__  # type: ignore[attr-defined]
    type_id = sqlite_store._register_type("execution", spec.type_proto())
    data = lineage.Artifact(content=b"abc", name="abc")
    proto = pb.Execution(
        type_id=type_id, name=f"f:{uuid.uuid4().hex}", last_known_state=pb.Execution.RUNNING
    )
    first = _Pending(sqlite_store, pb.Event.INPUT)
    first.add([(["data"], data)])
    eid = _put_execution(sqlite_store, spec, pb.Execution().__class__.FromString(
        proto.SerializeToString()), [first], [])
    again = _Pending(sqlite_store, pb.Event.INPUT)
    again.items = [(["data"], lineage.Artifact(content=b"abc", name="abc"), first.items[0][2])]
    again.items[0][2].ClearField("id")  # as if the first attempt's ids had been lost
    assert _put_execution(sqlite_store, spec, proto, [again], []) == eid
    assert len(sqlite_store.executions(step="f")) == 1
    assert len(sqlite_store.artifacts(name="abc")) == 1
    assert again.items[0][1].id == data.id


def test_read_only_store_refuses_to_record(sqlite_uri: str) -> None:
    lineage.connect(sqlite_uri)  # create it
    ro = lineage.connect(sqlite_uri, read_only=True)

    @lineage.step(store=ro)
    def f() -> None:
        return None

    with pytest.raises(lineage.ReadOnlyStore):
        f()


def test_step_source_hash_changes_with_the_code(tmp_path: Path) -> None:
    module = tmp_path / "mod_a.py"
    module.write_text(textwrap.dedent("""
        import lineage
        @lineage.step
        def f(x=1):
            return x
    """))
    sys.path.insert(0, str(tmp_path))
    try:
        import mod_a  # type: ignore[import-not-found]

        first = mod_a.f.__lineage_step__.code["source_hash"]
        module.write_text(module.read_text().replace("return x", "return x + 1"))
        import importlib

        importlib.reload(mod_a)
        assert mod_a.f.__lineage_step__.code["source_hash"] != first
    finally:
        sys.path.remove(str(tmp_path))
        sys.modules.pop("mod_a", None)



# --- caching -------------------------------------------------------------------------------


class _Counter:
    def __init__(self) -> None:
        self.calls = 0


def _cached_step(
    store: lineage.Store, out: Path, counter: _Counter, keep: bool | None = None
) -> Any:
    @lineage.step(store=store, cache=True, keep=keep)
    def transform(data: lineage.Dataset, scale: float = 1.0) -> dict[str, lineage.Dataset]:
        counter.calls += 1
        rows = Path(data.uri).read_text().split()
        out.write_text("\n".join(str(float(r) * scale) for r in rows))
        return {"scaled": lineage.Dataset(out, name="scaled")}

    return transform


def test_cache_hit_skips_the_body_and_records_cached(
    store: lineage.Store, write_file: Callable[..., Path], tmp_path: Path
) -> None:
    counter = _Counter()
    transform = _cached_step(store, tmp_path / "scaled.txt", counter)
    data = lineage.Dataset(write_file("raw.txt", "1\n2\n"), name="raw")
    first = transform(data, scale=2.0)
    again = transform(lineage.Dataset(write_file("raw.txt", "1\n2\n"), name="raw"), scale=2.0)
    assert counter.calls == 1
    assert again["scaled"].id == first["scaled"].id
    assert isinstance(again["scaled"], lineage.Dataset)
    assert again["scaled"].fingerprint == first["scaled"].fingerprint
    complete, cached = store.executions(step="transform")
    assert (complete.state, cached.state) == ("COMPLETE", "CACHED")
    assert cached.inputs == complete.inputs and cached.outputs == complete.outputs
    assert cached.params == complete.params == {"scale": 2.0}
    assert cached.properties["cached_from"] == complete.id
    assert cached.properties["cache_key"] == complete.properties["cache_key"]
    # the cache lookup is by context name, never a scan of executions
    ctx = store.mlmd.get_context_by_type_and_name("execution_cache", complete.properties["cache_key"])
    assert [e.id for e in store.mlmd.get_executions_by_context(ctx.id)] == [complete.id]


def test_cache_miss_after_a_param_change(
    store: lineage.Store, write_file: Callable[..., Path], tmp_path: Path
) -> None:
    counter = _Counter()
    transform = _cached_step(store, tmp_path / "scaled.txt", counter)
    data = lineage.Dataset(write_file("raw.txt", "1\n2\n"), name="raw")
    transform(data, scale=2.0)
    changed = transform(data, scale=3.0)
    assert counter.calls == 2
    assert Path(changed["scaled"].uri).read_text() == "3.0\n6.0"
    assert [e.state for e in store.executions(step="transform")] == ["COMPLETE", "COMPLETE"]
    assert changed["scaled"].version == 2


def test_cache_miss_after_an_input_changed(
    store: lineage.Store, write_file: Callable[..., Path], tmp_path: Path
) -> None:
    counter = _Counter()
    transform = _cached_step(store, tmp_path / "scaled.txt", counter)
    transform(lineage.Dataset(write_file("raw.txt", "1\n"), name="raw"))
    transform(lineage.Dataset(write_file("raw.txt", "5\n"), name="raw"))
    assert counter.calls == 2


def test_cache_miss_after_the_cached_output_file_changed(
    store: lineage.Store, write_file: Callable[..., Path], tmp_path: Path
) -> None:
    counter = _Counter()
    out = tmp_path / "scaled.txt"
    # not kept: a changed output cannot be restored (tests/test_checkout.py: kept ones are)
    transform = _cached_step(store, out, counter, keep=False)
    data = lineage.Dataset(write_file("raw.txt", "1\n2\n"), name="raw")
    first = transform(data)
    out.write_text("tampered")
    second = transform(data)
    assert counter.calls == 2  # the output no longer matched its fingerprint: the step ran
    assert out.read_text() == "1.0\n2.0"
    assert second["scaled"].id == first["scaled"].id  # same content again: same record
    third = transform(data)
    assert counter.calls == 2 and third["scaled"].id == first["scaled"].id
    assert [e.state for e in store.executions(step="transform")] == ["COMPLETE", "COMPLETE", "CACHED"]
    out.unlink()
    transform(data)
    assert counter.calls == 3  # a deleted output is a miss too


def test_cache_miss_after_the_code_changed(
    sqlite_store: lineage.Store, write_file: Callable[..., Path], tmp_path: Path
) -> None:
    data = lineage.Dataset(write_file("raw.txt", "1\n"), name="raw")

    @lineage.step(name="same_name", store=sqlite_store, cache=True)
    def v1(data: lineage.Dataset) -> None:
        return None

    @lineage.step(name="same_name", store=sqlite_store, cache=True)
    def v2(data: lineage.Dataset) -> None:
        return None  # a different function body

    v1(data)
    v2(data)
    assert [e.state for e in sqlite_store.executions(step="same_name")] == ["COMPLETE", "COMPLETE"]


def test_cached_tuple_and_none_returns_are_rebuilt(sqlite_store: lineage.Store) -> None:
    calls: list[str] = []

    @lineage.step(store=sqlite_store, cache=True)
    def pair(n: int = 1) -> tuple[lineage.Metrics, lineage.Metrics]:
        calls.append("pair")
        lineage.log_metrics({"n": n})
        return lineage.Metrics({"a": n}, name="a"), lineage.Metrics({"b": n}, name="b")

    @lineage.step(store=sqlite_store, cache=True)
    def nothing(n: int = 1) -> None:
        calls.append("nothing")

    a1, b1 = pair()
    a2, b2 = pair()
    assert (a2.id, b2.id) == (a1.id, b1.id) and a2.values == {"a": 1}
    assert nothing() is None and nothing() is None
    assert calls == ["pair", "nothing"]
    cached = sqlite_store.executions(state="CACHED")
    assert len(cached) == 2
    assert next(e for e in cached if e.name == "pair").properties["metrics"] == {"n": 1}


def test_a_failed_run_is_never_a_cache_hit(sqlite_store: lineage.Store) -> None:
    attempts: list[int] = []

    @lineage.step(store=sqlite_store, cache=True)
    def flaky(x: int = 1) -> None:
        attempts.append(x)
        if len(attempts) == 1:
            raise RuntimeError("first time fails")

    with pytest.raises(RuntimeError):
        flaky()
    flaky()
    flaky()
    assert len(attempts) == 2
    assert [e.state for e in sqlite_store.executions(step="flaky")] == ["FAILED", "COMPLETE", "CACHED"]


def test_versions_stay_right_when_another_writer_records_the_same_name(
    sqlite_uri: str, tmp_path: Path
) -> None:
    """Each store object guesses the next version of names it wrote; a guess that another
    writer made stale (or content that is already recorded) is corrected, never duplicated."""
    first, second = lineage.connect(sqlite_uri), lineage.connect(sqlite_uri)

    def writer(store: lineage.Store) -> Any:
        @lineage.step(name="emit", store=store)
        def emit(text: str) -> lineage.Model:
            path = tmp_path / f"{uuid.uuid4().hex}.bin"
            path.write_text(text)
            return lineage.Model(path, name="shared-name")

        return emit

    a, b = writer(first), writer(second)
    assert a("one").version == 1
    assert b("two").version == 2
    assert a("three").version == 3  # a's guess (2) was taken by b
    assert b("one").version == 1  # same content as version 1: the same record
    assert a("four").version == 4
    versions = sorted(m.version for m in first.artifacts(name="shared-name"))
    assert versions == [1, 2, 3, 4]
    assert [e.state for e in first.executions(step="emit")] == ["COMPLETE"] * 5


def test_a_step_name_another_project_used_with_another_kind_says_what_to_do(
    store: lineage.Store,
) -> None:
    @lineage.step(name="train", kind="process", store=store)
    def theirs() -> None:
        pass

    theirs()

    @lineage.step(name="train", kind="train", store=store)
    def ours() -> None:
        pass

    with pytest.raises(lineage.TypeConflict, match=r"name='<project>\.train'"):
        ours()

    @lineage.step(name="myproject.train", kind="train", store=store)
    def scoped() -> None:
        pass

    scoped()
    assert [e.name for e in store.executions()] == ["train", "myproject.train"]
