#!/usr/bin/env bash
# Installs every peer of the benchmark suite (all optional; run.mjs skips what is missing):
#   - PyTorch 1.13 and oneDNN 2.6 harnesses: bench/peers/setup.sh (apt: python3-torch, libdnnl-dev, g++)
#   - TensorFlow.js 4.22 (cpu + wasm backends) and onnxruntime-node, into node_modules without
#     touching package.json (--no-save: a later `npm ci` / `npm install` removes them again).
#     ONNXRUNTIME_NODE_INSTALL=skip: its install script would download GPU binaries from a host a
#     closed network cannot reach; the CPU binaries are inside the npm package.
# Usage: bash bench/setup-peers.sh [--no-apt]
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
if [ "${1:-}" != "--no-apt" ]; then bash "$ROOT/bench/peers/setup.sh"; fi
cd "$ROOT"
ONNXRUNTIME_NODE_INSTALL=skip npm install --no-save --no-audit --no-fund \
  @tensorflow/tfjs@4.22.0 @tensorflow/tfjs-backend-wasm@4.22.0 onnxruntime-node@1.30.0
node -e "import('@tensorflow/tfjs').then(t => console.log('tfjs', t.version.tfjs)); import('onnxruntime-node').then(o => console.log('onnxruntime-node', o.env.versions.node))"
