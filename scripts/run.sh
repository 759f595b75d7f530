#!/usr/bin/env bash
# Sets up, builds and runs registryd on its embedded default
# (ws://127.0.0.1:8080, data in ./registry-data). Extra arguments go to registryd.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
cmake -S . -B build/release -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo -DREGISTRY_TESTS=OFF >/dev/null
cmake --build build/release --target registryd
exec build/release/registryd "$@"
