#!/usr/bin/env bash
# CI for the optional MPI part: installs Open MPI (Debian), builds the MPI
# addon (native/mpi/, scripts/build-mpi.sh) and runs the MPI tests, which then
# must run (BATCHNORM_REQUIRE_MPI=1: a missing mpirun or addon fails).
# Expects the package built (npm ci, or .ci/run) in this checkout.
#   bash .ci/mpi.sh
set -euo pipefail
cd "$(dirname "$0")/.."
export DEBIAN_FRONTEND=noninteractive
step() { echo; echo "=== $* ($(date +%T))"; }

step "Open MPI"
if ! command -v mpicxx >/dev/null || ! command -v mpirun >/dev/null; then
  for i in 1 2 3 4 5; do apt-get -o DPkg::Lock::Timeout=120 update -qq && break || sleep 10; done
  apt-get -o DPkg::Lock::Timeout=600 install -y -qq --no-install-recommends libopenmpi-dev openmpi-bin >/dev/null
fi
mpirun --version | head -1
if [ -f /usr/include/node/node.h ]; then export npm_config_nodedir=/usr; fi

step "the MPI addon"
bash scripts/build-mpi.sh
test -f native/mpi/build/Release/batchnorm_mpi.node
test -f dist/index.js || npx tsc -p tsconfig.json

step "MPI tests (mpirun --allow-run-as-root --oversubscribe -np 1..4)"
# mpirun refuses root without these; CI containers run as root.
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
BATCHNORM_REQUIRE_MPI=1 BATCHNORM_BACKEND=native npx vitest run --project native test/sync/mpi.test.ts
echo "MPI: OK"
