#!/usr/bin/env bash
# doctest_names.sh TEST_BINARY...: every doctest case of these binaries is one
# ctest test. doctest_discover_tests reads the case names into a CMake list,
# so a ';' in a name splits it into pieces that match no case: ctest then
# "passes" a test that ran nothing (five such cases never ran before this
# check). Fails naming each such case.
set -euo pipefail
bad=0
for bin in "$@"; do
  while IFS= read -r name; do
    case "$name" in
      *';'*) echo "FAIL: $(basename "$bin"): a ';' in a test case name keeps it from running under ctest: $name"; bad=1 ;;
    esac
  done < <("$bin" --list-test-cases --no-version | sed -n 's/^\(.*[^ ]\)$/\1/p' | grep -v '^\[doctest\]' | grep -v '^=*$')
done
[ "$bad" -eq 0 ] && echo "doctest case names: none would split under ctest ($# binaries)"
exit "$bad"
