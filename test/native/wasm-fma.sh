#!/usr/bin/env bash
# Builds and runs wasm_fma_test.cc on the host (see there). -ffp-contract=off:
# the emulation's error-free products must not be fused by the compiler (as
# clang's wasm32 target, which has no fma instruction, never does).
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
OUT=${OUT:-$ROOT/build-test}
mkdir -p "$OUT"
"${CXX:-g++}" -std=c++17 -O2 -ffp-contract=off -Wall -Wextra -Werror "$ROOT/test/native/wasm_fma_test.cc" -o "$OUT/wasm_fma_test" -lm
"$OUT/wasm_fma_test"
