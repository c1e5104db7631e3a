"""Smoke test of an installed (not editable) ``mlmd-lineage`` wheel (make test-wheel).

Run it with the clean venv's Python, from a folder outside the source tree, in isolated
mode (``python -I``), so that only the installed package can be imported::

    python -I scripts/smoke_wheel.py --files FILES.txt

``FILES.txt`` lists the files under ``lineage/`` in the source tree (one path a line,
``lineage/...``); every one of them must be in the installed package: modules, stubs,
``py.typed``, JSON schemas and the web UI's ``static/`` and ``templates/`` assets. A file
that only an editable install finds fails here. Then it records a small pipeline, queries
it, renders it, writes an audit report and runs the ``lineage`` command on it.
"""

from __future__ import annotations

import argparse
import importlib
import importlib.metadata
import json
import os
import subprocess
import sys
import sysconfig
import tempfile
from pathlib import Path


def fail(message: str) -> None:
    raise SystemExit(f"smoke: FAILED: {message}")


def check_installed(files: list[str]) -> Path:
    """The package comes from site-packages, not editable, with every source file."""
    import lineage

    package = Path(lineage.__file__).resolve().parent
    site = Path(sysconfig.get_paths()["purelib"]).resolve()
    if site not in package.parents:
        fail(f"lineage imported from {package}, not from this venv's {site}")
    dist = importlib.metadata.distribution("mlmd-lineage")
    direct = json.loads(dist.read_text("direct_url.json") or "{}")
    if direct.get("dir_info", {}).get("editable"):
        fail("mlmd-lineage is installed editable; install the wheel")
    missing = [f for f in files if not (package.parent / f).is_file()]
    if missing:
        fail(f"{len(missing)} file(s) of lineage/ are not in the wheel: {missing[:10]}; "
             "add them to [tool.setuptools.package-data] in pyproject.toml")
    meta = dist.metadata
    if meta.get("License-Expression") != "Apache-2.0":
        fail(f"License-Expression is {meta.get('License-Expression')!r}, not 'Apache-2.0'")
    licenses = [str(f) for f in dist.files or () if "licenses/LICENSE" in str(f)]
    if not licenses:
        fail("the wheel carries no LICENSE (license-files)")
    assets = check_ui(package)
    print(f"smoke: {len(files)} source files of lineage/ all installed in {site}, "
          f"{len(assets)} web UI asset(s), License-Expression Apache-2.0, {licenses[0]}")
    return package


def check_ui(package: Path) -> list[Path]:
    """When the package has a web UI, it imports and its assets are readable and non-empty."""
    ui = package / "ui"
    if not (ui / "__init__.py").is_file():
        return []
    importlib.import_module("lineage.ui")
    assets = sorted(p for d in ("static", "templates") for p in (ui / d).rglob("*") if p.is_file())
    empty = [str(p.relative_to(package)) for p in assets if p.stat().st_size == 0]
    if empty:
        fail(f"empty web UI assets in the wheel: {empty}")
    return assets


def check_use(work: Path) -> None:
    """Record, query, render, report, and the CLI, on a SQLite store."""
    import lineage
    from lineage import _compat

    data = work / "data.csv"
    data.write_text("x,y\n" + "".join(f"{i},{i % 3}\n" for i in range(30)))
    store = lineage.connect(work / "store" / "metadata.sqlite")

    @lineage.step(kind="train", store=store)
    def train(data: lineage.Dataset, c: float = 1.0) -> lineage.Model:
        return lineage.Model(content=data.path.read_bytes()[:20] + str(c).encode(), name="clf")

    with lineage.run("smoke", experiment="wheel", store=store):
        model = train(lineage.Dataset(data, name="raw"), c=0.5)
        lineage.log_metrics({"acc": 0.9})
    prov = store.provenance(model)
    if [d.name for d in prov.datasets] != ["raw"] or prov.steps[0].params.get("c") != 0.5:
        fail(f"provenance: {prov.to_dict()}")
    svg = lineage.render(prov, work / "prov.svg")
    if "<svg" not in Path(svg).read_text():
        fail(f"{svg} is not an SVG")
    html = Path(store.audit(model, work / "audit.html"))
    if "raw" not in html.read_text():
        fail("the audit report does not name the dataset")
    store.close()

    exe = Path(sys.executable).parent / "lineage"
    uri = str(work / "store" / "metadata.sqlite")
    env = {k: v for k, v in os.environ.items() if not k.startswith(("LINEAGE_", "PYTHON"))}
    for args in (["--help"], ["--store", uri, "ls", "--json"],
                 ["--store", uri, "provenance", "clf", "--json"],
                 ["--store", uri, "graph", "clf", "-o", str(work / "g.svg")]):
        done = subprocess.run([str(exe), *args], cwd=work, env=env, capture_output=True,
                              text=True, timeout=120)
        if done.returncode != 0:
            fail(f"`lineage {' '.join(args)}` exited {done.returncode}: {done.stderr.strip()}")
        if args[-2:] == ["clf", "--json"] and json.loads(done.stdout) != prov.to_dict():
            fail("`lineage provenance clf --json` differs from Provenance.to_dict()")
    print(f"smoke: recorded, queried, rendered, audited and ran the CLI "
          f"({', '.join(f'{k} {v}' for k, v in _compat.versions().items())})")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--files", type=Path, required=True,
                        help="the files under lineage/ in the source tree, one a line")
    args = parser.parse_args()
    files = [line.strip() for line in args.files.read_text().splitlines() if line.strip()]
    if not any(f.endswith("lineage/__init__.py") for f in files):
        fail(f"{args.files} lists no lineage/__init__.py")
    check_installed(files)
    with tempfile.TemporaryDirectory(prefix="lineage-smoke-") as tmp:
        check_use(Path(tmp))
    return 0


if __name__ == "__main__":
    sys.exit(main())
