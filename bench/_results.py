"""Writing one benchmark's section of ``bench/RESULTS.md``, keeping its hand-written notes."""

from __future__ import annotations

import re
from pathlib import Path

RESULTS = Path(__file__).resolve().parent / "RESULTS.md"


def write_section(heading: str, notes_marker: str, text: str) -> None:
    """Replace the section whose heading line starts with ``## <heading>`` by ``text``.

    Whatever follows ``notes_marker`` inside the old section (notes written by hand) is
    kept below the new numbers; a missing section is appended.
    """
    old = RESULTS.read_text() if RESULTS.exists() else "# Benchmark results\n"
    pattern = re.compile(rf"## {re.escape(heading)}\b.*?(?=\n## |\Z)", re.S)
    existing = pattern.search(old)
    notes = ""
    if existing and notes_marker in existing.group(0):
        notes = existing.group(0)[existing.group(0).index(notes_marker):].rstrip() + "\n"
    new = text + ("\n" + notes if notes else "")
    if existing:
        out = old[:existing.start()] + new.rstrip("\n") + "\n" + old[existing.end():]
    else:
        out = old.rstrip("\n") + "\n\n" + new
    RESULTS.write_text(out)
