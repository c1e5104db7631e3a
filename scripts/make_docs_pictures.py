"""Draw the example pictures of the README into docs/: a provenance, an impact and a diff.

Builds a small store of its own (in a temporary folder) with the public API only: an iris
dataset in two versions, a config file, two runs of a prep → train → evaluate pipeline
(the first with a failed training attempt), and a third run whose prep step is a
cache hit (CACHED) before it trains the same model again, then
writes ``docs/provenance.{svg,png}``, ``docs/impact.{svg,png}``, ``docs/diff.{svg,png}``
and ``docs/legend.{svg,png}``. Then it runs ``examples/digits/pipeline.py`` (a 7-step
pipeline, five runs with cache hits) and draws the provenance of its last deployed model
twice: every execution (``docs/fold-before.svg``, ``fold=False``) and each call once
(``docs/fold-after.{svg,png}``, the default). Running it again gives byte-identical DOT.

Usage: ``.venv/bin/python scripts/make_docs_pictures.py [OUT_DIR]``
"""

from __future__ import annotations

import contextlib
import importlib.util
import sys
import tempfile
from pathlib import Path

import networkx as nx

import lineage

ROOT = Path(__file__).resolve().parent.parent
ROWS = [
    "5.1,3.5,1.4,0.2,setosa", "4.9,3.0,1.4,0.2,setosa", "7.0,3.2,4.7,1.4,versicolor",
    "6.4,3.2,4.5,1.5,versicolor", "6.3,3.3,6.0,2.5,virginica", "5.8,2.7,5.1,1.9,virginica",
]


def build(folder: Path) -> lineage.Store:
    """Record the example pipeline into a new SQLite store under ``folder``."""
    store = lineage.connect(folder / "meta.sqlite")
    data = folder / "iris.csv"
    data.write_text("sepal_length,sepal_width,petal_length,petal_width,species\n"
                    + "\n".join(ROWS) + "\n")
    config = folder / "params.yaml"
    config.write_text("test_frac: 0.33\nseed: 7\n")
    out = folder / "out"
    out.mkdir()

    @lineage.step(store=store, cache=True)
    def prep(raw: lineage.Dataset, cfg: lineage.Config, test_frac: float = 0.33,
             seed: int = 7) -> dict[str, lineage.Dataset]:
        lines = raw.path.read_text().splitlines() if raw.path else []
        body = lines[1:]
        cut = max(1, int(len(body) * (1 - test_frac)))
        (out / "train.csv").write_text("\n".join([lines[0], *body[:cut]]) + "\n")
        (out / "test.csv").write_text("\n".join([lines[0], *body[cut:]]) + "\n")
        return {"train": lineage.Dataset(out / "train.csv", name="iris-train"),
                "test": lineage.Dataset(out / "test.csv", name="iris-test")}

    @lineage.step(store=store, kind="train")
    def train(data: lineage.Dataset, lr: float = 0.1, epochs: int = 10,
              penalty: str = "l2") -> lineage.Model:
        if lr > 1:
            raise ValueError(f"learning rate {lr} diverges")
        (out / "model.txt").write_text(f"weights for lr={lr} epochs={epochs} {penalty}\n"
                                       + (data.path.read_text() if data.path else ""))
        return lineage.Model(out / "model.txt", name="iris-clf")

    @lineage.step(store=store, kind="evaluate")
    def evaluate(model: lineage.Model, data: lineage.Dataset) -> lineage.Metrics:
        size = len(model.path.read_text()) if model.path else 0
        return lineage.Metrics({"accuracy": round(0.9 + (size % 7) / 100, 3), "f1": 0.91},
                               name="iris-eval")

    with lineage.run("baseline", experiment="iris", store=store):
        raw = lineage.Dataset(data, name="iris")
        cfg = lineage.Config(config)
        parts = prep(raw, cfg)
        with contextlib.suppress(ValueError):
            train(parts["train"], lr=5.0)
        model = train(parts["train"], lr=0.1)
        evaluate(model, parts["test"])

    with data.open("a") as fh:  # new rows: iris v2
        fh.write("6.7,3.0,5.2,2.3,virginica\n5.0,3.4,1.5,0.2,setosa\n")
    with lineage.run("tuned", experiment="iris", store=store):
        raw = lineage.Dataset(data, name="iris")
        cfg = lineage.Config(config)
        parts = prep(raw, cfg)
        model = train(parts["train"], lr=0.05, epochs=30)
        evaluate(model, parts["test"])
    with lineage.run("rerun", experiment="iris", store=store):  # prep is a cache hit
        parts = prep(lineage.Dataset(data, name="iris"), lineage.Config(config))
        train(parts["train"], lr=0.05, epochs=30)  # the same model again: a second producer
    return store


def digits_provenance(folder: Path) -> lineage.Provenance:
    """The provenance of the last model deployed by ``examples/digits/pipeline.py``, run
    five times with cache hits into a new store under ``folder``."""
    spec = importlib.util.spec_from_file_location(
        "digits_pipeline", ROOT / "examples" / "digits" / "pipeline.py")
    assert spec is not None and spec.loader is not None
    digits = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(digits)
    digits.OUT = folder / "digits"
    store = lineage.connect(folder / "digits.sqlite")
    return store.provenance(digits.main(store))


def legend_graph() -> nx.MultiDiGraph:
    """An empty graph: drawn with ``legend=True`` it is the legend alone."""
    return nx.MultiDiGraph()


def main(argv: list[str]) -> int:
    out = Path(argv[1]) if len(argv) > 1 else Path(__file__).resolve().parent.parent / "docs"
    out.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        store = build(Path(tmp))
        pictures = {
            "provenance": store.provenance("iris-clf@2"),
            "impact": store.impact("iris@1"),
            "diff": store.diff("iris-clf@1", "iris-clf@2"),
        }
        for name, obj in pictures.items():
            lineage.render(obj, out / f"{name}.svg")
            lineage.render(obj, out / f"{name}.png", dpi=144)
        lineage.render(legend_graph(), out / "legend.svg", legend=True)
        lineage.render(legend_graph(), out / "legend.png", legend=True, dpi=144)
        store.close()
        # before/after: every execution, and each call once (the default)
        prov = digits_provenance(Path(tmp))
        lineage.render(prov, out / "fold-before.svg", fold=False)
        lineage.render(prov, out / "fold-after.svg")
        lineage.render(prov, out / "fold-after.png", dpi=96)
    for path in sorted(out.iterdir()):
        print(path)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
