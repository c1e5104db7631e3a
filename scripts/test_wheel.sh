#!/usr/bin/env bash
# make test-wheel: build the sdist and the wheel (from the sdist, as PyPI users get it) with
# `python -m build`, install the wheel (not editable) into a clean venv, and run
# scripts/smoke_wheel.py there from outside the source tree: every file under lineage/
# (modules, stubs, py.typed, JSON schemas, web UI assets) must be in the wheel, and the
# installed package records, queries, renders, reports and runs its CLI.
# Leaves the wheel in .compat/dist/ (make test-compat installs it in the Debian 13 root).
set -euo pipefail
cd "$(dirname "$0")/.."
SRC=$PWD
DIST=$SRC/.compat/dist
VENV=$SRC/.compat/wheel-venv
[ -x .venv/bin/python ] || { echo "test-wheel: run 'make setup-test' first" >&2; exit 1; }

rm -rf "$DIST" "$VENV" build
mkdir -p "$DIST"
echo "test-wheel: building the sdist and the wheel"
.venv/bin/python -m build --outdir "$DIST" . >"$DIST/build.log" 2>&1 \
  || { tail -30 "$DIST/build.log"; echo "test-wheel: build failed (log: $DIST/build.log)" >&2; exit 1; }
if grep -n "Warning\|deprecated" "$DIST/build.log" | grep -iv "editable" | grep -i "license\|setuptools"; then
  echo "test-wheel: setuptools warns about the project's configuration (above)" >&2; exit 1
fi
whl=$(ls "$DIST"/*.whl); sdist=$(ls "$DIST"/*.tar.gz)
tar -tzf "$sdist" >"$DIST/sdist.txt"; grep -q "/LICENSE$" "$DIST/sdist.txt" || { echo "test-wheel: the sdist has no LICENSE" >&2; exit 1; }
# What must ship: every file under lineage/ in the source tree (tracked or new).
if git rev-parse --is-inside-work-tree >/dev/null 2>&1; then
  git ls-files --cached --others --exclude-standard lineage | while read -r f; do [ -f "$f" ] && echo "$f"; done
else
  find lineage -type f ! -path '*/__pycache__/*' ! -name '*.pyc'
fi >"$DIST/files.txt"
echo "test-wheel: $(basename "$whl") ($(wc -l <"$DIST/files.txt") files under lineage/ must ship)"

base=$(.venv/bin/python -c 'import sys; print(sys._base_executable)')
"$base" -m venv "$VENV"
# (pip's notes about this machine's optional local indexes are not ours: filtered out)
"$VENV/bin/python" -m pip install -q "$whl" 2>&1 | { grep -v "^WARNING: Location 'file:" || true; }
[ "${PIPESTATUS[0]}" = 0 ] || { echo "test-wheel: pip install of the wheel failed" >&2; exit 1; }
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
cp scripts/smoke_wheel.py "$work/"
(cd "$work" && env -u PYTHONPATH "$VENV/bin/python" -I smoke_wheel.py --files "$DIST/files.txt")
