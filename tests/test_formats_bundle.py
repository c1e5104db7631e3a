"""Bundles move lineage exactly: version numbers kept, identities independent of the store's
path, altered bundles refused before anything is written, and the imported store answering
every question as the source does (time order included).

Sources are SQLite files written by ``@lineage.step``/``store.put`` or by a TFX-shaped writer
(tests/test_foreign_stores.py); targets are the ``store`` fixture (SQLite file,
``:memory:``, PostgreSQL, MariaDB) where the point touches the store.
"""

from __future__ import annotations

import gc
import hashlib
import random
import shutil
from pathlib import Path
from typing import Any

import pytest
from test_exactness import _pipeline, _run
from test_export import counts, normalized, record_pipeline

import lineage
from lineage.formats.bundle import digest_of, read_bundle, seal

# --- helpers ----------------------------------------------------------------------------


def key(a: lineage.Artifact) -> tuple[Any, ...]:
    """What an artifact is, in any store: its type, name, version, content, location."""
    return (a.type_name, a.name, a.version, a.fingerprint, a.uri)


def answers(store: lineage.Store, ref: Any) -> dict[str, Any]:
    """Provenance and impact of ``ref``, every id replaced by what it names."""
    p = store.provenance(ref)
    i = store.impact(ref)
    ids = {x for s in [*p.steps, *i.executions] for x in s.inputs + s.outputs}
    arts = store.artifacts_by_id(ids | {a.id for a in p.artifacts} | {a.id for a in i.artifacts}
                                 | {p.target.id})

    def step(s: Any, runs: dict[int, list[Any]]) -> tuple[Any, ...]:
        return (s.name, s.state, repr(sorted(s.params.items())),
                tuple(sorted(key(arts[x]) for x in s.inputs if x in arts)),
                tuple(sorted(key(arts[x]) for x in s.outputs if x in arts)),
                tuple(sorted(r.name for r in runs.get(s.id, []))))

    return {
        "target": key(p.target),
        "upstream": sorted(key(a) for a in p.artifacts),
        "roots": sorted(key(arts[r]) for r in p.roots),
        "steps": sorted(step(s, p.runs) for s in p.steps),
        "downstream": sorted(key(a) for a in i.artifacts),
        "impact_steps": sorted(step(s, i.runs) for s in i.executions),
    }


def file_digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


# --- versions ---------------------------------------------------------------------------


def test_versions_keep_their_numbers_in_an_empty_store(store: lineage.Store,
                                                       tmp_path: Path) -> None:
    a = lineage.connect(tmp_path / "a.sqlite")
    v1 = a.put(lineage.Model(content=b"weights one", name="clf"))
    v2 = a.put(lineage.Model(content=b"weights two", name="clf"))
    result = store.import_bundle(a.export("clf@2").to_bytes())
    assert result.renumbered == {}
    new2 = store.get(result.artifacts[v2.id])
    assert (new2.name, new2.version, new2.fingerprint) == ("clf", 2, v2.fingerprint)
    assert store.get("clf").id == new2.id  # a bare name: the newest version
    new1 = store.get("clf@1")
    assert new1.fingerprint == v1.fingerprint and new2.previous_version == new1.id
    # the bundle of version 1, imported later, is already here: nothing is renumbered
    later = store.import_bundle(a.export("clf@1").to_bytes())
    assert later.added["artifacts"] == 0 and later.artifacts[v1.id] == new1.id
    assert store.get("clf@2").previous_version == new1.id
    # the target goes on numbering after the imported versions
    v3 = store.put(lineage.Model(content=b"weights three", name="clf"))
    assert (v3.version, v3.previous_version) == (3, new2.id)


def test_a_real_conflict_renumbers_in_source_order(store: lineage.Store, tmp_path: Path) -> None:
    a = lineage.connect(tmp_path / "a.sqlite")
    a.put(lineage.Model(content=b"source one", name="clf"))
    a2 = a.put(lineage.Model(content=b"source two", name="clf"))
    own = store.put(lineage.Model(content=b"target's own", name="clf"))
    result = store.import_bundle(a.export(a2).to_bytes())
    assert result.renumbered == {"clf@1": "clf@2", "clf@2": "clf@3"}
    assert "renumbered: clf@1 as clf@2, clf@2 as clf@3" in str(result)
    chain = [store.get(f"clf@{n}") for n in (1, 2, 3)]
    assert [c.fingerprint for c in chain] == [own.fingerprint, a.get("clf@1").fingerprint,
                                             a2.fingerprint]
    assert [c.previous_version for c in chain] == [None, chain[0].id, chain[1].id]
    assert store.get("clf").id == chain[2].id
    # importing again: the same records, nothing new, nothing renumbered again
    again = store.import_bundle(a.export(a2).to_bytes())
    assert set(again.added.values()) == {0} and again.renumbered == {}


def test_the_current_version_stays_the_current_content(tmp_path: Path) -> None:
    a = lineage.connect(tmp_path / "a.sqlite")
    a.put(lineage.Dataset(content=b"A", name="tbl"))
    a.put(lineage.Dataset(content=b"B", name="tbl"))
    a.put(lineage.Dataset(content=b"A", name="tbl"))  # A again: tbl means version 1
    assert a.get("tbl").version == 1
    b = lineage.connect(tmp_path / "b.sqlite")
    b.import_bundle(a.export("tbl@2").to_bytes())
    assert b.get("tbl").version == 1 and b.get("tbl").fingerprint == a.get("tbl").fingerprint


def test_import_into_a_store_with_its_own_run_of_the_same_name(tmp_path: Path) -> None:
    a = lineage.connect(tmp_path / "a" / "metadata.sqlite")
    rec = record_pipeline(a, tmp_path / "files")
    b = lineage.connect(tmp_path / "b" / "metadata.sqlite")
    record_pipeline(b, tmp_path / "other", lr=0.5)
    result = b.import_bundle(a.export(rec["model"]).to_bytes())
    assert result.renumbered["clf@1"] == "clf@2"
    assert normalized(b, result.artifacts[rec["model"].id])["steps"][-1]["params"] == {
        "lr": 0.05, "epochs": 3}


# --- identity -----------------------------------------------------------------------------


def test_a_copy_of_a_tfx_store_at_another_path_imports_as_nothing_new(
    store: lineage.Store, tmp_path: Path
) -> None:
    from test_foreign_stores import write_taxi

    path = tmp_path / "tfx" / "metadata.sqlite"
    source = lineage.connect(path)
    ids = write_taxi(source.mlmd)
    refs = [ids["pushed1"], ids["pushed3"]]
    first = store.import_bundle(source.export(refs).to_bytes())
    assert first.added["artifacts"] > 0
    before = counts(store)
    trainer = first.executions[ids["train3"]]
    inputs = len(store.mlmd.get_events_by_execution_ids([trainer]))
    source.close()
    del source
    gc.collect()  # MLMD closes its SQLite connection when collected
    copy = tmp_path / "elsewhere" / "copy.sqlite"
    copy.parent.mkdir()
    shutil.copyfile(path, copy)  # a byte-identical copy at another path
    assert file_digest(copy) == file_digest(path)
    other = lineage.connect(copy)
    data = other.export(refs).to_bytes()
    assert read_bundle(data).header.source_uri != read_bundle(
        lineage.connect(path).export(refs).to_bytes()).header.source_uri
    second = store.import_bundle(data)
    assert set(second.added.values()) == {0}, second.added
    assert counts(store) == before
    assert len(store.mlmd.get_events_by_execution_ids([trainer])) == inputs
    assert second.artifacts == first.artifacts and second.executions == first.executions
    # one bundle per pushed model, from the copy: nothing new either
    for ref in refs:
        assert set(store.import_bundle(other.export(ref).to_bytes()).added.values()) == {0}
    assert counts(store) == before


def test_bundles_imported_by_the_earlier_importer_are_recognised(tmp_path: Path) -> None:
    """Bundles imported before identities were content-based carry the old ids."""
    from test_foreign_stores import write_taxi

    from lineage.formats import bundle_import

    a = lineage.connect(tmp_path / "a.sqlite")
    ids = write_taxi(a.mlmd)
    bundle = a.export(ids["pushed1"]).document
    b = lineage.connect(tmp_path / "b.sqlite")
    b.import_bundle(bundle)
    # rewrite the stored ids the way the earlier importer wrote them
    for kind in ("artifact", "execution", "context"):
        records = {"artifact": bundle.artifacts, "execution": bundle.executions,
                   "context": bundle.contexts}[kind]
        legacy = {bundle_import.identities(bundle)[kind][r.id]: bundle_import._legacy_id(
            bundle, kind, r) for r in records if not r.external_id}
        stored = getattr(b.mlmd, f"get_{kind}s_by_external_ids")(sorted(legacy))
        for proto in stored:
            proto.external_id = legacy[proto.external_id]
        getattr(b.mlmd, f"put_{kind}s")(stored)
    before = counts(b)
    assert set(b.import_bundle(bundle).added.values()) == {0}
    assert counts(b) == before


# --- altered bundles ----------------------------------------------------------------------


def test_a_flipped_byte_in_a_fingerprint_is_refused(tmp_path: Path) -> None:
    a = lineage.connect(tmp_path / "a.sqlite")
    a.put(lineage.Model(content=b"w", name="clf"))
    data = a.export("clf").to_bytes()
    at = data.index(b"sha256:") + 4
    altered = data[:at] + b"1" + data[at + 1:]  # sha256: -> sha216:
    assert b"sha216:" in altered
    b = lineage.connect(tmp_path / "b.sqlite")
    with pytest.raises(lineage.BundleError, match="altered after it was written"):
        b.import_bundle(altered)
    assert counts(b)["artifacts"] == 0 and b.mlmd.get_artifact_types() == []
    text = a.export("clf").to_bytes(json_form=True).replace(b'"sha256:', b'"sha216:', 1)
    with pytest.raises(lineage.BundleError, match="altered"):
        b.import_bundle(text)
    unsealed = a.export("clf").document
    unsealed.header.digest = ""
    with pytest.raises(lineage.BundleError, match="no digest"):
        b.import_bundle(unsealed)
    assert counts(b)["artifacts"] == 0


def test_mutants_are_refused_before_writing_or_imported_intact(tmp_path: Path) -> None:
    """A seeded loop flipping bytes of a real bundle (a run with a cached step, a Config,
    nested contexts): each mutant is refused with a BundleError and the target store file
    is byte-identical, or it is the same bundle and imports intact."""
    a = lineage.connect(tmp_path / "a" / "metadata.sqlite")
    rec = record_pipeline(a, tmp_path / "files")
    original = a.export(rec["metrics"])
    data = original.to_bytes()
    path = tmp_path / "target" / "metadata.sqlite"
    target = lineage.connect(path)
    target.put(lineage.Dataset(content=b"already here", name="other"))
    before, file_before = counts(target), file_digest(path)
    types_before = len(target.mlmd.get_artifact_types())
    rng = random.Random(9)
    refused = intact = 0
    for _ in range(400):
        mutant = bytearray(data)
        for _ in range(rng.choice([1, 1, 1, 2, 3])):
            mutant[rng.randrange(len(mutant))] ^= rng.randrange(1, 256)
        try:
            result = target.import_bundle(bytes(mutant))
        except lineage.BundleError:
            refused += 1
            assert counts(target) == before
            assert file_digest(path) == file_before
            assert len(target.mlmd.get_artifact_types()) == types_before
            continue
        intact += 1  # the same content: the parse ignored what the flip changed
        assert read_bundle(bytes(mutant)) == original.document
        assert result.added["executions"] == len(original.document.executions)
        assert normalized(target, result.artifacts[rec["metrics"].id]) == normalized(
            a, rec["metrics"])
        before, file_before = counts(target), file_digest(path)
        types_before = len(target.mlmd.get_artifact_types())
    assert refused > 350
    # JSON bundles: a flipped character is refused as well
    text = original.to_bytes(json_form=True)
    for _ in range(100):
        mutant = bytearray(text)
        mutant[rng.randrange(len(mutant))] ^= rng.randrange(1, 128)
        try:
            target.import_bundle(bytes(mutant))
        except lineage.BundleError:
            assert counts(target) == before and file_digest(path) == file_before
        else:
            assert read_bundle(bytes(mutant)) == original.document
            before, file_before = counts(target), file_digest(path)


@pytest.mark.parametrize("damage, message", [
    (lambda b: b.artifacts.add(id=900, type=b.artifacts[0].type, name=b.artifacts[0].name),
     "are named"),
    (lambda b: b.events.add().CopyFrom(b.events[0]), "repeated"),
    (lambda b: b.parent_contexts.add(child_id=b.parent_contexts[0].parent_id,
                                     parent_id=b.parent_contexts[0].child_id), "cycle"),
    (lambda b: setattr(b.executions[0], "last_known_state", 42), "unknown state"),
    (lambda b: b.types.artifact_types[0].properties.add(name="x", type=99), "unknown type"),
])
def test_inconsistent_sealed_bundles_are_refused_whole(
    tmp_path: Path, damage: Any, message: str
) -> None:
    a = lineage.connect(tmp_path / "a" / "metadata.sqlite")
    rec = record_pipeline(a, tmp_path / "files")
    bundle = a.export(rec["model"]).document
    damage(bundle)
    seal(bundle)
    assert bundle.header.digest == digest_of(bundle)
    b = lineage.connect(tmp_path / "b.sqlite")
    with pytest.raises(lineage.BundleError, match=message):
        b.import_bundle(bundle.SerializeToString())
    assert counts(b) == dict.fromkeys(counts(b), 0) and b.mlmd.get_artifact_types() == []


# --- the imported store answers as the source ---------------------------------------------


def _history(store: lineage.Store, folder: Path) -> None:
    """The r1/r2 scenario (one training row edited; the test split byte-identical in both
    runs), a cached re-emission, and a parent step re-emitting what its child had read."""
    out = folder / "out"
    out.mkdir(parents=True)
    raw = folder / "raw.csv"
    raw.write_text("1\n2\n3\n4\n5\n")
    steps = _pipeline(store, out)
    r1 = _run(store, steps, raw, "r1")
    raw.write_text("1\n20\n3\n4\n5\n")
    r2 = _run(store, steps, raw, "r2")
    assert r1["test"].id == r2["test"].id

    @lineage.step(store=store, cache=True)
    def make(x: int = 1) -> lineage.Dataset:
        return lineage.Dataset(content=b"made", name="made")

    @lineage.step(store=store)
    def use(data: lineage.Dataset) -> lineage.Metrics:
        return lineage.Metrics({"n": 1}, name="used")

    with lineage.run("first", store=store):
        use(make())
    with lineage.run("second", store=store):
        use(make())

    data = store.put(lineage.Dataset(content=b"d", name="d"))

    @lineage.step(store=store)
    def child(data: lineage.Dataset) -> lineage.Metrics:
        return lineage.Metrics({"n": 1}, name="child-out")

    @lineage.step(store=store)
    def parent(data: lineage.Dataset) -> lineage.Dataset:
        child(data)
        return lineage.Dataset(content=b"d", name="d")

    parent(data)


def test_an_imported_multi_run_store_answers_as_the_source(
    store: lineage.Store, tmp_path: Path
) -> None:
    a = lineage.connect(tmp_path / "a" / "metadata.sqlite")
    _history(a, tmp_path / "files")
    every = [x.id for x in a.artifacts()]
    result = store.import_bundle(a.export(every).to_bytes())
    assert sorted(result.artifacts) == sorted(every)
    for old, new in sorted(result.artifacts.items()):
        assert answers(store, new) == answers(a, old), a.get(old)
    # the facts of the scenario, asked of the imported store
    assert {(x.name, x.version) for x in store.provenance("model@1").artifacts} == {
        ("raw", 1), ("train", 1)}
    assert ("model", 1) not in {(x.name, x.version) for x in store.impact("raw@2").artifacts}
    assert [s.name for s in store.provenance("child-out").steps] == ["child"]
    # our output places are in the target's id space: below or at its newest execution
    newest = max(e.id for e in store.mlmd.get_executions())
    for proto in store.mlmd.get_executions_by_id(sorted(result.executions.values())):
        if "output_seq" in proto.properties:
            from lineage._timeline import output_seq_of

            assert all(0 < v <= newest for v in (output_seq_of(proto) or {}).values())


def test_bundles_imported_oldest_first_answer_as_the_source(tmp_path: Path) -> None:
    a = lineage.connect(tmp_path / "a" / "metadata.sqlite")
    _history(a, tmp_path / "files")
    b = lineage.connect(tmp_path / "b.sqlite")
    for ref in ("eval@1", "eval@2", "used", "child-out", "d"):
        b.import_bundle(a.export(ref).to_bytes())
    for name in ("model@1", "model@2", "eval@1", "eval@2", "child-out"):
        assert answers(b, name) == answers(a, name), name


@pytest.mark.parametrize("fail_at", ["put_contexts", "put_executions",
                                     "put_attributions_and_associations"])
def test_importing_again_completes_an_import_that_failed_half_way(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, fail_at: str
) -> None:
    """The store fails after the records were written (an injected fault at one MLMD
    call, through the store's one door): importing again completes everything."""
    a = lineage.connect(tmp_path / "a" / "metadata.sqlite")
    _history(a, tmp_path / "files")
    data = a.export([x.id for x in a.artifacts()]).to_bytes()
    clean = lineage.connect(tmp_path / "clean.sqlite")
    clean.import_bundle(data)
    b = lineage.connect(tmp_path / "b.sqlite")
    real = b._call

    def failing(method: str, *args: Any, **kwargs: Any) -> Any:
        if method == fail_at:
            raise lineage.StoreError(f"injected failure at {method}")
        return real(method, *args, **kwargs)

    monkeypatch.setattr(b, "_call", failing)
    with pytest.raises(lineage.StoreError, match="injected"):
        b.import_bundle(data)
    monkeypatch.setattr(b, "_call", real)
    b.import_bundle(data)
    assert counts(b) == counts(clean)
    assert set(b.import_bundle(data).added.values()) == {0}
    for x in a.artifacts():
        assert answers(b, key_ref(x)) == answers(a, x.id), x


def key_ref(a: lineage.Artifact) -> str:
    return f"{a.name}@{a.version}"
