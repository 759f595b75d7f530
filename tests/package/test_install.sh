#!/usr/bin/env bash
# test_install.sh BUILD_DIR CLIENT_EXAMPLE: registryd as something an operator installs
# (issue 18), from the release tree's own install rules:
#  1. `cmake --install` into a prefix: daemon, pack tool, PREFIX/etc/registryd/
#     registryd.yaml, a systemd unit pointing at PREFIX/bin.
#  2. the .deb that cpack builds: contents, conffiles, dependencies that
#     Debian 12 satisfies, `dpkg -i` into a scratch root (the maintainer
#     scripts create the registryd user there and touch nothing outside it),
#     the unit verified by systemd-analyze, and the installed registryd started
#     on the installed configuration as the unit does: it answers /healthz,
#     tells a NOTIFY_SOCKET READY=1 and STOPPING=1, and drains on SIGTERM; a
#     service registers itself with it through registry::client
#     (CLIENT_EXAMPLE: examples/register_service.cpp).
#  3. remove and purge.
set -euo pipefail
build=$(realpath "$1")
client_example=$2
scratch=$(mktemp -d)
daemon_pid=""
cleanup() {
  [ -z "$daemon_pid" ] || kill "$daemon_pid" 2>/dev/null || true
  [ -z "${listener_pid:-}" ] || kill "$listener_pid" 2>/dev/null || true
  rm -rf "$scratch"
}
trap cleanup EXIT
fail() { echo "FAIL: $*" >&2; exit 1; }

# 1. cmake --install
prefix=$scratch/prefix
cmake --install "$build" --prefix "$prefix" --component daemon >/dev/null
for f in bin/registryd bin/registry-pack etc/registryd/registryd.yaml lib/systemd/system/registryd.service \
  share/doc/registryd/LICENSE; do
  [ -e "$prefix/$f" ] || fail "cmake --install: no $f under the prefix"
done
grep -qx "ExecStart=$prefix/bin/registryd --config $prefix/etc/registryd/registryd.yaml" \
  "$prefix/lib/systemd/system/registryd.service" || fail "cmake --install: the unit does not run PREFIX/bin/registryd"
"$prefix/bin/registryd" --check-config "$prefix/etc/registryd/registryd.yaml" >/dev/null ||
  fail "the installed configuration does not pass --check-config"
# The unit runs as registryd with NoNewPrivileges: package scripts run as that user, not a user it cannot switch to.
grep -q '^  run_as: registryd ' "$prefix/etc/registryd/registryd.yaml" ||
  fail "the installed configuration's deploy.run_as is not the unit's user"
printf 'limits:\n  max_connections: lots\n' >"$scratch/bad.yaml"
status=0
"$prefix/bin/registryd" --check-config "$scratch/bad.yaml" 2>"$scratch/bad.err" >/dev/null || status=$?
[ "$status" -eq 2 ] || fail "--check-config of a bad file exited $status, not 2"
grep -q 'max_connections' "$scratch/bad.err" || fail "--check-config did not name the bad option: $(cat "$scratch/bad.err")"

# 2. the .deb
(cd "$build" && cpack -G DEB -B "$scratch/deb" >"$scratch/cpack.log" 2>&1) || { cat "$scratch/cpack.log" >&2; fail "cpack -G DEB failed"; }
deb=$(ls "$scratch"/deb/registryd_*_*.deb)
contents=$(dpkg-deb -c "$deb" | awk '{print $6}')
for f in ./usr/bin/registryd ./usr/bin/registry-pack ./etc/registryd/registryd.yaml \
  ./usr/lib/systemd/system/registryd.service ./usr/share/doc/registryd/LICENSE; do
  grep -qx "$f" <<<"$contents" || fail "the .deb has no $f"
done
[ "$(dpkg-deb -f "$deb" Package)" = registryd ] || fail "package name"
dpkg-deb --ctrl-tarfile "$deb" | tar -xOf - ./conffiles | grep -qx /etc/registryd/registryd.yaml ||
  fail "/etc/registryd/registryd.yaml is not a conffile (an upgrade would overwrite the operator's edits)"
# Every dependency is one Debian 12 satisfies (checked against this machine's packages).
depends=$(dpkg-deb -f "$deb" Depends)
IFS=',' read -ra deps <<<"$depends"
for d in "${deps[@]}"; do
  name=$(awk '{print $1}' <<<"$d")
  want=$(sed -nE 's/.*\(>= ([^)]*)\).*/\1/p' <<<"$d")
  have=$(dpkg-query -W -f='${Version}' "$name" 2>/dev/null) || fail "dependency $name is not installed here"
  [ -z "$want" ] || dpkg --compare-versions "$have" ge "$want" || fail "dependency $name: $have < $want"
done

root=$scratch/root
mkdir -p "$root/var/lib/dpkg/info" "$root/var/lib/dpkg/updates" "$root/etc"
touch "$root/var/lib/dpkg/status"
cp /etc/passwd /etc/group "$root/etc/"
cp /etc/shadow /etc/gshadow "$root/etc/" 2>/dev/null || true
passwd_before=$(sha256sum /etc/passwd)
dpkg --root="$root" --force-script-chrootless --force-depends --log=/dev/null -i "$deb" >/dev/null 2>&1 ||
  fail "dpkg -i into the scratch root failed"
grep -q '^registryd:.*:/var/lib/registryd:/usr/sbin/nologin$' "$root/etc/passwd" || fail "postinst made no registryd user"
[ "$(sha256sum /etc/passwd)" = "$passwd_before" ] || fail "postinst changed this machine's /etc/passwd"
unit=$root/usr/lib/systemd/system/registryd.service
grep -qx 'ExecStart=/usr/bin/registryd --config /etc/registryd/registryd.yaml' "$unit" || fail "the unit's ExecStart"
for h in Type=notify User=registryd NoNewPrivileges=yes ProtectSystem=strict StateDirectory=registryd; do
  grep -qx "$h" "$unit" || fail "the unit lacks $h"
done
if command -v systemd-analyze >/dev/null; then
  systemd-analyze verify --man=no --recursive-errors=no --root="$root" "$unit" || fail "systemd-analyze verify"
fi

# Started as the unit starts it: in its state directory, on the installed configuration.
state=$scratch/state
mkdir -p "$state"
"$root/usr/bin/registryd" --check-config "$root/etc/registryd/registryd.yaml" >/dev/null || fail "--check-config"
notify=$scratch/notify.sock
python3 -c '
import socket, sys
s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
s.bind(sys.argv[1])
with open(sys.argv[2], "a") as out:
    while True:
        out.write(s.recv(4096).decode() + "\n"); out.flush()
' "$notify" "$scratch/notified" &
listener_pid=$!
for _ in $(seq 50); do [ -S "$notify" ] && break; sleep 0.1; done
(cd "$state" && NOTIFY_SOCKET=$notify exec "$root/usr/bin/registryd" --config "$root/etc/registryd/registryd.yaml" \
  --listen 127.0.0.1:0 --port-file "$scratch/port" 2>"$scratch/log") &
daemon_pid=$!
for _ in $(seq 300); do [ -s "$scratch/port" ] && break; sleep 0.1; done
[ -s "$scratch/port" ] || { cat "$scratch/log" >&2; fail "the installed registryd did not start listening"; }
addr=$(cat "$scratch/port")
python3 -c 'import sys, urllib.request; urllib.request.urlopen("http://" + sys.argv[1] + "/healthz", timeout=10)' "$addr" ||
  fail "/healthz did not answer"
"$client_example" "ws://$addr/" >"$scratch/client.log" 2>&1 ||
  fail "a service could not register with the installed registryd: $(cat "$scratch/client.log")"
grep -q '^registered hello-1 ' "$scratch/client.log" || fail "register_service said: $(cat "$scratch/client.log")"
for _ in $(seq 50); do grep -q '^READY=1' "$scratch/notified" 2>/dev/null && break; sleep 0.1; done
grep -q '^READY=1' "$scratch/notified" || fail "no READY=1 on NOTIFY_SOCKET"
[ -d "$state/registry-data" ] || fail "the data directory is not in the working (state) directory"
kill -TERM "$daemon_pid"
status=0
wait "$daemon_pid" || status=$?
daemon_pid=""
[ "$status" -eq 0 ] || fail "registryd exited $status after SIGTERM"
# The listener writes what it received on its own time: the datagram was sent before the exit.
for _ in $(seq 50); do grep -q '^STOPPING=1' "$scratch/notified" 2>/dev/null && break; sleep 0.1; done
grep -q '^STOPPING=1' "$scratch/notified" || fail "no STOPPING=1 on NOTIFY_SOCKET"

# 3. remove keeps the edited configuration; purge removes it and the data.
mkdir -p "$root/var/lib/registryd"
dpkg --root="$root" --force-script-chrootless --log=/dev/null -r registryd >/dev/null 2>&1 || fail "dpkg -r"
[ ! -e "$root/usr/bin/registryd" ] || fail "dpkg -r left the binary"
[ -e "$root/etc/registryd/registryd.yaml" ] || fail "dpkg -r removed the conffile"
dpkg --root="$root" --force-script-chrootless --log=/dev/null -P registryd >/dev/null 2>&1 || fail "dpkg -P"
[ ! -e "$root/etc/registryd/registryd.yaml" ] || fail "dpkg -P left the configuration"
[ ! -e "$root/var/lib/registryd" ] || fail "dpkg -P left the data"
echo "install and package: ok"
