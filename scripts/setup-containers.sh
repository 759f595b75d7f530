#!/usr/bin/env bash
# Installs what the container-engine tests need on Debian 12 (Podman with the
# runc runtime; busybox-static, python3, node, gcc-12/g++-12, clang 14 and go
# 1.19 for the REPL languages' images), skipping what is already there. Idempotent; needs root
# (or sudo). scripts/test.sh runs it; building without them:
# -DREGISTRY_CONTAINER_TESTS=OFF.
set -euo pipefail
here=$(dirname "$0")
"$here/apt-install.sh" podman runc busybox-static python3-minimal libpython3.11-stdlib \
  gcc-12 g++-12 binutils libc6-dev libstdc++-12-dev \
  clang-14 libclang-cpp14 libllvm14 libclang-common-14-dev golang-go
"$here/setup-node.sh"  # the node language's image copies the host's node
