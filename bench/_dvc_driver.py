"""Run by bench/.dvc-venv's Python (bench_content.py starts it): time ``dvc add`` and ``dvc
checkout`` of one target in a fresh DVC repository, with DVC's Python API, so that neither
interpreter start-up nor DVC's import is counted (lineage is timed in-process too).

Usage: ``python _dvc_driver.py REPO TARGET``; prints ``{"add": s, "checkout": s, ...}``.
"""

from __future__ import annotations

import json
import os
import shutil
import sys
import time


def main() -> None:
    repo_dir, target = sys.argv[1], sys.argv[2]
    from dvc.repo import Repo

    Repo.init(repo_dir, no_scm=True)
    repo = Repo(repo_dir)
    with repo.config.edit() as conf:  # a fresh hash state: nothing known from earlier rounds
        conf["core"]["site_cache_dir"] = os.path.join(repo_dir, ".site-cache")
        conf["core"]["analytics"] = False
    repo = Repo(repo_dir)
    path = os.path.join(repo_dir, target)

    os.sync()  # as bench_content does before each timed operation: no writeback backlog
    start = time.perf_counter()
    repo.add(path)
    added = time.perf_counter() - start

    if os.path.isdir(path):
        shutil.rmtree(path)
    else:
        os.unlink(path)
    repo = Repo(repo_dir)
    os.sync()
    start = time.perf_counter()
    repo.checkout(targets=[path + ".dvc"], force=True)
    checked_out = time.perf_counter() - start
    cache = repo.cache.local.path
    print(json.dumps({"add": added, "checkout": checked_out, "cache": cache,
                      "link_type": repo.cache.local.cache_types}))


if __name__ == "__main__":
    main()
