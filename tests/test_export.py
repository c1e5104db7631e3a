"""Export (bundle, OpenLineage, W3C PROV) and bundle import, on real stores.

The source store A is a SQLite file with a small pipeline recorded by ``@lineage.step``
inside ``lineage.run``; bundles are imported into the ``store`` fixture (SQLite file,
``:memory:``, PostgreSQL) and the provenance read back from it is compared with A's.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from google.protobuf import json_format

import lineage
from lineage.cli import main
from lineage.export import FORMAT_VERSION, Bundle, read_bundle
from lineage.formats.bundle import seal

# --- a recorded pipeline ----------------------------------------------------------------


def record_pipeline(store: lineage.Store, folder: Path, *, run: str = "baseline",
                    lr: float = 0.05) -> dict[str, Any]:
    """ingest → split (train, test) → train (twice: COMPLETE then CACHED) → clf;
    evaluate(clf, test) → metrics, in run ``run`` of experiment ``iris``."""
    folder.mkdir(parents=True, exist_ok=True)
    raw = folder / "iris.csv"
    raw.write_text("a,b,label\n1,2,x\n3,4,y\n5,6,x\n7,8,y\n")
    params = folder / "params.yaml"
    params.write_text(f"lr: {lr}\n")

    @lineage.step(store=store, kind="process")
    def ingest(path: str) -> lineage.Dataset:
        return lineage.Dataset(path, name="iris")

    @lineage.step(store=store, kind="transform")
    def split(data: lineage.Dataset, seed: int = 0) -> tuple[lineage.Dataset, lineage.Dataset]:
        rows = Path(data.uri).read_text().splitlines()
        (folder / "train.csv").write_text("\n".join(rows[:3]))
        (folder / "test.csv").write_text("\n".join(rows[:1] + rows[3:]))
        return (lineage.Dataset(folder / "train.csv", name="train"),
                lineage.Dataset(folder / "test.csv", name="test"))

    @lineage.step(store=store, kind="train", cache=True)
    def train(data: lineage.Dataset, lr: float = 0.1, epochs: int = 3) -> lineage.Model:
        (folder / "model.pkl").write_bytes(f"model {lr} {epochs}".encode())
        return lineage.Model(folder / "model.pkl", name="clf")

    @lineage.step(store=store, kind="evaluate")
    def evaluate(model: lineage.Model, data: lineage.Dataset) -> lineage.Metrics:
        return lineage.Metrics({"acc": 0.9}, name="eval")

    with lineage.run(run, experiment="iris", store=store, config=str(params)):
        data = ingest(str(raw))
        tr, te = split(data, seed=7)
        model = train(tr, lr=lr)
        model = train(tr, lr=lr)  # a cache hit: a CACHED execution, `cached_from` the first
        metrics = evaluate(model, te)
    return {"model": model, "metrics": metrics, "train": tr, "test": te}


@pytest.fixture
def source(tmp_path: Path) -> tuple[lineage.Store, dict[str, Any]]:
    store = lineage.connect(tmp_path / "a" / "metadata.sqlite")
    return store, record_pipeline(store, tmp_path / "files")


def normalized(store: lineage.Store, ref: Any) -> dict[str, Any]:
    """``provenance(ref).to_dict()`` with every id replaced by what it names."""
    d = store.provenance(ref).to_dict()
    arts = {a["id"]: a for a in [d["target"], *d["artifacts"]]}
    extra = {i for s in d["steps"] for i in s["inputs"] + s["outputs"]} - set(arts)
    arts.update({i: a.to_dict() for i, a in store.artifacts_by_id(extra).items()})

    def art(i: int) -> str:
        a = arts[i]
        return f"{a['type']}:{a['name']}@{a['version']}:{a['fingerprint']}:{a['uri']}"

    steps = {s["id"]: f"{s['name']}#{n}" for n, s in enumerate(d["steps"])}

    def strip(a: dict[str, Any]) -> dict[str, Any]:
        return {k: v for k, v in a.items() if k != "id"}

    return {
        "target": strip(d["target"]),
        "datasets": [strip(a) for a in d["datasets"]],
        "artifacts": [strip(a) for a in d["artifacts"]],
        "roots": sorted(art(i) for i in d["roots"]),
        "steps": [
            {**{k: v for k, v in s.items() if k not in ("id", "inputs", "outputs")},
             "key": steps[s["id"]],
             "inputs": [art(i) for i in s["inputs"]],
             "outputs": [art(i) for i in s["outputs"]]}
            for s in d["steps"]
        ],
    }


def counts(store: lineage.Store) -> dict[str, int]:
    """Rows of each kind in the store, read with raw ml_metadata (tests may)."""
    m = store.mlmd
    contexts = m.get_contexts()
    executions = m.get_executions()
    return {
        "artifacts": len(m.get_artifacts()),
        "executions": len(executions),
        "contexts": len(contexts),
        "events": len(m.get_events_by_execution_ids([e.id for e in executions])),
        "attributions": sum(len(m.get_artifacts_by_context(c.id)) for c in contexts),
        "associations": sum(len(m.get_executions_by_context(c.id)) for c in contexts),
        "parents": sum(len(m.get_parent_contexts_by_context(c.id)) for c in contexts),
    }


# --- bundle round trip --------------------------------------------------------------------


def test_bundle_round_trip_reproduces_the_provenance(
    source: tuple[lineage.Store, dict[str, Any]], store: lineage.Store, tmp_path: Path
) -> None:
    a, rec = source
    model = rec["model"]
    path = a.export(model, "bundle", path=tmp_path / "clf.pb").write(tmp_path / "clf.pb")
    result = store.import_bundle(path)

    assert normalized(store, "clf") == normalized(a, model)
    assert result.added["artifacts"] == len(result.artifacts) > 0
    assert result.added["executions"] == len(result.executions) == 4  # ingest, split, train twice
    # the imported executions name their run in this store (run_context was remapped)
    b_steps = store.provenance("clf").to_dict()["steps"]
    assert {s["name"]: s["runs"] for s in b_steps}["train"] == ["baseline"]
    assert {s["experiment"] for s in b_steps} == {"iris"}
    run = store.runs(experiment="iris")
    assert [r.run_name for r in run] == ["baseline"]
    # the Run's config names the imported Config artifact
    config = run[0].properties["config"]
    assert store.get(config["params.yaml"]).type_name == "Config"
    # the CACHED execution points at the imported COMPLETE one
    trains = store.executions(step="train")
    complete = next(e for e in trains if e.state == "COMPLETE")
    cached = next(e for e in trains if e.state == "CACHED")
    assert cached.properties["cached_from"] == complete.id
    assert store.get("iris").version == 1


def test_importing_twice_adds_nothing(
    source: tuple[lineage.Store, dict[str, Any]], store: lineage.Store
) -> None:
    a, rec = source
    data = a.export(rec["model"]).to_bytes()
    first = store.import_bundle(data)
    before = counts(store)
    second = store.import_bundle(data)
    assert counts(store) == before
    assert set(second.added.values()) == {0}
    assert second.artifacts == first.artifacts
    assert second.executions == first.executions
    assert second.contexts == first.contexts
    assert "nothing new" in str(second)


def test_import_into_the_source_store_adds_nothing(
    source: tuple[lineage.Store, dict[str, Any]],
) -> None:
    a, rec = source
    before = counts(a)
    result = a.import_bundle(a.export(rec["model"]).to_bytes())
    assert counts(a) == before
    assert set(result.added.values()) == {0}
    assert all(old == new for old, new in result.artifacts.items())


def test_json_bundle_is_sorted_and_imports_like_the_binary_one(
    source: tuple[lineage.Store, dict[str, Any]], tmp_path: Path
) -> None:
    a, rec = source
    path = a.export(rec["model"], "bundle", path=tmp_path / "clf.json").write(tmp_path / "clf.json")
    text = path.read_text()
    doc = json.loads(text)
    assert text == json.dumps(doc, sort_keys=True, indent=2, ensure_ascii=False) + "\n"
    assert doc["header"]["format_version"] == FORMAT_VERSION == 2
    assert doc["header"]["digest"].startswith("sha256:")
    assert doc["header"]["source_uri"] == a.uri
    assert doc["header"]["lineage_version"] == lineage.__version__
    assert doc["header"]["mlmd_version"]
    assert {t["name"] for t in doc["types"]["context_types"]} == {"Experiment", "Run"}
    assert any(e["path"] for e in doc["events"])
    b = lineage.connect(tmp_path / "b.sqlite")
    b.import_bundle(path)
    assert normalized(b, "clf") == normalized(a, rec["model"])


def test_bundle_contents_follow_the_provenance(
    source: tuple[lineage.Store, dict[str, Any]],
) -> None:
    a, rec = source
    p = a.provenance(rec["model"])
    bundle = a.export(rec["model"]).document
    assert isinstance(bundle, Bundle)
    ids = {x.id for x in bundle.artifacts}
    assert {p.target.id, *(x.id for x in p.artifacts)} <= ids
    assert rec["test"].id in ids  # split's other output: split keeps both outputs
    assert rec["metrics"].id not in ids  # downstream of the model: not provenance
    assert [e.id for e in bundle.executions] == sorted(s.id for s in p.steps)
    assert {(c.type, c.name) for c in bundle.contexts} == {("Run", "baseline"),
                                                           ("Experiment", "iris")}
    run_id = next(c.id for c in bundle.contexts if c.type == "Run")
    exp_id = next(c.id for c in bundle.contexts if c.type == "Experiment")
    assert [(x.child_id, x.parent_id) for x in bundle.parent_contexts] == [(run_id, exp_id)]
    assert {x.execution_id for x in bundle.associations} == {s.id for s in p.steps}
    assert {x.artifact_id for x in bundle.attributions} >= {x.id for x in p.artifacts}


def test_import_into_a_store_with_its_own_versions_appends_versions(
    source: tuple[lineage.Store, dict[str, Any]], tmp_path: Path
) -> None:
    a, rec = source
    b = lineage.connect(tmp_path / "b" / "metadata.sqlite")
    own = record_pipeline(b, tmp_path / "other", lr=0.5)  # its own clf@1, run "baseline"
    result = b.import_bundle(a.export(rec["model"]).to_bytes())
    imported = b.get(result.artifacts[rec["model"].id])
    assert imported.name == "clf" and imported.version == 2
    assert imported.previous_version == own["model"].id
    assert imported.fingerprint == rec["model"].fingerprint
    assert b.get("iris").version == 1  # same content, same name: the same record
    assert [r.name for r in b.runs(experiment="iris")] == ["baseline", "baseline-2"]
    assert normalized(b, imported)["steps"][-1]["params"] == {"lr": 0.05, "epochs": 3}


def test_foreign_tfx_records_round_trip_and_import_once(
    store: lineage.Store, tmp_path: Path
) -> None:
    from test_foreign_stores import write_taxi

    a = lineage.connect(tmp_path / "tfx" / "metadata.sqlite")
    ids = write_taxi(a.mlmd)  # no names, no external ids; pipeline/pipeline_run/node contexts
    data = a.export(ids["pushed1"]).to_bytes()
    result = store.import_bundle(data)
    new_id = result.artifacts[ids["pushed1"]]
    assert normalized(store, new_id) == normalized(a, ids["pushed1"])
    step = next(s for s in store.provenance(new_id).to_dict()["steps"] if s["name"] == "Trainer")
    assert step["experiment"] == "taxi"
    assert {c["type"] for c in step["contexts"]} == {"pipeline", "pipeline_run", "node"}
    imported = store.mlmd.get_artifacts_by_id([new_id])[0]
    assert imported.external_id.startswith("bundle:artifact:")  # its content identity
    before = counts(store)
    assert set(store.import_bundle(data).added.values()) == {0}
    assert counts(store) == before


def test_nested_steps_keep_their_parent_execution(tmp_path: Path) -> None:
    a = lineage.connect(tmp_path / "a.sqlite")

    @lineage.step(store=a)
    def inner(x: int) -> lineage.Model:
        return lineage.Model(content=f"weights {x}".encode(), name="clf")

    @lineage.step(store=a)
    def outer(x: int) -> lineage.Model:
        return inner(x)

    outer(3)
    b = lineage.connect(tmp_path / "b.sqlite")
    result = b.import_bundle(a.export("clf").to_bytes())
    [old_outer] = a.executions(step="outer")
    [old_inner] = a.executions(step="inner")
    assert old_inner.properties["parent_execution"] == old_outer.id
    [new_inner] = b.executions(step="inner")
    assert new_inner.properties["parent_execution"] == result.executions[old_outer.id]
    assert normalized(b, "clf") == normalized(a, "clf")


# --- bad input ------------------------------------------------------------------------------


def test_read_only_store_refuses_import(
    source: tuple[lineage.Store, dict[str, Any]], tmp_path: Path
) -> None:
    a, rec = source
    path = lineage.connect(tmp_path / "ro.sqlite").uri
    ro = lineage.connect(path, read_only=True)
    with pytest.raises(lineage.ReadOnlyStore):
        ro.import_bundle(a.export(rec["model"]).to_bytes())


@pytest.mark.parametrize("data", [
    b"\x00\xff garbage \x13\x37",
    b"",
    b'{"header": {"format_version": 1}, "artifacts": [{"id": "x"}]}',
    b'{"header": {"format_version": 7}}',
    b'{"not": "a bundle"}',
])
def test_corrupt_bundles_raise_and_write_nothing(store: lineage.Store, data: bytes) -> None:
    with pytest.raises(lineage.BundleError, match="bundle"):
        store.import_bundle(data)
    assert counts(store)["artifacts"] == 0
    assert store.mlmd.get_artifact_types() == []


def test_inconsistent_bundle_is_refused_before_writing(
    source: tuple[lineage.Store, dict[str, Any]], tmp_path: Path
) -> None:
    a, rec = source
    bundle = a.export(rec["model"]).document
    bundle.events.add(artifact_id=99999, execution_id=bundle.executions[0].id, type=3)
    b = lineage.connect(tmp_path / "b.sqlite")
    with pytest.raises(lineage.BundleError, match="altered"):  # not sealed again
        b.import_bundle(bundle.SerializeToString())
    with pytest.raises(lineage.BundleError, match="not both in the bundle"):
        b.import_bundle(seal(bundle).SerializeToString())
    assert counts(b)["artifacts"] == 0 and b.mlmd.get_artifact_types() == []
    with pytest.raises(lineage.BundleError, match="cannot read"):
        b.import_bundle(tmp_path / "missing.pb")


def test_type_conflict_is_refused_before_writing(
    source: tuple[lineage.Store, dict[str, Any]], tmp_path: Path
) -> None:
    from ml_metadata.proto import metadata_store_pb2 as pb

    a, rec = source
    b = lineage.connect(tmp_path / "b.sqlite")
    b.mlmd.put_artifact_type(pb.ArtifactType(name="Model", properties={"version": pb.STRING}))
    with pytest.raises(lineage.TypeConflict, match="Model"):
        b.import_bundle(a.export(rec["model"]).to_bytes())
    assert counts(b)["artifacts"] == 0 and counts(b)["contexts"] == 0


def test_unknown_format_is_an_invalid_ref(source: tuple[lineage.Store, dict[str, Any]]) -> None:
    a, _ = source
    with pytest.raises(lineage.InvalidRef, match="openlineage"):
        a.export("clf", "csv")


# --- OpenLineage and PROV -----------------------------------------------------------------


def test_openlineage_has_one_event_per_step_with_its_datasets(
    source: tuple[lineage.Store, dict[str, Any]], tmp_path: Path
) -> None:
    a, rec = source
    p = a.provenance(rec["model"])
    out = a.export(rec["model"], "openlineage", path=tmp_path / "ol.json")
    events = json.loads((tmp_path / "ol.json").read_text())
    assert events == out.to_dict()
    assert len(events) == len(p.steps)
    assert len({e["run"]["runId"] for e in events}) == len(events)
    by_id = {e["run"]["facets"]["mlmdLineage_execution"]["executionId"]: e for e in events}
    for step in p.steps:
        ev = by_id[step.id]
        assert ev["job"] == {**ev["job"], "namespace": "lineage", "name": step.name}
        assert ev["eventType"] == {"COMPLETE": "COMPLETE", "CACHED": "COMPLETE"}[step.state]
        assert ev["eventTime"].endswith("Z")
        assert ev["schemaURL"].startswith("https://openlineage.io/spec/")
        assert ev["producer"]
        assert [i["name"] for i in ev["inputs"]] == [a.get(i).uri for i in step.inputs]
        assert [o["name"] for o in ev["outputs"]] == [a.get(o).uri for o in step.outputs]
        assert all(d["namespace"] == "file" for d in ev["inputs"] + ev["outputs"])
        # the parent: the step's run (baseline), a run of the job "iris" (its experiment)
        assert ev["run"]["facets"]["parent"]["job"]["name"] == "iris"
        assert ev["producer"].endswith(f"/{lineage.__version__}/")
    train = next(e for e in events if e["job"]["name"] == "train")
    assert train["outputs"][0]["facets"]["version"]["datasetVersion"] == rec["model"].fingerprint
    # JSON lines: the same events, one per line; the same export twice is identical
    a.export(rec["model"], "openlineage", path=tmp_path / "ol.jsonl")
    lines = (tmp_path / "ol.jsonl").read_text().splitlines()
    assert [json.loads(x) for x in lines] == events
    a.export(rec["model"], "openlineage", path=tmp_path / "ol2.json")
    assert (tmp_path / "ol2.json").read_bytes() == (tmp_path / "ol.json").read_bytes()


def test_openlineage_run_ids_survive_an_import(
    source: tuple[lineage.Store, dict[str, Any]], tmp_path: Path
) -> None:
    a, rec = source
    b = lineage.connect(tmp_path / "b.sqlite")
    b.import_bundle(a.export(rec["model"]).to_bytes())
    ids_a = sorted(e["run"]["runId"] for e in a.export("clf", "openlineage").document)
    ids_b = sorted(e["run"]["runId"] for e in b.export("clf", "openlineage").document)
    assert ids_a == ids_b


def test_prov_json_links_entities_and_activities(
    source: tuple[lineage.Store, dict[str, Any]], tmp_path: Path
) -> None:
    a, rec = source
    p = a.provenance(rec["model"])
    a.export(rec["model"], "prov", path=tmp_path / "prov.json")
    doc = json.loads((tmp_path / "prov.json").read_text())
    assert set(doc["prefix"]) == {"lineage"}
    entities, activities = doc["entity"], doc["activity"]
    assert {f"lineage:artifact/{x.id}" for x in [p.target, *p.artifacts]} <= set(entities)
    assert set(activities) == {f"lineage:execution/{s.id}" for s in p.steps}
    used = {(u["prov:activity"], u["prov:entity"]) for u in doc["used"].values()}
    made = {(g["prov:activity"], g["prov:entity"]) for g in doc["wasGeneratedBy"].values()}
    for s in p.steps:
        act = f"lineage:execution/{s.id}"
        assert {(act, f"lineage:artifact/{i}") for i in s.inputs} <= used
        assert {(act, f"lineage:artifact/{o}") for o in s.outputs} <= made
    for rel in [*doc["used"].values(), *doc["wasGeneratedBy"].values()]:
        assert rel["prov:entity"] in entities and rel["prov:activity"] in activities
    derived = {(d["prov:generatedEntity"], d["prov:usedEntity"])
               for d in doc["wasDerivedFrom"].values()}
    assert (f"lineage:artifact/{rec['model'].id}", f"lineage:artifact/{rec['train'].id}") in derived
    assert entities[f"lineage:artifact/{rec['model'].id}"]["lineage:fingerprint"] == \
        rec["model"].fingerprint
    train = next(v for v in activities.values() if v["prov:label"] == "train")
    assert json.loads(train["lineage:params"]) == {"epochs": 3, "lr": 0.05}


@pytest.mark.postgres
def test_no_export_holds_the_store_password(pg_uri: str, tmp_path: Path) -> None:
    from conftest import PG_PASSWORD

    pg = lineage.connect(pg_uri)
    rec = record_pipeline(pg, tmp_path / "files")
    for fmt, name in (("bundle", "b.pb"), ("bundle", "b.json"), ("openlineage", "o.json"),
                      ("prov", "p.json")):
        pg.export(rec["model"], fmt, path=tmp_path / name)
        assert PG_PASSWORD.encode() not in (tmp_path / name).read_bytes(), name
    header = read_bundle(tmp_path / "b.pb").header
    assert header.source_uri == pg.uri and "***" in header.source_uri
    assert json_format.MessageToDict(header)["sourceUri"] == pg.uri


# --- command line -------------------------------------------------------------------------


def test_cli_export_and_import(
    source: tuple[lineage.Store, dict[str, Any]], tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    a, rec = source
    a_uri = str(tmp_path / "a" / "metadata.sqlite")
    b_uri = str(tmp_path / "b" / "metadata.sqlite")
    out = tmp_path / "out.json"
    assert main(["--store", a_uri, "export", "clf", "--format", "openlineage", "-o", str(out)]) == 0
    assert len(json.loads(out.read_text())) == len(a.provenance("clf").steps)
    bundle = tmp_path / "bundle.pb"
    assert main(["--store", a_uri, "export", "clf", "--format", "bundle", "-o", str(bundle)]) == 0
    capsys.readouterr()
    assert main(["--store", b_uri, "import", str(bundle)]) == 0
    assert "imported" in capsys.readouterr().out
    assert main(["--store", b_uri, "import", str(bundle), "--json"]) == 0
    assert set(json.loads(capsys.readouterr().out)["added"].values()) == {0}
    assert normalized(lineage.connect(b_uri), "clf") == normalized(a, rec["model"])


def test_cli_errors_are_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                 write_file: Callable[..., Path]) -> None:
    bad = write_file("bad.pb", b"\x00\xffnot a bundle")
    uri = str(tmp_path / "s.sqlite")
    assert main(["--store", uri, "import", str(bad)]) == 1
    err = capsys.readouterr().err.strip()
    assert err.startswith("lineage import:") and "\n" not in err and "bundle" in err
    assert main(["--store", uri, "export", "nothing", "--format", "prov",
                 "-o", str(tmp_path / "x.json")]) == 1
    err = capsys.readouterr().err.strip()
    assert err.startswith("lineage export:") and "\n" not in err
    for command in ("export", "import"):
        assert main([command, "--help"]) == 0
        assert command in capsys.readouterr().out
