"""A small real store for the web UI tests: runs with curves, two model versions, a failed
step and names that hold HTML and script."""

from __future__ import annotations

import hashlib
import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import lineage

#: A run name and param that would run script if a page did not escape them.
HOSTILE = '<img src=x onerror="window.__xss=1">'
SCRIPT = "<script>window.__xss=2</script>"


def build(uri: str, folder: Path) -> dict[str, Any]:
    """Record the store; return the ids the tests ask about."""
    store = lineage.connect(uri)
    folder.mkdir(parents=True, exist_ok=True)
    raw_path = folder / "iris.csv"
    raw_path.write_text("sepal,petal,label\n5.1,1.4,setosa\n6.2,4.5,versicolor\n")

    @lineage.step(store=store, kind="process", cache=False)
    def clean(raw: lineage.Dataset, drop_na: bool = True) -> lineage.Dataset:
        out = folder / "clean.csv"
        out.write_text(Path(raw.uri).read_text().lower())
        return lineage.Dataset(out, name="iris-clean")

    @lineage.step(store=store, kind="train")
    def train(data: lineage.Dataset, lr: float = 0.1, epochs: int = 6) -> lineage.Model:
        for epoch in range(epochs):
            lineage.log_metrics({"loss": round(1.0 / (1 + lr * 40 * (epoch + 1)), 4),
                                 "acc": round(0.6 + lr * epoch, 4)}, step=epoch)
        lineage.log_metrics({"f1": round(0.8 + lr, 3)})
        model = folder / f"model-{lr}.bin"
        model.write_bytes(f"weights {lr}".encode())
        return lineage.Model(model, name="clf")

    @lineage.step(store=store, kind="evaluate")
    def evaluate(model: lineage.Model, note: str = "") -> lineage.Metrics:
        return lineage.Metrics({"acc": 0.9}, name="clf-eval")

    @lineage.step(store=store)
    def explode(note: str = SCRIPT) -> None:
        raise ValueError(f"bad input {SCRIPT}")

    ids: dict[str, Any] = {}
    for name, lr in (("baseline", 0.05), ("tuned", 0.02)):
        with lineage.run(name, experiment="iris", store=store, params={"seed": 7}):
            data = clean(lineage.Dataset(raw_path, name="iris"))
            model = train(data, lr=lr)
            evaluate(model)
            ids[name] = {"model": model.id, "data": data.id}
    try:
        with lineage.run(HOSTILE, experiment=HOSTILE, store=store, params={"note": SCRIPT}):
            lineage.log_metrics({"f1": 0.1, "loss": 0.5}, step=0)
            explode()
    except ValueError:
        pass
    ids["raw"] = store.get("iris").id
    ids["clean"] = store.get("iris-clean").id
    ids["failed"] = store.executions(step="explode")[0].id
    ids["hostile_run"] = store.runs(name=HOSTILE)[0].id
    store.close()
    return ids


def digest(path: str | Path) -> str:
    """SHA-256 of a file's bytes."""
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextmanager
def serving(store: lineage.Store, **options: Any) -> Iterator[str]:
    """Serve ``store`` with uvicorn in a thread; yield the base URL."""
    import uvicorn

    from lineage.ui import create_app

    port = free_port()
    app = create_app(store, allowed_hosts=["127.0.0.1", "localhost"], **options)
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started:
        if time.monotonic() > deadline or not thread.is_alive():
            raise RuntimeError("the UI server did not start")
        time.sleep(0.02)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=10)
