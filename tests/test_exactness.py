"""Exact answers when runs share data: lineage respects time.

The r1/r2 scenario and the folder scenario of the exactness issue, and random multi-run
histories of real step calls checked against a brute-force oracle that replays what
happened (tests/oracle.py).
"""

from __future__ import annotations

import itertools
import tempfile
from pathlib import Path
from typing import Any

import numpy as np
import oracle
import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

import lineage


def _pipeline(store: lineage.Store, out: Path) -> dict[str, Any]:
    """ingest → split → train → evaluate → deploy, writing real files under ``out``."""

    @lineage.step(store=store)
    def split(raw: lineage.Dataset, test_rows: int = 2) -> dict[str, lineage.Dataset]:
        lines = Path(raw.uri).read_text().splitlines()
        (out / "train.csv").write_text("\n".join(lines[:-test_rows]) + "\n")
        (out / "test.csv").write_text("\n".join(lines[-test_rows:]) + "\n")
        return {"train": lineage.Dataset(out / "train.csv", name="train"),
                "test": lineage.Dataset(out / "test.csv", name="test")}

    @lineage.step(store=store, kind="train")
    def train(data: lineage.Dataset, lr: float = 0.1) -> lineage.Model:
        weights = sum(int(x) for x in Path(data.uri).read_text().split()) * lr
        (out / "model.txt").write_text(f"{weights}\n")
        return lineage.Model(out / "model.txt", name="model")

    @lineage.step(store=store, kind="evaluate")
    def evaluate(model: lineage.Model, data: lineage.Dataset) -> lineage.Metrics:
        return lineage.Metrics({"score": float(Path(model.uri).read_text()) % 7}, name="eval")

    return {"split": split, "train": train, "evaluate": evaluate}


def _run(store: lineage.Store, steps: dict[str, Any], raw: Path, name: str) -> dict[str, Any]:
    with lineage.run(name, store=store):
        parts = steps["split"](lineage.Dataset(raw, name="raw"))
        model = steps["train"](parts["train"])
        metrics = steps["evaluate"](model, parts["test"])
    return {**parts, "model": model, "eval": metrics}


@pytest.fixture
def two_runs(store: lineage.Store, tmp_path: Path) -> dict[str, Any]:
    """Run r1, then edit one training row of raw and run r2: the test split is
    byte-identical in both runs (one record, two producers)."""
    out = tmp_path / "out"
    out.mkdir()
    raw = tmp_path / "raw.csv"
    raw.write_text("1\n2\n3\n4\n5\n")
    steps = _pipeline(store, out)
    r1 = _run(store, steps, raw, "r1")
    raw.write_text("1\n20\n3\n4\n5\n")  # a training row edited
    r2 = _run(store, steps, raw, "r2")
    assert r1["test"].id == r2["test"].id  # the shared intermediate
    return {"r1": r1, "r2": r2}


def test_provenance_of_the_first_model_has_only_its_own_data(
    store: lineage.Store, two_runs: dict[str, Any]
) -> None:
    p = store.provenance("model@1")
    names = {(a.name, a.version) for a in p.artifacts}
    assert names == {("raw", 1), ("train", 1)}
    assert [store.get(r).version for r in p.roots] == [1]
    assert {s.name for s in p.steps} == {"split", "train"}
    assert all(run == ["r1"] for run in (p.step_dict(s)["runs"] for s in p.steps))
    # The evaluation of model v1 read the test split before r2 re-produced it.
    e = store.provenance("eval@1")
    assert ("raw", 2) not in {(a.name, a.version) for a in e.artifacts}
    assert {run for s in e.steps for run in e.step_dict(s)["runs"]} == {"r1"}


def test_impact_of_the_new_data_leaves_the_old_model_out(
    store: lineage.Store, two_runs: dict[str, Any]
) -> None:
    imp = store.impact("raw@2")
    assert {(a.name, a.version) for a in imp.artifacts} == {
        ("train", 2), ("test", 1), ("model", 2), ("eval", 2)}
    assert {e.id for e in imp.executions}.isdisjoint(
        {e.id for e in store.executions(run="r1")})


def test_diff_names_the_cause(store: lineage.Store, two_runs: dict[str, Any]) -> None:
    d = store.diff("model@1", "model@2")
    changed = {x["name"]: ([a["version"] for a in x["a"]], [b["version"] for b in x["b"]])
               for x in d.datasets}
    assert changed["raw"] == ([1], [2])
    assert "raw" in str(d) and not d.only_in_a and not d.only_in_b


def test_verify_of_the_latest_model_checks_only_what_it_used(
    store: lineage.Store, two_runs: dict[str, Any]
) -> None:
    v = store.verify("model")
    assert v.ok, str(v)
    assert {(r.artifact.name, r.artifact.version) for r in v.results} == {
        ("model", 2), ("train", 2), ("raw", 2)}


def test_only_re_produced_outputs_carry_a_place(
    store: lineage.Store, two_runs: dict[str, Any]
) -> None:
    """r2's split re-produces the test split (stamped with its place in the store's order)
    and produces a new train split (no stamp needed: its place is the execution's id)."""
    r1_split = [e for e in store.executions(step="split", run="r1")]
    r2_split = [e for e in store.executions(step="split", run="r2")]
    assert [len(x) for x in (r1_split, r2_split)] == [1, 1]
    first = store.mlmd.get_executions_by_id([r1_split[0].id])[0]
    second = store.mlmd.get_executions_by_id([r2_split[0].id])[0]
    assert "output_seq" not in first.properties  # both outputs were new
    seq = lineage._convert.from_value(second.properties["output_seq"])
    assert list(seq) == ["test"] and seq["test"] >= second.id


def test_cached_re_emission_counts_for_later_readers(store: lineage.Store, tmp_path: Path) -> None:
    calls: list[int] = []

    @lineage.step(store=store, cache=True)
    def make(x: int = 1) -> lineage.Dataset:
        calls.append(x)
        (tmp_path / "made.bin").write_bytes(b"made")  # a file: a hit hands it back
        return lineage.Dataset(tmp_path / "made.bin", name="made")

    @lineage.step(store=store)
    def use(data: lineage.Dataset) -> lineage.Metrics:
        return lineage.Metrics({"n": 1}, name="used")

    with lineage.run("first", store=store):
        use(make())
    with lineage.run("second", store=store):
        use(make())  # a cache hit
    assert calls == [1]
    p = store.provenance("used")
    states = sorted(s.state for s in p.steps if s.name == "make")
    assert states == ["CACHED", "COMPLETE"]  # the hit and the call it reused


def test_a_parent_step_re_emitting_what_its_child_read(store: lineage.Store) -> None:
    """Nested steps: the child is created while the parent runs; the parent's outputs are
    written when it ends, after the child read them."""
    data = store.put(lineage.Dataset(content=b"d", name="d"))

    @lineage.step(store=store)
    def child(data: lineage.Dataset) -> lineage.Metrics:
        return lineage.Metrics({"n": 1}, name="child-out")

    @lineage.step(store=store)
    def parent(data: lineage.Dataset) -> lineage.Dataset:
        child(data)
        return lineage.Dataset(content=b"d", name="d")  # the same bytes: the same record

    assert parent(data).id == data.id
    p = store.provenance("child-out")
    assert [s.name for s in p.steps] == ["child"]  # not the parent, which wrote d later
    assert [s.name for s in store.provenance("d").steps] == ["parent"]  # its own producer


def _digits_folder(folder: Path, images: np.ndarray) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    for i, img in enumerate(images):
        (folder / f"{i:04d}.txt").write_text(" ".join(str(int(v)) for v in img.ravel()))


def test_an_image_folder_with_one_pixel_changed(store: lineage.Store, tmp_path: Path) -> None:
    from sklearn.datasets import load_digits

    images = load_digits().images
    folder = tmp_path / "digits"
    out = tmp_path / "out"
    out.mkdir()

    @lineage.step(store=store)
    def split(images: lineage.Dataset) -> dict[str, lineage.Dataset]:
        files = sorted(Path(images.uri).iterdir())
        for part, chosen in (("train", files[:1500]), ("test", files[1500:])):
            (out / f"{part}.txt").write_text("\n".join(f.read_text() for f in chosen))
        return {p: lineage.Dataset(out / f"{p}.txt", name=f"digits-{p}")
                for p in ("train", "test")}

    @lineage.step(store=store, kind="train")
    def train(data: lineage.Dataset) -> lineage.Model:
        (out / "model.txt").write_text(str(sum(int(v) for v in Path(data.uri).read_text().split())))
        return lineage.Model(out / "model.txt", name="digits-model")

    @lineage.step(store=store, kind="deploy")
    def deploy(model: lineage.Model, test: lineage.Dataset) -> lineage.Artifact:
        return lineage.Artifact(content=Path(model.uri).read_bytes(), name="deployment")

    def run(name: str) -> None:
        with lineage.run(name, store=store):
            parts = split(lineage.Dataset(folder, name="digits"))
            deploy(train(parts["train"]), parts["test"])

    _digits_folder(folder, images)
    run("first")
    changed = images.copy()
    changed[3, 4, 4] += 1  # one pixel of a training image
    _digits_folder(folder, changed)
    run("second")
    first = store.provenance("digits-model@1")
    assert [(store.get(r).name, store.get(r).version) for r in first.roots] == [("digits", 1)]
    imp = store.impact("digits@2")
    names = {(a.name, a.version) for a in imp.artifacts}
    assert ("digits-model", 1) not in names
    deployments = [a for a in store.artifacts(name="deployment")]
    assert len(deployments) == 2
    assert deployments[0].id not in {a.id for a in imp.artifacts}


# --- random histories against the oracle ----------------------------------------------

CONTENTS = ["a", "b", "c"]  # few contents: identical bytes recur across calls
NAMES = ["x", "y"]


@st.composite
def histories(draw: st.DrawFn) -> list[tuple[str, Any]]:
    """A random history: puts of data, calls of plain and cached steps that read earlier
    artifacts and write named content (often bytes recorded before)."""
    ops: list[tuple[str, Any]] = [("put", (draw(st.sampled_from(NAMES)),
                                          draw(st.sampled_from(CONTENTS))))]
    for _ in range(draw(st.integers(1, 9))):
        kind = draw(st.sampled_from(["put", "step", "step", "cached"]))
        if kind == "put":
            ops.append(("put", (draw(st.sampled_from(NAMES)), draw(st.sampled_from(CONTENTS)))))
        else:
            reads = draw(st.lists(st.integers(0, 50), max_size=2))
            writes = draw(st.lists(st.tuples(st.sampled_from(NAMES), st.sampled_from(CONTENTS)),
                                   min_size=1, max_size=2))
            ops.append((kind, (reads, writes)))
    return ops


@settings(max_examples=25, deadline=None,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])
@given(ops=histories())
@example(ops=[  # a cache hit re-emitting what an earlier consumer read, then a later consumer
    ("put", ("x", "a")), ("cached", ([0], [("y", "b")])), ("step", ([1], [("x", "c")])),
    ("cached", ([0], [("y", "b")])), ("step", ([1], [("y", "a")])),
    ("step", ([0, 1], [("x", "a")]))])
def test_random_histories_match_the_oracle(ops: list[tuple[str, Any]]) -> None:
    store = lineage.connect(":memory:")
    history = oracle.History()
    clock = itertools.count(1)
    known: list[lineage.Artifact] = []
    ran: list[bool] = []

    folder = Path(tempfile.mkdtemp())

    def body(inputs: list[lineage.Dataset], writes: list[tuple[str, str]]) -> list[lineage.Dataset]:
        ran.append(True)
        out = []
        for n, c in writes:  # files, so that cached calls can hand them back (cache hits)
            (folder / f"{n}-{c}.txt").write_text(c)
            out.append(lineage.Dataset(folder / f"{n}-{c}.txt", name=n))
        return out

    plain = lineage.step(name="plain", store=store)(body)
    cached = lineage.step(name="cached", store=store, cache=True)(body)
    for kind, args in ops:
        if kind == "put":
            name, content = args
            known.append(store.put(lineage.Dataset(content=content.encode(), name=name)))
            continue
        reads, writes = args
        inputs = list({known[i % len(known)].id: known[i % len(known)]
                       for i in reads}.values())
        ran.clear()
        read_time = next(clock)
        outs = (cached if kind == "cached" else plain)(inputs, writes)
        write_time = next(clock) if ran else read_time + 0.5  # a hit writes when it reads
        [execution] = [e for e in store.executions() if e.id == max(
            x.id for x in store.executions())]
        history.read(read_time, execution.id, [a.id for a in inputs])
        history.write(write_time, execution.id, {a.id for a in outs})
        known.extend(outs)
    if len(ops) > 3 and ops[1][0] == "cached" and ops[1] == ops[3]:
        assert store.executions(state="CACHED")  # the example above hits the cache
    for art in {a.id: a for a in known}.values():
        assert art.id is not None
        up_a, up_e = oracle.upstream(history, art.id)
        p = store.provenance(art.id)
        assert ({a.id for a in p.artifacts}, {s.id for s in p.steps}) == (up_a, up_e)
        down_a, down_e = oracle.downstream(history, art.id)
        imp = store.impact(art.id)
        assert ({a.id for a in imp.artifacts}, {e.id for e in imp.executions}) == (down_a, down_e)
        g = store.graph()
        assert {n for n in lineage.graph.upstream(g, art.ref)} == (
            {f"artifact:{a}" for a in up_a} | {f"execution:{e}" for e in up_e})
