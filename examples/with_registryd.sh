#!/usr/bin/env bash
# with_registryd.sh REGISTRYD PROGRAM [ARGS...]: runs PROGRAM ARGS... ws://ADDR/
# against a registryd of its own (loopback, a fresh data directory, stopped
# and removed afterwards); exits with PROGRAM's status. For the client
# examples and the package test of registry::client.
set -euo pipefail
registryd=$1
shift
scratch=$(mktemp -d)
pid=""
cleanup() {
  [ -z "$pid" ] || { kill "$pid" 2>/dev/null || true; wait "$pid" 2>/dev/null || true; }
  rm -rf "$scratch"
}
trap cleanup EXIT
"$registryd" --listen 127.0.0.1:0 --data-dir "$scratch/data" --port-file "$scratch/port" 2>"$scratch/log" &
pid=$!
for _ in $(seq 300); do [ -s "$scratch/port" ] && break; sleep 0.1; done
[ -s "$scratch/port" ] || { cat "$scratch/log" >&2; echo "FAIL: registryd did not start" >&2; exit 1; }
"$@" "ws://$(cat "$scratch/port")/"
