#!/usr/bin/env bash
# Installs Debian's chromium, which the JavaScript client's browser tests
# drive headless through playwright-core (an npm devDependency that brings no
# browser of its own). Idempotent; needs root (or sudo).
set -euo pipefail
"$(dirname "$0")/apt-install.sh" chromium
