#!/usr/bin/env bash
# Installs what `make demo` / `make test` need and is missing: Debian packages (with
# apt-get, as root or through sudo) and the Python packages into .venv.
#   scripts/setup.sh            graphviz + .venv (enough for make demo)
#   scripts/setup.sh test       also PostgreSQL, MariaDB and Chromium (for make test)
set -euo pipefail
cd "$(dirname "$0")/.."
want=(graphviz)
[ "${1:-}" = test ] && want+=(postgresql mariadb-server chromium)

missing=()
for pkg in "${want[@]}"; do
  case $pkg in
    graphviz)   command -v dot >/dev/null || missing+=(graphviz) ;;
    postgresql) ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || missing+=(postgresql) ;;
    mariadb-server) command -v mariadbd >/dev/null || [ -x /usr/sbin/mariadbd ] || missing+=(mariadb-server) ;;
    chromium)   command -v chromium >/dev/null || missing+=(chromium) ;;
  esac
done
if [ ${#missing[@]} -gt 0 ]; then
  echo "setup: installing Debian packages: ${missing[*]}"
  sudo=""; [ "$(id -u)" = 0 ] || sudo="sudo"
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

PY=${PYTHON:-}
if [ -z "$PY" ]; then
  for cand in python3.11 python3.10 python3; do
    if command -v $cand >/dev/null && $cand -c 'import sys; sys.exit(not ((3,10) <= sys.version_info[:2] <= (3,11)))'; then
      PY=$cand; break
    fi
  done
fi
[ -n "$PY" ] || { echo "setup: need Python 3.10 or 3.11 for .venv (make proto's grpcio-tools 1.62 and the ml-metadata 1.17 line; Python 3.12-3.13 with ml-metadata 1.21 are tested by make test-compat)"; exit 1; }
if [ ! -x .venv/bin/python ]; then
  echo "setup: creating .venv with $PY"
  $PY -m venv .venv
fi
# make demo needs the library and the example's packages; make test everything of `dev`.
if [ "${1:-}" = test ]; then extra=dev; probe='import lineage, pytest, hypothesis, sklearn, nbconvert'
else extra=examples; probe='import lineage, sklearn, pandas, yaml'; fi
stamp=.venv/.installed-$extra
if ! .venv/bin/python -c "$probe" >/dev/null 2>&1 || [ pyproject.toml -nt "$stamp" ]; then
  echo "setup: installing Python packages into .venv ($extra)"
  .venv/bin/python -m pip install -q --upgrade pip
  .venv/bin/python -m pip install -q -e ".[$extra]"
  touch "$stamp"
fi
