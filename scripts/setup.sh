#!/usr/bin/env bash
# Installs what building and testing registry needs on Debian 12, skipping
# what is already there. Idempotent; needs root (or sudo).
set -euo pipefail
packages=(
  build-essential cmake ninja-build pkg-config
  libboost1.81-dev libsimdjson-dev libyaml-cpp-dev doctest-dev libarchive-dev
  libssh2-1-dev libssl-dev openssh-server openssh-client python3
  clang libclang-rt-14-dev # tests/fuzz: libFuzzer, ASan, UBSan
  etcd-server              # store.kind: etcd, tested against a real etcd the tests start
  zsh                      # registryctl completion zsh is checked in zsh
  # the Conan 2 client run from source (tests/package/test_conan.sh)
  python3-requests python3-urllib3 python3-colorama python3-yaml python3-fasteners python3-distro
  python3-jinja2 python3-dateutil
)
"$(dirname "$0")/apt-install.sh" "${packages[@]}"
