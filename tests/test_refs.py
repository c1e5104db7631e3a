"""References as people write them: by file (which, file:PATH), names that look like ids,
missing versions, executions given for artifacts, names several types share; the CLI reads
them exactly as the API does."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

import lineage
from lineage.cli import main


def test_which_finds_a_file_by_its_content_and_where_it_was_seen(
    store: lineage.Store, tmp_path: Path
) -> None:
    model = tmp_path / "out" / "model.pt"
    model.parent.mkdir()
    model.write_bytes(b"weights")
    rec = store.put(lineage.Model(model, name="clf"))
    elsewhere = tmp_path / "copy.pt"
    shutil.copy(model, elsewhere)
    [found] = store.which(elsewhere)  # another path, the same bytes: the same record
    assert found.id == rec.id and [loc["uri"] for loc in found.locations] == [str(model)]
    assert store.get(f"file:{model}").id == rec.id
    assert store.provenance(f"file:{elsewhere}").target.id == rec.id
    model.write_bytes(b"retrained")
    assert store.which(model) == []
    with pytest.raises(lineage.NotFound, match="lineage which"):
        store.get(f"file:{model}")


def test_which_and_file_refs_on_the_command_line(tmp_path: Path,
                                                 capsys: pytest.CaptureFixture[str]) -> None:
    db = tmp_path / "meta.sqlite"
    store = lineage.connect(db)
    f = tmp_path / "data.csv"
    f.write_text("1,2\n")
    store.put(lineage.Dataset(f, name="data"))
    store.put(lineage.Dataset(f, name="other-name"))  # the same bytes under two names
    assert main(["which", str(f), "--store", str(db)]) == 0
    out = capsys.readouterr().out
    assert "data" in out and "other-name" in out and str(f) in out
    assert main(["--store", str(db), "provenance", f"file:{f}"]) == 0  # seen here: newest
    g = tmp_path / "unknown.csv"
    g.write_text("9\n")
    assert main(["--store", str(db), "which", str(g)]) == 1


def test_a_name_that_looks_like_an_id_reads_the_same_in_api_and_cli(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    db = tmp_path / "meta.sqlite"
    store = lineage.connect(db)
    first = store.put(lineage.Dataset(content=b"x", name="first"))
    named = store.put(lineage.Dataset(content=b"y", name="2024"))
    assert store.get("2024").id == named.id
    assert main(["--store", str(db), "show", "2024", "--json"]) == 0
    assert f'"id": {named.id}' in capsys.readouterr().out
    assert store.get(str(first.id)).id == first.id  # no artifact named "1": the id
    clash = store.put(lineage.Dataset(content=b"z", name=str(first.id)))
    with pytest.raises(lineage.AmbiguousRef, match="artifact:"):
        store.get(str(first.id))
    assert store.get(f"artifact:{first.id}").id == first.id
    assert store.get(f"{first.id}@1").id == clash.id


def test_ref_mistakes_say_what_exists(store: lineage.Store) -> None:
    for content in (b"1", b"2", b"3"):
        store.put(lineage.Model(content=content, name="clf"))
    with pytest.raises(lineage.NotFound, match="versions 1 to 3"):
        store.get("clf@7")

    @lineage.step(store=store)
    def f() -> None:
        pass

    f()
    [ex] = store.executions(step="f")
    with pytest.raises(lineage.InvalidRef, match="is an execution"):
        store.provenance(ex.ref)
    store.put(lineage.Dataset(content=b"d", name="clf"))
    with pytest.raises(lineage.AmbiguousRef, match="--type Model"):
        store.get("clf")
    assert store.get("clf", type="Model").version == 3


def test_type_on_the_command_line_and_options_after_the_command(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    db = tmp_path / "meta.sqlite"
    store = lineage.connect(db)
    store.put(lineage.Model(content=b"m", name="clf"))
    store.put(lineage.Dataset(content=b"d", name="clf"))
    assert main(["provenance", "clf", "--store", str(db)]) == 1
    assert "--type" in capsys.readouterr().err
    assert main(["provenance", "clf", "--type", "Model", "--store", str(db), "--json"]) == 0
    assert '"type": "Model"' in capsys.readouterr().out
    done = subprocess.run([sys.executable, "-m", "lineage", "--version"], capture_output=True,
                          text=True, check=True)
    assert done.stdout.startswith("lineage ")


def test_ls_filters_that_do_not_apply_are_errors(tmp_path: Path,
                                                  capsys: pytest.CaptureFixture[str]) -> None:
    db = tmp_path / "meta.sqlite"
    store = lineage.connect(db)
    with lineage.run("good", experiment="e", store=store):
        pass
    with pytest.raises(RuntimeError), lineage.run("bad", experiment="e", store=store):
        raise RuntimeError("boom")
    assert main(["--store", str(db), "ls", "runs", "--state", "FAILED", "--json"]) == 0
    assert [r["name"] for r in __import__("json").loads(capsys.readouterr().out)["runs"]] == [
        "bad"]
    assert main(["--store", str(db), "ls", "runs", "--experiment", "nope"]) == 1
    assert "nope" in capsys.readouterr().err
    assert main(["--store", str(db), "ls", "artifacts", "--state", "FAILED"]) == 2
    assert "takes no --state" in capsys.readouterr().err
    assert main(["--store", str(db), "ls", "runs", "--step", "train"]) == 2
    assert main(["--store", str(db), "show", "good"]) == 0  # show shows a run
    assert "status: COMPLETE" in capsys.readouterr().out
    assert main(["--store", str(db), "show", "run:bad", "--json"]) == 0
    assert '"status": "FAILED"' in capsys.readouterr().out
