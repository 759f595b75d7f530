#!/usr/bin/env bash
# test_conan.sh: `conan create conan -pr:a conan/profiles/debian12` builds the
# library with the recipe's default parts against Debian's packages (no
# remote) and runs its test_package (the embedding example on registry::core).
# Uses a `conan` on PATH, else the Conan 2 client run from source beside the
# project (../shared/tools/conan/conan, for machines with no Python package
# index); with neither it is skipped (exit 77), saying so.
# Works on a scratch copy of the sources with its own CONAN_HOME, so neither
# the tree nor the user's Conan cache is touched.
set -euo pipefail
src=$(realpath "$(dirname "$0")/../..")
if command -v conan >/dev/null; then
  conan=conan
elif [ -x "$src/../shared/tools/conan/conan" ]; then
  conan=$src/../shared/tools/conan/conan
else
  echo "SKIP: no conan on PATH and no $src/../shared/tools/conan/conan"
  exit 77
fi
scratch=$(mktemp -d)
trap 'rm -rf "$scratch"' EXIT
mkdir -p "$scratch/src"
(cd "$src" && cp -r CMakeLists.txt LICENSE cmake include lib examples conan "$scratch/src/")
export CONAN_HOME=$scratch/home
cd "$scratch/src"
"$conan" create conan -pr:a conan/profiles/debian12 >"$scratch/create.log" 2>&1 || {
  tail -60 "$scratch/create.log"
  echo "FAIL: conan create"
  exit 1
}
grep -q '^events: registry_loaded service_registered lease_expired service_deregistered' "$scratch/create.log" || {
  tail -40 "$scratch/create.log"
  echo "FAIL: conan create did not run the test package's example"
  exit 1
}
echo "conan create: built the recipe and ran its test package ($("$conan" --version))"
