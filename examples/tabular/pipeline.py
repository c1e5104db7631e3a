"""Train a breast-cancer classifier: a normal scikit-learn script, tracked by ``lineage``.

The only lineage-specific lines are the ``@lineage.step`` decorators, the
``with lineage.run(...)`` block in :func:`main` and the ``lineage.log_*`` calls (per-epoch
curves and confusion matrices). Everything is recorded in MLMD: the raw
data and every derived file (content-fingerprinted and versioned), each step's parameters,
code version and environment, and the metrics.

    python examples/tabular/pipeline.py                 # baseline: params.yaml
    python examples/tabular/pipeline.py --C 0.1         # the same, with C overridden

Data: scikit-learn's bundled Wisconsin breast-cancer dataset (569 rows, 30 features),
written to CSV by the ingest step; nothing is downloaded.
"""

from __future__ import annotations

import argparse
import json
import os
import pickle
from pathlib import Path

import pandas as pd
import yaml
from sklearn.datasets import load_breast_cancer
from sklearn.linear_model import SGDClassifier
from sklearn.metrics import accuracy_score, confusion_matrix, f1_score, log_loss
from sklearn.model_selection import train_test_split
from sklearn.preprocessing import StandardScaler

import lineage

HERE = Path(__file__).resolve().parent
OUT = Path(os.environ.get("LINEAGE_EXAMPLE_OUT", HERE / "out"))
PARAMS = HERE / "params.yaml"


# Our own artifact types: typed properties become MLMD properties of the type.
class Statistics(lineage.Artifact, base_type="STATISTICS"):
    """Schema and basic statistics of a table."""

    rows: int
    columns: int


class Transformer(lineage.Artifact):
    """A fitted feature transformer."""

    kind: str


class ConfusionMatrix(lineage.Artifact):
    """A confusion matrix, as CSV."""


class DeployedModel(lineage.Artifact, base_type="MODEL"):
    """The model currently serving."""

    stage: str


@lineage.step(kind="process", cache=True)
def ingest() -> lineage.Dataset:
    """Write scikit-learn's breast-cancer data to CSV."""
    frame = load_breast_cancer(as_frame=True).frame
    path = OUT / "data" / "breast_cancer.csv"
    path.parent.mkdir(parents=True, exist_ok=True)
    frame.to_csv(path, index=False, float_format="%.6g")
    # Datasheet fields (optional): shown in audit reports and model cards.
    return lineage.Dataset(
        path, name="breast_cancer",
        source="scikit-learn load_breast_cancer(): the Breast Cancer Wisconsin (Diagnostic) "
               "data set of the UCI Machine Learning Repository",
        license="CC BY 4.0",
        description="569 fine-needle aspirate images, 30 numeric features of cell nuclei, "
                    "target 0 = malignant, 1 = benign",
    )


@lineage.step(kind="process", cache=True)
def validate(data: lineage.Dataset, target: str = "target") -> Statistics:
    """Check the schema and compute basic statistics; fail on missing values."""
    frame = pd.read_csv(data.uri)
    if target not in frame.columns:
        raise ValueError(f"column {target!r} is missing from {data.uri}")
    if frame.isna().any().any():
        raise ValueError(f"{data.uri} has missing values")
    stats = {
        column: {"dtype": str(frame[column].dtype), "min": float(frame[column].min()),
                 "max": float(frame[column].max()), "mean": round(float(frame[column].mean()), 6)}
        for column in frame.columns
    }
    path = Path(data.uri).with_name("breast_cancer.stats.json")
    path.write_text(json.dumps(stats, indent=1, sort_keys=True))
    return Statistics(path, name="breast_cancer_stats", rows=len(frame), columns=frame.shape[1])


@lineage.step(kind="transform", cache=True)
def split(
    data: lineage.Dataset, stats: Statistics, test_size: float = 0.25, seed: int = 42
) -> dict[str, lineage.Dataset]:
    """Split into stratified train and test sets."""
    frame = pd.read_csv(data.uri)
    train, test = train_test_split(
        frame, test_size=test_size, random_state=seed, stratify=frame["target"]
    )
    folder = Path(data.uri).parent
    train.to_csv(folder / "train.csv", index=False, float_format="%.6g")
    test.to_csv(folder / "test.csv", index=False, float_format="%.6g")
    return {
        "train": lineage.Dataset(folder / "train.csv", name="breast_cancer_train", split="train"),
        "test": lineage.Dataset(folder / "test.csv", name="breast_cancer_test", split="test"),
    }


@lineage.step(kind="transform", cache=True)
def featurize(train: lineage.Dataset) -> Transformer:
    """Fit a standard scaler on the training features."""
    features = pd.read_csv(train.uri).drop(columns=["target"])
    scaler = StandardScaler().fit(features)
    path = OUT / "models" / "scaler.pkl"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(pickle.dumps(scaler))
    return Transformer(path, name="scaler", kind="StandardScaler")


@lineage.step(kind="train", cache=True)
def train(
    data: lineage.Dataset, scaler: Transformer, C: float = 1.0, max_iter: int = 200
) -> lineage.Model:
    """Fit a logistic regression on scaled features by stochastic gradient descent, one
    epoch at a time (``max_iter`` epochs), logging the curves and a confusion matrix per
    epoch."""
    frame = pd.read_csv(data.uri)
    transform = pickle.loads(Path(scaler.uri).read_bytes())
    features = transform.transform(frame.drop(columns=["target"]))
    labels = frame["target"].to_numpy()
    # L2 strength alpha = 1 / (C * n): the penalty LogisticRegression(C=C) puts on the data.
    model = SGDClassifier(loss="log_loss", alpha=1.0 / (C * len(labels)), learning_rate="optimal",
                          random_state=0)
    classes = sorted(set(labels.tolist()))
    for epoch in range(max_iter):
        model.partial_fit(features, labels, classes=classes)
        predicted = model.predict(features)
        lineage.log_metrics({
            "loss": float(log_loss(labels, model.predict_proba(features), labels=classes)),
            "train_accuracy": float(accuracy_score(labels, predicted)),
        }, step=epoch)
        lineage.log_confusion_matrix(labels, predicted, labels=classes, step=epoch)
    path = OUT / "models" / "clf.pkl"  # every run writes the same file, as scripts do
    path.write_bytes(pickle.dumps(model))
    return lineage.Model(path, name="clf", algorithm="SGDClassifier(log_loss)")


@lineage.step(kind="evaluate", cache=True)
def evaluate(
    model: lineage.Model, scaler: Transformer, test: lineage.Dataset
) -> tuple[lineage.Metrics, ConfusionMatrix]:
    """Accuracy, F1 and a confusion matrix on the held-out test set."""
    frame = pd.read_csv(test.uri)
    transform = pickle.loads(Path(scaler.uri).read_bytes())
    clf = pickle.loads(Path(model.uri).read_bytes())
    predicted = clf.predict(transform.transform(frame.drop(columns=["target"])))
    truth = frame["target"]
    matrix = confusion_matrix(truth, predicted)
    path = Path(model.uri).with_suffix(".confusion.csv")
    pd.DataFrame(matrix, index=["true_0", "true_1"], columns=["pred_0", "pred_1"]).to_csv(path)
    metrics = {
        "accuracy": round(float(accuracy_score(truth, predicted)), 6),
        "f1": round(float(f1_score(truth, predicted)), 6),
    }
    lineage.log_metrics(metrics)
    lineage.log_confusion_matrix(truth, predicted, name="test")
    return (
        lineage.Metrics(metrics, name=f"{model.name}_eval"),
        ConfusionMatrix(path, name=f"{model.name}_confusion"),
    )


@lineage.step(kind="deploy")
def deploy(
    model: lineage.Model, metrics: lineage.Metrics, stage: str = "production",
    rule: str = "chosen by hand",
) -> DeployedModel:
    """Copy the chosen model to the serving folder (``rule``: how it was chosen)."""
    target = OUT / "serving" / "model.pkl"
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_bytes(Path(model.uri).read_bytes())
    return DeployedModel(target, name="clf-serving", stage=stage)


def load_params(path: Path = PARAMS) -> dict[str, float | int]:
    """The training parameters of params.yaml."""
    return dict(yaml.safe_load(path.read_text())["train"])


def main(argv: list[str] | None = None, *, store: lineage.Store | None = None) -> dict[str, object]:
    """Run the pipeline once; return the recorded model and metrics."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--C", type=float, help="inverse regularisation strength (overrides params.yaml)")
    parser.add_argument("--max-iter", type=int, help="solver iterations (overrides params.yaml)")
    parser.add_argument("--run", help="run name (default: baseline, or C-<value> with --C)")
    args = parser.parse_args(argv)
    params = load_params()
    overrides = {k: v for k, v in {"C": args.C, "max_iter": args.max_iter}.items() if v is not None}
    params.update(overrides)
    name = args.run or ("baseline" if not overrides else "-".join(f"{k}-{v:g}" for k, v in overrides.items()))

    with lineage.run(name, experiment="breast-cancer", store=store, config=PARAMS) as run:
        # The config's values are run params already; record what the command line changed.
        lineage.log_params(**{f"train.{k}": v for k, v in overrides.items()})
        raw = ingest()
        stats = validate(raw)
        parts = split(raw, stats)
        scaler = featurize(parts["train"])
        model = train(parts["train"], scaler, C=params["C"], max_iter=params["max_iter"])
        metrics, _matrix = evaluate(model, scaler, parts["test"])
    return {"run": run.name, "model": model, "metrics": metrics}


if __name__ == "__main__":
    result = main()
    print(f"run {result['run']}: {result['model']!r} {result['metrics'].values}")  # type: ignore[attr-defined]
