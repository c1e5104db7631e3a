"""A 7-step digits pipeline run five times with caching: what the README's fold pictures show.

    ingest -> split -> fit_scaler -> apply_scaler (once per split) -> featurize -> train
           -> evaluate -> deploy

on scikit-learn's bundled digits data (nothing is downloaded). The five runs change a
parameter or two each time, so later runs reuse earlier calls through the cache:

============  ==========================================================================
run           what changes, what is a cache hit
============  ==========================================================================
baseline      every step runs (components=16, C=1.0)
tuned         C=0.1: train and evaluate run, ingest … featurize are cache hits
tuned-2       the same again: every cached step is a hit, deploy runs again
features      components=32: featurize, train and evaluate run
final         components=32, C=0.1: train and evaluate run, featurize reuses "features"
============  ==========================================================================

Each run deploys its model. ``python examples/digits/pipeline.py`` records the runs into
the default store (``./.lineage/metadata.sqlite``) and draws the provenance of the last
deployed model, folded (``provenance.svg``) and with every execution
(``provenance-unfolded.svg``), under ``examples/digits/out/``.
"""

from __future__ import annotations

import os
import pickle
from pathlib import Path
from typing import Any

import pandas as pd
from sklearn.datasets import load_digits
from sklearn.decomposition import PCA
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import accuracy_score, f1_score
from sklearn.model_selection import train_test_split
from sklearn.preprocessing import StandardScaler

import lineage

HERE = Path(__file__).resolve().parent
OUT = Path(os.environ.get("LINEAGE_EXAMPLE_OUT", HERE / "out"))
SPLITS = ("train", "val", "test")

#: (run name, params) of the five runs, in order.
RUNS: list[tuple[str, dict[str, Any]]] = [
    ("baseline", {"components": 16, "C": 1.0}),
    ("tuned", {"components": 16, "C": 0.1}),
    ("tuned", {"components": 16, "C": 0.1}),
    ("features", {"components": 32, "C": 1.0}),
    ("final", {"components": 32, "C": 0.1}),
]


class Transformer(lineage.Artifact):
    """A fitted feature transformer (pickled)."""

    kind: str


class DeployedModel(lineage.Artifact, base_type="MODEL"):
    """The model currently serving."""


def _read(data: lineage.Artifact) -> pd.DataFrame:
    return pd.read_csv(data.uri)


def _write(frame: pd.DataFrame, path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    frame.to_csv(path, index=False, float_format="%.6g")
    return path


@lineage.step(kind="process", cache=True)
def ingest() -> lineage.Dataset:
    """Write scikit-learn's digits (8x8 images, 1,797 rows) to CSV."""
    frame = load_digits(as_frame=True).frame
    return lineage.Dataset(_write(frame, OUT / "data" / "digits.csv"), name="digits")


@lineage.step(kind="transform", cache=True)
def split(data: lineage.Dataset, val_size: float = 0.2, test_size: float = 0.2,
          seed: int = 0) -> dict[str, lineage.Dataset]:
    """Stratified train, validation and test sets."""
    frame = _read(data)
    rest, test = train_test_split(frame, test_size=test_size, random_state=seed,
                                  stratify=frame["target"])
    train, val = train_test_split(rest, test_size=val_size / (1 - test_size),
                                  random_state=seed, stratify=rest["target"])
    parts = {"train": train, "val": val, "test": test}
    return {name: lineage.Dataset(_write(part, OUT / "data" / f"{name}.csv"),
                                  name=f"digits-{name}", split=name)
            for name, part in parts.items()}


@lineage.step(kind="transform", cache=True)
def fit_scaler(train: lineage.Dataset) -> Transformer:
    """Fit a standard scaler on the training pixels."""
    scaler = StandardScaler().fit(_read(train).drop(columns=["target"]))
    path = OUT / "models" / "scaler.pkl"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(pickle.dumps(scaler))
    return Transformer(path, name="scaler", kind="StandardScaler")


@lineage.step(kind="transform", cache=True)
def apply_scaler(data: lineage.Dataset, scaler: Transformer) -> lineage.Dataset:
    """Scale one split with the fitted scaler."""
    frame = _read(data)
    fitted = pickle.loads(Path(scaler.uri).read_bytes())
    pixels = frame.drop(columns=["target"])
    scaled = pd.DataFrame(fitted.transform(pixels), columns=pixels.columns)
    scaled["target"] = frame["target"].to_numpy()
    name = str(data.name).removeprefix("digits-")
    return lineage.Dataset(_write(scaled, OUT / "scaled" / f"{name}.csv"), name=f"scaled-{name}")


@lineage.step(kind="transform", cache=True)
def featurize(train: lineage.Dataset, val: lineage.Dataset, test: lineage.Dataset,
              components: int = 16) -> dict[str, lineage.Dataset]:
    """PCA fitted on the scaled training set, applied to the three splits."""
    frames = {"train": _read(train), "val": _read(val), "test": _read(test)}
    pca = PCA(n_components=components, random_state=0).fit(
        frames["train"].drop(columns=["target"]))
    out = {}
    for name, frame in frames.items():
        reduced = pd.DataFrame(pca.transform(frame.drop(columns=["target"])))
        reduced["target"] = frame["target"].to_numpy()
        path = OUT / "features" / f"{name}-pca{components}.csv"
        out[name] = lineage.Dataset(_write(reduced, path), name=f"features-{name}")
    return out


@lineage.step(kind="train", cache=True)
def train(data: lineage.Dataset, C: float = 1.0) -> lineage.Model:
    """A logistic regression on the features."""
    frame = _read(data)
    model = LogisticRegression(C=C, max_iter=2000).fit(frame.drop(columns=["target"]),
                                                        frame["target"])
    path = OUT / "models" / f"clf-{Path(data.uri).stem}-C{C:g}.pkl"
    path.write_bytes(pickle.dumps(model))
    return lineage.Model(path, name="digits-clf")


@lineage.step(kind="evaluate", cache=True)
def evaluate(model: lineage.Model, data: lineage.Dataset) -> lineage.Metrics:
    """Accuracy and macro F1 on the validation features."""
    frame = _read(data)
    clf = pickle.loads(Path(model.uri).read_bytes())
    predicted = clf.predict(frame.drop(columns=["target"]))
    return lineage.Metrics({
        "accuracy": round(float(accuracy_score(frame["target"], predicted)), 6),
        "f1": round(float(f1_score(frame["target"], predicted, average="macro")), 6),
    }, name="digits-eval")


@lineage.step(kind="deploy")
def deploy(model: lineage.Model, metrics: lineage.Metrics) -> DeployedModel:
    """Copy the model to the serving folder."""
    path = OUT / "serving" / "model.pkl"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(Path(model.uri).read_bytes())
    return DeployedModel(path, name="digits-serving")


def run_once(store: lineage.Store | None, name: str, components: int, C: float) -> DeployedModel:
    """One run of the pipeline; returns what it deployed."""
    with lineage.run(name, experiment="digits", store=store):
        raw = ingest()
        parts = split(raw)
        scaler = fit_scaler(parts["train"])
        scaled = {s: apply_scaler(parts[s], scaler) for s in SPLITS}
        features = featurize(scaled["train"], scaled["val"], scaled["test"],
                             components=components)
        model = train(features["train"], C=C)
        metrics = evaluate(model, features["val"])
        deployed: DeployedModel = deploy(model, metrics)
    return deployed


def main(store: lineage.Store | None = None) -> DeployedModel:
    """The five runs of :data:`RUNS`; returns the last deployed model."""
    deployed = None
    for name, params in RUNS:
        deployed = run_once(store, name, **params)
    assert deployed is not None
    return deployed


if __name__ == "__main__":
    store = lineage.connect()
    last = main(store)
    prov = store.provenance(last)
    print(f"provenance of {last.name} v{last.version}: {len(prov.steps)} executions")
    for path in (lineage.render(prov, OUT / "provenance.svg"),
                 lineage.render(prov, OUT / "provenance-unfolded.svg", fold=False)):
        print(f"  {path}")
