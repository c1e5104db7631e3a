"""``python -m lineage``: the ``lineage`` command."""

from __future__ import annotations

import sys

from lineage.cli import main

if __name__ == "__main__":
    sys.exit(main())
