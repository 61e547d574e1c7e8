#!/usr/bin/env bash
# No test names a path under /tmp itself: each writes under TMPDIR (in C,
# it_tmpdir() of tests/support/it_tmp.h), the folder of its own that
# tests/run/run_tmp.c gives it and removes when it passes. A file made
# under a hard-coded /tmp would outlive every run, and the leftover check
# of scripts/test, which looks in the run's own TMPDIR only, would not see
# it. Comments may speak of /tmp; code may not build a path on it.
set -euo pipefail
cd "$(dirname "$0")/.."
files=$(git ls-files 'tests/*.c' 'tests/*.h' 'tests/*.sh' 'tests/*.py' \
    2>/dev/null || find tests -name '*.[ch]' -o -name '*.sh' -o -name '*.py')
# The benchmarks are not tests: scripts/bench runs them, with its own
# folders.
files=$(echo "$files" | grep -v '^tests/bench/' | grep -v '^tests/tmp_paths.sh$')
bad=$(echo "$files" | xargs grep -nE "([\"' =(]|^)(ipc://)?/tmp/|mktemp [^|;]*/tmp|-p /tmp" |
    grep -vE '^[^:]+:[0-9]+:\s*(\*|/\*|//|#)' || true)
if [ -n "$bad" ]; then
    echo "these lines build a path under /tmp instead of TMPDIR (it_tmpdir()):" >&2
    echo "$bad" | sed 's/^/  /' >&2
    exit 1
fi
echo "$(echo "$files" | wc -l) test files build their paths under TMPDIR"
