#!/usr/bin/env bash
# The demo's report in a real browser: installs Debian's chromium (when
# missing), runs `npm run demo -- --quick`, and opens the report in headless
# Chromium (test/browser/check-report.mjs): no console error, no network
# request, every chart rendered with a non-zero size. The screenshot it takes
# is the README's picture, demo/report.png: a report that changes without a
# fresh picture shows as a diff here (commit the new one). Needs the addon and
# the demo built (npm ci). Run from anywhere, as root (apt-get).
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT"
if ! command -v chromium > /dev/null; then
  for i in 1 2 3 4 5; do apt-get -o DPkg::Lock::Timeout=120 update -qq && break || sleep 10; done
  DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout=600 install -y -qq --no-install-recommends chromium > /dev/null
fi
chromium --version
OUT=$(mktemp -d)
trap 'rm -rf "$OUT"' EXIT
node demo/dist/main.js --quick --no-progress --out "$OUT/report"
node test/browser/check-report.mjs "$OUT/report/index.html" demo/report.png
