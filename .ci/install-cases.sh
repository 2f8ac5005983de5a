#!/usr/bin/env bash
# The packed tarball installed into empty projects, one case per way an
# install can go (scripts/install.mjs), each timed, each checked by running
# the installed package:
#   prebuilt      compilers, make and python hidden from the PATH: the prebuilt
#                 addon is used, nothing compiles, the native path runs (also
#                 with each node of NODE_BINS="<bin folder>...", if set)
#   fallback      no prebuilt addon for the platform (the tarball without
#                 prebuilds/) and no compiler: one warning, exit 0, the
#                 package runs on its fallback path and says why at import
#   forced        --build-from-source with the build tools: node-gyp builds
#                 build/Release/batchnorm.node, which the package loads
#   build-fails   no prebuilt addon, the tools there but node-gyp fails (a
#                 nodedir without headers): warning, exit 0, fallback path
#   forced-fails  --build-from-source without a compiler: exit 1 (asked for)
# No case may download Node's headers: npm's nodedir is unset (the install
# finds the headers next to node), node-gyp's header cache is an empty
# folder, and its download URL a closed local port, so an attempt fails at once.
# Usage: bash .ci/install-cases.sh batchnorm-<version>.tgz
set -euo pipefail
TGZ=$(realpath "$1")
T=$(mktemp -d)
trap 'rm -rf "$T"' EXIT
# No nodedir (the install must find the headers itself): the npmrc files without theirs.
unset npm_config_nodedir NPM_CONFIG_NODEDIR
for rc in userconfig globalconfig; do
  f=$(npm config get "$rc")
  { [ -f "$f" ] && grep -v '^ *nodedir *=' "$f" || true; } > "$T/npmrc.$rc"
  export "npm_config_$rc=$T/npmrc.$rc"
done
export npm_config_devdir=$T/node-gyp-cache npm_config_disturl=http://127.0.0.1:9 npm_config_audit=false npm_config_fund=false
mkdir -p "$npm_config_devdir"

# The tarball without prebuilds/: what a platform without a prebuilt addon gets.
mkdir "$T/repack"
tar -xzf "$TGZ" -C "$T/repack"
rm -rf "$T/repack/package/prebuilds"
NOPRE=$T/batchnorm-no-prebuilds.tgz
tar -czf "$NOPRE" -C "$T/repack" package

# A PATH with node, npm and a shell only: no compiler, make or python.
NOCC=$T/bin
mkdir "$NOCC"
ln -s "$(command -v node)" "$NOCC/node"
ln -s "$(readlink -f "$(command -v npm)")" "$NOCC/npm"
ln -s "$(readlink -f /bin/sh)" "$NOCC/sh"
for t in g++ c++ gcc cc clang clang++ make python3 python; do
  if PATH=$NOCC command -v "$t" >/dev/null; then echo "install-cases: $t is still on the hidden PATH" >&2; exit 1; fi
done

# check.mjs <expected backend: native | fallback>: a forward pass through the installed package.
cat > "$T/check.mjs" <<'EOF'
import { BatchNorm2d, backendInfo } from 'batchnorm';
const want = process.argv[2];
const bn = new BatchNorm2d(3);
const y = bn.forward({ data: Float32Array.from({ length: 24 }, (_, i) => i % 7), shape: [2, 3, 2, 2] });
const info = backendInfo();
// Channel 0 holds 0..6 in pattern: the normalized values have mean 0.
const mean0 = [0, 1, 2, 3, 12, 13, 14, 15].reduce((s, i) => s + y.data[i], 0) / 8;
const ok = (want === 'native' ? info.backend === 'native' : info.backend !== 'native') && y.data.every(Number.isFinite) && Math.abs(mean0) < 1e-5;
console.log(`backend ${info.backend}, isa ${info.isa}`);
if (!ok) { console.error('unexpected', info, Array.from(y.data)); process.exit(1); }
EOF

RESULTS=()
# run_case <name> <expected install exit> <expected backend | -> <PATH> <tarball> [npm install options...]
run_case() {
  local name=$1 want_rc=$2 want_backend=$3 path=$4 tgz=$5; shift 5
  local app=$T/$name rc=0 s e secs backend=-
  mkdir "$app"; (cd "$app" && npm init -y >/dev/null 2>&1)
  s=$(date +%s.%N)
  (cd "$app" && PATH=$path npm install --foreground-scripts "$@" "$tgz") > "$T/$name.log" 2>&1 || rc=$?
  e=$(date +%s.%N); secs=$(awk -v a="$s" -v b="$e" 'BEGIN{printf "%.1f", b-a}')
  echo "--- $name: npm install $* $(basename "$tgz") (PATH ${path%%:*}..., $(PATH=$path node --version)): exit $rc in $secs s"
  grep -E '^batchnorm:' "$T/$name.log" | sed 's/^/    /' || true
  if [ "$rc" != "$want_rc" ]; then cat "$T/$name.log"; echo "install-cases: $name: exit $rc, expected $want_rc" >&2; exit 1; fi
  if [ "$want_backend" != - ]; then
    cp "$T/check.mjs" "$app/"   # 'batchnorm' resolves from the importing file's folder
    backend=$(cd "$app" && PATH=$path node check.mjs "$want_backend" 2> "$T/$name.run.err") || { cat "$T/$name.run.err"; exit 1; }
    echo "    import: $backend"
    if [ "$want_backend" = fallback ]; then
      grep -q 'BATCHNORM_FALLBACK' "$T/$name.run.err" || { echo "install-cases: $name: no fallback warning at import" >&2; exit 1; }
      grep -q 'at install:' "$T/$name.run.err" || { echo "install-cases: $name: the import warning does not say what the install found" >&2; exit 1; }
      echo "    import warning: ... $(grep -o '(at install: .*' "$T/$name.run.err" | head -1 | cut -c1-160) ..."
    fi
  fi
  RESULTS+=("$(printf '%-16s exit %s  %6s s  %s' "$name" "$rc" "$secs" "$backend")")
}
PKGDIR() { echo "$T/$1/node_modules/batchnorm"; }

run_case prebuilt 0 native "$NOCC" "$TGZ"
grep -q 'using the prebuilt addon prebuilds/linux-' "$T/prebuilt.log"
[ ! -e "$(PKGDIR prebuilt)/build" ] || { echo "install-cases: prebuilt: something was built" >&2; exit 1; }

# The same on the other Nodes of NODE_BINS (bin folders of official binaries, e.g. .ci/node-versions.sh's build-node/<major>/bin).
for bin in ${NODE_BINS:-}; do
  run_case "prebuilt-node$("$bin/node" -p 'process.versions.node.split(".")[0]')" 0 native "$bin:$NOCC" "$TGZ"
done

run_case fallback 0 fallback "$NOCC" "$NOPRE"
grep -q 'WARNING: the native addon is not installed: no build from source: a C++17 compiler (g++), make, python3 not found' "$T/fallback.log"

run_case build-fails 0 fallback "$PATH" "$NOPRE" --nodedir="$T/no-headers"
grep -q 'WARNING: the native addon is not installed: the build from source failed' "$T/build-fails.log"

run_case forced-fails 1 - "$NOCC" "$TGZ" --build-from-source
grep -q -- '--build-from-source: no build from source: a C++17 compiler' "$T/forced-fails.log"

run_case forced 0 native "$PATH" "$TGZ" --build-from-source
grep -q 'built build/Release/batchnorm.node' "$T/forced.log"
grep -q -- '--nodedir=' "$T/forced.log"   # found the headers next to node
# The package loads its own build, not the prebuilt addon: without prebuilds/ it still runs natively.
rm -rf "$(PKGDIR forced)/prebuilds"
(cd "$T/forced" && node check.mjs native) | sed 's/^/    without prebuilds\/: /'

echo; echo "install cases (npm $(npm --version), node $(node --version), $(basename "$TGZ") $(stat -c %s "$TGZ") bytes):"
printf '  %s\n' "${RESULTS[@]}"
