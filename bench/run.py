"""Run the benchmarks: every ``bench/bench_*.py``, or those named on the command line.

Each benchmark is a script with a ``main()``; ``make bench`` runs them all.

Usage::

    python bench/run.py                    # all
    python bench/run.py fingerprint graph  # bench_fingerprint.py, bench_graph.py
"""

from __future__ import annotations

import importlib.util
import sys
import time
import traceback
from pathlib import Path

HERE = Path(__file__).resolve().parent


def _select(names: list[str]) -> list[Path]:
    available = sorted(HERE.glob("bench_*.py"))
    if not names:
        return available
    chosen = []
    for name in names:
        stem = Path(name).stem
        stem = stem if stem.startswith("bench_") else f"bench_{stem}"
        path = HERE / f"{stem}.py"
        if not path.is_file():
            known = ", ".join(p.stem.removeprefix("bench_") for p in available)
            raise SystemExit(f"bench: no benchmark {name!r}; available: {known}")
        chosen.append(path)
    return chosen


def _run(path: Path) -> bool:
    spec = importlib.util.spec_from_file_location(path.stem, path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[path.stem] = module
    spec.loader.exec_module(module)
    main = getattr(module, "main", None)
    if main is None:
        print(f"bench: {path.name} has no main(); skipped", file=sys.stderr)
        return False
    print(f"\n=== {path.name} ===", flush=True)
    start = time.perf_counter()
    try:
        main([])
    except Exception:
        traceback.print_exc()
        return False
    print(f"--- {path.name}: {time.perf_counter() - start:.1f} s", flush=True)
    return True


def main(argv: list[str] | None = None) -> int:
    """Run the selected benchmarks; non-zero exit status if one failed."""
    argv = sys.argv[1:] if argv is None else argv
    sys.path.insert(0, str(HERE))
    results = [_run(path) for path in _select(argv)]
    return 0 if all(results) else 1


if __name__ == "__main__":
    sys.exit(main())
