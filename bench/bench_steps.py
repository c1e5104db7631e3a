"""Per-step cost of ``@lineage.step`` against raw ml_metadata code and MLflow, in one run.

Three ways (four variants) of recording the same training step (one input dataset, one output model file,
three params, one metric), each on a fresh store file in the same temp folder:

(a) ``lineage``: a ``@lineage.step(kind="train")`` function taking a recorded
    ``Dataset`` and three params, logging one metric, returning a new ``Model`` file, on
    a store with ``keep=False`` (the same records as (b)), and again with keeping on
    (the default: a copy of each new model file goes into the store's objects);
(b) raw ml_metadata code writing the same records by hand: the execution put RUNNING
    (with its params, code/env properties and the INPUT event) and then COMPLETE (with
    the metric and a new output artifact carrying its version and SHA-256 fingerprint),
    one ``put_execution`` each, on a SQLite file switched to WAL like ``lineage.connect``
    does;
(c) MLflow 3.17 (``start_run``, ``log_params`` (3), ``log_input`` (a dataset),
    ``log_metric``, ``end_run``) on its default ``sqlite:///`` tracking store. MLflow pins
    a protobuf that ml-metadata cannot live with, so it runs in its own virtualenv,
    ``bench/.mlflow-venv``, created here when missing (``pip install mlflow==3.17.*``), as
    a subprocess that runs blocks of steps on request and prints their time.

Every variant writes its output file inside the timed loop. The three take turns in
blocks of 25 steps (MLflow's process runs a block when asked), so the noise of the shared
machine falls on all of them alike; medians over the blocks are reported, and the medians
of the per-block ratios.

Usage: ``python bench/run.py steps`` (or ``python bench/bench_steps.py [--quick]
[--no-mlflow]``); writes the "Steps" section of ``bench/RESULTS.md``.
"""

from __future__ import annotations

import datetime
import hashlib
import json
import os
import platform
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

from _results import write_section  # bench/ is on sys.path when run as a script
from ml_metadata.metadata_store import metadata_store
from ml_metadata.proto import metadata_store_pb2 as pb

import lineage
from lineage import _env
from lineage._schema import STEP_PROPERTIES

HERE = Path(__file__).resolve().parent
MLFLOW_VENV = HERE / ".mlflow-venv"
MLFLOW_SPEC = "mlflow==3.17.*"
GOAL_RAW = 1.25
GOAL_MLFLOW = 10.0


# --- (a) lineage -----------------------------------------------------------------------


def make_lineage(folder: Path, *, keep: bool = False
                 ) -> tuple[Callable[[], None], Callable[[], int]]:
    """One decorated step per call of the first function; the second counts executions.

    ``keep=False`` writes the same records as the raw variant; ``keep=True`` (lineage's
    default) also keeps a copy of each new model file in the store's objects.
    """
    tag = "kept" if keep else "lineage"
    store = lineage.connect(folder / f"{tag}.sqlite", keep=keep)
    source = folder / "iris.csv"
    data = lineage.Dataset(source, name="iris")
    store.put(data)  # fills in data's id, version and fingerprint
    out = folder / f"{tag}-out"
    out.mkdir()
    counter = [0]

    @lineage.step(kind="train", store=store)
    def train(data: lineage.Dataset, lr: float = 0.1, epochs: int = 10,
              solver: str = "lbfgs") -> lineage.Model:
        counter[0] += 1
        path = out / f"model-{counter[0]}.bin"
        path.write_bytes(b"weights %d" % counter[0])
        lineage.log_metrics({"acc": 0.9})
        return lineage.Model(path, name="clf")

    def one() -> None:
        train(data, lr=0.05)

    return one, lambda: len(store.executions(step="train"))


# --- (b) raw ml_metadata -----------------------------------------------------------------


def _raw_store(path: Path) -> metadata_store.MetadataStore:
    db = sqlite3.connect(path)
    db.execute("PRAGMA journal_mode=WAL")
    db.close()
    config = pb.ConnectionConfig(
        sqlite=pb.SqliteMetadataSourceConfig(
            filename_uri=str(path),
            connection_mode=pb.SqliteMetadataSourceConfig.READWRITE_OPENCREATE,
        )
    )
    return metadata_store.MetadataStore(config)


def make_raw(folder: Path) -> tuple[Callable[[], None], Callable[[], int]]:
    """Hand-written ml_metadata code writing the same records, one step per call."""
    mlmd = _raw_store(folder / "raw.sqlite")
    artifact_props = {"version": pb.INT, "fingerprint": pb.STRING, "previous_version": pb.INT}
    dataset_type = mlmd.put_artifact_type(pb.ArtifactType(
        name="Dataset", base_type=pb.ArtifactType.DATASET, properties=artifact_props))
    model_type = mlmd.put_artifact_type(pb.ArtifactType(
        name="Model", base_type=pb.ArtifactType.MODEL, properties=artifact_props))
    train_type = mlmd.put_execution_type(pb.ExecutionType(
        name="train", base_type=pb.ExecutionType.TRAIN, properties=STEP_PROPERTIES))
    # the same code and environment facts lineage records, computed once like a script would
    env: dict[str, Any] = {
        "recorded_by": "raw", "function": "bench_steps.train", "source_hash": "sha256:" + "0" * 64,
        **_env.git_facts(__file__), **_env.host_facts(),
    }
    source = folder / "iris.csv"
    data = pb.Artifact(type_id=dataset_type, uri=str(source), name="iris@1", state=pb.Artifact.LIVE,
                       external_id="iris:" + hashlib.sha256(source.read_bytes()).hexdigest())
    data.properties["version"].int_value = 1
    data.properties["fingerprint"].string_value = (
        "sha256:" + hashlib.sha256(source.read_bytes()).hexdigest())
    [data.id] = mlmd.put_artifacts([data])
    data = mlmd.get_artifacts_by_id([data.id])[0]
    out = folder / "raw-out"
    out.mkdir()
    previous = 0
    counter = [0]

    def one() -> None:
        nonlocal previous
        counter[0] += 1
        i = counter[0]
        start = time.time()
        execution = pb.Execution(type_id=train_type, name=f"train:{uuid.uuid4().hex}",
                                 last_known_state=pb.Execution.RUNNING)
        p = execution.properties
        for key, value in env.items():
            if isinstance(value, bool):
                p[key].bool_value = value
            else:
                p[key].string_value = value
        for name, version in _env.package_versions().items():
            p["packages"].struct_value.fields[name].string_value = version
        p["start_time"].double_value = start
        c = execution.custom_properties
        c["lr"].double_value = 0.05
        c["epochs"].int_value = 10
        c["solver"].string_value = "lbfgs"
        event = pb.Event(type=pb.Event.INPUT)
        event.path.steps.add().key = "data"
        execution.id, _, _ = mlmd.put_execution(execution, [(data, event)], [])
        path = out / f"model-{i}.bin"  # the step's work, between RUNNING and COMPLETE
        path.write_bytes(b"weights %d" % i)
        digest = hashlib.sha256(path.read_bytes()).hexdigest()
        model = pb.Artifact(type_id=model_type, uri=str(path), name=f"clf@{i}",
                            external_id=f"clf:{digest}", state=pb.Artifact.LIVE)
        model.properties["version"].int_value = i
        model.properties["fingerprint"].string_value = f"sha256:{digest}"
        if previous:
            model.properties["previous_version"].int_value = previous
        end = time.time()
        execution.last_known_state = pb.Execution.COMPLETE
        p["end_time"].double_value = end
        p["duration"].double_value = end - start
        p["metrics"].struct_value.fields["acc"].number_value = 0.9
        p["returns"].string_value = "artifact"
        output = pb.Event(type=pb.Event.OUTPUT)
        output.path.steps.add().index = 0
        _, [previous], _ = mlmd.put_execution(execution, [(model, output)], [])

    return one, lambda: len(mlmd.get_executions())


def timed_block(one: Callable[[], None]) -> Callable[[int], float]:
    """A block runner: ``n`` calls of ``one``, returning ms per call."""

    def run(n: int) -> float:
        start = time.perf_counter()
        for _ in range(n):
            one()
        return 1000 * (time.perf_counter() - start) / n

    return run


def interleaved(
    variants: dict[str, Callable[[int], float]], blocks: int, block: int, warmup: int = 5
) -> dict[str, list[float]]:
    """ms/step of each variant per block, the variants taking turns block by block (order
    rotating), so that the noise of a shared machine falls on all of them alike."""
    for run in variants.values():
        run(warmup)
    names = list(variants)
    times: dict[str, list[float]] = {n: [] for n in names}
    for b in range(blocks):
        order = names[b % len(names):] + names[:b % len(names)]
        for name in order:
            times[name].append(variants[name](block))
    return times


# --- (c) MLflow, in its own virtualenv ---------------------------------------------------

_MLFLOW_SCRIPT = """
import json, logging, os, sys, time, warnings
warnings.filterwarnings("ignore")
logging.disable(logging.WARNING)
folder = sys.argv[1]
import mlflow
import mlflow.data
import pandas as pd
mlflow.set_tracking_uri("sqlite:///" + os.path.join(folder, "mlflow.db"))
mlflow.set_experiment("bench")
frame = pd.read_csv(os.path.join(folder, "iris.csv"))
dataset = mlflow.data.from_pandas(frame, source=os.path.join(folder, "iris.csv"), name="iris")
out = os.path.join(folder, "mlflow-out")
os.makedirs(out, exist_ok=True)
count = 0

def one():
    global count
    count += 1
    with open(os.path.join(out, "model-%d.bin" % count), "wb") as f:
        f.write(b"weights %d" % count)
    mlflow.start_run()
    mlflow.log_params({"lr": 0.05, "epochs": 10, "solver": "lbfgs"})
    mlflow.log_input(dataset, context="training")
    mlflow.log_metric("acc", 0.9)
    mlflow.end_run()

print(json.dumps({"ready": mlflow.__version__}), flush=True)
for line in sys.stdin:  # each line: how many steps to run; answer: ms per step
    n = int(line)
    start = time.perf_counter()
    for _ in range(n):
        one()
    print(json.dumps({"ms_per_step": 1000 * (time.perf_counter() - start) / n}), flush=True)
"""


def ensure_mlflow_venv() -> Path | None:
    """The Python of ``bench/.mlflow-venv`` (created with MLflow when missing), or None."""
    python = MLFLOW_VENV / "bin" / "python"
    if python.exists():
        check = subprocess.run([str(python), "-c", "import mlflow"], capture_output=True)
        if check.returncode == 0:
            return python
    print(f"bench: creating {MLFLOW_VENV} with {MLFLOW_SPEC} (one time)...", flush=True)
    try:
        subprocess.run([sys.executable, "-m", "venv", str(MLFLOW_VENV)], check=True)
        subprocess.run([str(python), "-m", "pip", "install", "-q", MLFLOW_SPEC], check=True,
                       timeout=1800)
    except (subprocess.SubprocessError, OSError) as exc:
        print(f"bench: could not install MLflow ({exc}); skipping (c)", file=sys.stderr)
        return None
    return python


class MLflowRunner:
    """MLflow steps run on request in a subprocess of ``bench/.mlflow-venv``."""

    def __init__(self, python: Path, folder: Path) -> None:
        self.proc = subprocess.Popen(
            [str(python), "-c", _MLFLOW_SCRIPT, str(folder)],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        )
        self.version = str(self._answer()["ready"])

    def _answer(self) -> dict[str, Any]:
        assert self.proc.stdout is not None
        line = self.proc.stdout.readline()
        if not line:
            err = self.proc.stderr.read() if self.proc.stderr else ""
            raise RuntimeError(f"the MLflow process ended: {err[-3000:]}")
        answer: dict[str, Any] = json.loads(line)
        return answer

    def __call__(self, n: int) -> float:
        assert self.proc.stdin is not None
        self.proc.stdin.write(f"{n}\n")
        self.proc.stdin.flush()
        return float(self._answer()["ms_per_step"])

    def close(self) -> None:
        if self.proc.stdin is not None:
            self.proc.stdin.close()
        self.proc.wait(timeout=60)


# --- main --------------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> dict[str, Any]:
    """Run (a), (b) and (c); print and record the numbers."""
    argv = sys.argv[1:] if argv is None else argv
    quick = "--quick" in argv
    blocks, block = (6, 20) if quick else (12, 25)
    with tempfile.TemporaryDirectory(prefix="bench-steps-") as tmp:
        folder = Path(tmp)
        (folder / "iris.csv").write_text("sepal,petal,label\n" + "5.1,1.4,0\n" * 150)
        ours, count_ours = make_lineage(folder)
        kept, count_kept = make_lineage(folder, keep=True)
        raw, count_raw = make_raw(folder)
        variants: dict[str, Callable[[int], float]] = {
            "lineage": timed_block(ours), "raw": timed_block(raw), "kept": timed_block(kept),
        }
        mlflow: MLflowRunner | None = None
        python = None if "--no-mlflow" in argv else ensure_mlflow_venv()
        if python is not None:
            (folder / "mlflow").mkdir()
            (folder / "mlflow" / "iris.csv").write_text((folder / "iris.csv").read_text())
            mlflow = MLflowRunner(python, folder / "mlflow")
            variants["mlflow"] = mlflow
        try:
            times = interleaved(variants, blocks, block)
        finally:
            if mlflow is not None:
                mlflow.close()
        assert count_ours() == count_kept() == count_raw() == 5 + blocks * block
    med = {name: statistics.median(values) for name, values in times.items()}
    result: dict[str, Any] = {
        "steps": blocks * block, "blocks": blocks, "block": block,
        "lineage_ms": med["lineage"], "raw_ms": med["raw"], "kept_ms": med["kept"],
        "ratio_raw": statistics.median(
            o / r for o, r in zip(times["lineage"], times["raw"], strict=True)),
        "ratio_kept": statistics.median(
            k / r for k, r in zip(times["kept"], times["raw"], strict=True)),
    }
    print(f"lineage {med['lineage']:.2f} ms/step, raw ml_metadata {med['raw']:.2f} ms/step "
          f"(medians); median ratio per block {result['ratio_raw']:.2f}x (goal <= {GOAL_RAW}x)")
    print(f"lineage keeping each model file (the default) {med['kept']:.2f} ms/step: "
          f"{result['ratio_kept']:.2f}x raw (a copy more than the raw code writes)")
    if mlflow is not None:
        result["mlflow_ms"], result["mlflow_version"] = med["mlflow"], mlflow.version
        result["mlflow_speedup"] = statistics.median(
            m / o for m, o in zip(times["mlflow"], times["lineage"], strict=True))
        print(f"MLflow {mlflow.version} {med['mlflow']:.2f} ms/step: lineage is "
              f"{result['mlflow_speedup']:.1f}x faster (goal >= {GOAL_MLFLOW}x)")
    write_section("Steps", "<!-- steps-notes -->", _section(result))
    return result


def _section(result: dict[str, Any]) -> str:
    today = datetime.date.today().isoformat()
    lines = [
        f"## Steps (one train step: 1 input, 1 output file, 3 params, 1 metric; {today}, "
        f"{platform.machine()} {os.cpu_count()} cores, Python {platform.python_version()})",
        "",
        "| variant | ms per step | vs lineage |",
        "| --- | ---: | ---: |",
        f"| `@lineage.step` (SQLite, WAL, `keep=False`) | {result['lineage_ms']:.2f} | 1.00x |",
        f"| `@lineage.step`, keeping each new model file (the default) | "
        f"{result['kept_ms']:.2f} | {result['kept_ms'] / result['lineage_ms']:.2f}x |",
        f"| raw ml_metadata, same records (SQLite, WAL) | {result['raw_ms']:.2f} | "
        f"{result['raw_ms'] / result['lineage_ms']:.2f}x |",
    ]
    if "mlflow_ms" in result:
        lines.append(
            f"| MLflow {result['mlflow_version']} (`sqlite:///`) | {result['mlflow_ms']:.2f} | "
            f"{result['mlflow_ms'] / result['lineage_ms']:.2f}x |"
        )
    lines += [
        "",
        f"lineage / raw = **{result['ratio_raw']:.2f}x** (goal <= {GOAL_RAW}x; the same "
        f"records; keeping on: {result['ratio_kept']:.2f}x, one file copy more)"
        + (f"; MLflow / lineage = **{result['mlflow_speedup']:.1f}x** (goal >= {GOAL_MLFLOW}x)"
           if "mlflow_ms" in result else "; MLflow not measured"),
        "",
        f"The variants take turns in {result['blocks']} blocks of {result['block']} steps "
        f"({result['steps']} steps each after 5 warm-up steps), on store files in the same "
        "folder, MLflow in its own process and virtualenv; the numbers are medians over the "
        "blocks, the ratios medians of the per-block ratios (the machine is shared and "
        "noisy). `python bench/run.py steps`.",
        "",
    ]
    return "\n".join(lines)


if __name__ == "__main__":
    main()
