#!/usr/bin/env bash
# make test-compat: the second test leg, on the ml-metadata lines `make test` does not run.
#
#   1. Debian 13 (trixie) root, built with Debian's debootstrap (--variant=minbase) under
#      .compat/trixie and kept between runs; Python 3.13 from Debian, ml-metadata 1.21 and
#      protobuf 6 from PyPI in a venv inside it; graphviz and PostgreSQL 17 from Debian.
#      Runs the test suite there (SQLite, :memory:, PostgreSQL, examples, CLI, doctests).
#   2. Python 3.10 with ml-metadata 1.15 (the oldest supported pair) in .compat/py310 on
#      the host: the test suite again (SQLite, :memory:, PostgreSQL, examples, CLI).
#   3. Stores written by one line are read and extended by the others, both ways
#      (scripts/compat_exchange.py): host 1.17 -> trixie 1.21 -> host 1.15 -> host 1.17,
#      and a store created by 1.21 extended by 1.17 and read back by 1.21.
#   4. The wheel built by `make test-wheel`, installed (not editable) into a clean venv in
#      the trixie root, passes the smoke test (scripts/smoke_wheel.py) there too.
#
# Runs as root (debootstrap, chroot, mount). The mounts (/dev, /proc, the exchange folder)
# live in a private mount namespace (unshare), so nothing stays mounted on the host when a
# run ends or is killed, and `rm -rf .compat` is always safe.
#
#   5. What pip picks for the wheel on every Python of this machine and of the root
#      (pip install --dry-run): the README's support matrix, checked.
#
#   scripts/compat.sh [all|trixie|py310|exchange|pip|wheel-root]     (default: all)
#
# Environment: COMPAT_MIRROR (default: the Debian mirror apt already uses),
# COMPAT_SUITE (default: trixie), CI (passed into the root: server tests must run).
set -euo pipefail
cd "$(dirname "$0")/.."
SRC=$PWD
STATE=$SRC/.compat
ROOT=$STATE/trixie
SUITE=${COMPAT_SUITE:-trixie}
# Debian packages in the root (git: some tests read the commit of the code they record).
# Bump BASE_REV when the way the root is debootstrapped changes.
BASE_PKGS=(python3 python3-venv graphviz postgresql git)
BASE_REV=1
ROOT_VENV=/opt/lineage
HOST_VENV=$SRC/.venv
PY310_VENV=$STATE/py310
PY310_MLMD=1.15.0
ROOT_MLMD=1.21.0
EXCHANGE=$STATE/exchange
PYTEST_ROOT_MARKS="not browser and not mysql"   # no Chromium or MariaDB in the root
PYTEST_PY310_MARKS="not browser and not mysql"   # MariaDB: make test (same client code)

say() { printf '\n== compat: %s\n' "$*"; }
die() { printf 'compat: %s\n' "$*" >&2; exit 1; }
now() { date +%s; }
declare -a TIMES=()
timed() {  # timed LABEL CMD...: run, remember how long it took
  local label=$1 t0; shift; t0=$(now)
  "$@"
  TIMES+=("$(printf '%-34s %4ss' "$label" $(( $(now) - t0 )))")
}

[ "$(id -u)" = 0 ] || die "needs root (debootstrap, chroot and mount); run it as root, as CI does"
[ -x "$HOST_VENV/bin/python" ] || die "no .venv: run 'make setup-test' first (make test-compat does)"

# --- the Debian 13 root -----------------------------------------------------------------

mirror() {  # the Debian archive apt on this machine already uses
  if [ -n "${COMPAT_MIRROR:-}" ]; then echo "$COMPAT_MIRROR"; return; fi
  local uri="" f
  for f in /etc/apt/sources.list.d/*.sources; do  # deb822: URIs/Suites pairs per stanza
    [ -f "$f" ] || continue
    uri=$(awk 'BEGIN{RS=""; FS="\n"}
      { u=""; s="";
        for (i=1;i<=NF;i++) { if ($i ~ /^URIs:/) u=$i; if ($i ~ /^Suites:/) s=$i }
        if (u != "" && s !~ /security/ && u ~ /debian/) { sub(/^URIs:[ \t]*/, "", u); split(u, a, " "); print a[1]; exit } }' "$f")
    [ -n "$uri" ] && break
  done
  if [ -z "$uri" ]; then
    uri=$(cat /etc/apt/sources.list /etc/apt/sources.list.d/*.list 2>/dev/null \
      | awk '$1=="deb" && $0 !~ /security/ && $0 ~ /debian/ { for (i=2;i<=NF;i++) if ($i ~ /^(https?|file):/) { print $i; exit } }')
  fi
  echo "${uri:-http://deb.debian.org/debian}"
}

in_root() {  # in_root CMD...: run CMD inside the root, /dev /proc and $EXCHANGE mounted
  unshare --mount --propagation private -- bash -c '
    set -e; R=$1; EX=$2; shift 2
    mount --rbind /dev "$R/dev"
    mount -t proc proc "$R/proc"
    mkdir -p "$EX" "$R$EX"; mount --bind "$EX" "$R$EX"
    exec chroot "$R" /usr/bin/env -i PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \
      HOME=/root LANG=C.UTF-8 TERM=dumb CI="${CI:-}" DEBIAN_FRONTEND=noninteractive \
      PIP_CERT=/etc/ssl/certs/ca-certificates.crt PIP_DISABLE_PIP_VERSION_CHECK=1 \
      PIP_DEFAULT_TIMEOUT=120 PYTHONDONTWRITEBYTECODE=1 "$@"' _ "$ROOT" "$EXCHANGE" "$@"
}

ensure_debootstrap() {
  command -v debootstrap >/dev/null && [ -e /usr/share/debootstrap/scripts/"$SUITE" ] && return
  say "installing Debian's debootstrap on the host"
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends debootstrap >/dev/null
}

build_root() {
  local base="rev=$BASE_REV suite=$SUITE" pkgs="${BASE_PKGS[*]}"
  if [ -f "$ROOT/.compat-base" ] && [ "$(cat "$ROOT/.compat-base")" = "$base" ]; then
    echo "compat: reusing the $SUITE root in $ROOT ($base)"
  else
    ensure_debootstrap
    local m try; m=$(mirror)
    say "building a Debian $SUITE root with debootstrap from $m (about a minute)"
    rm -rf "$ROOT"
    mkdir -p "$STATE"
    for try in 1 2; do
      if debootstrap --variant=minbase --include=python3,python3-venv "$SUITE" "$ROOT" "$m" \
          >"$STATE/debootstrap.log" 2>&1; then break; fi
      [ "$try" = 2 ] && { tail -20 "$STATE/debootstrap.log"; die "debootstrap failed (log: $STATE/debootstrap.log)"; }
      echo "compat: debootstrap failed, retrying once"; rm -rf "$ROOT"
    done
    # No service starts inside the root.
    printf '#!/bin/sh\nexit 101\n' >"$ROOT/usr/sbin/policy-rc.d"; chmod +x "$ROOT/usr/sbin/policy-rc.d"
    echo "$base" >"$ROOT/.compat-base"
  fi
  if [ "$(cat "$ROOT/.compat-pkgs" 2>/dev/null)" != "$pkgs" ]; then
    say "installing Debian packages in the root: $pkgs"
    sync_host_files
    in_root bash -c "apt-get update -qq && apt-get install -y -qq --no-install-recommends $pkgs >/tmp/apt.log 2>&1 || { tail -20 /tmp/apt.log; exit 1; }"
    echo "$pkgs" >"$ROOT/.compat-pkgs"
  fi
}

sync_host_files() {  # DNS and the CA bundle the host uses (pip inside needs both)
  cp -L /etc/resolv.conf "$ROOT/etc/resolv.conf"
  mkdir -p "$ROOT/etc/ssl/certs"
  cp -L /etc/ssl/certs/ca-certificates.crt "$ROOT/etc/ssl/certs/ca-certificates.crt"
}

copy_source() {  # the work tree as git sees it (tracked and new files, not ignored ones)
  rm -rf "$ROOT/src"; mkdir -p "$ROOT/src"
  if git -C "$SRC" rev-parse --is-inside-work-tree >/dev/null 2>&1; then
    git -C "$SRC" ls-files -z --cached --others --exclude-standard \
      | tar -C "$SRC" --null -T - --ignore-failed-read -cf - 2>/dev/null | tar -C "$ROOT/src" -xf -
  else
    tar -C "$SRC" --exclude=./.compat --exclude=./.venv --exclude=./.git -cf - . | tar -C "$ROOT/src" -xf -
  fi
  # A checkout of its own, as CI's clone is (recorded steps carry the code's git commit).
  in_root bash -c "cd /src && git init -q && git add -A && git -c user.name=compat \
    -c user.email=compat@localhost commit -qm 'work tree copied by make test-compat'"
}

root_venv() {  # the project's [dev] dependencies, reinstalled when pyproject.toml changes
  local stamp; stamp=$(sha256sum "$SRC/pyproject.toml" | cut -c1-16)
  if [ "$(cat "$ROOT$ROOT_VENV/.compat-deps" 2>/dev/null)" = "$stamp" ]; then
    echo "compat: reusing $ROOT_VENV in the root (pyproject.toml unchanged)"
    return
  fi
  say "installing the project and ml-metadata $ROOT_MLMD into $ROOT_VENV in the root"
  in_root bash -c "rm -rf $ROOT_VENV && python3 -m venv $ROOT_VENV \
    && $ROOT_VENV/bin/pip install -q --upgrade pip \
    && $ROOT_VENV/bin/pip install -q -e '/src[dev]' 'ml-metadata==$ROOT_MLMD'"
  echo "$stamp" >"$ROOT$ROOT_VENV/.compat-deps"
}

leg_trixie() {
  build_root
  sync_host_files
  copy_source
  root_venv
  say "Debian $SUITE root: $(cat "$ROOT/etc/debian_version"), $(in_root $ROOT_VENV/bin/python -m lineage._compat | sed -n 1p)"
  in_root bash -c "cd /src && $ROOT_VENV/bin/python -m lineage._compat \
    && $ROOT_VENV/bin/python -c 'import ml_metadata, google.protobuf, sys; assert ml_metadata.__version__ == \"$ROOT_MLMD\", ml_metadata.__version__; assert google.protobuf.__version__.startswith(\"6.\"); assert sys.version_info[:2] == (3, 13), sys.version' \
    && $ROOT_VENV/bin/python -m pytest -q -m '$PYTEST_ROOT_MARKS' -p no:cacheprovider"
}

# --- Python 3.10 with ml-metadata 1.15 on the host --------------------------------------

find_py310() {  # a CPython 3.10 of this machine's image (pyenv's), else nothing
  local cand
  for cand in "$(command -v python3.10 2>/dev/null || true)" /root/.pyenv/versions/3.10*/bin/python3.10 \
              /usr/local/bin/python3.10 /usr/bin/python3.10; do
    [ -n "$cand" ] && [ -x "$cand" ] && "$cand" -c 'import sys, ssl, sqlite3, venv; sys.exit(sys.version_info[:2] != (3, 10))' 2>/dev/null \
      && { echo "$cand"; return; }
  done
}

leg_py310() {
  local py; py=$(find_py310)
  if [ -z "$py" ]; then
    # ml-metadata 1.15 has wheels for 3.9-3.11; lineage needs 3.10+: the oldest we can get.
    py=$(command -v python3.11 || true)
    [ -n "$py" ] || die "no Python 3.10 or 3.11 for the ml-metadata $PY310_MLMD leg"
    echo "compat: NOTE no Python 3.10 on this machine; running ml-metadata $PY310_MLMD on $($py -V)"
  fi
  local stamp; stamp="$($py -V 2>&1) $PY310_MLMD $(sha256sum pyproject.toml | cut -c1-16)"
  if [ "$(cat "$PY310_VENV/.compat-deps" 2>/dev/null)" != "$stamp" ]; then
    say "installing the project and ml-metadata $PY310_MLMD into .compat/py310 ($($py -V))"
    rm -rf "$PY310_VENV"
    "$py" -m venv "$PY310_VENV"
    "$PY310_VENV/bin/python" -m pip install -q --upgrade pip
    "$PY310_VENV/bin/python" -m pip install -q -e ".[dev]" "ml-metadata==$PY310_MLMD"
    echo "$stamp" >"$PY310_VENV/.compat-deps"
  fi
  say "host: $(cat /etc/debian_version 2>/dev/null), $("$PY310_VENV/bin/python" -m lineage._compat | sed -n 1p)"
  "$PY310_VENV/bin/python" -c "import ml_metadata; assert ml_metadata.__version__ == '$PY310_MLMD', ml_metadata.__version__"
  "$PY310_VENV/bin/python" -m pytest -q -m "$PYTEST_PY310_MARKS" -p no:cacheprovider
}

# --- stores move between the lines ------------------------------------------------------

leg_exchange() {
  local ex=scripts/compat_exchange.py h117="$HOST_VENV/bin/python" h115="$PY310_VENV/bin/python"
  local r121="$ROOT_VENV/bin/python"
  rm -rf "$EXCHANGE"; mkdir -p "$EXCHANGE"
  say "stores across lines: $($h117 -m lineage._compat | cut -d, -f2-3) | trixie$(in_root $r121 -m lineage._compat | cut -d, -f2-3) | $($h115 -m lineage._compat | cut -d, -f1-3)"
  # A store made by 1.17, extended by 1.21, then by 1.15, read back by 1.17.
  "$h117" $ex write "$EXCHANGE/a" host-1.17
  in_root bash -c "cd /src && $r121 $ex check $EXCHANGE/a host-1.17 && $r121 $ex write $EXCHANGE/a trixie-1.21"
  "$h115" $ex check "$EXCHANGE/a" host-1.17 trixie-1.21
  "$h115" $ex write "$EXCHANGE/a" host-1.15
  "$h117" $ex check "$EXCHANGE/a" host-1.17 trixie-1.21 host-1.15
  in_root bash -c "cd /src && $r121 $ex check $EXCHANGE/a host-1.17 trixie-1.21 host-1.15"
  # A store made by 1.21, extended by 1.17, read back by 1.21.
  in_root bash -c "cd /src && $r121 $ex write $EXCHANGE/b trixie-1.21"
  "$h117" $ex check "$EXCHANGE/b" trixie-1.21
  "$h117" $ex write "$EXCHANGE/b" host-1.17
  in_root bash -c "cd /src && $r121 $ex check $EXCHANGE/b trixie-1.21 host-1.17"
}

# --- what pip picks on each Python ------------------------------------------------------

pip_choice() {  # pip_choice LABEL PYTHON [root]: resolve the wheel (dry run), print the pair
  local label=$1 py=$2 where=${3:-host} report out
  report=/tmp/lineage-pip-report.json
  if [ "$where" = root ]; then
    out=$(in_root bash -c "$py -m pip install -q --dry-run --ignore-installed --report $report /wheel/$(basename "$WHEEL") 2>&1 \
          && $py -c 'import json; r = json.load(open(\"$report\")); v = {i[\"metadata\"][\"name\"].lower(): i[\"metadata\"][\"version\"] for i in r[\"install\"]}; print(\"ml-metadata\", v[\"ml-metadata\"], \"protobuf\", v[\"protobuf\"])'" 2>&1) || true
  else
    out=$("$py" -m pip install -q --dry-run --ignore-installed --report "$report" "$WHEEL" 2>&1 \
          && "$py" -c "import json; r = json.load(open('$report')); v = {i['metadata']['name'].lower(): i['metadata']['version'] for i in r['install']}; print('ml-metadata', v['ml-metadata'], 'protobuf', v['protobuf'])" 2>&1) || true
  fi
  out=$(printf '%s\n' "$out" | grep -E "^ml-metadata " || printf '%s\n' "$out" | grep -E "No matching distribution" \
        || printf '%s\n' "$out" | grep -v "^WARNING: Location" | tail -1)
  out=${out#ERROR: }
  printf '  %-44s %s\n' "$label" "${out:-?}"
  PIP_CHOICES+=("$label|$out")
}

leg_pip() {
  WHEEL=$(ls "$STATE"/dist/*.whl 2>/dev/null | sed -n 1p)
  [ -n "$WHEEL" ] || die "no wheel in .compat/dist: run 'make test-wheel' first (make test-compat does)"
  PIP_CHOICES=()
  local glibc; glibc=$(ldd --version | awk 'NR==1 {print $NF}')
  say "what pip installs with the wheel (pip install --dry-run)"
  local v py
  for v in 3.10 3.11 3.12 3.13; do
    py=$(ls /root/.pyenv/versions/$v*/bin/python$v /usr/bin/python$v 2>/dev/null | sed -n 1p || true)
    if [ -n "$py" ] && "$py" -m pip --version >/dev/null 2>&1; then
      pip_choice "host $(cat /etc/debian_version), glibc $glibc, Python $v" "$py"
    else
      printf '  %-44s %s\n' "host, Python $v" "(no such Python on this machine)"
    fi
  done
  mkdir -p "$ROOT/wheel"; cp "$WHEEL" "$ROOT/wheel/"
  pip_choice "Debian $(cat "$ROOT/etc/debian_version"), glibc $(in_root ldd --version | awk 'NR==1 {print $NF}'), Python 3.13" "$ROOT_VENV/bin/python" root
  # What the README's matrix says, row by row (glibc 2.39 is where 1.21's wheels load).
  local entry label out py_minor glibc_minor want
  for entry in "${PIP_CHOICES[@]}"; do
    label=${entry%%|*}; out=${entry#*|}
    py_minor=$(sed -E 's/.*Python 3\.([0-9]+).*/\1/' <<<"$label")
    glibc_minor=$(sed -E 's/.*glibc 2\.([0-9]+).*/\1/' <<<"$label")
    if [ "$py_minor" = 10 ] || { [ "$py_minor" = 11 ] && [ "$glibc_minor" -lt 39 ]; }; then
      want="ml-metadata 1.1[5-7].* protobuf 4.*"
    elif [ "$glibc_minor" -lt 39 ]; then
      want="*No matching distribution*ml-metadata*"
    else
      want="ml-metadata 1.21.* protobuf 6.*"
    fi
    # shellcheck disable=SC2053
    [[ $out == $want ]] || die "pip's choice for '$label' is '$out', not what the README's matrix says ($want)"
  done
}

# --- the wheel, installed for real in the root ------------------------------------------

leg_wheel_root() {
  local whl; whl=$(ls "$STATE"/dist/*.whl 2>/dev/null | sed -n 1p)
  [ -n "$whl" ] || die "no wheel in .compat/dist: run 'make test-wheel' first (make test-compat does)"
  rm -rf "$ROOT/wheel"; mkdir -p "$ROOT/wheel"
  cp "$whl" "$ROOT/wheel/"; cp "$STATE/dist/files.txt" "$ROOT/wheel/files.txt"
  cp scripts/smoke_wheel.py "$ROOT/wheel/"
  say "wheel $(basename "$whl") in a clean venv in the root (not editable)"
  in_root bash -c "rm -rf /opt/wheel-venv && python3 -m venv /opt/wheel-venv \
    && /opt/wheel-venv/bin/pip install -q /wheel/$(basename "$whl") \
    && mkdir -p /tmp/smoke && cd /tmp/smoke && /opt/wheel-venv/bin/python -I /wheel/smoke_wheel.py --files /wheel/files.txt"
}

main() {
  local what=${1:-all} t0; t0=$(now)
  case $what in
    all)        timed "trixie root, Python 3.13, 1.21" leg_trixie
                timed "host, Python 3.10, 1.15" leg_py310
                timed "stores across lines" leg_exchange
                timed "what pip picks" leg_pip
                timed "wheel in the trixie root" leg_wheel_root ;;
    trixie)     leg_trixie ;;
    py310)      leg_py310 ;;
    exchange)   leg_exchange ;;
    pip)        leg_pip ;;
    wheel-root) leg_wheel_root ;;
    *) die "unknown part '$what' (all, trixie, py310, exchange, pip, wheel-root)" ;;
  esac
  say "done in $(( $(now) - t0 ))s"
  local line; for line in "${TIMES[@]}"; do echo "  $line"; done
}

main "$@"
