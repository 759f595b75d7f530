#!/usr/bin/env bash
# etcd's gRPC API against its JSON gateway through registryd's HTTP client
# (docs/etcd-client.md): builds bench/etcd_client with
# -DREGISTRY_ETCD_GRPC_BENCH=ON (installing Debian's grpc++/protobuf dev
# packages when missing: scripts/apt-install.sh), starts one etcd on loopback ports of its
# own in a temp dir, runs the workloads and stops that etcd by pid.
#   bench/etcd_client_bench.sh [OPS]        (default 2000 per sequential workload)
set -euo pipefail
cd "$(dirname "$0")/.."
ops="${1:-2000}"
build="${BUILD_DIR:-build/etcd-grpc-bench}"

scripts/apt-install.sh etcd-server libgrpc++-dev protobuf-compiler-grpc libprotobuf-dev protobuf-compiler

cmake -S . -B "$build" -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo -DREGISTRY_TESTS=OFF \
  -DREGISTRY_ETCD_GRPC_BENCH=ON >/dev/null
cmake --build "$build" --target etcd_client_bench >/dev/null

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
dir="$(mktemp -d /tmp/etcd-client-bench.XXXXXX)"
client_port="$(free_port)"
peer_port="$(free_port)"
etcd --name b --data-dir "$dir/data" \
  --listen-client-urls "http://127.0.0.1:$client_port" --advertise-client-urls "http://127.0.0.1:$client_port" \
  --listen-peer-urls "http://127.0.0.1:$peer_port" --initial-advertise-peer-urls "http://127.0.0.1:$peer_port" \
  --initial-cluster "b=http://127.0.0.1:$peer_port" >"$dir/etcd.log" 2>&1 &
etcd_pid=$!
cleanup() { kill "$etcd_pid" 2>/dev/null || true; wait "$etcd_pid" 2>/dev/null || true; rm -rf "$dir"; }
trap cleanup EXIT
for _ in $(seq 100); do
  curl -sf "http://127.0.0.1:$client_port/health" | grep -q true && break
  sleep 0.1
done

echo "etcd $(etcd --version | head -1 | awk '{print $3}') at 127.0.0.1:$client_port; $(nproc) cores; load $(cut -d' ' -f1-3 /proc/loadavg)"
"$build/bench/etcd_client/etcd_client_bench" --endpoint "127.0.0.1:$client_port" --ops "$ops" --etcd-pid "$etcd_pid"
