#!/usr/bin/env bash
# Runs every benchmark scenario (or the ones named) and prints one table:
# scenario, registryd figure, baseline figure, ratio, target.
#
#   bench/run.sh                        # everything, ~5 minutes
#   bench/run.sh get_service register   # some scenarios
#
# Scenarios: get_service get_service_auth register etcd_store etcd_fanout fanout idle_connections restart repl deploy tls.
# Environment: BENCH_DURATION (s per round, default 4), BENCH_WARMUP (s, 1),
# BENCH_ROUNDS (3: registryd and its baselines alternate, the best round of
# each counts: load from elsewhere on the machine only ever lowers a figure),
# BENCH_CONNS (64), BENCH_DEPTH (requests in flight per connection, 16),
# BENCH_BUILD_DIR (build/bench), BENCH_TMPDIR (/var/tmp: must be a real disk,
# fsync is measured), BENCH_KEEP=1 (keep the work directory and its logs),
# BENCH_REPL_RUNS (executions of each kind in the repl scenario, 20),
# BENCH_DEPLOY_MB (the deploy scenario's package, 10), BENCH_DEPLOY_BIG_MB (its
# memory run, 200), BENCH_TLS_IDLE_CONNS (the tls scenario's idle connections,
# 5000).
#
# Everything runs on 127.0.0.1 with ephemeral ports and its own temporary data
# directories. Servers (registryd, echo_server, etcd) are pinned to CPU 0, the
# load generator to CPU 1. Only the processes this script started are stopped,
# by pid. This is not a test: it prints figures and exits 0 whatever they are.
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
BUILD=${BENCH_BUILD_DIR:-$ROOT/build/bench}
DURATION=${BENCH_DURATION:-4}
WARMUP=${BENCH_WARMUP:-1}
ROUNDS=${BENCH_ROUNDS:-3}
CONNS=${BENCH_CONNS:-64}
DEPTH=${BENCH_DEPTH:-16}
REPL_RUNS=${BENCH_REPL_RUNS:-20}
DEPLOY_MB=${BENCH_DEPLOY_MB:-10}
DEPLOY_BIG_MB=${BENCH_DEPLOY_BIG_MB:-200}
ALL_SCENARIOS=(get_service get_service_auth register etcd_store etcd_fanout fanout idle_connections restart repl deploy tls)
SCENARIOS=("$@")
((${#SCENARIOS[@]})) || SCENARIOS=("${ALL_SCENARIOS[@]}")
for s in "${SCENARIOS[@]}"; do
  [[ " ${ALL_SCENARIOS[*]} " == *" $s "* ]] || { echo "unknown scenario '$s' (${ALL_SCENARIOS[*]})" >&2; exit 2; }
done

"$ROOT/bench/setup.sh"
# 10000 idle connections need more than 10000 descriptors on each side
# (every process raises its soft limit to the hard one itself).
if [ "$(ulimit -Hn)" != unlimited ] && [ "$(ulimit -Hn)" -lt 10240 ]; then
  ulimit -Hn 16384 2>/dev/null || echo "bench: open-files hard limit $(ulimit -Hn) < 10240: idle_connections will fail" >&2
fi
echo "bench: building in $BUILD" >&2
cmake -S "$ROOT" -B "$BUILD" -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo -DREGISTRY_BENCH=ON -DREGISTRY_TESTS=OFF >/dev/null
cmake --build "$BUILD" -j2 --target registryd regbench echo_server send_floor registry-pack >/dev/null

REGISTRYD=$BUILD/registryd
ECHO=$BUILD/bench/echo_server
GEN=$BUILD/bench/regbench
SEND_FLOOR=$BUILD/bench/send_floor
ETCD=$(command -v etcd)

# Pinning: servers on CPU 0, the generator on CPU 1 (when there are two).
if [ "$(nproc)" -ge 2 ]; then
  SRV_CPU=0
  SRV=(taskset -c 0)
  GENR=(taskset -c 1 "$GEN")
else
  SRV_CPU=-1
  SRV=()
  GENR=("$GEN")
fi

WORK=$(mktemp -d "${BENCH_TMPDIR:-/var/tmp}/registry-bench.XXXXXX")
PIDS=()
cleanup() {
  local pid
  for pid in "${PIDS[@]}"; do
    kill -TERM "$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
  done
  if [ "${BENCH_KEEP:-0}" = 1 ]; then echo "bench: logs kept in $WORK" >&2; else rm -rf "$WORK"; fi
}
trap cleanup EXIT

log() { echo "bench: $*" >&2; }

# kv KEY LINE: the value of KEY=... in a line of regbench output.
kv() { sed -E -n "s/^(.* )?$1=([^ ]*).*/\2/p" <<<"$2"; }

# Stops a process this script started: SIGTERM, then wait for it.
stop() {
  local pid=$1 rest=() p
  kill -TERM "$pid" 2>/dev/null || true
  wait "$pid" 2>/dev/null || true
  for p in "${PIDS[@]}"; do [ "$p" = "$pid" ] || rest+=("$p"); done
  PIDS=("${rest[@]+"${rest[@]}"}")
}

# registryd's config for a named instance: its data dir and raised limits.
registryd_config() {  # name
  local name=$1
  mkdir -p "$WORK/$name"
  cat >"$WORK/$name.yaml" <<EOF
listen: "127.0.0.1:0"
data_dir: $WORK/$name/data
log:
  level: warn
limits:
  max_connections: 12000
  max_connections_per_source: 12000
# Every load generator connects from 127.0.0.1: no per-address quota.
quotas:
  registrations_per_address: 0
  registrations_per_connection: 0
  subscriptions_per_address: 0
# ... and no rate limit: they measure throughput.
rate_limits:
  enabled: false
EOF
  # AUTH_TOKENS_FILE set: tokens required (the get_service_auth scenario).
  if [ -n "${AUTH_TOKENS_FILE:-}" ]; then printf 'auth:\n  tokens_file: %s\n' "$AUTH_TOKENS_FILE" >>"$WORK/$name.yaml"; fi
  # ETCD_STORE_URL set: the registry lives in that etcd (the etcd_store scenario).
  if [ -n "${ETCD_STORE_URL:-}" ]; then
    printf 'store:\n  kind: etcd\n  etcd:\n    endpoints: ["%s"]\n    prefix: /registry/%s/\n' "$ETCD_STORE_URL" "${ETCD_PREFIX:-$name}" >>"$WORK/$name.yaml"
  fi
  echo "$WORK/$name.yaml"
}

# start_registryd NAME: sets REG_PID, REG_PORT_FILE.
start_registryd() {
  local name=$1 cfg
  cfg=$(registryd_config "$name")
  REG_PORT_FILE=$WORK/$name.port
  rm -f "$REG_PORT_FILE"
  "${SRV[@]}" "$REGISTRYD" --config "$cfg" --port-file "$REG_PORT_FILE" 2>>"$WORK/$name.log" &
  REG_PID=$!
  PIDS+=("$REG_PID")
  "$GEN" wait --port-file "$REG_PORT_FILE" --probe ws-list --timeout 20
}

# start_echo NAME REPLY_BYTES: sets ECHO_PID, ECHO_PORT_FILE.
start_echo() {
  ECHO_PORT_FILE=$WORK/$1.port
  "${SRV[@]}" "$ECHO" --port-file "$ECHO_PORT_FILE" --reply-bytes "$2" 2>>"$WORK/$1.log" &
  ECHO_PID=$!
  PIDS+=("$ECHO_PID")
  "$GEN" wait --port-file "$ECHO_PORT_FILE" --probe ws-list --timeout 20 2>/dev/null || true
}

# etcd_command NAME: the etcd command line (in ETCD_CMD) for a named member
# with its own data dir and ports (ETCD_PORT).
etcd_command() {
  local name=$1 peer
  if [ ! -f "$WORK/$name.ports" ]; then
    echo "$("$GEN" free-port) $("$GEN" free-port)" >"$WORK/$name.ports"
  fi
  read -r ETCD_PORT peer <"$WORK/$name.ports"
  ETCD_CMD=("$ETCD" --name bench --data-dir "$WORK/$name/data"
    --listen-client-urls "http://127.0.0.1:$ETCD_PORT" --advertise-client-urls "http://127.0.0.1:$ETCD_PORT"
    --listen-peer-urls "http://127.0.0.1:$peer" --initial-advertise-peer-urls "http://127.0.0.1:$peer"
    --initial-cluster "bench=http://127.0.0.1:$peer" --logger zap --log-level error)
}

# start_etcd NAME: sets ETCD_PID, ETCD_PORT.
start_etcd() {
  mkdir -p "$WORK/$1"
  etcd_command "$1"
  "${SRV[@]}" "${ETCD_CMD[@]}" 2>>"$WORK/$1.log" &
  ETCD_PID=$!
  PIDS+=("$ETCD_PID")
  "$GEN" wait --port "$ETCD_PORT" --probe http-health --timeout 30
}

# Runs the generator; its one line of figures goes to stdout and to the details.
gen() {
  local line
  line=$("${GENR[@]}" "$@" 2>>"$WORK/regbench.log") || { log "regbench $1 failed:"; tail -n 5 "$WORK/regbench.log" >&2; return 1; }
  echo "$line"
}

#------------------------------------------------------------------------------
# The table

ROWS=()
DETAILS=()
row() { ROWS+=("$1|$2|$3|$4|$5|$6"); }  # scenario|registryd|baseline|ratio|target|verdict
detail() { DETAILS+=("$*"); log "$*"; }
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { if (b + 0 == 0) print "-"; else printf "%.2fx", a / b }'; }
verdict() {  # value op limit -> "met" / "MISSED"
  awk -v v="$1" -v op="$2" -v l="$3" 'BEGIN {
    ok = (op == ">=") ? (v + 0 >= l + 0) : (v + 0 <= l + 0)
    print ok ? "met" : "MISSED" }'
}
fmt() { awk -v v="$1" -v d="${2:-0}" 'BEGIN { printf("%." d "f", v) }'; }
div() { awk -v a="$1" -v b="$2" -v d="${3:-2}" 'BEGIN { printf("%." d "f", a / b) }'; }  # a/b with d decimals

# best LINE...: the line with the highest rps.
best() {
  printf '%s\n' "$@" | awk '{ for (i = 1; i <= NF; i++) if ($i ~ /^rps=/) { v = substr($i, 5) + 0; if (v > m) { m = v; l = $0 } } }
    END { print l }'
}
# per_cpu LINE: requests per CPU-second of the server (rps / srv_cpu_pct * 100).
per_cpu() { awk -v r="$(kv rps "$1")" -v c="$(kv srv_cpu_pct "$1")" 'BEGIN { if (c > 0) printf "%.0f", r * 100 / c; else print "-" }'; }

rr_args() { echo --conns "$CONNS" --depth "$DEPTH" --duration "$DURATION" --warmup "$WARMUP"; }

#------------------------------------------------------------------------------
# Scenarios

scenario_get_service() {
  log "get_service: registryd, echo server and etcd range, $ROUNDS interleaved rounds"
  start_registryd get
  gen ws --port-file "$REG_PORT_FILE" --conns 8 --depth 16 --action register --prefix b --count 1000 >/dev/null
  start_etcd etcd_get
  gen http --port "$ETCD_PORT" --conns 8 --depth 16 --action put --prefix b --count 1000 >/dev/null
  local regs=() echos=() etcds=() i line size
  for ((i = 1; i <= ROUNDS; i++)); do
    line=$(gen ws --port-file "$REG_PORT_FILE" $(rr_args) --action get --prefix b --pool 1000 --server-pid "$REG_PID")
    detail "get_service registryd #$i: $line"; regs+=("$line")
    if ((i == 1)); then  # the echo server's replies are as large as registryd's responses
      size=$(kv resp_bytes "$line")
      start_echo echo "$size"
    fi
    line=$(gen ws --port-file "$ECHO_PORT_FILE" $(rr_args) --action get --prefix b --pool 1000 --server-pid "$ECHO_PID")
    detail "get_service echo ($size-byte replies) #$i: $line"; echos+=("$line")
    line=$(gen http --port "$ETCD_PORT" $(rr_args) --action range --prefix b --pool 1000 --server-pid "$ETCD_PID")
    detail "get_service etcd range #$i: $line"; etcds+=("$line")
  done
  stop "$REG_PID"
  stop "$ECHO_PID"
  stop "$ETCD_PID"

  local reg echo etcd r e t
  reg=$(best "${regs[@]}"); echo=$(best "${echos[@]}"); etcd=$(best "${etcds[@]}")
  r=$(kv rps "$reg"); e=$(kv rps "$echo"); t=$(kv rps "$etcd")
  row "get_service msgs/s, $CONNS conns x $DEPTH, vs echo" "$(fmt "$r")" "$(fmt "$e")" "$(ratio "$r" "$e")" ">= 0.8x" \
    "$(verdict "$(awk -v a="$r" -v b="$e" 'BEGIN{print a/b}')" ">=" 0.8)"
  row "get_service msgs/s vs etcd range" "$(fmt "$r")" "$(fmt "$t")" "$(ratio "$r" "$t")" ">= 5x" \
    "$(verdict "$(awk -v a="$r" -v b="$t" 'BEGIN{print a/b}')" ">=" 5)"
  row "get_service p50 / p99 latency (ms) vs echo" "$(div "$(kv p50_us "$reg")" 1000 1) / $(div "$(kv p99_us "$reg")" 1000 1)" \
    "$(div "$(kv p50_us "$echo")" 1000 1) / $(div "$(kv p99_us "$echo")" 1000 1)" \
    "$(ratio "$(kv p99_us "$reg")" "$(kv p99_us "$echo")")" "-" "-"
  row "get_service msgs per server CPU-second vs echo" "$(per_cpu "$reg")" "$(per_cpu "$echo")" \
    "$(ratio "$(per_cpu "$reg")" "$(per_cpu "$echo")")" "-" "-"
}

# The cost of access control: the same get_service load on a registryd with
# `auth` (every connection presents a bearer token at its upgrade, every
# request's family is checked against its role) and on one without.
scenario_get_service_auth() {
  log "get_service_auth: registryd with auth and without, $ROUNDS interleaved rounds"
  local token off_pid off_port on_pid on_port offs=() ons=() i line
  token=$("$REGISTRYD" token new --name bench --role admin --tokens-file "$WORK/tokens.yaml" 2>/dev/null)
  start_registryd get_noauth
  off_pid=$REG_PID; off_port=$REG_PORT_FILE
  AUTH_TOKENS_FILE=$WORK/tokens.yaml REGISTRY_TOKEN=$token start_registryd get_auth
  on_pid=$REG_PID; on_port=$REG_PORT_FILE
  gen ws --port-file "$off_port" --conns 8 --depth 16 --action register --prefix b --count 1000 >/dev/null
  REGISTRY_TOKEN=$token gen ws --port-file "$on_port" --conns 8 --depth 16 --action register --prefix b --count 1000 >/dev/null
  for ((i = 1; i <= ROUNDS; i++)); do
    line=$(gen ws --port-file "$off_port" $(rr_args) --action get --prefix b --pool 1000 --server-pid "$off_pid")
    detail "get_service auth off #$i: $line"; offs+=("$line")
    line=$(REGISTRY_TOKEN=$token gen ws --port-file "$on_port" $(rr_args) --action get --prefix b --pool 1000 --server-pid "$on_pid")
    detail "get_service auth on #$i: $line"; ons+=("$line")
  done
  stop "$off_pid"
  stop "$on_pid"
  local on off
  on=$(kv rps "$(best "${ons[@]}")"); off=$(kv rps "$(best "${offs[@]}")")
  row "get_service msgs/s, auth on vs off" "$(fmt "$on")" "$(fmt "$off")" "$(ratio "$on" "$off")" ">= 0.95x" \
    "$(verdict "$(awk -v a="$on" -v b="$off" 'BEGIN{print a/b}')" ">=" 0.95)"
}

scenario_register() {
  log "register: registryd (acknowledged after fdatasync) and etcd put with a lease, $ROUNDS interleaved rounds"
  local regs=() etcds=() i line
  for ((i = 1; i <= ROUNDS; i++)); do
    start_registryd "register$i"  # fresh each round: the same state for every round
    line=$(gen ws --port-file "$REG_PORT_FILE" $(rr_args) --action register --prefix w --server-pid "$REG_PID")
    stop "$REG_PID"
    detail "register registryd #$i: $line"; regs+=("$line")
    start_etcd "etcd_put$i"
    line=$(gen http --port "$ETCD_PORT" $(rr_args) --action put --prefix w --server-pid "$ETCD_PID")
    stop "$ETCD_PID"
    detail "register etcd put+lease #$i: $line"; etcds+=("$line")
  done
  local reg etcd r t
  reg=$(best "${regs[@]}"); etcd=$(best "${etcds[@]}")
  r=$(kv rps "$reg"); t=$(kv rps "$etcd")
  row "durable register/s vs etcd put with lease" "$(fmt "$r")" "$(fmt "$t")" "$(ratio "$r" "$t")" ">= 3x" \
    "$(verdict "$(awk -v a="$r" -v b="$t" 'BEGIN{print a/b}')" ">=" 3)"
  row "register p50 / p99 latency (ms) vs etcd put" "$(div "$(kv p50_us "$reg")" 1000 1) / $(div "$(kv p99_us "$reg")" 1000 1)" \
    "$(div "$(kv p50_us "$etcd")" 1000 1) / $(div "$(kv p99_us "$etcd")" 1000 1)" \
    "$(ratio "$(kv p99_us "$reg")" "$(kv p99_us "$etcd")")" "-" "-"
}

# registryd with store.kind: etcd against the etcd it stores in (issue 17):
# durable register (acknowledged once etcd committed its transaction) against
# etcd's own put with a lease, and get_service (served from registryd's
# memory) against etcd's range. registryd and etcd share the servers' CPU,
# as they would on one machine; the baselines have it to etcd alone.
scenario_etcd_store() {
  log "etcd_store: registryd on etcd against etcd put+lease and range, $ROUNDS interleaved rounds"
  local regs=() puts=() gets=() ranges=() i line
  for ((i = 1; i <= ROUNDS; i++)); do
    start_etcd "etcd_store$i"  # fresh each round: the same state for every round
    ETCD_STORE_URL="http://127.0.0.1:$ETCD_PORT" start_registryd "etcd_reg$i"
    line=$(gen ws --port-file "$REG_PORT_FILE" $(rr_args) --action register --prefix w --server-pid "$REG_PID")
    detail "register registryd on etcd #$i: $line"; regs+=("$line")
    gen ws --port-file "$REG_PORT_FILE" --conns 8 --depth 16 --action register --prefix b --count 1000 >/dev/null
    line=$(gen ws --port-file "$REG_PORT_FILE" $(rr_args) --action get --prefix b --pool 1000 --server-pid "$REG_PID")
    detail "get_service registryd on etcd #$i: $line"; gets+=("$line")
    stop "$REG_PID"
    line=$(gen http --port "$ETCD_PORT" $(rr_args) --action put --prefix w --server-pid "$ETCD_PID")
    detail "etcd put+lease #$i: $line"; puts+=("$line")
    gen http --port "$ETCD_PORT" --conns 8 --depth 16 --action put --prefix b --count 1000 >/dev/null
    line=$(gen http --port "$ETCD_PORT" $(rr_args) --action range --prefix b --pool 1000 --server-pid "$ETCD_PID")
    detail "etcd range #$i: $line"; ranges+=("$line")
    stop "$ETCD_PID"
  done
  local reg put get range r p g t
  reg=$(best "${regs[@]}"); put=$(best "${puts[@]}"); get=$(best "${gets[@]}"); range=$(best "${ranges[@]}")
  r=$(kv rps "$reg"); p=$(kv rps "$put"); g=$(kv rps "$get"); t=$(kv rps "$range")
  row "etcd store: durable register/s vs etcd put with lease" "$(fmt "$r")" "$(fmt "$p")" "$(ratio "$r" "$p")" ">= 0.8x" \
    "$(verdict "$(awk -v a="$r" -v b="$p" 'BEGIN{print a/b}')" ">=" 0.8)"
  row "etcd store: register p50 / p99 latency (ms) vs etcd put" \
    "$(div "$(kv p50_us "$reg")" 1000 1) / $(div "$(kv p99_us "$reg")" 1000 1)" \
    "$(div "$(kv p50_us "$put")" 1000 1) / $(div "$(kv p99_us "$put")" 1000 1)" \
    "$(ratio "$(kv p99_us "$reg")" "$(kv p99_us "$put")")" "-" "-"
  row "etcd store: get_service msgs/s vs etcd range" "$(fmt "$g")" "$(fmt "$t")" "$(ratio "$g" "$t")" ">= 20x" \
    "$(verdict "$(awk -v a="$g" -v b="$t" 'BEGIN{print a/b}')" ">=" 20)"
}

# Several registryd on one etcd: registrations on the writer A, subscribers on
# the standbys B and C, which get each change through etcd's watch.
scenario_etcd_fanout() {
  log "etcd_fanout: writer A, standbys B and C on one etcd, 200 subscribers on B and C, 100 registrations on A 20 ms apart; then registrations through A and relayed through B"
  start_etcd etcd_fanout
  local a b c pids=() f p99
  ETCD_STORE_URL="http://127.0.0.1:$ETCD_PORT" ETCD_PREFIX=fanout start_registryd etcd_fanout_a
  a=$REG_PORT_FILE; pids+=("$REG_PID")
  ETCD_STORE_URL="http://127.0.0.1:$ETCD_PORT" ETCD_PREFIX=fanout start_registryd etcd_fanout_b
  b=$REG_PORT_FILE; pids+=("$REG_PID")
  ETCD_STORE_URL="http://127.0.0.1:$ETCD_PORT" ETCD_PREFIX=fanout start_registryd etcd_fanout_c
  c=$REG_PORT_FILE; pids+=("$REG_PID")
  f=$(gen fanout --port-file "$a" --subscribe-port-files "$b,$c" --subscribers 200 --registrations 100 \
    --interval-ms 20 --prefix f)
  detail "etcd fanout A -> B, C: $f"
  # Writes through a standby are relayed to the writer over a connection per client.
  local via_a via_b
  via_a=$(gen ws --port-file "$a" $(rr_args) --action register --prefix wa)
  detail "register through the writer A: $via_a"
  via_b=$(gen ws --port-file "$b" $(rr_args) --action register --prefix wb)
  detail "register through the standby B (relayed): $via_b"
  for p in "${pids[@]}"; do stop "$p"; done
  stop "$ETCD_PID"
  p99=$(awk -v v="$(kv p99_us "$f")" 'BEGIN { print v / 1000 }')
  row "etcd fan-out: register on A -> event on B and C (200 subscribers), p50 / p99 (ms)" \
    "$(div "$(kv p50_us "$f")" 1000 2) / $(fmt "$p99" 2)" "-" "-" "-" "-"
  row "  register on A -> its response (durable in etcd), p50 / p99 (ms)" \
    "$(div "$(kv resp_p50_us "$f")" 1000 2) / $(div "$(kv resp_p99_us "$f")" 1000 2)" "-" "-" "-" "-"
  row "  changes delivered on B and C (of 100)" "$(kv complete "$f")" "-" "-" "-" "-"
  row "etcd relay: durable register/s through standby B vs through writer A" "$(fmt "$(kv rps "$via_b")")" \
    "$(fmt "$(kv rps "$via_a")")" "$(ratio "$(kv rps "$via_b")" "$(kv rps "$via_a")")" "-" "-"
  row "  register p50 / p99 (ms) through B vs through A" \
    "$(div "$(kv p50_us "$via_b")" 1000 1) / $(div "$(kv p99_us "$via_b")" 1000 1)" \
    "$(div "$(kv p50_us "$via_a")" 1000 1) / $(div "$(kv p99_us "$via_a")" 1000 1)" "-" "-" "-"
}

scenario_fanout() {
  log "fanout: 1000 subscribers, 100 registrations 20 ms apart"
  FSYNC=$("$GEN" fsync --dir "$WORK" --count 50)
  detail "fsync: $FSYNC"
  start_registryd fanout
  local f
  f=$(gen fanout --port-file "$REG_PORT_FILE" --subscribers 1000 --registrations 100 --interval-ms 20 \
    --prefix f --server-pid "$REG_PID")
  stop "$REG_PID"
  detail "fanout registryd: $f"
  local p99
  p99=$(awk -v v="$(kv p99_us "$f")" 'BEGIN { print v / 1000 }')
  row "fan-out to 1000 subscribers: register sent -> event received, p99 (ms)" "$(fmt "$p99" 2)" "-" "-" "<= 5 ms" \
    "$(verdict "$p99" "<=" 5)"
  row "  of which durability: register sent -> first subscriber, p99 (ms)" "$(div "$(kv first_p99_us "$f")" 1000 2)" \
    "-" "-" "-" "-"
  row "  of which fan-out: first subscriber -> each other one, p99 (ms)" "$(div "$(kv spread_p99_us "$f")" 1000 2)" \
    "-" "-" "-" "-"
  row "  fsync of this disk (fdatasync of 4 KiB), median (ms)" "$(div "$(kv median_us "$FSYNC")" 1000 2)" "-" "-" "-" "-"
  row "  registryd's CPU per event (1000 deliveries), ms" "$(kv srv_cpu_ms_per_event "$f")" "-" "-" "-" "-"
  # The kernel's own floor: one send per subscriber, nothing else, pinned as
  # the servers and the generator are.
  local floor
  floor=$("$SEND_FLOOR" --sockets 1000 --events 100 --interval-ms 20 --sender-cpu "$SRV_CPU" \
    --reader-cpu "$((SRV_CPU < 0 ? -1 : 1))")
  detail "send_floor: $floor"
  row "  kernel floor: one write() per subscriber, sender CPU per event (ms)" \
    "$(awk -v v="$(kv write_cpu_us_per_delivery "$floor")" 'BEGIN { printf "%.2f", v }')" "-" "-" "-" "-"
  if [ -n "$(kv uring_cpu_us_per_delivery "$floor")" ]; then
    row "  same, every send in one io_uring submit, sender CPU per event (ms)" \
      "$(awk -v v="$(kv uring_cpu_us_per_delivery "$floor")" 'BEGIN { printf "%.2f", v }')" "-" "-" "-" "-"
  fi
}

scenario_idle_connections() {
  log "idle_connections: 10000 WebSocket connections"
  start_registryd idle
  local reg echo
  reg=$(gen idle --port-file "$REG_PORT_FILE" --conns 10000 --server-pid "$REG_PID")
  stop "$REG_PID"
  detail "idle registryd: $reg"
  start_echo echo_idle 512
  echo=$(gen idle --port-file "$ECHO_PORT_FILE" --conns 10000 --server-pid "$ECHO_PID")
  stop "$ECHO_PID"
  detail "idle echo: $echo"
  local r e
  r=$(kv per_conn_bytes "$reg"); e=$(kv per_conn_bytes "$echo")
  row "10000 idle connections: RSS bytes/conn vs echo" "$(fmt "$r")" "$(fmt "$e")" "$(ratio "$r" "$e")" "<= 2048" \
    "$(verdict "$r" "<=" 2048)"
}

# start_registryd_tls NAME PKI_DIR: as start_registryd, with a `tls` section
# (PKI_DIR/server.pem, server.key); ready once the port file is written.
start_registryd_tls() {
  local name=$1 pki=$2 cfg i
  cfg=$(registryd_config "$name")
  printf 'tls:\n  cert_file: %s\n  key_file: %s\n' "$pki/server.pem" "$pki/server.key" >>"$cfg"
  REG_PORT_FILE=$WORK/$name.port
  rm -f "$REG_PORT_FILE"
  "${SRV[@]}" "$REGISTRYD" --config "$cfg" --port-file "$REG_PORT_FILE" 2>>"$WORK/$name.log" &
  REG_PID=$!
  PIDS+=("$REG_PID")
  for ((i = 0; i < 400; i++)); do
    [ -s "$REG_PORT_FILE" ] && return 0
    sleep 0.05
  done
  log "registryd with TLS did not start:"; tail -n 5 "$WORK/$name.log" >&2; return 1
}

# TLS (config `tls`): get_service over wss:// beside ws:// (two registryds in
# interleaved rounds, the same load), and the idle bytes of a TLS connection
# beside a plain one. A CA and a server certificate made with openssl.
scenario_tls() {
  local n=${BENCH_TLS_IDLE_CONNS:-5000} pki=$WORK/pki
  log "tls: get_service over wss beside ws, $ROUNDS interleaved rounds; $n idle connections each way"
  mkdir -p "$pki"
  local ec=(-newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes)
  openssl req -x509 "${ec[@]}" -days 2 -keyout "$pki/ca.key" -out "$pki/ca.pem" -subj "/CN=bench CA" 2>/dev/null
  openssl req "${ec[@]}" -keyout "$pki/server.key" -out "$pki/server.csr" -subj "/CN=localhost" 2>/dev/null
  printf 'subjectAltName=IP:127.0.0.1\n' >"$pki/server.ext"
  openssl x509 -req -days 2 -in "$pki/server.csr" -CA "$pki/ca.pem" -CAkey "$pki/ca.key" -CAcreateserial \
    -out "$pki/server.pem" -extfile "$pki/server.ext" 2>/dev/null
  local tls=(--tls-ca "$pki/ca.pem")

  start_registryd get_plain
  local plain_pid=$REG_PID plain_port=$REG_PORT_FILE
  gen ws --port-file "$plain_port" --conns 8 --depth 16 --action register --prefix b --count 1000 >/dev/null
  start_registryd_tls get_tls "$pki"
  local tls_pid=$REG_PID tls_port=$REG_PORT_FILE
  gen ws "${tls[@]}" --port-file "$tls_port" --conns 8 --depth 16 --action register --prefix b --count 1000 >/dev/null
  local plains=() tlss=() i line
  for ((i = 1; i <= ROUNDS; i++)); do
    line=$(gen ws --port-file "$plain_port" $(rr_args) --action get --prefix b --pool 1000 --server-pid "$plain_pid")
    detail "get_service ws #$i: $line"; plains+=("$line")
    line=$(gen ws "${tls[@]}" --port-file "$tls_port" $(rr_args) --action get --prefix b --pool 1000 --server-pid "$tls_pid")
    detail "get_service wss #$i: $line"; tlss+=("$line")
  done
  stop "$plain_pid"
  stop "$tls_pid"
  local p t rp rt
  p=$(best "${plains[@]}"); t=$(best "${tlss[@]}")
  rp=$(kv rps "$p"); rt=$(kv rps "$t")
  row "get_service msgs/s over wss vs ws, $CONNS conns x $DEPTH" "$(fmt "$rt")" "$(fmt "$rp")" "$(ratio "$rt" "$rp")" "-" "-"
  row "get_service p50 / p99 latency (ms), wss vs ws" \
    "$(div "$(kv p50_us "$t")" 1000 1) / $(div "$(kv p99_us "$t")" 1000 1)" \
    "$(div "$(kv p50_us "$p")" 1000 1) / $(div "$(kv p99_us "$p")" 1000 1)" "-" "-" "-"

  local ip it
  start_registryd idle_plain
  ip=$(gen idle --port-file "$REG_PORT_FILE" --conns "$n" --server-pid "$REG_PID")
  stop "$REG_PID"
  detail "idle ws: $ip"
  start_registryd_tls idle_tls "$pki"
  it=$(gen idle "${tls[@]}" --port-file "$REG_PORT_FILE" --conns "$n" --server-pid "$REG_PID")
  stop "$REG_PID"
  detail "idle wss: $it"
  ip=$(kv per_conn_bytes "$ip"); it=$(kv per_conn_bytes "$it")
  row "$n idle connections: RSS bytes/conn, wss vs ws" "$(fmt "$it")" "$(fmt "$ip")" "$(ratio "$it" "$ip")" "-" "-"
}

scenario_restart() {
  log "restart: 10000 persisted services"
  start_registryd restart
  gen ws --port-file "$REG_PORT_FILE" --conns 16 --depth 16 --action register --prefix p --count 10000 >/dev/null
  stop "$REG_PID"
  local cfg serve times=() cpus=() i
  cfg=$WORK/restart.yaml
  for i in 1 2 3; do
    serve=$(gen serve --port-file "$WORK/restart.port" --probe ws-get:p9999 --cpu "$SRV_CPU" \
      --child-log "$WORK/restart.log" -- "$REGISTRYD" --config "$cfg" --port-file "$WORK/restart.port")
    detail "restart registryd #$i: $serve"
    times+=("$(kv serve_ms "$serve")")
    cpus+=("$(kv serve_cpu_ms "$serve")")
  done
  local reg_ms reg_cpu reg_rss10k
  reg_ms=$(printf '%s\n' "${times[@]}" | sort -g | sed -n 2p)  # the median of 3
  reg_cpu=$(printf '%s\n' "${cpus[@]}" | sort -g | sed -n 2p)
  reg_rss10k=$(kv rss_idle_kib "$serve")

  log "restart: etcd with 10000 keys (put with a lease)"
  start_etcd etcd_restart
  gen http --port "$ETCD_PORT" --conns 16 --depth 16 --action put --prefix p --count 10000 >/dev/null
  stop "$ETCD_PID"
  local etcd_ms etcd_rss10k
  times=() cpus=()
  for i in 1 2 3; do
    etcd_command etcd_restart
    serve=$(gen serve --port "$ETCD_PORT" --probe "http-range:/registry/services/bench/p9999" --cpu "$SRV_CPU" \
      --child-log "$WORK/etcd_restart.log" -- "${ETCD_CMD[@]}")
    detail "restart etcd #$i: $serve"
    times+=("$(kv serve_ms "$serve")")
    cpus+=("$(kv serve_cpu_ms "$serve")")
  done
  local etcd_cpu
  etcd_ms=$(printf '%s\n' "${times[@]}" | sort -g | sed -n 2p)
  etcd_cpu=$(printf '%s\n' "${cpus[@]}" | sort -g | sed -n 2p)
  etcd_rss10k=$(kv rss_idle_kib "$serve")

  log "idle RSS: empty registryd and empty etcd"
  local reg_idle etcd_idle
  registryd_config idle_empty >/dev/null
  reg_idle=$(gen serve --port-file "$WORK/idle_empty.port" --probe ws-list --cpu "$SRV_CPU" \
    --child-log "$WORK/idle_empty.log" -- "$REGISTRYD" --config "$WORK/idle_empty.yaml" --port-file "$WORK/idle_empty.port")
  detail "idle registryd (empty): $reg_idle"
  mkdir -p "$WORK/etcd_empty"
  etcd_command etcd_empty
  etcd_idle=$(gen serve --port "$ETCD_PORT" --probe http-health --cpu "$SRV_CPU" \
    --child-log "$WORK/etcd_empty.log" -- "${ETCD_CMD[@]}")
  detail "idle etcd (empty): $etcd_idle"

  row "restart, 10000 services: time to serving (ms) vs etcd" "$(fmt "$reg_ms" 1)" "$(fmt "$etcd_ms" 1)" \
    "$(ratio "$reg_ms" "$etcd_ms")" "<= 100 ms" "$(verdict "$reg_ms" "<=" 100)"
  row "  same, CPU time until serving (ms)" "$(fmt "$reg_cpu" 0)" "$(fmt "$etcd_cpu" 0)" \
    "$(ratio "$reg_cpu" "$etcd_cpu")" "-" "-"
  row "idle daemon RSS with 10000 services/keys (MiB) vs etcd" "$(div "$reg_rss10k" 1024 1)" \
    "$(div "$etcd_rss10k" 1024 1)" "$(ratio "$reg_rss10k" "$etcd_rss10k")" "<= 10 MiB" \
    "$(verdict "$(awk -v v="$reg_rss10k" 'BEGIN{print v/1024}')" "<=" 10)"
  local ri ei
  ri=$(kv rss_idle_kib "$reg_idle"); ei=$(kv rss_idle_kib "$etcd_idle")
  row "  same, empty (MiB)" "$(div "$ri" 1024 1)" "$(div "$ei" 1024 1)" "$(ratio "$ri" "$ei")" "-" "-"
}

# The REPL: bench/repl_bench.sh (its own Podman service and registryd) on this
# build's registryd; python hello world through repl_execute vs podman run --rm.
scenario_repl() {
  log "repl: python hello world x $REPL_RUNS through registryd and through podman run --rm"
  "$ROOT/scripts/setup-containers.sh" >/dev/null
  local out line
  out=$("$ROOT/bench/repl_bench.sh" "$REPL_RUNS" "$BUILD" 2>>"$WORK/repl.log") || {
    log "repl_bench failed:"; tail -n 5 "$WORK/repl.log" >&2; return 1; }
  line=$(tail -n 1 <<<"$out")
  detail "repl: $line"
  local r p
  r=$(kv registryd_p50_ms "$line"); p=$(kv podman_p50_ms "$line")
  row "REPL python hello world p50 (ms) vs podman run --rm" "$(fmt "$r" 1)" "$(fmt "$p" 1)" "$(ratio "$r" "$p")" \
    "<= 0.3x" "$(verdict "$(awk -v a="$r" -v b="$p" 'BEGIN{print a/b}')" "<=" 0.3)"
  row "  same, p99 (ms)" "$(fmt "$(kv registryd_p99_ms "$line")" 1)" "$(fmt "$(kv podman_p99_ms "$line")" 1)" \
    "$(ratio "$(kv registryd_p99_ms "$line")" "$(kv podman_p99_ms "$line")")" "-" "-"
  r=$(kv cpp_registryd_p50_ms "$line"); p=$(kv cpp_podman_p50_ms "$line")
  row "REPL C++ hello world (compile + run) p50 (ms)" "$(fmt "$r" 1)" "$(fmt "$p" 1)" "$(ratio "$r" "$p")" "-" "-"
  r=$(kv cpp_cold_registryd_p50_ms "$line"); p=$(kv cpp_podman_p50_ms "$line")
  row "  same, no warm container (other limits)" "$(fmt "$r" 1)" "$(fmt "$p" 1)" "$(ratio "$r" "$p")" "-" "-"
  r=$(kv go_registryd_p50_ms "$line"); p=$(kv go_podman_p50_ms "$line")
  row "REPL Go hello world (go build + run) p50 (ms)" "$(fmt "$r" 1)" "$(fmt "$p" 1)" "$(ratio "$r" "$p")" "-" "-"
}

# Remote deployment: a package (a copy of packages/static-site with
# DEPLOY_MB of random bytes) deployed over SSH to a loopback sshd of this
# script's, by registryd (deploy_package, timed to its response: unpack,
# upload, scripts, health gate, registration) and by hand (scp the tarball,
# ssh: unpack + start.sh, then ssh health.sh every 100 ms until it passes),
# alternating, BENCH_ROUNDS rounds each, the best counts. Then registryd's
# peak RSS during a DEPLOY_BIG_MB deploy (a fresh registryd: its VmHWM).
deploy_sshd() {
  local d=$WORK/sshd
  mkdir -p "$d" /run/sshd
  ssh-keygen -q -t ed25519 -N '' -f "$d/host_key"
  ssh-keygen -q -t ed25519 -N '' -f "$d/client_key"
  cp "$d/client_key.pub" "$d/authorized_keys"
  SSHD_PORT=$("$GEN" free-port)
  echo "[127.0.0.1]:$SSHD_PORT $(cut -d' ' -f1,2 "$d/host_key.pub")" >"$d/known_hosts"
  printf '%s\n' "Port $SSHD_PORT" "ListenAddress 127.0.0.1" "HostKey $d/host_key" "PidFile $d/sshd.pid" \
    "AuthorizedKeysFile $d/authorized_keys" "StrictModes no" "UsePAM no" "PasswordAuthentication no" \
    "KbdInteractiveAuthentication no" "PubkeyAuthentication yes" "PermitRootLogin prohibit-password" \
    "Subsystem sftp internal-sftp" >"$d/sshd_config"
  "${SRV[@]}" /usr/sbin/sshd -D -e -f "$d/sshd_config" 2>>"$WORK/sshd.log" &
  PIDS+=("$!")
  local i
  for i in $(seq 100); do (exec 3<>"/dev/tcp/127.0.0.1/$SSHD_PORT") 2>/dev/null && break; sleep 0.05; done
  SSH_OPTS=(-i "$d/client_key" -o UserKnownHostsFile="$d/known_hosts" -o StrictHostKeyChecking=yes -o BatchMode=yes
    -o LogLevel=ERROR)
}

# deploy_package_src VERSION PORT MB: packs it, prints the archive's path.
deploy_package_src() {
  local version=$1 port=$2 mb=$3 src=$WORK/pkg-src-$1
  rm -rf "$src"
  cp -r "$ROOT/packages/static-site" "$src"
  sed -i -e "s/^version: .*/version: $version/" -e "s/port: 8181/port: $port/" "$src/manifest.yaml"
  head -c "$((mb << 20))" /dev/urandom >"$src/www/padding.bin"
  mkdir -p "$WORK/packages"
  "$BUILD/registry-pack" "$src" "$WORK/packages" | tail -n 1
}

# deploy_registryd NAME: a registryd with the remote host "box" (the sshd).
deploy_registryd() {
  local name=$1 cfg
  cfg=$(registryd_config "$name")
  sed -i 's/level: warn/level: info/' "$cfg"
  printf '%s\n' "deploy:" "  prefix: $WORK/$name/local-opt" "  package_dirs: [$WORK/packages]" "  remote_hosts:" \
    "    - name: box" "      host: 127.0.0.1" "      port: $SSHD_PORT" "      user: $(id -un)" \
    "      identity_file: $WORK/sshd/client_key" "      known_hosts: $WORK/sshd/known_hosts" \
    "      prefix: $WORK/$name/remote-opt" >>"$cfg"
  REG_PORT_FILE=$WORK/$name.port
  rm -f "$REG_PORT_FILE"
  "${SRV[@]}" "$REGISTRYD" --config "$cfg" --port-file "$REG_PORT_FILE" 2>>"$WORK/$name.log" &
  REG_PID=$!
  PIDS+=("$REG_PID")
  "$GEN" wait --port-file "$REG_PORT_FILE" --probe ws-list --timeout 20
}

now_ms() { date +%s%3N; }

scenario_deploy() {
  log "deploy: a ${DEPLOY_MB} MB package over SSH (loopback sshd): registryd vs scp + ssh start.sh + health poll"
  deploy_sshd
  local port pkg line ms reg=() hand=() round t0 dir env
  port=$("$GEN" free-port)
  pkg=$(deploy_package_src 1.0.0 "$port" "$DEPLOY_MB")
  deploy_registryd deploy
  for round in $(seq "$ROUNDS"); do
    line=$(timeout 300 "$GEN" request --port-file "$REG_PORT_FILE" --action deploy_package \
      --params "{\"path\":\"$pkg\",\"target\":\"box\"}") || { log "deploy through registryd failed: $line"; return 1; }
    detail "deploy registryd #$round: $line"
    reg+=("$(kv ms "$line")")
    "$GEN" request --port-file "$REG_PORT_FILE" --action undeploy \
      --params '{"instance_id":"static-site.box"}' >/dev/null

    dir=$WORK/by-hand/static-site-1.0.0
    env="PATH=/usr/bin:/bin PACKAGE_NAME=static-site PACKAGE_VERSION=1.0.0 PACKAGE_DIR=$dir PORT_HTTP=$port"
    t0=$(now_ms)
    scp -q "${SSH_OPTS[@]}" -P "$SSHD_PORT" "$pkg" "127.0.0.1:$WORK/by-hand.tar.gz"
    ssh "${SSH_OPTS[@]}" -p "$SSHD_PORT" 127.0.0.1 \
      "mkdir -p $dir && tar xzf $WORK/by-hand.tar.gz -C $dir && cd $dir && env -i $env /bin/sh scripts/start.sh" >/dev/null
    until ssh "${SSH_OPTS[@]}" -p "$SSHD_PORT" 127.0.0.1 "cd $dir && env -i $env /bin/sh scripts/health.sh" >/dev/null; do
      sleep 0.1
    done
    ms=$(($(now_ms) - t0))
    detail "deploy by hand #$round: ms=$ms"
    hand+=("$ms")
    ssh "${SSH_OPTS[@]}" -p "$SSHD_PORT" 127.0.0.1 \
      "cd $dir && env -i $env /bin/sh scripts/stop.sh; rm -rf $WORK/by-hand $WORK/by-hand.tar.gz" >/dev/null
  done
  stop "$REG_PID"
  local r h
  r=$(printf '%s\n' "${reg[@]}" | sort -g | head -n 1)
  h=$(printf '%s\n' "${hand[@]}" | sort -g | head -n 1)
  row "deploy ${DEPLOY_MB} MB over SSH until healthy (ms) vs scp + ssh by hand" "$(fmt "$r" 0)" "$(fmt "$h" 0)" \
    "$(ratio "$r" "$h")" "<= 0.8x" "$(verdict "$(awk -v a="$r" -v b="$h" 'BEGIN{print a/b}')" "<=" 0.8)"

  log "deploy: registryd's peak RSS during a ${DEPLOY_BIG_MB} MB remote deploy"
  pkg=$(deploy_package_src 2.0.0 "$port" "$DEPLOY_BIG_MB")
  deploy_registryd deploy_big
  line=$(timeout 900 "$GEN" request --port-file "$REG_PORT_FILE" --action deploy_package \
    --params "{\"path\":\"$pkg\",\"target\":\"box\"}") || { log "big deploy failed: $line"; return 1; }
  local hwm
  hwm=$(awk '/^VmHWM:/ { print $2 }' "/proc/$REG_PID/status")
  detail "deploy ${DEPLOY_BIG_MB} MB registryd: $line peak_rss_kib=$hwm"
  "$GEN" request --port-file "$REG_PORT_FILE" --action undeploy --params '{"instance_id":"static-site.box"}' >/dev/null
  stop "$REG_PID"
  row "  registryd peak RSS during a ${DEPLOY_BIG_MB} MB remote deploy (MiB)" "$(div "$hwm" 1024 1)" "-" "-" "< 64 MiB" \
    "$(awk -v v="$hwm" 'BEGIN { print (v / 1024 < 64) ? "met" : "MISSED" }')"
  row "  same, its deploy time (ms)" "$(fmt "$(kv ms "$line")" 0)" "-" "-" "-" "-"
}

#------------------------------------------------------------------------------

START=$(date +%s)
for s in "${SCENARIOS[@]}"; do "scenario_$s"; done

MACHINE="$(nproc) x $(sed -n 's/^model name\s*: //p' /proc/cpuinfo | head -n 1), $(awk '/MemTotal/ { printf "%.0f GiB", $2 / 1048576 }' /proc/meminfo), $(uname -sr), $(df -T "$WORK" | awk 'NR == 2 { print $2 }') data dirs"
OUT=${BENCH_OUT:-$BUILD/bench-results.md}
{
  echo "registryd $(git -C "$ROOT" rev-parse --short HEAD 2>/dev/null || echo '?')$(git -C "$ROOT" diff --quiet 2>/dev/null || echo '+changes'), $(date -u +%Y-%m-%dT%H:%MZ), $(($(date +%s) - START)) s"
  echo "machine: $MACHINE; servers pinned to CPU 0, generator to CPU 1"
  echo "etcd $("$ETCD" --version | sed -n 's/^etcd Version: //p'); $CONNS connections x $DEPTH in flight; best of $ROUNDS interleaved rounds of ${DURATION} s (after ${WARMUP} s warm-up)"
  echo
  echo "| scenario | registryd | baseline | ratio | target | |"
  echo "|---|---:|---:|---:|---|---|"
  for r in "${ROWS[@]}"; do
    IFS='|' read -r a b c d e f <<<"$r"
    echo "| $a | $b | $c | $d | $e | $f |"
  done
  echo
  echo "Details (regbench output; gen_cpu_pct / srv_cpu_pct / other_cpu_pct: CPU of the generator, of the server and"
  echo "of everything else on the machine during the measurement, in % of one core):"
  echo
  for d in "${DETAILS[@]}"; do echo "    $d"; done
} | tee "$OUT"
log "table written to $OUT"
