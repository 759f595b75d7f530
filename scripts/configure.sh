#!/usr/bin/env bash
# configure.sh TREE: configures build/TREE (release or asan) with every option
# the scripts rely on stated, so the result does not depend on what an earlier
# configure left in the tree's cache (scripts/run.sh and scripts/test.sh share
# build/release this way: run.sh builds only registryd in it, and test.sh's
# build after it compiles only what run.sh did not).
# A tree that cannot be reconfigured (another generator, a cache from a moved
# checkout) is configured afresh.
set -euo pipefail
cd "$(dirname "$0")/.."

case "${1:-}" in
  release) options=(-DCMAKE_BUILD_TYPE=RelWithDebInfo -DREGISTRY_SANITIZE=OFF -DREGISTRY_CONTAINER_TESTS=ON) ;;
  # The sanitizer tree leaves out the real-Podman suites (scripts/test.sh says why).
  asan) options=(-DCMAKE_BUILD_TYPE=RelWithDebInfo -DREGISTRY_SANITIZE=ON -DREGISTRY_CONTAINER_TESTS=OFF) ;;
  *) echo "usage: scripts/configure.sh release|asan" >&2; exit 2 ;;
esac
dir=build/$1
options+=(-DREGISTRY_TESTS=ON -DREGISTRY_BENCH=OFF -DREGISTRY_WERROR=ON -DREGISTRY_DAEMON=ON -DREGISTRY_CLIENT=ON -DREGISTRY_INSTALL=ON)
# Every part of the library (registryd needs them all).
options+=(-DREGISTRY_PART_CONTAINERS=ON -DREGISTRY_PART_DEPLOY=ON -DREGISTRY_PART_REPL=ON -DREGISTRY_PART_FILE_STORE=ON)

log=$(mktemp)
trap 'rm -f "$log"' EXIT
if ! cmake -S . -B "$dir" -G Ninja "${options[@]}" >"$log" 2>&1; then
  echo "configure.sh: $dir could not be reconfigured; configuring it afresh" >&2
  rm -rf "$dir/CMakeCache.txt" "$dir/CMakeFiles"
  cmake -S . -B "$dir" -G Ninja "${options[@]}" >"$log" 2>&1 || { cat "$log" >&2; exit 1; }
fi
