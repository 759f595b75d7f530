#!/usr/bin/env bash
# What an engine another registryd offers costs (docs/protocol.md, "Engines of
# the cluster"): the same work on one Podman service, reached by the writer
# directly (its own containers.engines) and through a standby that offers it
# (every engine call passes the standby's engine tunnel). Two clusters on one
# etcd: "direct" (a writer with the engine) and "member" (a writer without
# one, and a standby with it). For each: N `container_create` + `container_remove`
# (busybox sleep) and N Python hello worlds (`repl_execute` → `repl_finished`,
# warm pool on), timed from the request to the answer. Prints p50/p99 of each
# and the ratio member / direct; its last line repeats them as key=value pairs.
#
#   bench/member_engine_bench.sh [N] [BUILD_DIR]     (defaults: 20, build/release)
#
# Needs a built registryd, etcd (etcd-server), podman + runc, python3 and
# busybox-static (scripts/setup.sh, scripts/setup-containers.sh). Starts its own
# etcd, `podman system service` (private storage) and registryd, on loopback,
# and stops them (by pid).
set -euo pipefail
cd "$(dirname "$0")/.."
n=${1:-20}
build=${2:-build/release}
registryd="$build/registryd"
[ -x "$registryd" ] || { echo "member_engine_bench: $registryd not built" >&2; exit 1; }
cache="$build/container-images"
tests/containers/build-images.sh "$cache" busybox python

dir=$(mktemp -d /tmp/member-bench-XXXXXX)
pids=()
podman_pid=""
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null && { wait "$p" 2>/dev/null || true; }; done
  [ -n "$podman_pid" ] && { podman "${flags[@]}" rm --all --force --time 0 >/dev/null 2>&1 || true; }
  [ -n "$podman_pid" ] && kill "$podman_pid" 2>/dev/null && { wait "$podman_pid" 2>/dev/null || true; }
  grep " $dir/" /proc/self/mountinfo | awk '{print $5}' | sort -r | xargs -r -n1 umount -l 2>/dev/null || true
  rm -rf "$dir"
}
trap cleanup EXIT

cat >"$dir/containers.conf" <<'EOF'
[containers]
default_ulimits = ["nofile=1024:1024", "nproc=4096:4096"]
[engine]
runtime = "runc"
EOF
export CONTAINERS_CONF="$dir/containers.conf"
flags=(--root "$dir/root" --runroot "$dir/runroot" --tmpdir "$dir/tmp" --storage-driver overlay)
mkdir -p "$dir/tmp"
busybox=localhost/registry-busybox:latest
python=localhost/registry-python:latest
podman "${flags[@]}" import --change 'CMD ["/bin/sh"]' "$cache/registry-busybox.tar.gz" "$busybox" >"$dir/import.log" 2>&1
podman "${flags[@]}" import --change 'CMD ["/bin/sh"]' "$cache/registry-python.tar" "$python" >>"$dir/import.log" 2>&1
podman "${flags[@]}" system service --time=0 "unix://$dir/podman.sock" >"$dir/podman.log" 2>&1 &
podman_pid=$!
for _ in $(seq 100); do [ -S "$dir/podman.sock" ] && break; sleep 0.1; done

. bench/single_etcd.sh
start_single_etcd "$dir"
pids+=("$ETCD_PID")
client=$ETCD_CLIENT_PORT

# config NAME PREFIX MEMBER WITH_ENGINE
config() {
  {
    printf 'containers:\n  instance_id: member-bench\n'
    if [ "$4" = yes ]; then
      printf '  engines:\n    - name: p1\n      endpoint: unix://%s/podman.sock\n      capacity: 8\n' "$dir"
    else
      printf '  engines: []\n'
    fi
    cat <<EOF
repl:
  enabled: true
  max_concurrent: 2
  languages:
    - name: python
      image: $python
      source_file: main.py
      run: [python3, -u, "{source}"]
      warm_pool: 2
      defaults: {timeout_ms: 20000, output_bytes: 1MiB, memory_bytes: 256MiB, pids: 64, cpu_millicores: 1000}
store:
  kind: etcd
  etcd:
    endpoints: ["http://127.0.0.1:$client"]
    prefix: /$2/
    member: $3
EOF
  } >"$dir/$1.yaml"
}
# start NAME: starts registryd with $dir/NAME.yaml; waits for its port file.
start() {
  "$registryd" --config "$dir/$1.yaml" --listen 127.0.0.1:0 --data-dir "$dir/$1" --port-file "$dir/$1.port" \
    --log-level warn 2>"$dir/$1.log" &
  pids+=($!)
  for _ in $(seq 150); do [ -s "$dir/$1.port" ] && return; sleep 0.1; done
  echo "member_engine_bench: registryd $1 did not start" >&2; cat "$dir/$1.log" >&2; exit 1
}
config direct direct a yes
config writer member a no
config standby member b yes
start direct
start writer
start standby

PYTHONPATH=bench python3 - "$(cat "$dir/direct.port")" "$(cat "$dir/writer.port")" "$n" "$busybox" <<'EOF'
import sys, time

from ws_client import WS, pct

direct, writer, n, busybox = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4]

def online(ws):
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        nodes = ws.call("list_nodes")["nodes"]
        if nodes and nodes[0]["status"] == "online":
            return
        time.sleep(0.1)
    raise SystemExit("the engine did not come online")

def containers(ws):
    out = []
    for _ in range(n + 1):
        t0 = time.monotonic()
        made = ws.call("container_create", {"image": busybox, "command": ["sleep", "60"], "ttl_seconds": 60})
        ws.call("container_remove", {"container_id": made["container"]["container_id"], "force": True})
        out.append((time.monotonic() - t0) * 1000)
    return out[1:]  # the first one warms up

def repl(ws):
    out = []
    for i in range(n + 1):
        t0 = time.monotonic()
        ws.next_id += 1
        ws.send({"id": f"r{ws.next_id}", "type": "request", "action": "repl_execute",
                 "params": {"language": "python", "code": "print('hello world')\n"}})
        while True:
            m = ws.recv()
            if m.get("type") == "response" and "error" in m:
                raise SystemExit(f"repl_execute failed: {m['error']}")
            if m.get("event") == "repl_finished":
                assert m["data"]["stdout"] == "hello world\n", m
                break
        out.append((time.monotonic() - t0) * 1000)
        time.sleep(0.3)  # lets the warm pool refill
    return out[1:]

figures = {}
for name, addr in (("direct", direct), ("member", writer)):
    ws = WS(addr)
    online(ws)
    figures[name] = (containers(ws), repl(ws))
    # The next cluster's warm pool is filled from an idle engine.
    time.sleep(1)

print(f"one Podman service, {n} runs each (ms): the writer's own engine vs the same engine offered by a standby")
for i, what in enumerate(("container_create + container_remove", "repl python hello world (warm)")):
    d, m = figures["direct"][i], figures["member"][i]
    print(f"  {what}")
    print(f"    direct: p50 {pct(d, 50):7.1f}  p99 {pct(d, 99):7.1f}")
    print(f"    member: p50 {pct(m, 50):7.1f}  p99 {pct(m, 99):7.1f}   ratio p50 {pct(m, 50) / pct(d, 50):.2f}")
dc, dr = figures["direct"]
mc, mr = figures["member"]
print(f"runs={n} create_direct_p50_ms={pct(dc, 50):.1f} create_member_p50_ms={pct(mc, 50):.1f} "
      f"repl_direct_p50_ms={pct(dr, 50):.1f} repl_member_p50_ms={pct(mr, 50):.1f}")
EOF
