#!/usr/bin/env bash
# Builds the optional MPI addon (native/mpi/) when MPI is installed:
#   native/mpi/build/Release/batchnorm_mpi.node, which lib/collective/mpi.ts loads.
# Needs an MPI with a C++ wrapper compiler (Debian: apt-get install -y libopenmpi-dev openmpi-bin).
#   bash scripts/build-mpi.sh              build; fails if MPI is missing
#   bash scripts/build-mpi.sh --if-found   build if MPI is found, else say so and succeed
# Extra arguments go to node-gyp (e.g. --nodedir=/usr).
set -euo pipefail
cd "$(dirname "$0")/.."
if_found=false
if [[ "${1:-}" == "--if-found" ]]; then if_found=true; shift; fi
MPICXX="${MPICXX:-mpicxx}"
if ! command -v "$MPICXX" >/dev/null 2>&1 || ! "$MPICXX" --showme:compile >/dev/null 2>&1; then
  msg="batchnorm: no MPI found ($MPICXX --showme failed): the MPI collective is not built. To build it, install MPI (Debian: apt-get install -y libopenmpi-dev openmpi-bin) and run npm run build:mpi."
  if $if_found; then echo "$msg" >&2; exit 0; fi
  echo "$msg" >&2; exit 1
fi
# node-gyp: npm's own when run by npm (npm_config_node_gyp), else a local one, else the one npm bundles.
gyp="${npm_config_node_gyp:-}"
[[ -z "$gyp" && -x node_modules/.bin/node-gyp ]] && gyp=node_modules/.bin/node-gyp
[[ -z "$gyp" ]] && gyp="$(npm root -g)/npm/node_modules/node-gyp/bin/node-gyp.js"
node "$gyp" rebuild --directory native/mpi "--mpicxx=$MPICXX" "$@"
echo "built native/mpi/build/Release/batchnorm_mpi.node"
