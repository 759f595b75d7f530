#!/usr/bin/env bash
# Installs what building and testing registry needs on Debian 12, skipping
# what is already there. Idempotent; needs root (or sudo).
set -euo pipefail
"$(dirname "$0")/apt-install.sh" \
  build-essential cmake ninja-build pkg-config \
  libboost1.81-dev libsimdjson-dev libyaml-cpp-dev doctest-dev libarchive-dev \
  libssh2-1-dev libssl-dev openssh-server openssh-client python3 \
  clang libclang-rt-14-dev  # tests/fuzz: libFuzzer, ASan, UBSan
