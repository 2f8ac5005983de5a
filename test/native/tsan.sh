#!/usr/bin/env bash
# The standalone kernel test under ThreadSanitizer, for the pool's hand-offs:
# a worker that wakes late and finds its part already run by the caller, a
# region posted while a worker still holds the last one. Two poll windows:
# BATCHNORM_SPIN_US=0 (workers block between regions: a race on every call)
# and the default 50 (3 found nothing more). About 2 min per run under TSan.
# Run from the package root. Output: build-test/.
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
cd "$ROOT"
# shellcheck source=../../.ci/arm64.sh
source .ci/arm64.sh
OUT=${OUT:-$ROOT/build-test}
mkdir -p "$OUT"
build_kernel_test x86 "$OUT/kernels_test.tsan" -O1 -g1 -fsanitize=thread
for spin in 0 50; do
  log=$OUT/kernels_test.tsan.spin$spin.txt
  if ! BATCHNORM_SPIN_US=$spin TSAN_OPTIONS="halt_on_error=1" "$OUT/kernels_test.tsan" --quick > "$log" 2>&1; then
    grep -v '^ok ' "$log" | head -80
    exit 1
  fi
  echo "ThreadSanitizer, BATCHNORM_SPIN_US=$spin: $(tail -1 "$log")"
done
