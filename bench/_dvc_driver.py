"""Run by bench/.dvc-venv's Python (bench_content.py starts it): times ``dvc add`` and ``dvc
checkout`` on request, with DVC's Python API, so that neither interpreter start-up nor
DVC's import is counted (lineage is timed in-process too).

One JSON command per line on stdin, one JSON answer per line on stdout:
``{"op": "add", "repo": REPO, "target": NAME}`` makes a fresh DVC repository in REPO (no
git, its own hash state) and times ``dvc add``; ``{"op": "checkout", "repo": ..., "target":
...}`` deletes the working copy and times ``dvc checkout``. Each timed operation starts
after ``sync``, as bench_content.py's own do.
"""

from __future__ import annotations

import json
import os
import shutil
import sys
import time
from typing import Any


def _add(repo_dir: str, target: str) -> float:
    from dvc.repo import Repo

    Repo.init(repo_dir, no_scm=True)
    repo = Repo(repo_dir)
    with repo.config.edit() as conf:  # a fresh hash state: nothing known from earlier rounds
        conf["core"]["site_cache_dir"] = os.path.join(repo_dir, ".site-cache")
        conf["core"]["analytics"] = False
    repo = Repo(repo_dir)
    path = os.path.join(repo_dir, target)
    os.sync()
    start = time.perf_counter()
    repo.add(path)
    return time.perf_counter() - start


def _checkout(repo_dir: str, target: str) -> float:
    from dvc.repo import Repo

    path = os.path.join(repo_dir, target)
    if os.path.isdir(path):
        shutil.rmtree(path)
    elif os.path.exists(path):
        os.unlink(path)
    repo = Repo(repo_dir)
    os.sync()
    start = time.perf_counter()
    repo.checkout(targets=[path + ".dvc"], force=True)
    took = time.perf_counter() - start
    if not os.path.exists(path):
        raise RuntimeError(f"dvc checkout did not restore {path}")
    return took


def main() -> None:
    answers = sys.stdout
    sys.stdout = sys.stderr  # what DVC prints ("Initialized DVC repository.") is not an answer
    import dvc

    print(json.dumps({"ready": True, "version": dvc.__version__}), file=answers, flush=True)
    for line in sys.stdin:
        command: dict[str, Any] = json.loads(line)
        op = command["op"]
        try:
            took = (_add if op == "add" else _checkout)(command["repo"], command["target"])
            answer: dict[str, Any] = {"seconds": took}
        except Exception as exc:  # reported to the benchmark, which stops
            answer = {"error": f"{type(exc).__name__}: {exc}"}
        print(json.dumps(answer), file=answers, flush=True)


if __name__ == "__main__":
    main()
