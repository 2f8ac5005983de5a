#!/usr/bin/env bash
# The addon built with AddressSanitizer + UndefinedBehaviorSanitizer
# (binding.gyp's batchnorm_sanitize: `node-gyp rebuild --batchnorm_sanitize=true`, the same option as CMakeLists.txt's
# BATCHNORM_SANITIZE) and the native tests that drive it run against that build.
# Run from the package root after `npm ci` (node_modules, dist/). Output: build-sanitize/.
#
# - node-gyp always writes ./build, so the build happens in a copy of the
#   package (node_modules symlinked); ./build is never touched.
# - Node itself is not instrumented: the ASan and UBSan runtimes are preloaded
#   (LD_PRELOAD reaches every process vitest and the tests start: its workers,
#   worker_threads, the child processes of the loader, ISA, GC and worker
#   tests). Leak detection is off: at exit it would list Node's own allocations.
# - The tests load the sanitized addon through BATCHNORM_ADDON (the loader and
#   test/api/property.test.ts both honour it).
# - Any report fails the run: ASan and UBSan halt on the first error
#   (-fno-sanitize-recover=undefined in the build, halt_on_error=1 here) and
#   log to build-sanitize/reports/; the run fails if a report was written even
#   when the process that wrote it was a child whose exit a test tolerated.
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT"
OUT=${OUT:-$ROOT/build-sanitize}
PKG=$OUT/pkg
REPORTS=$OUT/reports
now() { date +%s.%N; }
step() { local s; s=$(now); "$@"; awk -v a="$s" -v b="$(now)" -v n="$*" 'BEGIN{printf "[sanitize] %6.1f s  %s\n", b-a, n}' >&2; }

NODEDIR=()
if [ -f /usr/include/node/node.h ]; then NODEDIR=(--nodedir=/usr); fi
NODE_GYP=$(npm root -g)/npm/node_modules/node-gyp/bin/node-gyp.js
ASAN_RT=$(g++ -print-file-name=libasan.so)
UBSAN_RT=$(g++ -print-file-name=libubsan.so)

build() {
  rm -rf "$PKG"; mkdir -p "$PKG"
  tar -C "$ROOT" --exclude=./build --exclude='./build-*' --exclude=./node_modules --exclude=./.git -cf - . | tar -C "$PKG" -xf -
  ln -s "$ROOT/node_modules" "$PKG/node_modules"
  (cd "$PKG" && node "$NODE_GYP" rebuild --batchnorm_sanitize=true "${NODEDIR[@]}" --jobs=2 > "$OUT/node-gyp.log" 2>&1) \
    || { tail -40 "$OUT/node-gyp.log"; return 1; }
  # Instrumented indeed: linked against both runtimes.
  local rt libs
  libs=$(ldd "$PKG/build/Release/batchnorm.node")
  for rt in libasan libubsan; do
    grep -q "$rt" <<< "$libs" || { echo "[sanitize] the addon is not linked against $rt: the option did not reach the build" >&2; return 1; }
  done
}

run_tests() {
  rm -rf "$REPORTS"; mkdir -p "$REPORTS"
  local status=0
  env BATCHNORM_ADDON="$PKG/build/Release/batchnorm.node" \
    LD_PRELOAD="$ASAN_RT:$UBSAN_RT" \
    ASAN_OPTIONS="detect_leaks=0:halt_on_error=1:abort_on_error=1:detect_stack_use_after_return=0:allow_user_segv_handler=1:log_path=$REPORTS/asan" \
    UBSAN_OPTIONS="halt_on_error=1:print_stacktrace=1:log_path=$REPORTS/ubsan" \
    npx vitest run --project native \
      test/kernels.test.ts test/isa.test.ts test/threads.test.ts test/api/errors.test.ts test/api/property.test.ts \
      test/api/nonfinite.test.ts test/api/async.test.ts test/workers.test.ts test/async-gc.test.ts \
    > "$OUT/vitest.log" 2>&1 || status=$?
  if compgen -G "$REPORTS/*" > /dev/null; then
    echo "[sanitize] sanitizer reports:" >&2
    for f in "$REPORTS"/*; do echo "--- $f" >&2; head -60 "$f" >&2; done
    return 1
  fi
  if [ "$status" -ne 0 ]; then tail -80 "$OUT/vitest.log" >&2; return "$status"; fi
  grep -E "Test Files|Tests " "$OUT/vitest.log" | sed 's/\x1b\[[0-9;]*m//g' >&2
}

mkdir -p "$OUT"
[ -f dist/index.js ] || npx tsc -p tsconfig.json
step build
step run_tests
echo "[sanitize] ASan + UBSan: no reports"
