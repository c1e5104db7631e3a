"""A store recorded by the real demo (``examples/tabular/demo.py``), for the audit tests.

Not a test module: the audit test modules import :func:`record_demo` and :func:`copy_store`.
"""

from __future__ import annotations

import os
import sqlite3
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
DEMO = ROOT / "examples" / "tabular" / "demo.py"


def record_demo(folder: Path) -> tuple[str, Path, str]:
    """Run the demo in ``folder``; return (store path, output folder, its stdout)."""
    folder.mkdir(parents=True, exist_ok=True)
    out = folder / "out"
    env = {**os.environ, "LINEAGE_EXAMPLE_OUT": str(out), "LINEAGE_URI": ""}
    done = subprocess.run([sys.executable, str(DEMO)], cwd=folder, env=env,
                          capture_output=True, text=True, timeout=600, check=False)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    return str(folder / ".lineage" / "metadata.sqlite"), out, done.stdout


def copy_store(source: str, target: Path) -> str:
    """A consistent copy of a SQLite store (the backup API: WAL content included)."""
    target.parent.mkdir(parents=True, exist_ok=True)
    with sqlite3.connect(source) as src, sqlite3.connect(target) as dst:
        src.backup(dst)
    return str(target)
