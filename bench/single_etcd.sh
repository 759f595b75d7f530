# Sourced by the bench scripts that need one etcd member of their own
# (member_engine_bench.sh, member_target_bench.sh).
#
# start_single_etcd DIR: starts etcd on two free loopback ports with its data
# and log in DIR, waits until it answers /health; sets ETCD_PID and
# ETCD_CLIENT_PORT. The caller stops it (by pid).
start_single_etcd() {
  local dir=$1 peer
  ETCD_CLIENT_PORT=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
  peer=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
  etcd --name bench --data-dir "$dir/etcd" --listen-client-urls "http://127.0.0.1:$ETCD_CLIENT_PORT" \
    --advertise-client-urls "http://127.0.0.1:$ETCD_CLIENT_PORT" --listen-peer-urls "http://127.0.0.1:$peer" \
    --initial-advertise-peer-urls "http://127.0.0.1:$peer" --initial-cluster "bench=http://127.0.0.1:$peer" \
    >"$dir/etcd.log" 2>&1 &
  ETCD_PID=$!
  python3 - "$ETCD_CLIENT_PORT" <<'PY'
import sys, time, urllib.request
for _ in range(100):
    try:
        urllib.request.urlopen(f"http://127.0.0.1:{sys.argv[1]}/health", timeout=1)
        break
    except Exception:
        time.sleep(0.1)
PY
}
