#!/usr/bin/env bash
# REPL latency: the same Python hello world N times through registryd
# (repl_execute → repl_finished, warm pool on) and through `podman run --rm`,
# in the same run, on the same Podman storage; then a C++ hello world (g++
# compile + run, warm pool on) and a Go one (go build + run, warm pool on) the
# same way, and the C++ one with limits other than the defaults (no warm
# container fits: created per execution), which shows what the warm pool of a
# compiled language saves. Prints p50/p99 of each and the ratio registryd p50 /
# podman run p50 (target for python: <= 0.3); its last line repeats the
# figures as key=value pairs (bench/run.sh's `repl` scenario reads it).
#
#   bench/repl_bench.sh [N] [BUILD_DIR]     (defaults: 20, build/release)
#
# Needs a built registryd, podman + runc, python3, busybox-static, gcc-12
# and golang-go (scripts/setup-containers.sh). Starts its own `podman system service` on a
# private storage (overlay) and its own registryd, and stops both (by pid).
set -euo pipefail
cd "$(dirname "$0")/.."
n=${1:-20}
build=${2:-build/release}
registryd="$build/registryd"
[ -x "$registryd" ] || { echo "repl_bench: $registryd not built" >&2; exit 1; }
cache="$build/container-images"
tests/containers/build-images.sh "$cache" busybox python gcc go

dir=$(mktemp -d /tmp/repl-bench-XXXXXX)
podman_pid=""
registryd_pid=""
cleanup() {
  [ -n "$registryd_pid" ] && kill "$registryd_pid" 2>/dev/null && wait "$registryd_pid" 2>/dev/null
  [ -n "$podman_pid" ] && { podman "${flags[@]}" rm --all --force --time 0 >/dev/null 2>&1 || true; }
  [ -n "$podman_pid" ] && kill "$podman_pid" 2>/dev/null && wait "$podman_pid" 2>/dev/null
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
image=localhost/registry-python:latest
podman "${flags[@]}" import --change 'CMD ["/bin/sh"]' "$cache/registry-python.tar" "$image" >/dev/null
gcc_image=localhost/registry-gcc:latest
podman "${flags[@]}" import --change 'CMD ["/bin/sh"]' "$cache/registry-gcc.tar" "$gcc_image" >/dev/null
go_image=localhost/registry-go:latest
podman "${flags[@]}" import --change 'CMD ["/bin/sh"]' "$cache/registry-go.tar" "$go_image" >/dev/null
podman "${flags[@]}" system service --time=0 "unix://$dir/podman.sock" >"$dir/podman.log" 2>&1 &
podman_pid=$!
for _ in $(seq 100); do [ -S "$dir/podman.sock" ] && break; sleep 0.1; done

cat >"$dir/registryd.yaml" <<EOF
containers:
  instance_id: repl-bench
  engines:
    - name: local
      endpoint: unix://$dir/podman.sock
repl:
  enabled: true
  max_concurrent: 2
  languages:
    - name: python
      image: $image
      source_file: main.py
      run: [python3, -u, "{source}"]
      warm_pool: 2
      defaults: {timeout_ms: 20000, output_bytes: 1MiB, memory_bytes: 256MiB, pids: 64, cpu_millicores: 1000}
    - name: cpp
      image: $gcc_image
      source_file: main.cpp
      compile: [g++, -O2, -pipe, -std=c++20, -o, main, "{source}"]
      run: [./main]
      warm_pool: 2
      defaults: {timeout_ms: 30000, output_bytes: 1MiB, memory_bytes: 512MiB, pids: 64, cpu_millicores: 1000}
      maximum: {timeout_ms: 30000, output_bytes: 1MiB, memory_bytes: 1GiB, pids: 64, cpu_millicores: 1000}
    - name: go
      image: $go_image
      source_file: main.go
      compile: [env, CGO_ENABLED=0, go, build, -o, main, "{source}"]
      run: [./main]
      warm_pool: 2
      defaults: {timeout_ms: 30000, output_bytes: 1MiB, memory_bytes: 512MiB, pids: 64, cpu_millicores: 1000}
EOF
"$registryd" --config "$dir/registryd.yaml" --listen 127.0.0.1:0 --data-dir "$dir/data" \
  --port-file "$dir/port" --log-level warn 2>"$dir/registryd.log" &
registryd_pid=$!
for _ in $(seq 100); do [ -s "$dir/port" ] && break; sleep 0.1; done
[ -s "$dir/port" ] || { echo "repl_bench: registryd did not start" >&2; cat "$dir/registryd.log" >&2; exit 1; }

# The client (bench/ws_client.py) times each execution from the request to
# repl_finished, then each `podman run --rm`.
PYTHONPATH=bench python3 - "$(cat "$dir/port")" "$n" "$image" "$gcc_image" "$go_image" "${flags[@]}" <<'EOF'
import subprocess, sys, time

from ws_client import WS, pct

addr, n, image, gcc_image, go_image, flags = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4], sys.argv[5], sys.argv[6:]
code = "print('hello world')\n"

cpp_code = "#include <iostream>\nint main() { std::cout << \"hello world\" << std::endl; }\n"

ws = WS(addr)
def via_registryd(i, language="python", source=code, limits=None):
    t0 = time.monotonic()
    params = {"language": language, "code": source}
    if limits:
        params["limits"] = limits
    ws.send({"id": str(i), "type": "request", "action": "repl_execute", "params": params})
    while True:
        m = ws.recv()
        if m.get("type") == "response" and "error" in m:
            raise SystemExit(f"repl_execute failed: {m['error']}")
        if m.get("event") == "repl_finished":
            d = m["data"]
            assert d["stdout"] == "hello world\n" and d["exit_code"] == 0, d
            return (time.monotonic() - t0) * 1000

def via_podman_run(argv=None, img=None):
    t0 = time.monotonic()
    out = subprocess.run(["podman", *flags, "run", "--rm", img or image, *(argv or ["python3", "-c", code])],
                         capture_output=True, text=True)
    assert out.stdout == "hello world\n", out
    return (time.monotonic() - t0) * 1000

via_registryd(-1)   # one warm-up each: image caches, the first warm container
via_podman_run()
reg, pod = [], []
for i in range(n):
    reg.append(via_registryd(i))
    time.sleep(0.3)  # lets the warm pool refill, as between interactive requests
    pod.append(via_podman_run())
print(f"python hello world, {n} runs each (ms)")
print(f"  registryd repl_execute: p50 {pct(reg, 50):7.1f}  p99 {pct(reg, 99):7.1f}")
print(f"  podman run --rm:        p50 {pct(pod, 50):7.1f}  p99 {pct(pod, 99):7.1f}")
print(f"  ratio p50 registryd / podman run: {pct(reg, 50) / pct(pod, 50):.2f}  (target <= 0.30)")

# C++: compile and run, each in a fresh container (the warm pool's for registryd).
cpp_run = ["sh", "-c", f"cd /tmp && printf '%s' '{cpp_code}' > main.cpp && g++ -O2 -pipe -std=c++20 -o main main.cpp && ./main"]
via_registryd(-2, "cpp", cpp_code)
via_podman_run(cpp_run, gcc_image)
creg, cpod = [], []
for i in range(n):
    creg.append(via_registryd(10_000 + i, "cpp", cpp_code))
    time.sleep(0.3)
    cpod.append(via_podman_run(cpp_run, gcc_image))
print(f"C++ hello world (g++ -O2 compile + run), {n} runs each (ms)")
print(f"  registryd repl_execute: p50 {pct(creg, 50):7.1f}  p99 {pct(creg, 99):7.1f}")
print(f"  podman run --rm:        p50 {pct(cpod, 50):7.1f}  p99 {pct(cpod, 99):7.1f}")
print(f"  ratio p50 registryd / podman run: {pct(creg, 50) / pct(cpod, 50):.2f}")

# The same C++ with a memory limit other than the language's default: no warm
# container fits, each execution creates its own (what the warm pool saves).
ccold = []
for i in range(n):
    ccold.append(via_registryd(20_000 + i, "cpp", cpp_code, {"memory_bytes": 768 << 20}))
print(f"C++ hello world without the warm pool (limits other than the defaults), {n} runs (ms)")
print(f"  registryd repl_execute: p50 {pct(ccold, 50):7.1f}  p99 {pct(ccold, 99):7.1f}")
print(f"  warm pool saves at p50: {pct(ccold, 50) - pct(creg, 50):7.1f}")

# Go: go build (cgo off, the image's precompiled standard library) + run.
go_code = "package main\n\nimport \"fmt\"\n\nfunc main() { fmt.Println(\"hello world\") }\n"
go_run = ["sh", "-c", f"cd /tmp && printf '%b' '{go_code}' > main.go && HOME=/tmp CGO_ENABLED=0 go build -o main main.go && ./main"]
via_registryd(-3, "go", go_code)
via_podman_run(go_run, go_image)
greg, gpod = [], []
for i in range(n):
    greg.append(via_registryd(30_000 + i, "go", go_code))
    time.sleep(0.3)
    gpod.append(via_podman_run(go_run, go_image))
print(f"Go hello world (go build + run), {n} runs each (ms)")
print(f"  registryd repl_execute: p50 {pct(greg, 50):7.1f}  p99 {pct(greg, 99):7.1f}")
print(f"  podman run --rm:        p50 {pct(gpod, 50):7.1f}  p99 {pct(gpod, 99):7.1f}")
print(f"  ratio p50 registryd / podman run: {pct(greg, 50) / pct(gpod, 50):.2f}")
# The same figures as one key=value line, for bench/run.sh's table.
print(f"runs={n} registryd_p50_ms={pct(reg, 50):.1f} registryd_p99_ms={pct(reg, 99):.1f} "
      f"podman_p50_ms={pct(pod, 50):.1f} podman_p99_ms={pct(pod, 99):.1f} "
      f"cpp_registryd_p50_ms={pct(creg, 50):.1f} cpp_podman_p50_ms={pct(cpod, 50):.1f} "
      f"cpp_cold_registryd_p50_ms={pct(ccold, 50):.1f} "
      f"go_registryd_p50_ms={pct(greg, 50):.1f} go_podman_p50_ms={pct(gpod, 50):.1f}")
EOF
