#!/usr/bin/env bash
# Every C file of the project is formatted as .clang-format says.
set -euo pipefail
cd "$(dirname "$0")/.."
files=$(git ls-files '*.c' '*.h' 2>/dev/null || find proto worker supervisor ctl tests -name '*.[ch]')
[ -n "$files" ] || { echo "no C files found"; exit 1; }
clang-format --dry-run -Werror $files
echo "$(echo "$files" | wc -l) C files formatted"
