#!/usr/bin/env bash
# The WebAssembly tier's CI step: installs Debian's clang-19 and lld-19 (when
# missing), builds wasm/batchnorm.wasm (scripts/build-wasm.sh), and checks the
# build's emulated fma (native/wasm/include/cmath) against the C library's on
# the host, and that the committed module is that build. The test suite's 'wasm' project and test/kernels.test.ts then run
# the module. Run from anywhere, as root (apt-get).
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT"
if ! command -v clang-19 > /dev/null || ! command -v wasm-ld-19 > /dev/null; then
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq clang-19 lld-19 > /dev/null
fi
# The module is committed (so that `npm install` then `npm test` need no
# clang on a fresh machine); the build is reproducible, so a fresh build must
# give the committed bytes: a kernel change without a rebuilt module fails here.
bash scripts/build-wasm.sh
git -C "$ROOT" diff --exit-code --stat -- wasm/batchnorm.wasm ||
  { echo "wasm/batchnorm.wasm differs from a fresh build of native/: run scripts/build-wasm.sh and commit it"; exit 1; }
bash test/native/wasm-fma.sh
