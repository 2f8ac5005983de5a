#!/usr/bin/env bash
# Builds and runs the standalone kernel test natively on x86-64 (scalar, avx2
# and avx512 tables; those this CPU cannot run are skipped), once plain and
# once with ASan+UBSan. Run from the package root. Output: build-test/.
# The build itself is build_kernel_test in .ci/arm64.sh (shared with the arm64 run).
#
# --tsan instead: the test under ThreadSanitizer, for the pool's hand-offs (a
# worker that wakes late and finds its part already run by the caller, a
# region posted while a worker still holds the last one), with
# BATCHNORM_SPIN_US=0 (workers block between regions: a race on every call)
# and the default 50 (3 found nothing more). About 2 min per run under TSan.
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
cd "$ROOT"
# shellcheck source=../../.ci/arm64.sh
source .ci/arm64.sh
OUT=${OUT:-$ROOT/build-test}
mkdir -p "$OUT"
now() { date +%s.%N; }
step() {  # step <command...>: runs it, prints its time, returns its status
  local s rc=0; s=$(now); "$@" || rc=$?
  awk -v a="$s" -v b="$(now)" -v n="$*" -v r="$rc" 'BEGIN{printf "[native] %6.1f s  %s%s\n", b-a, n, r ? "  FAILED" : ""}' >&2
  return $rc
}

build() {
  build_kernel_test x86 "$OUT/kernels_test" &
  local a=$!
  build_kernel_test x86 "$OUT/kernels_test.asan" "${KT_SANITIZE[@]}"
  wait "$a"
  KT_MAIN=test/native/norms_test.cc build_kernel_test x86 "$OUT/norms_test"
  KT_MAIN=test/native/fused_test.cc build_kernel_test x86 "$OUT/fused_test"
}
run_fused() {  # BatchNorm's fused ReLU and residual add (issue 21)
  "$OUT/fused_test" > "$OUT/fused_test.txt" || { grep -v '^ok ' "$OUT/fused_test.txt"; return 1; }
  echo "fused_test: $(tail -1 "$OUT/fused_test.txt")"
}
run_norms() {  # the LayerNorm / RMSNorm / GroupNorm kernels
  "$OUT/norms_test" > "$OUT/norms_test.txt" || { grep -v '^ok ' "$OUT/norms_test.txt"; return 1; }
  echo "norms_test: $(tail -1 "$OUT/norms_test.txt")"
}
run() {
  "$OUT/kernels_test" "$@"
}
run_asan() {  # --quick: ASan+UBSan run ~5x slower; huge inputs add time, not findings
  "$OUT/kernels_test.asan" --quick "$@" > "$OUT/kernels_test.asan.txt" 2>&1 || { grep -v '^ok ' "$OUT/kernels_test.asan.txt"; return 1; }
  echo "ASan+UBSan: $(tail -1 "$OUT/kernels_test.asan.txt")"
}
tsan() {
  build_kernel_test x86 "$OUT/kernels_test.tsan" -O1 -g1 -fsanitize=thread
  local spin log
  for spin in 0 50; do
    log=$OUT/kernels_test.tsan.spin$spin.txt
    if ! BATCHNORM_SPIN_US=$spin TSAN_OPTIONS="halt_on_error=1" "$OUT/kernels_test.tsan" --quick "$@" > "$log" 2>&1; then
      grep -v '^ok ' "$log" | head -80
      return 1
    fi
    echo "ThreadSanitizer, BATCHNORM_SPIN_US=$spin: $(tail -1 "$log")"
  done
}
if [ "${1:-}" = "--tsan" ]; then
  shift
  step tsan "$@"
  exit
fi

step build
rc=0
step run "$@" || rc=1
step run_asan "$@" || rc=1   # runs even when the plain run failed: its findings are different
step run_norms || rc=1
step run_fused || rc=1
exit $rc
