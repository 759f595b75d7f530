#!/usr/bin/env bash
# Installs what the container-engine tests need on Debian 12 (Podman with the
# runc runtime; busybox-static and python3 for the images), skipping what is
# already there. Idempotent; needs root (or sudo). scripts/test.sh runs it;
# building without them: -DREGISTRY_CONTAINER_TESTS=OFF.
set -euo pipefail
"$(dirname "$0")/apt-install.sh" podman runc busybox-static python3-minimal libpython3.11-stdlib
