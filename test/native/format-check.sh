#!/usr/bin/env bash
# Checks that the C++ sources under native/ and test/native/ are formatted as
# .clang-format says; exits non-zero, listing what differs, if they are not.
# Fix with: clang-format -i $(git ls-files 'native/*.cc' 'native/*.h' 'test/native/*.cc')
# clang-format comes from Debian (apt-get install -y clang-format; 14.0.6 in
# Debian 12, which formatted the tree). CLANG_FORMAT picks another binary.
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
cd "$ROOT"
CF=${CLANG_FORMAT:-clang-format}
command -v "$CF" >/dev/null || { echo "format-check: $CF not found (apt-get install -y clang-format)" >&2; exit 2; }
mapfile -t files < <(find native test/native -type f \( -name '*.cc' -o -name '*.h' \) | sort)
if "$CF" --dry-run -Werror "${files[@]}"; then
  echo "format-check: ${#files[@]} files formatted ($("$CF" --version | head -1))"
else
  echo "format-check: run clang-format -i on the files above (.clang-format)" >&2
  exit 1
fi
