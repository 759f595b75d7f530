#!/usr/bin/env bash
# Sets up, builds and runs registryd on its embedded default
# (ws://127.0.0.1:8080, data in ./registry-data). Extra arguments go to registryd.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
# The same tree and options as scripts/test.sh, so running one after the other
# builds incrementally; only registryd is built here.
scripts/configure.sh release
cmake --build build/release --target registryd
exec build/release/registryd "$@"
