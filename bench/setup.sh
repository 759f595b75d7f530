#!/usr/bin/env bash
# Installs what the benchmarks need on Debian 12, skipping what is already
# there: the build dependencies (scripts/setup.sh), etcd (the baseline),
# util-linux's taskset (pinning) and liburing (send_floor's io_uring figure).
# With --profile also linux-perf, valgrind and heaptrack (bench/profile.sh).
# Idempotent; needs root (or sudo).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh

packages=(etcd-server util-linux liburing-dev)
if [ "${1:-}" = "--profile" ]; then packages+=(linux-perf valgrind heaptrack); fi
scripts/apt-install.sh "${packages[@]}"
# The Debian package may enable an etcd service on port 2379; the benchmark
# starts its own etcd on ephemeral ports and never uses that one.
