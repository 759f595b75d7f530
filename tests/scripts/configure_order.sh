#!/usr/bin/env bash
# configure_order.sh SOURCE_DIR: the README's two commands share build/release
# (issue 12). On a scratch copy of the tree, whatever an earlier configure left
# in the cache (the old run.sh's REGISTRY_TESTS=OFF, container tests off, a
# tree made by another generator), configuring as scripts/run.sh and then as
# scripts/test.sh do must leave a release tree that lists every test suite.
set -euo pipefail
src=$(realpath "$1")
scratch=$(mktemp -d)
trap 'rm -rf "$scratch"' EXIT
(cd "$src" && git ls-files -z --cached --others --exclude-standard) |
  (cd "$src" && tar --null -T - -cf - 2>/dev/null) | tar -xf - -C "$scratch"
cd "$scratch"

fail() { echo "FAIL: $*" >&2; exit 1; }

# Both commands configure build/release through scripts/configure.sh.
grep -q '^scripts/configure.sh release$' scripts/run.sh || fail "scripts/run.sh does not configure build/release with scripts/configure.sh"
grep -q '^build_tree release ' scripts/test.sh || fail "scripts/test.sh does not build the release tree through build_tree/scripts/configure.sh"

suites=(registry_unit_tests registryd_unit_tests registry_integration_tests registry_container_tests
  registry_container_it_tests registry_repl_tests)
check_release_tree() {  # what: the state being checked
  local listed
  listed=$(cd build/release && ctest -N)
  for s in "${suites[@]}"; do
    grep -q "${s}_NOT_BUILT" <<<"$listed" || fail "$1: build/release lists no tests of $s"
  done
  grep -q '^REGISTRY_TESTS:BOOL=ON$' build/release/CMakeCache.txt || fail "$1: REGISTRY_TESTS is not ON"
  (cd build/release && ctest -N -L '^package$') | grep -qE '^Total Tests: [1-9]' || fail "$1: build/release lists no package test"
}

# The state the old run.sh left, then run.sh's configure, then test.sh's.
cmake -S . -B build/release -G Ninja --no-warn-unused-cli -DREGISTRY_TESTS=OFF -DREGISTRY_CONTAINER_TESTS=OFF >/dev/null
scripts/configure.sh release   # as run.sh
scripts/configure.sh release   # as test.sh
check_release_tree "after an old run.sh's configure"

# A tree configured by another generator is configured afresh, not an error.
rm -rf build/release
cmake -S . -B build/release -G "Unix Makefiles" -DREGISTRY_TESTS=OFF >/dev/null
scripts/configure.sh release 2>/dev/null
check_release_tree "after a Makefiles configure"

# The sanitizer tree leaves out exactly the real-Podman suites.
scripts/configure.sh asan
listed=$(cd build/asan && ctest -N)
grep -q registry_integration_tests_NOT_BUILT <<<"$listed" || fail "build/asan lists no integration tests"
! grep -q registry_repl_tests_NOT_BUILT <<<"$listed" || fail "build/asan lists the real-Podman REPL suite"
echo "configure order: ok"
