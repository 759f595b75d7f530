#!/usr/bin/env bash
# What a deploy target another registryd offers costs (docs/protocol.md,
# "Deploy targets of the cluster"): one cluster on etcd, a writer `a` and a
# standby `b`, both on this host with prefixes of their own. N cycles of
# deploy_package + undeploy of packages/static-site (python3 -m http.server,
# health-gated) on the writer's own host (`local`) and on b's host through b
# (`local.b`: every command, the upload and the health gate pass b), timed from
# the request to the answer; then N `service_action restart` on each. Prints
# p50/p99 of each and the ratio through b / direct; its last line repeats them
# as key=value pairs.
#
#   bench/member_target_bench.sh [N] [BUILD_DIR]     (defaults: 10, build/release)
#
# Needs a built registryd and registry-pack, etcd (etcd-server) and python3
# (scripts/setup.sh). Run as root, package scripts run as `nobody`. Starts its
# own etcd and registryd on loopback and stops them (by pid).
set -euo pipefail
cd "$(dirname "$0")/.."
n=${1:-10}
build=${2:-build/release}
registryd="$build/registryd"
pack="$build/registry-pack"
for b in "$registryd" "$pack"; do
  [ -x "$b" ] || { echo "member_target_bench: $b not built" >&2; exit 1; }
done

dir=$(mktemp -d /tmp/member-target-bench-XXXXXX)
chmod 711 "$dir"  # the script user reaches the prefixes
pids=()
cleanup() {
  for d in "$dir"/opt-*/static-site-*; do
    [ -f "$d/run/pid" ] && kill -9 "$(cat "$d/run/pid")" 2>/dev/null
  done
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null && { wait "$p" 2>/dev/null || true; }; done
  rm -rf "$dir"
}
trap cleanup EXIT

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

# The example package on a free port.
cp -r packages/static-site "$dir/src"
port=$(free_port)
sed -i "s/port: 8181/port: $port/" "$dir/src/manifest.yaml"
"$pack" "$dir/src" "$dir" >/dev/null
archive=$(ls "$dir"/static-site-*.tar.gz)

. bench/single_etcd.sh
start_single_etcd "$dir"
pids+=("$ETCD_PID")
client=$ETCD_CLIENT_PORT

# config MEMBER
config() {
  cat >"$dir/$1.yaml" <<EOF
deploy:
  prefix: $dir/opt-$1
  run_as: nobody
  package_dirs: [$dir]
store:
  kind: etcd
  etcd:
    endpoints: ["http://127.0.0.1:$client"]
    prefix: /bench/
    member: $1
EOF
}
# start NAME: starts registryd with $dir/NAME.yaml; waits for its port file.
start() {
  "$registryd" --config "$dir/$1.yaml" --listen 127.0.0.1:0 --data-dir "$dir/$1" --port-file "$dir/$1.port" \
    --log-level warn 2>"$dir/$1.log" &
  pids+=($!)
  for _ in $(seq 150); do [ -s "$dir/$1.port" ] && return; sleep 0.1; done
  echo "member_target_bench: registryd $1 did not start" >&2; cat "$dir/$1.log" >&2; exit 1
}
config a
config b
start a
start b

PYTHONPATH=bench python3 - "$(cat "$dir/a.port")" "$archive" "$n" <<'EOF'
import sys, time

from ws_client import WS, pct

writer, archive, n = sys.argv[1], sys.argv[2], int(sys.argv[3])
ws = WS(writer)

def deploy(target):
    return ws.call("deploy_package", {"path": archive, "target": target})

# The writer learns b's targets from its record (read every second).
deadline = time.monotonic() + 30
while True:
    ws.next_id += 1
    rid = str(ws.next_id)
    ws.send({"id": rid, "type": "request", "action": "deploy_package", "params": {"path": archive, "target": "local.b"}})
    while True:
        m = ws.recv()
        if m.get("type") == "response" and m.get("id") == rid:
            break
    if "error" not in m:
        ws.call("undeploy", {"instance_id": m["data"]["instance_id"]})
        break
    if m["error"]["code"] != "not_found" or time.monotonic() > deadline:
        raise SystemExit(f"deploy to local.b failed: {m['error']}")
    time.sleep(0.2)

figures = {}
for name, target in (("direct", "local"), ("member", "local.b")):
    cycles, restarts = [], []
    for _ in range(n):
        t0 = time.monotonic()
        out = deploy(target)
        cycles.append((time.monotonic() - t0) * 1000)
        t0 = time.monotonic()
        ws.call("service_action", {"instance_id": out["instance_id"], "action": "restart"})
        restarts.append((time.monotonic() - t0) * 1000)
        ws.call("undeploy", {"instance_id": out["instance_id"]})
    figures[name] = (cycles, restarts)

print(f"{n} runs each (ms): the writer's own host vs a standby's host through the standby")
for i, what in enumerate(("deploy_package (upload, install, start, health gate)", "service_action restart")):
    d, m = figures["direct"][i], figures["member"][i]
    print(f"  {what}")
    print(f"    direct: p50 {pct(d, 50):7.1f}  p99 {pct(d, 99):7.1f}")
    print(f"    member: p50 {pct(m, 50):7.1f}  p99 {pct(m, 99):7.1f}   ratio p50 {pct(m, 50) / pct(d, 50):.2f}")
dd, dr = figures["direct"]
md, mr = figures["member"]
print(f"runs={n} deploy_direct_p50_ms={pct(dd, 50):.1f} deploy_member_p50_ms={pct(md, 50):.1f} "
      f"restart_direct_p50_ms={pct(dr, 50):.1f} restart_member_p50_ms={pct(mr, 50):.1f}")
EOF
