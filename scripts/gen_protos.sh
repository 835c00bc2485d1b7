#!/usr/bin/env bash
# Regenerates libs/contracts from protos/ (messages, gRPC stubs and type stubs).
# Usage: scripts/gen_protos.sh [OUT_DIR]   (default: libs/contracts/src)
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
out=${1:-$root/libs/contracts/src}
cd "$root"
rm -rf "$out/loopline"
mkdir -p "$out"
mapfile -t protos < <(cd protos && find loopline -name '*.proto' | LC_ALL=C sort)
python -m grpc_tools.protoc -I protos \
  --python_out="$out" --pyi_out="$out" \
  --grpc_python_out="$out" --mypy_grpc_out="$out" \
  "${protos[@]}" 2> >(grep -v '^Writing mypy' >&2)
# Every generated directory is a regular package.
find "$out/loopline" -type d -exec sh -c ': > "$1/__init__.py"' _ {} \;
# Stubs for files without services carry nothing; keep only real ones.
for f in $(find "$out/loopline" -name '*_pb2_grpc.py'); do
  grep -qE '^class [A-Za-z]+Stub\b' "$f" || rm -f "$f" "${f%.py}.pyi"
done
