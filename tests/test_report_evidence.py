"""The evidence sections of audit reports, checked against the store the demo recorded:
evaluation, selection, data, config, environment, change history, accountability,
approvals, the re-performance recipe, ids on every row, the picture in Markdown, print CSS,
and the Model Card."""

from __future__ import annotations

import getpass
import html as html_lib
import json
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
from demo_store import copy_store, record_demo

import lineage
import lineage.evidence
import lineage.report
import lineage.signing
from lineage import _env
from lineage.cli import main

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    folder = tmp_path_factory.mktemp("demo")
    uri, out, stdout = record_demo(folder)
    store = lineage.connect(uri, read_only=True)
    deployed = store.get("clf-serving")
    return {"uri": uri, "out": out, "stdout": stdout, "store": store, "deployed": deployed,
            "folder": folder}


def _section(text: str, section: str) -> str:
    found = re.search(rf'<section id="{section}-section">(.*?)</section>', text, re.S)
    assert found is not None, section
    return " ".join(html_lib.unescape(re.sub(r"<[^>]+>", " ", found.group(1))).split())


def _html(store: lineage.Store, ref: Any) -> str:
    text = lineage.report.audit(store, ref)
    assert isinstance(text, str)
    return text


# --- evaluation and selection -------------------------------------------------------------


def test_evaluation_lists_every_metric_with_its_test_data(demo: dict[str, Any]) -> None:
    store: lineage.Store = demo["store"]
    for ref, model_ref in ((demo["deployed"], "clf@1"), ("clf@1", "clf@1"), ("clf@2", "clf@2")):
        ev = lineage.evidence.evidence(store, ref)
        model = store.get(model_ref)
        evaluation = next(e for e in store.executions(step="evaluate")
                          if model.id in e.inputs and e.state == "COMPLETE")
        metrics = store.get(f"artifact:{evaluation.outputs[0]}")
        test = store.get(next(i for i in evaluation.inputs
                              if store.get(i).properties.get("split") == "test"))
        rows = {r["metric"]: r for r in ev.evaluation if r["recorded_as"] == f"artifact:{metrics.id}"}
        assert set(rows) == {"accuracy", "f1"}, ev.evaluation
        for name, row in rows.items():
            assert row["value"] == metrics.values[name]
            assert row["data"] == [f"artifact:{test.id}"] and row["model"] == [f"artifact:{model.id}"]
            assert row["execution"] == evaluation.ref
        text = _section(_html(store, ref), "evaluation")
        assert f"artifact:{test.id} breast_cancer_test v1 split=test" in text
        assert f"{metrics.values['f1']:.6g}" in text and str(test.fingerprint) in text
    # the training metric logged by the step, with the training data
    ev = lineage.evidence.evidence(store, "clf@1")
    [train_row] = [r for r in ev.evaluation if r["metric"] == "train_accuracy"]
    train = store.get("breast_cancer_train")
    assert train_row["recorded_as"] == "logged" and train_row["data"] == [f"artifact:{train.id}"]


def test_selection_shows_the_other_candidate_and_the_rule(demo: dict[str, Any]) -> None:
    store: lineage.Store = demo["store"]
    ev = lineage.evidence.evidence(store, demo["deployed"])
    [sel] = ev.selection
    clf1, clf2 = store.get("clf@1"), store.get("clf@2")
    assert sel["model"] == f"artifact:{clf1.id}"
    by_id = {c["artifact"]: c for c in sel["candidates"]}
    assert by_id[f"artifact:{clf1.id}"]["chosen"] and not by_id[f"artifact:{clf2.id}"]["chosen"]
    for model in (clf1, clf2):
        metrics = next(a for a in store.artifacts(type="Metrics", name="clf_eval")
                       if any(model.id in e.inputs for e in store.executions(step="evaluate")
                              if a.id in e.outputs))
        assert by_id[f"artifact:{model.id}"]["metrics"] == metrics.values
    assert by_id[f"artifact:{clf2.id}"]["params"]["train.C"] == 0.1
    [deploy] = store.executions(step="deploy")
    [picked] = sel["picked_by"]
    assert picked["execution"] == deploy.ref and picked["rule"] == {"rule": deploy.params["rule"]}
    assert "highest f1" in deploy.params["rule"]
    text = _section(_html(store, demo["deployed"]), "selection")
    assert "chosen" in text and "candidate" in text and "highest f1" in text
    assert f"artifact:{clf2.id}" in text and "C-0.1" in text


# --- data, config, environment ------------------------------------------------------------


def test_data_section_gives_source_shape_split_and_datasheet(demo: dict[str, Any]) -> None:
    store: lineage.Store = demo["store"]
    ev = lineage.evidence.evidence(store, demo["deployed"])
    data = {d["name"]: d for d in ev.data}
    raw, train, test = (store.get(n) for n in ("breast_cancer", "breast_cancer_train",
                                               "breast_cancer_test"))
    stats = store.get("breast_cancer_stats")
    assert data["breast_cancer"]["shape"]["rows"] == stats.properties["rows"] == 569
    assert data["breast_cancer"]["shape"]["columns"] == stats.properties["columns"] == 31
    assert f"artifact:{stats.id}" in data["breast_cancer"]["shape"]["from"]
    rows = {n: data[n]["shape"]["rows"] for n in ("breast_cancer_train", "breast_cancer_test")}
    assert rows["breast_cancer_train"] + rows["breast_cancer_test"] == 569
    assert rows["breast_cancer_test"] == len(Path(str(test.path)).read_text().splitlines()) - 1
    assert (data["breast_cancer_train"]["split"], data["breast_cancer_test"]["split"]) == ("train", "test")
    # the user's datasheet fields, and the producing step's code as source
    assert data["breast_cancer"]["datasheet"]["license"] == raw.properties["license"] == "CC BY 4.0"
    assert data["breast_cancer"]["source"] == {"kind": "given", "text": raw.properties["source"]}
    [split] = [e for e in store.executions(step="split") if e.state == "COMPLETE"]
    src = data["breast_cancer_train"]["source"]
    assert src["kind"] == "step" and src["execution"] == split.ref
    assert src["source_hash"] == split.properties["source_hash"]
    assert src["source_file"] == "examples/tabular/pipeline.py"
    text = _section(_html(store, demo["deployed"]), "datasets")
    assert "569 rows \u00d7 31 columns" in text and "CC BY 4.0" in text and "UCI" in text
    assert f"produced by step split ({split.ref})" in text and train.uri in text


def test_config_warns_when_a_config_no_longer_matches(sqlite_store: lineage.Store, tmp_path: Path) -> None:
    config = tmp_path / "params.yaml"
    config.write_text("train:\n  lr: 0.1\n")

    @lineage.step(store=sqlite_store)
    def train(lr: float = 0.1) -> lineage.Model:
        return lineage.Model(content=f"lr={lr}".encode(), name="m")

    with lineage.run("r", store=sqlite_store, config=config):
        train(lr=0.1)
    ev = lineage.evidence.evidence(sqlite_store, "m")
    [run] = ev.config
    assert run["params"] == {"train.lr": 0.1}
    [cfg] = run["configs"]
    assert cfg["status"] == "ok" and cfg["recorded"] == sqlite_store.get("params.yaml").fingerprint
    assert not [w for w in ev.warnings if "params.yaml" in w]
    config.write_text("train:\n  lr: 0.5\n")  # edited after the run, not recorded
    ev = lineage.evidence.evidence(sqlite_store, "m")
    assert ev.config[0]["configs"][0]["status"] == "changed"
    [warning] = [w for w in ev.warnings if "params.yaml" in w]
    assert "recorded ones" in warning
    text = _html(sqlite_store, "m")
    assert 'id="warnings"' in text and "params.yaml of run r" in html_lib.unescape(text)
    assert "train.lr" in _section(text, "config") and "changed" in _section(text, "config")


def test_dirty_checkouts_are_warned_about(demo: dict[str, Any]) -> None:
    store: lineage.Store = demo["store"]
    ev = lineage.evidence.evidence(store, demo["deployed"])
    dirty = [s for s in ev.steps if s.properties.get("git_dirty") is True]
    warned = [w for w in ev.warnings if "uncommitted changes" in w]
    assert bool(dirty) == bool(warned)  # the checkout may or may not be clean here
    for s in dirty:
        assert any(s.ref in w for w in warned)


def test_environment_is_the_full_frozen_one(demo: dict[str, Any]) -> None:
    store: lineage.Store = demo["store"]
    [env] = store.artifacts(type="Environment")
    ev = lineage.evidence.evidence(store, demo["deployed"])
    [row] = [e for e in ev.environments if e["environment"]]
    assert row["environment"] == f"artifact:{env.id}"
    assert row["packages"] == env.packages and "scikit-learn" in env.packages
    assert len(env.packages) > 20  # every installed distribution, not the 5 imported ML ones
    assert set(row["used_by"]) >= {s.ref for s in ev.steps}
    for key in ("os", "cpu", "machine", "python"):
        assert row[key] == env.properties[key]
    assert env.properties["python"] == _env.environment_facts()["python"]
    # recorded once per distinct environment: every step and run of the demo names it
    assert {e.properties.get("environment") for e in store.executions()} == {env.id}
    assert {r.properties.get("environment") for r in store.runs()} == {env.id}
    # and verify re-derives its fingerprint from the record
    [check] = [c for c in store.verify().results if c.artifact.id == env.id]
    assert check.status == "ok"
    text = _section(_html(store, demo["deployed"]), "environment")
    for name, version in env.packages.items():
        assert f"{name}=={version}" in text


def test_change_history_shows_the_previous_version_and_the_diff(demo: dict[str, Any]) -> None:
    store: lineage.Store = demo["store"]
    clf1, clf2 = store.get("clf@1"), store.get("clf@2")
    ev = lineage.evidence.evidence(store, clf2)
    assert ev.previous is not None and ev.previous.id == clf1.id
    assert ev.diff is not None and ev.diff.params == store.diff(clf1, clf2).params
    text = _section(_html(store, clf2), "history")
    assert f"artifact:{clf1.id}" in text and "train.C" in text and "1.0" in text and "0.1" in text
    assert "first recorded version" in _section(_html(store, clf1), "history")


# --- accountability and approvals -----------------------------------------------------------


def test_who_ran_each_step_and_run(demo: dict[str, Any]) -> None:
    store: lineage.Store = demo["store"]
    ev = lineage.evidence.evidence(store, demo["deployed"])
    refs = ", ".join(w["ref"] for w in ev.accountability)
    for s in ev.steps:
        assert s.ref in refs
        assert s.properties["user"] == getpass.getuser()
        assert s.properties["command"].endswith("demo.py")
    for w in ev.accountability:
        assert w["user"] == getpass.getuser() and w["host"]
    text = _section(_html(store, demo["deployed"]), "accountability")
    assert getpass.getuser() in text and "demo.py" in text


def test_ci_identity_is_recorded(sqlite_store: lineage.Store, monkeypatch: pytest.MonkeyPatch) -> None:
    for key in [k for k in list(__import__("os").environ) if k.startswith(("GITHUB_", "GITLAB", "CI_"))]:
        monkeypatch.delenv(key)
    monkeypatch.setenv("GITHUB_ACTIONS", "true")
    monkeypatch.setenv("GITHUB_ACTOR", "octocat")
    monkeypatch.setenv("GITHUB_RUN_ID", "4242")
    monkeypatch.setenv("GITHUB_REPOSITORY", "acme/models")
    monkeypatch.setenv("GITHUB_SERVER_URL", "https://github.example")
    monkeypatch.setenv("GITHUB_WORKFLOW", "train")
    _env.who_facts.cache_clear()
    try:
        @lineage.step(store=sqlite_store)
        def fit() -> lineage.Model:
            return lineage.Model(content=b"w", name="ci-model")

        with lineage.run("ci", store=sqlite_store):
            fit()
    finally:
        _env.who_facts.cache_clear()
    [ex] = sqlite_store.executions(step="fit")
    assert ex.properties["ci"] == {
        "system": "github-actions", "actor": "octocat", "job": "4242", "repository": "acme/models",
        "workflow": "train", "url": "https://github.example/acme/models/actions/runs/4242"}
    assert sqlite_store.runs(name="ci")[0].properties["ci"]["actor"] == "octocat"
    text = _section(_html(sqlite_store, "ci-model"), "accountability")
    assert "github-actions, actor octocat" in text and "actions/runs/4242" in text


def test_approvals_are_shown(demo: dict[str, Any], tmp_path: Path) -> None:
    uri = copy_store(demo["uri"], tmp_path / "copy.sqlite")
    store = lineage.connect(uri)
    key, _pub = lineage.signing.generate_key(tmp_path / "k.pem")
    lineage.approve(store, "clf-serving", by="Jane Auditor", note="fit for production", key=key)
    text = _html(store, "clf-serving")
    target = _section(text, "target")
    assert "Jane Auditor" in target and "fit for production" in target and "signed, key" in target
    assert "1 approval(s), 1 signed and verified" in html_lib.unescape(text)


# --- recipe, ids, pictures, print ------------------------------------------------------------


def test_recipe_names_data_code_environment_command_and_params(demo: dict[str, Any]) -> None:
    store: lineage.Store = demo["store"]
    ev = lineage.evidence.evidence(store, demo["deployed"])
    recipe = ev.recipe
    commits = {s.properties["git_commit"] for s in ev.steps}
    assert {c["commit"] for c in recipe["code"]} == commits
    assert [c["command"] for c in recipe["commands"]] == [ev.steps[0].properties["command"]]
    steps = {s["step"]: s for s in recipe["steps"]}
    [train] = [s for s in ev.steps if s.name == "train"]
    assert steps["train"]["params"] == train.params and steps["train"]["execution"] == train.ref
    assert not [s for s in recipe["steps"] if s["state"] == "CACHED"]  # repeats folded
    assert recipe["environment"][0]["packages"] == len(store.artifacts(type="Environment")[0].packages)
    text = _section(_html(store, demo["deployed"]), "recipe")
    assert f"lineage reproduce artifact:{demo['deployed'].id}" in text
    for commit in commits:
        assert f"checkout {commit}" in text


def test_every_row_carries_its_id(demo: dict[str, Any]) -> None:
    store: lineage.Store = demo["store"]
    text = _html(store, demo["deployed"])
    prov = store.provenance(demo["deployed"])
    for table in ("datasets", "artifacts", "steps"):
        body = re.search(rf'<table id="{table}">.*?<tbody>(.*?)</tbody>', text, re.S)
        assert body is not None
        for row in re.findall(r"<tr>(.*?)</tr>", body.group(1), re.S):
            assert re.search(r"(artifact|execution):\d+", row), row[:200]
    steps = re.search(r'<table id="steps">.*?</table>', text, re.S)
    assert steps is not None
    rows = re.findall(r'<td class="ref mono">(execution:\d+)</td>', steps.group(0))
    assert len(rows) == len(set(rows))
    for s in prov.steps:  # a row of its own, or folded into the row of the call it repeats
        assert s.ref in rows or re.search(rf"repeat\(s\) of the same call: [^<]*{s.ref} CACHED",
                                          steps.group(0)), s.ref
    folded = [s for s in prov.steps if s.ref not in rows]
    assert all(s.state == "CACHED" for s in folded) and len(rows) + len(folded) == len(prov.steps)


def test_markdown_embeds_the_picture(demo: dict[str, Any], tmp_path: Path) -> None:
    store: lineage.Store = demo["store"]
    out = lineage.report.audit(store, demo["deployed"], tmp_path / "audit.md")
    assert isinstance(out, Path)
    text = out.read_text()
    assert "![Lineage of clf-serving v1](audit.lineage.svg)" in text
    svg = (tmp_path / "audit.lineage.svg").read_text()
    assert svg.startswith("<?xml") and "<svg" in svg and "clf&#45;serving" in svg
    assert "digraph" not in text and "```dot" not in text
    inline = lineage.report.audit(store, demo["deployed"], format="md")
    assert isinstance(inline, str)
    found = re.search(r"!\[Lineage of clf-serving v1\]\(data:image/svg\+xml;base64,([A-Za-z0-9+/=]+)\)",
                      inline)
    assert found is not None
    import base64

    assert b"<svg" in base64.b64decode(found.group(1))
    # the demo writes both reports and the picture beside them
    assert (demo["out"] / "audit.lineage.svg").exists()
    assert "(audit.lineage.svg)" in (demo["out"] / "audit.md").read_text()


@pytest.mark.browser
def test_the_diagram_is_legible_and_the_page_prints(demo: dict[str, Any], tmp_path: Path) -> None:
    store: lineage.Store = demo["store"]
    out = lineage.report.audit(store, demo["deployed"], tmp_path / "audit.html")
    assert isinstance(out, Path)
    text = out.read_text()
    assert "figure svg { max-width: none; height: auto; }" in text  # natural size, scrolls
    assert 'href="audit.lineage.svg"' in text and (tmp_path / "audit.lineage.svg").exists()
    assert "@media print" in text and "break-inside: avoid" in text and "@page" in text
    chromium = shutil.which("chromium")
    if chromium is None:
        if lineage_ci():
            pytest.fail("CI=true but chromium is missing")
        pytest.skip("chromium not installed")
    pdf = tmp_path / "audit.pdf"
    done = subprocess.run(
        [chromium, "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync",
         f"--user-data-dir={tmp_path / 'profile'}", "--no-pdf-header-footer",
         f"--print-to-pdf={pdf}", out.resolve().as_uri()],
        capture_output=True, timeout=180, check=False)
    assert done.returncode == 0 and pdf.stat().st_size > 10_000, done.stderr[-2000:]
    pages = len(re.findall(rb"/Type\s*/Page[^s]", pdf.read_bytes()))
    assert 1 <= pages <= 40, pages


def lineage_ci() -> bool:
    import os

    return os.environ.get("CI", "").lower() in ("1", "true", "yes")


# --- model card --------------------------------------------------------------------------------


def test_model_card_is_filled_from_the_record(demo: dict[str, Any], tmp_path: Path,
                                              capsys: pytest.CaptureFixture[str]) -> None:
    store: lineage.Store = demo["store"]
    card = store.export(demo["deployed"], "model-card").document
    for heading in ("# Model card: clf-serving v1", "## Model details", "## Intended use",
                    "## Factors", "## Metrics", "## Evaluation data", "## Training data",
                    "## Quantitative analyses", "## Ethical considerations",
                    "## Caveats and recommendations"):
        assert heading in card, heading
    ev = lineage.evidence.evidence(store, demo["deployed"])
    for row in ev.evaluation:
        assert f"| {row['metric'].replace('_', chr(92) + '_')} | {row['value']:.6g} |" in card
    test = store.get("breast_cancer_test")
    assert f"artifact:{test.id}" in card.split("## Evaluation data")[1].split("## Training data")[0]
    assert "SGDClassifier" in card and "CC BY 4.0" in card  # the recorded algorithm
    assert card.count("**TO DO:**") >= 6  # what only a person can write
    assert "Intended use" in card and "what is it for" in card
    code = main(["--store", demo["uri"], "export", "clf-serving", "--format", "model-card",
                 "-o", str(tmp_path / "card.md")])
    assert code == 0 and (tmp_path / "card.md").read_text().startswith("# Model card: clf-serving v1")
    capsys.readouterr()
    assert (demo["out"] / "model-card.md").read_text().startswith("# Model card: clf-serving v1")


def test_model_card_uses_what_the_user_recorded(sqlite_store: lineage.Store) -> None:
    sqlite_store.put(lineage.Model(content=b"w", name="m", license="Apache-2.0",
                                   intended_use="triage | research only", contact="ml@acme"))
    card = sqlite_store.export("m", "model-card").document
    assert "**Licence:** Apache-2.0" in card and "triage \\| research only" in card
    assert "**Contact:** ml@acme" in card
    assert json.loads(json.dumps(sqlite_store.export("m", "model-card").to_dict()))["markdown"] == card


def test_logged_curves_are_in_the_evaluation(sqlite_store: lineage.Store) -> None:
    import importlib.util

    @lineage.step(store=sqlite_store, kind="train")
    def fit(epochs: int = 4) -> lineage.Model:
        for epoch in range(epochs):
            lineage.log_metrics({"loss": 1.0 / (epoch + 1)}, step=epoch)
        return lineage.Model(content=b"w", name="curvy")

    with lineage.run("r", store=sqlite_store):
        fit()
    ev = lineage.evidence.evidence(sqlite_store, "curvy")
    [ex] = sqlite_store.executions(step="fit")
    [series] = [s for s in ev.series if s["execution"] == ex.ref]
    assert series["metric"] == "loss" and [p[1] for p in series["points"]] == [1.0, 0.5, 1 / 3, 0.25]
    text = _html(sqlite_store, "curvy")
    table = re.search(r'<table id="series">.*?</table>', text, re.S)
    assert table is not None
    cells = " ".join(html_lib.unescape(re.sub(r"<[^>]+>", " ", table.group(0))).split())
    assert f"{ex.ref} loss 4 0 \u2192 3 1 0.25 0.25 / 1" in cells
    # drawn too when lineage.plot (matplotlib) is there
    has_plot = importlib.util.find_spec("lineage.plot") is not None and \
        importlib.util.find_spec("matplotlib") is not None
    assert ('<figure id="curves">' in text) == has_plot
