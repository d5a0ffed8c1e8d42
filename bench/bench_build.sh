#!/bin/bash
# bench_build.sh [ENGINE...] -- run the shared build benchmark (../shared/bench/run-bench.sh)
# for lamina and its peers, one result file, then print the comparison table.
#   ENGINES default: lamina buildkit   (add buildah/docker/podman when installed)
#   SCENARIOS: set BENCH_SCENARIOS="small-app many-steps" to run a subset.
# lamina runs against its own store ($LAMINA_ROOT, default /tmp/lamina-bench-root) and
# clears its build cache between cold builds with `lamina builder prune -af`.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
shared=${LAMINA_SHARED:-$here/../../shared}
engines=("$@")
[ ${#engines[@]} -gt 0 ] || engines=(lamina buildkit)
out=${BENCH_OUT:-/tmp/lamina-bench/results/build-$(date +%Y%m%d-%H%M%S).tsv}
mkdir -p "$(dirname "$out")"
export LAMINA=${LAMINA:-/work/venv/bin/lamina}
export LAMINA_ROOT=${LAMINA_ROOT:-/tmp/lamina-bench-root}
export LAMINA_PRUNE=${LAMINA_PRUNE:-"$LAMINA builder prune -af"}
# byte-compile so timings do not include compiling lamina's modules (PYTHONDONTWRITEBYTECODE)
"$(dirname "$LAMINA")/python" -m compileall -q "$here/../src" 2>/dev/null || true
for e in "${engines[@]}"; do
    # shellcheck disable=SC2086
    BENCH_OUT=$out "$shared/bench/run-bench.sh" "$e" ${BENCH_SCENARIOS:-}
done
python3 "$shared/bench/compare.py" "$out"
