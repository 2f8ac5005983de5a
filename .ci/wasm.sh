#!/usr/bin/env bash
# The WebAssembly tier's CI step: installs Debian's clang-19 and lld-19 (when
# missing), builds wasm/batchnorm.wasm (scripts/build-wasm.sh), and checks the
# build's emulated fma (native/wasm/include/cmath) against the C library's on
# the host. The test suite's 'wasm' project and test/kernels.test.ts then run
# the module. Run from anywhere, as root (apt-get).
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT"
if ! command -v clang-19 > /dev/null || ! command -v wasm-ld-19 > /dev/null; then
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq clang-19 lld-19 > /dev/null
fi
bash scripts/build-wasm.sh
bash test/native/wasm-fma.sh
