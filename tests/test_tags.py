"""Tags, notes and aliases on artifacts and runs, from Python and the CLI."""

from __future__ import annotations

import json
import time

import pytest

import lineage
from lineage import tags
from lineage.cli import main


def _models(store: lineage.Store) -> list[lineage.Artifact]:
    return [store.put(lineage.Model(content=f"weights {i}".encode(), name="clf"))
            for i in range(3)]


def test_tags_and_notes_on_artifacts_and_runs(store: lineage.Store) -> None:
    v1, v2, _v3 = _models(store)
    with lineage.run("baseline", experiment="e", store=store) as run:
        lineage.log_params(lr=0.1)
    got = lineage.tag(store, "clf@2", {"stage": "staging"}, epochs=3, ok=True, score=0.5)
    assert got.target == f"artifact:{v2.id}"
    assert got.tags == {"stage": "staging", "epochs": 3, "ok": True, "score": 0.5}
    lineage.tag(store, "clf@2", remove=["ok"], stage="production")
    lineage.note(store, "clf@2", "long note " * 400)  # longer than an indexed value may be
    lineage.tag(store, "baseline", owner="ana")
    lineage.note(store, run.name, "first try")
    a = lineage.annotations_of(store, "clf@2")
    assert a.tags == {"stage": "production", "epochs": 3, "score": 0.5}
    assert a.note == "long note " * 400
    assert lineage.annotations_of(store, "clf@1").tags == {}
    r = lineage.annotations_of(store, "baseline")
    assert (r.target, r.tags, r.note) == (f"context:{run.id}", {"owner": "ana"}, "first try")
    lineage.note(store, "baseline", None)
    assert lineage.annotations_of(store, "baseline").note is None
    # the annotated records are never rewritten: the artifact and the run keep everything
    assert store.get("clf@2").fingerprint == v2.fingerprint
    assert store.get("clf@1").properties == v1.properties
    [stored_run] = store.runs()
    assert stored_run.params == {"lr": 0.1}
    # one read for searches: target -> annotations
    everything = lineage.all_annotations(store)
    assert everything[f"artifact:{v2.id}"].tags["stage"] == "production"
    assert everything[f"context:{run.id}"].tags == {"owner": "ana"}
    # and raw MLMD readers find the annotation from the artifact
    names = [c.name for c in store.mlmd.get_contexts_by_artifact(v2.id)]
    assert f"artifact:{v2.id}" in names


def test_tagging_a_run_while_it_runs_is_not_overwritten_by_it(store: lineage.Store) -> None:
    with lineage.run("live", store=store) as run:
        lineage.tag(store, run, stage="candidate")
        lineage.log_params(seed=1)
        lineage.log_metrics({"acc": 0.5})
    assert lineage.annotations_of(store, "live").tags == {"stage": "candidate"}
    assert store.runs()[0].params == {"seed": 1}


def test_bad_tags_and_ambiguous_refs_are_clear_errors(store: lineage.Store) -> None:
    store.put(lineage.Dataset(content=b"x", name="same"))
    with lineage.run("same", store=store):
        pass
    with pytest.raises(lineage.AmbiguousRef, match="kind='artifact' or kind='run'"):
        lineage.tag(store, "same", a=1)
    assert lineage.tag(store, "same", kind="run", a=1).target.startswith("context:")
    with pytest.raises(lineage.TagError, match="tag key"):
        lineage.tag(store, "same", {"a b": 1}, kind="artifact")
    with pytest.raises(lineage.TagError, match="a text, a number or a bool"):
        lineage.tag(store, "same", kind="artifact", x=[1])
    with pytest.raises(lineage.TagError, match="alias '3'"):
        lineage.tag(store, "same", alias="3", kind="artifact")
    with pytest.raises(lineage.TagError, match="is a run"):
        lineage.tag(store, "same", alias="prod", kind="run")
    with pytest.raises(lineage.NotFound):
        lineage.tag(store, "missing", a=1)
    assert lineage.annotations_of(store, "same", kind="artifact").tags == {}


def test_an_alias_names_one_version_and_its_moves_are_recorded(store: lineage.Store) -> None:
    v1, v2, v3 = _models(store)
    before = time.time()
    lineage.tag(store, "clf@1", alias="production", by="ana")
    assert store.get("clf@production").id == v1.id
    assert store.get("clf@production", type="Model").version == 1
    lineage.tag(store, "clf@3", alias="staging", by="bob")
    lineage.tag(store, v2, alias="production", by="bob")
    assert store.get("clf@production").id == v2.id
    assert store.get("clf").id == v3.id  # a bare name is still the latest version
    assert lineage.annotations_of(store, "clf@2").aliases == ["clf@production"]
    assert lineage.annotations_of(store, "clf@1").aliases == []
    assert lineage.annotations_of(store, "clf@staging").aliases == ["clf@staging"]
    history = lineage.alias_history(store, "clf@production")
    assert [(m.artifact_id, m.version, m.from_id, m.by) for m in history] == [
        (v1.id, 1, None, "ana"), (v2.id, 2, v1.id, "bob")]
    assert all(before <= m.time <= time.time() for m in history)
    # every query accepts the alias
    assert store.provenance("clf@production").target.id == v2.id
    with pytest.raises(lineage.NotFound):
        store.get("clf@nightly")
    with pytest.raises(lineage.NotFound):
        lineage.alias_history(store, "clf@nightly")
    with pytest.raises(lineage.NotFound):
        store.get("clf@production", type="Dataset")


def test_cli_tag_note_alias(sqlite_uri: str, capsys: pytest.CaptureFixture[str]) -> None:
    store = lineage.connect(sqlite_uri)
    _models(store)
    with lineage.run("baseline", store=store):
        pass
    base = ["--store", sqlite_uri]
    assert main([*base, "tag", "clf@2", "stage=production", "owner=ana"]) == 0
    assert "stage=production" in capsys.readouterr().out
    assert main([*base, "tag", "clf@2", "--alias", "production", "--by", "ci"]) == 0
    assert "aliases: clf@production" in capsys.readouterr().out
    assert main([*base, "tag", "clf@3", "--alias", "production", "--by", "ana"]) == 0
    capsys.readouterr()
    assert main([*base, "note", "--run", "baseline", "looks good"]) == 0
    capsys.readouterr()
    assert main([*base, "--store", sqlite_uri, "tag", "--json", "clf@2", "--remove", "owner"]) == 0
    assert json.loads(capsys.readouterr().out)["tags"] == {"stage": "production"}
    assert main([*base, "tag", "--json", "baseline"]) == 0
    assert json.loads(capsys.readouterr().out)["note"] == "looks good"
    assert main([*base, "tag", "--json", "--history", "clf@production"]) == 0
    moves = json.loads(capsys.readouterr().out)
    assert [(m["version"], m["by"]) for m in moves] == [(2, "ci"), (3, "ana")]
    assert main([*base, "show", "clf@production"]) == 0
    assert "clf v3" in capsys.readouterr().out
    assert main([*base, "tag", "clf@2", "bad"]) == 2
    assert "tags are KEY=VALUE" in capsys.readouterr().err
    assert main([*base, "tag", "nothing", "a=1"]) == 1
    assert "no artifact or run named 'nothing'" in capsys.readouterr().err
    assert tags.annotations_of(lineage.connect(sqlite_uri), "clf@3").aliases == ["clf@production"]


def test_runs_are_searched_by_tags_and_notes(store: lineage.Store) -> None:
    for name, f1 in (("a", 0.7), ("b", 0.9), ("c", 0.8)):
        with lineage.run(name, experiment="e", store=store):
            lineage.log_metrics({"f1": f1})
    lineage.tag(store, "a", stage="production", epochs=10)
    lineage.tag(store, "b", stage="candidate", epochs=30)
    lineage.note(store, "c", "diverged after epoch 3")
    found = store.search_runs(where="tags.stage=production")
    assert [r.name for r in found] == ["a"]
    assert [r.name for r in store.search_runs(where="tags.epochs>5", sort="-f1")] == ["b", "a"]
    assert [r.name for r in store.search_runs(where="note=diverged after epoch 3")] == ["c"]
    assert [r.name for r in store.search_runs(sort="-tags.epochs")] == ["b", "a", "c"]
    with pytest.raises(lineage.LineageError, match=r"no run has the key 'tags\.owner'"):
        store.search_runs(where="tags.owner=ana")
