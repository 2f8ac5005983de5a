#!/usr/bin/env bash
# Makes the prebuilt addons the tarball ships (`npm pack` runs it: "prepack"),
# in the prebuildify / node-gyp-build layout, Node-API tagged:
#   prebuilds/linux-x64/batchnorm.napi.glibc.node
#   prebuilds/linux-arm64/batchnorm.napi.glibc.node
# Each is the addon `npm install` would build from binding.gyp (every file at
# the baseline ISA but the per-ISA kernel files; the ISA chosen at run time),
# built with node-gyp in a copy of the package (./build is not touched),
# against Node-API 9 (NAPI_VERSION in binding.gyp: loads in Node 20, 22, 24),
# stripped of its symbols (as prebuildify --strip), and tested as stripped
# before it is copied: test/arm64/addon.test.mjs runs against it, natively for
# x64, in the official arm64 node under qemu for arm64 (cross-built with
# Debian's g++-aarch64-linux-gnu; .ci/arm64.sh's recipe and functions).
# Needs dist/ (built here if missing), node_modules, and as root on Debian
# it installs g++-aarch64-linux-gnu and qemu-user if missing.
# Output: prebuilds/ (git-ignored), logs and copies in build-prebuild/.
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT"
OUT=$ROOT/build-prebuild
NAME=batchnorm.napi.glibc.node
# shellcheck source=../.ci/arm64.sh
source "$ROOT/.ci/arm64.sh"   # functions only: arm64_node, arm64_cross_build
export QEMU_LD_PREFIX=/usr/aarch64-linux-gnu
now() { date +%s.%N; }
T0=$(now)
say() { awk -v a="$T0" -v b="$(now)" -v m="$*" 'BEGIN{printf "[prebuild] %6.1f s  %s\n", b-a, m}' >&2; }

if ! command -v aarch64-linux-gnu-g++ >/dev/null || ! command -v qemu-aarch64 >/dev/null; then
  say "installing g++-aarch64-linux-gnu qemu-user"
  for i in 1 2 3 4 5; do apt-get -o DPkg::Lock::Timeout=120 update -qq && break || sleep 10; done
  DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout=600 install -y -qq --no-install-recommends g++-aarch64-linux-gnu qemu-user >/dev/null
fi
[ -f dist/index.js ] || { say "dist/ is missing: tsc"; npx tsc -p tsconfig.json; }
mkdir -p "$OUT"

# Host headers: npm's nodedir, else the ones next to this node.
NODEDIR=${npm_config_nodedir:-$(cd "$(dirname "$(command -v node)")/.." && pwd)}
[ -f "$NODEDIR/include/node/node_api.h" ] || { echo "[prebuild] no Node headers in $NODEDIR/include/node: set npm_config_nodedir" >&2; exit 1; }

# x64: node-gyp in a copy (arm64_cross_build's copy, without the cross tools).
build_x64() {
  local pkg=$OUT/x64
  rm -rf "$pkg"; mkdir -p "$pkg"
  tar -C "$ROOT" --exclude=./build --exclude='./build-*' --exclude=./prebuilds --exclude=./node_modules --exclude=./.git -cf - . | tar -C "$pkg" -xf -
  ln -s "$ROOT/node_modules" "$pkg/node_modules"
  (cd "$pkg" && npm_config_nodedir="$NODEDIR" node "$(npm root -g)/npm/node_modules/node-gyp/bin/node-gyp.js" rebuild --nodedir="$NODEDIR" --jobs=2) > "$OUT/x64.log" 2>&1 ||
    { tail -30 "$OUT/x64.log"; return 1; }
  strip --strip-unneeded "$pkg/build/Release/batchnorm.node"
}
build_arm64() {
  arm64_node "$OUT/node-arm64" > "$OUT/arm64-node.log" 2>&1 || { cat "$OUT/arm64-node.log"; return 1; }
  arm64_cross_build "$ROOT" "$OUT/arm64" "$OUT/node-arm64" "$OUT/arm64.log" > "$OUT/arm64-build.log" || { cat "$OUT/arm64-build.log"; return 1; }
  grep -qF -- "-I$OUT/node-arm64/include/node" "$OUT/arm64/build/batchnorm.target.mk" ||
    { echo "the arm64 addon was not built against the arm64 node's headers"; return 1; }
  aarch64-linux-gnu-strip --strip-unneeded "$OUT/arm64/build/Release/batchnorm.node"
}
say "building linux-x64 and linux-arm64 (node-gyp; logs in build-prebuild/)"
build_x64 & x64=$!
build_arm64 & arm=$!
rc=0; wait $x64 || rc=1; wait $arm || rc=1
[ $rc = 0 ] || { echo "[prebuild] a build failed" >&2; exit 1; }
say "built; testing each stripped addon with test/arm64/addon.test.mjs"

# The end-to-end test against the stripped files (the test loads build/Release/batchnorm.node of its package).
test_one() {  # test_one <label> <package copy> [runner...]
  local label=$1 pkg=$2; shift 2
  (cd "$pkg" && BATCHNORM_BACKEND=native "$@" test/arm64/addon.test.mjs) > "$OUT/$label.test.tap" 2>&1 ||
    { cat "$OUT/$label.test.tap"; return 1; }
  say "$label: addon.test.mjs $(grep -E '^# (pass|fail) ' "$OUT/$label.test.tap" | tr '\n' ' ')"
}
test_one linux-x64 "$OUT/x64" node & x64=$!
test_one linux-arm64 "$OUT/arm64" qemu-aarch64 "$OUT/node-arm64/bin/node" & arm=$!
rc=0; wait $x64 || rc=1; wait $arm || rc=1
[ $rc = 0 ] || { echo "[prebuild] a prebuilt addon failed its test" >&2; exit 1; }

rm -rf prebuilds
for a in x64 arm64; do
  mkdir -p "prebuilds/linux-$a"
  cp "$OUT/$a/build/Release/batchnorm.node" "prebuilds/linux-$a/$NAME"
  # The newest glibc symbol version it needs (what "glibc" in the name means here).
  glibc=$(objdump -T "prebuilds/linux-$a/$NAME" 2>/dev/null | grep -oE 'GLIBC_[0-9.]+' | sort -uV | tail -1 || true)
  say "prebuilds/linux-$a/$NAME: $(stat -c %s "prebuilds/linux-$a/$NAME") bytes, needs ${glibc:-?}"
done
