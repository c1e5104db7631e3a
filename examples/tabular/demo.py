"""What `make demo` runs: train twice, deploy the better model, then ask the audit questions.

1. ``pipeline.py`` with ``params.yaml`` (run "baseline") and with ``--C 0.1`` (run "C-0.1").
2. Both runs write their model to ``out/models/clf.pkl``, so the second overwrote the
   first: the store gives the first model's exact bytes back (``store.checkout``) from
   the copy it kept when it recorded them.
3. The model with the better F1 is put back in place and deployed by a ``deploy`` step.
4. The questions an auditor asks, answered from the store, with the answers printed:
   provenance of the deployed model, the diff between the two models, the impact of the
   raw dataset, a re-verification of the data, and the two runs side by side.
   The training curves (loss per epoch) and the confusion matrices the runs logged.
5. The pictures: provenance, impact and diff diagrams, the training curves of both runs and
   the best run's test confusion matrix (SVG), and an audit report (HTML and Markdown,
   recorded in the store) under ``examples/tabular/out/``, with a signed in-toto/SLSA
   attestation of the deployed model and its Model Card next to them (the demo signs with
   a key it makes in ``out/keys/``; use your own).

Run it again: the data keeps its versions (same content, same record) and every cached
step is a cache hit (a hit whose output file was overwritten since gets its kept bytes
back instead of running again).
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

import pipeline  # noqa: E402

import lineage  # noqa: E402
import lineage.attest  # noqa: E402
import lineage.report  # noqa: E402
import lineage.signing  # noqa: E402
from lineage.metrics import confusion_chart  # noqa: E402


def _heading(text: str) -> None:
    print(f"\n== {text} " + "=" * max(0, 72 - len(text)))


def in_words(prov: lineage.Provenance) -> str:
    """One line of provenance: the model behind the target, its training params, its data."""
    trainer = next(s for s in prov.steps if s.name == "train")
    model = next(a for a in prov.artifacts if a.id in trainer.outputs)
    params = ", ".join(f"{k}={trainer.params[k]!r}" for k in ("C", "max_iter"))
    data = ", ".join(
        f"{d.name} v{d.version} ({(d.fingerprint or '')[:15]}…)"
        for d in prov.datasets if d.id in prov.roots
    )
    return (
        f"{prov.target.name} v{prov.target.version} is model {model.name} v{model.version}, "
        f"trained by train({params}) on {data}"
    )


def main() -> int:
    store = lineage.connect()
    print(f"store: {store.uri}")
    out = pipeline.OUT
    out.mkdir(parents=True, exist_ok=True)

    _heading("Training: baseline (params.yaml) and an override (--C 0.1)")
    baseline = pipeline.main([], store=store)
    override = pipeline.main(["--C", "0.1"], store=store)
    for result in (baseline, override):
        hits = [e.name for e in store.executions(run=result["run"], state="CACHED")]  # type: ignore[arg-type]
        print(f"run {result['run']}: {result['model']!r} {result['metrics'].values}")  # type: ignore[attr-defined]
        print(f"  cache hits: {len(hits)} step(s) skipped" + (f" ({', '.join(hits)})" if hits else ""))

    _heading("Getting data back: model clf v1, overwritten by the second run")
    first = baseline["model"]
    assert isinstance(first, lineage.Model) and first.path is not None
    now = lineage.fingerprint(first.path)
    holder = next((m for m in store.artifacts(name="clf") if m.fingerprint == now), None)
    print(f"{first.path.relative_to(out)} now holds "
          f"{f'model clf v{holder.version}' if holder else 'other bytes'} ({now[:19]}…)")
    print(f"model clf v{first.version} was {(first.fingerprint or '')[:19]}… and is kept: "
          f"{(first.kept or {}).get('objects')}")
    copy = store.checkout(first, out / "models" / "clf-v1.pkl")
    print(copy)
    print(f"$ lineage checkout clf@{first.version} -o {copy.path}   # the same from the shell")

    candidates = (baseline, override)
    best = max(candidates, key=lambda r: r["metrics"].values["f1"])  # type: ignore[attr-defined]
    rule = "highest f1 on the test set among runs " + ", ".join(str(r["run"]) for r in candidates)
    restored = store.checkout(best["model"])  # type: ignore[arg-type]
    print(f"before deploying, the best model (by F1) goes back in place:\n  {restored}")
    with lineage.run("deploy", experiment="breast-cancer", store=store):
        deployed = pipeline.deploy(best["model"], best["metrics"], rule=rule)
    print(f"deployed {best['model']!r} (best F1) as {deployed!r}")

    _heading("Which data, code and parameters produced the deployed model?")
    prov = store.provenance(deployed)
    print(prov)

    _heading("Why do the two models differ?")
    models = store.artifacts(type="Model", name="clf")
    diff = store.diff(baseline["model"], override["model"])
    print(diff)
    print(f"({len(models)} versions of model clf are recorded)")

    _heading("If the raw data were bad: what is downstream of it?")
    impact = store.impact("breast_cancer")
    print(impact)

    _heading("Is the recorded data still what it was?")
    check = store.verify(deployed)
    print(check)

    _heading("The two training runs side by side")
    print(store.compare([baseline["run"], override["run"]]))

    _heading("Training curves and confusion matrices")
    runs = [str(baseline["run"]), str(override["run"])]
    for run_name in runs:
        m = lineage.run_metrics(store, run_name)
        loss = m.steps["train"]["loss"]
        print(f"run {run_name}: {len(loss)} epochs of train, loss {loss[0][1]:.4f} -> "
              f"{loss[-1][1]:.4f}; {len(m.matrices)} confusion matrices")
        test = m.confusion_matrix(name="test")
        if test is not None:
            print(f"  test set (accuracy {test.accuracy:.4f}):")
            print("    " + str(test).replace("\n", "\n    "))
    found = store.search_runs(experiment="breast-cancer", where="f1>0", sort="-f1", limit=1)
    print(f"best run by F1 (a search: --where 'f1>0' --sort -f1 --limit 1): {found[0].name}")
    store.plot(runs, ["loss", "train_accuracy"], out / "curves.svg")
    confusion_chart(store, found[0].name, name="test").save(out / "confusion.svg")

    _heading("Pictures")
    written = [
        lineage.render(prov, out / "provenance.svg"),
        lineage.render(impact, out / "impact.svg"),
        lineage.render(diff, out / "diff.svg"),
    ]
    store.audit(deployed, out / "audit.html")
    store.audit(deployed, out / "audit.md")
    key = out / "keys" / "demo-key.pem"
    if not key.exists():
        lineage.signing.generate_key(key)
    attestation = lineage.attest.write_attestation(
        store, deployed, out / "clf-serving.intoto.json", key=key)
    store.export(deployed, "model-card", out / "model-card.md")
    for path in [*written, out / "curves.svg", out / "confusion.svg", out / "audit.html",
                 out / "audit.md", attestation, out / "model-card.md"]:
        print(f"  {Path(str(path)).resolve()}")
    check = lineage.attest.verify_attestation(attestation, key.with_name("demo-key.pub.pem"))
    print(f"  attestation: {'verified' if check.ok else 'NOT verified'} "
          f"(lineage attest --verify {attestation.name} --key keys/demo-key.pub.pem)")
    print(f"  report: {lineage.report.check(out / 'audit.html', store).message}")

    _heading("In one line")
    print(in_words(prov))

    _heading("In a browser")
    print("Browse this store (runs, curves, diagrams, audit reports), read-only:")
    print(f"  {_ui_command(store)}")
    return 0


def _ui_command(store: lineage.Store) -> str:
    """The one command that opens the web UI on this store (it serves until Ctrl-C)."""
    import shlex

    uri = os.path.relpath(store.uri) if store.kind == "sqlite" else store.uri
    command = Path(sys.executable).parent / "lineage"
    shown = os.path.relpath(command) if command.exists() else "lineage"
    return f"{shown} --store {shlex.quote(uri)} ui --open"


if __name__ == "__main__":
    raise SystemExit(main())
