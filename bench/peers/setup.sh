#!/usr/bin/env bash
# Idempotent setup for the PyTorch / oneDNN peer harnesses.
#   - installs python3-torch, libdnnl-dev, g++ via apt-get if any is missing
#   - compiles bench/peers/onednn_bench.cpp -> bench/peers/build/onednn_bench
# Usage: bash bench/peers/setup.sh   (as root, or with passwordless sudo, if packages are missing)
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
BUILD="$HERE/build"
PKGS=(python3-torch libdnnl-dev g++)
export DEBIAN_FRONTEND=noninteractive

log() { echo "[peers/setup] $*" >&2; }

missing=()
for p in "${PKGS[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
    missing+=("$p")
  fi
done

SUDO=""
if [ "$(id -u)" -ne 0 ]; then SUDO="sudo -n"; fi

# apt-get with retries while another apt/dpkg holds the lock.
apt_retry() {
  local i
  for i in $(seq 1 30); do
    if $SUDO apt-get -o DPkg::Lock::Timeout=60 "$@"; then return 0; fi
    log "apt-get $1 failed (attempt $i), retrying in 10s (lock held?)"
    sleep 10
  done
  return 1
}

if [ "${#missing[@]}" -gt 0 ]; then
  log "installing: ${missing[*]}"
  apt_retry update -q
  apt_retry install -y -q --no-install-recommends "${missing[@]}"
else
  log "packages present: ${PKGS[*]}"
fi

# PyTorch must be importable by the Debian interpreter (python3 on PATH may be another one).
if ! /usr/bin/python3 -c 'import torch' 2>/dev/null; then
  log "ERROR: /usr/bin/python3 cannot import torch"; exit 1
fi

# Compile the oneDNN harness (rebuild only if the source is newer).
mkdir -p "$BUILD"
SRC="$HERE/onednn_bench.cpp"
BIN="$BUILD/onednn_bench"
if [ ! -x "$BIN" ] || [ "$SRC" -nt "$BIN" ] || [ "$HERE/setup.sh" -nt "$BIN" ]; then
  log "compiling $BIN"
  # -fopenmp: Debian's libdnnl is built with the OpenMP (libgomp) CPU runtime;
  # the harness calls omp_set_num_threads() and evicts caches with an OpenMP loop.
  g++ -std=c++17 -O2 -fopenmp -Wall "$SRC" -o "$BIN.tmp" -ldnnl
  mv -f "$BIN.tmp" "$BIN"
else
  log "up to date: $BIN"
fi

# JS peers are handled by the benchmark suite itself: deliberately no `npm install` here
# (bench/peers has no package.json, so npm would walk up and touch the project's node_modules).

log "torch $(/usr/bin/python3 -c 'import torch; print(torch.__version__)'), $("$BIN" --help >/dev/null && echo 'onednn_bench ok')"
