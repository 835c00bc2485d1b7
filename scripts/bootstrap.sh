#!/usr/bin/env bash
# Installs what `make demo` and `make test` need and is missing; safe to re-run.
# System packages come from Debian (as root), Python packages from PyPI through
# uv (cache in ~/.cache/uv, outside the clone), Kafka jars from Maven Central
# (cache in ~/.cache/loopline, resolved by `loopline stack` on first use).
set -euo pipefail
cd "$(dirname "$0")/.."

say() { printf '\033[1mbootstrap:\033[0m %s\n' "$*"; }

python3 -c 'import sys; sys.exit(0 if sys.version_info[:2] == (3, 11) else 1)' || {
  echo "bootstrap: Python 3.11 is required as python3 (found $(python3 --version 2>&1))" >&2; exit 1; }

missing=()
command -v java >/dev/null || missing+=(openjdk-17-jre-headless)
command -v mvn >/dev/null || missing+=(maven)
[ -x /usr/lib/postgresql/15/bin/initdb ] || missing+=(postgresql-15)
command -v docker-compose >/dev/null || missing+=(docker-compose)
if [ ${#missing[@]} -gt 0 ]; then
  if [ "$(id -u)" != 0 ]; then
    echo "bootstrap: missing system packages: ${missing[*]}; install them with: sudo apt-get install ${missing[*]}" >&2
    exit 1
  fi
  say "installing ${missing[*]} from Debian"
  # Debian's postgresql package would create and start a cluster on 5432; the
  # stack runs a cluster of its own, so switch that off first.
  mkdir -p /etc/postgresql-common
  grep -qs '^create_main_cluster' /etc/postgresql-common/createcluster.conf ||
    echo 'create_main_cluster = false' >> /etc/postgresql-common/createcluster.conf
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

if ! command -v uv >/dev/null && ! python3 -m uv --version >/dev/null 2>&1; then
  say "installing uv from PyPI"
  python3 -m pip install --quiet --disable-pip-version-check uv
fi
uv_cmd() { if command -v uv >/dev/null; then uv "$@"; else python3 -m uv "$@"; fi; }

start=$(date +%s)
uv_cmd sync --all-packages --frozen --quiet
say "Python environment ready in $(( $(date +%s) - start ))s ($(uv_cmd --version))"
