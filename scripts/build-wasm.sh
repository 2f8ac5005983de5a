#!/usr/bin/env bash
# Builds wasm/batchnorm.wasm: the kernels of native/kernels/ over the SIMD128
# vectors of native/simd/wasm.h, for wasm32, freestanding (no C or C++
# library, no emscripten or WASI: native/wasm/ holds the few pieces the
# kernels need), with Debian's clang-19 and lld-19
# (apt-get install -y clang-19 lld-19; .ci/wasm.sh installs them).
# Run from anywhere; CLANG overrides the compiler. Output: wasm/batchnorm.wasm.
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
CLANG=${CLANG:-clang-19}
command -v "$CLANG" > /dev/null || { echo "build-wasm: $CLANG not found (apt-get install -y clang-19 lld-19, or set CLANG)" >&2; exit 1; }
OUT=$ROOT/wasm/batchnorm.wasm
mkdir -p "$ROOT/wasm"
# Memory: the stack first (an overflow traps instead of overwriting data),
# 1 MiB of it; the heap grows up to 4 GiB (memory.cc). -mbulk-memory:
# memcpy/memset as memory.copy/memory.fill; -mnontrapping-fptoint: plain
# float-to-int conversions. No exceptions, RTTI or thread-safe statics
# (one thread, and no runtime to support them).
"$CLANG" --target=wasm32 -std=c++17 -O3 -msimd128 -mbulk-memory -mnontrapping-fptoint -msign-ext \
  -ffreestanding -fno-exceptions -fno-rtti -fno-threadsafe-statics -fvisibility=hidden \
  -nostdinc -nostdlib -isystem "$ROOT/native/wasm/include" -isystem "$("$CLANG" -print-resource-dir)/include" \
  -Wall -Wextra -Werror \
  -Wl,--no-entry -Wl,--stack-first -Wl,-z,stack-size=1048576 -Wl,--max-memory=4294967296 -Wl,--strip-all \
  "$ROOT/native/kernels/wasm.cc" "$ROOT/native/wasm/exports.cc" "$ROOT/native/wasm/memory.cc" "$ROOT/native/wasm/threads.cc" \
  -o "$OUT.tmp"
mv "$OUT.tmp" "$OUT"
echo "build-wasm: $OUT ($(wc -c < "$OUT") bytes)"
