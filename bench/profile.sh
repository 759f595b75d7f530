#!/usr/bin/env bash
# Profiles registryd under one benchmark load and prints where its time goes.
#
#   bench/profile.sh get_service            # perf, call graphs (DWARF), 5 s of load
#   bench/profile.sh register
#   bench/profile.sh fanout
#   bench/profile.sh --callgrind get_service  # instruction counts (stable run to run) of a bounded load, per request
#   bench/profile.sh idle                   # heaptrack: who holds the memory of 2000 idle connections
#
# perf is used when `perf stat -e instructions true` works, valgrind's
# callgrind otherwise (or with --callgrind). Output and the raw profile stay
# in the work directory printed at the end. Loopback only; stops only what it
# started.
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
BUILD=${BENCH_BUILD_DIR:-$ROOT/build/bench}
TOOL=perf
if [ "${1:-}" = "--callgrind" ]; then TOOL=callgrind; shift; fi
SCENARIO=${1:-get_service}
case "$SCENARIO" in get_service | register | fanout) ;; idle) TOOL=heaptrack ;; *) echo "usage: $0 [--callgrind] get_service|register|fanout|idle" >&2; exit 2 ;; esac

"$ROOT/bench/setup.sh" --profile
cmake -S "$ROOT" -B "$BUILD" -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo -DREGISTRY_BENCH=ON -DREGISTRY_TESTS=OFF >/dev/null
cmake --build "$BUILD" -j2 --target registryd regbench echo_server >/dev/null
if [ "$TOOL" = perf ] && ! perf stat -e instructions true >/dev/null 2>&1; then
  echo "profile: perf cannot count instructions here; using callgrind" >&2
  TOOL=callgrind
fi

GEN=$BUILD/bench/regbench
WORK=$(mktemp -d "${BENCH_TMPDIR:-/var/tmp}/registry-profile.XXXXXX")
PID=
cleanup() { if [ -n "$PID" ]; then kill -TERM "$PID" 2>/dev/null || true; wait "$PID" 2>/dev/null || true; fi; }
trap cleanup EXIT

cat >"$WORK/registryd.yaml" <<EOF
listen: "127.0.0.1:0"
data_dir: $WORK/data
log:
  level: warn
limits:
  max_connections: 12000
  max_connections_per_source: 12000
EOF
PORT_FILE=$WORK/port
if [ "$TOOL" = heaptrack ]; then
  heaptrack -o "$WORK/heaptrack" "$BUILD/registryd" --config "$WORK/registryd.yaml" --port-file "$PORT_FILE" \
    >"$WORK/heaptrack.log" 2>&1 &
  WRAPPER=$!
  "$GEN" wait --port-file "$PORT_FILE" --probe ws-list --timeout 60
  PID=$(pgrep -P "$WRAPPER" -x registryd)
  taskset -c 1 "$GEN" idle --port-file "$PORT_FILE" --conns 2000 --server-pid "$PID" | tee "$WORK/load.txt"
  kill -TERM "$PID"
  wait "$WRAPPER" || true
  PID=
  heaptrack_print -f "$WORK"/heaptrack.*zst --print-peaks 1 --print-allocators 0 --print-temporary 0 --print-leaks 0 \
    --peak-limit 12 --sub-peak-limit 1 2>/dev/null | sed -n '/PEAK MEMORY/,$p' |
    grep -E 'peak memory consumed|at /work|^[a-z_:]|^ +[a-z_]+$' | cut -c1-180 | head -80 | tee "$WORK/report.txt"
  echo "profile: raw data and report in $WORK" >&2
  exit 0
fi
if [ "$TOOL" = callgrind ]; then
  taskset -c 0 valgrind --tool=callgrind --callgrind-out-file="$WORK/callgrind.out" \
    "$BUILD/registryd" --config "$WORK/registryd.yaml" --port-file "$PORT_FILE" 2>"$WORK/registryd.log" &
else
  taskset -c 0 "$BUILD/registryd" --config "$WORK/registryd.yaml" --port-file "$PORT_FILE" 2>"$WORK/registryd.log" &
fi
PID=$!
"$GEN" wait --port-file "$PORT_FILE" --probe ws-list --timeout 60

load() {  # the load of the scenario; bounded by count under callgrind
  case "$SCENARIO" in
    get_service)
      if [ "$TOOL" = callgrind ]; then
        taskset -c 1 "$GEN" ws --port-file "$PORT_FILE" --conns 16 --depth 16 --action get --prefix b --pool 1000 --count 50000
      else
        taskset -c 1 "$GEN" ws --port-file "$PORT_FILE" --conns 64 --depth 16 --action get --prefix b --pool 1000 \
          --duration 5 --warmup 0.5 --server-pid "$PID"
      fi ;;
    register)
      if [ "$TOOL" = callgrind ]; then
        taskset -c 1 "$GEN" ws --port-file "$PORT_FILE" --conns 16 --depth 16 --action register --prefix w --count 50000
      else
        taskset -c 1 "$GEN" ws --port-file "$PORT_FILE" --conns 64 --depth 16 --action register --prefix w \
          --duration 5 --warmup 0.5 --server-pid "$PID"
      fi ;;
    fanout)
      taskset -c 1 "$GEN" fanout --port-file "$PORT_FILE" --subscribers 1000 --registrations 100 --interval-ms 20 \
        --prefix f --server-pid "$PID" ;;
  esac
}

if [ "$SCENARIO" = get_service ]; then
  "$GEN" ws --port-file "$PORT_FILE" --conns 8 --depth 16 --action register --prefix b --count 1000 >/dev/null
fi

if [ "$TOOL" = perf ]; then
  perf record -F 2000 -g --call-graph dwarf,8192 -p "$PID" -o "$WORK/perf.data" -- sleep 5 2>"$WORK/perf.log" &
  PERF=$!
  load | tee "$WORK/load.txt"
  wait "$PERF" || true
  cleanup; PID=
  {
    echo "== $SCENARIO: CPU by thread and object"
    perf report -i "$WORK/perf.data" --no-children --sort comm,dso --stdio -g none 2>/dev/null | grep '%' | head -12
    echo
    echo "== self time, top symbols"
    perf report -i "$WORK/perf.data" --no-children --sort sym --stdio -g none 2>/dev/null | grep '%' | cut -c1-180 | head -40
    echo
    echo "== inclusive time (children), registryd and library frames"
    perf report -i "$WORK/perf.data" --children --sort sym --stdio -g none 2>/dev/null | grep '%' |
      grep -E 'registry|ws_session|sendmsg|recvmsg|epoll_wait|file_store|malloc|free' | grep -v inlined | cut -c1-180 | head -50
  } | tee "$WORK/report.txt"
else
  # Count the load only: not the start-up, nor the registrations that set it up.
  callgrind_control -z "$PID" >/dev/null 2>&1
  load | tee "$WORK/load.txt"
  cleanup; PID=
  requests=$(sed -n 's/.*requests=\([0-9]*\).*/\1/p' "$WORK/load.txt" | head -1)
  total=$(callgrind_annotate "$WORK/callgrind.out" 2>/dev/null | sed -n 's/^ *\([0-9,]*\) .*PROGRAM TOTALS.*/\1/p' | tr -d ,)
  if [ -n "$requests" ] && [ -n "$total" ] && [ "$requests" -gt 0 ]; then
    echo "instructions per request: $((total / requests)) ($total over $requests requests)" | tee "$WORK/per-request.txt"
  fi
  callgrind_annotate --inclusive=no --threshold=100 "$WORK/callgrind.out" 2>/dev/null | head -60 | cut -c1-200 | tee "$WORK/report.txt"
  echo
  callgrind_annotate --inclusive=yes --threshold=100 "$WORK/callgrind.out" 2>/dev/null | sed -n '1,80p' | cut -c1-200 | tee -a "$WORK/report.txt"
fi
echo "profile: raw data and report in $WORK" >&2
