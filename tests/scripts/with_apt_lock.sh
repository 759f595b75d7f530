#!/usr/bin/env bash
# with_apt_lock.sh SOURCE_DIR: scripts/with-apt-lock.sh waits while a command
# fails because the Debian package lock is held, and fails at once otherwise.
set -euo pipefail
wrapper=$(realpath "$1")/scripts/with-apt-lock.sh
scratch=$(mktemp -d)
trap 'rm -rf "$scratch"' EXIT
fail() { echo "FAIL: $*" >&2; exit 1; }

# A fake apt-get: the first two calls find the lock held (as apt-get says it), the third succeeds.
cat >"$scratch/apt-locked" <<'FAKE'
#!/usr/bin/env bash
n=$(( $(cat "$0.count" 2>/dev/null || echo 0) + 1 ))
echo "$n" >"$0.count"
if [ "$n" -le 2 ]; then
  echo "E: Could not get lock /var/lib/apt/lists/lock. It is held by process 4242 (apt-get)" >&2
  exit 100
fi
echo "done"
FAKE
cat >"$scratch/apt-broken" <<'FAKE'
#!/usr/bin/env bash
n=$(( $(cat "$0.count" 2>/dev/null || echo 0) + 1 ))
echo "$n" >"$0.count"
echo "E: Unable to locate package no-such-package" >&2
exit 100
FAKE
chmod +x "$scratch/apt-locked" "$scratch/apt-broken"

out=$(APT_LOCK_RETRY_SECONDS=0 "$wrapper" "$scratch/apt-locked" 2>"$scratch/err") || fail "a lock held twice then free failed"
[ "$out" = done ] || fail "the command's output was lost: '$out'"
[ "$(cat "$scratch/apt-locked.count")" = 3 ] || fail "expected 3 attempts, got $(cat "$scratch/apt-locked.count")"
grep -q 'waiting for the Debian package lock (held by process 4242 (apt-get))' "$scratch/err" || fail "no waiting message"

status=0
APT_LOCK_RETRY_SECONDS=0 "$wrapper" "$scratch/apt-broken" 2>"$scratch/err" || status=$?
[ "$status" = 100 ] || fail "another failure should exit with the command's status 100, got $status"
[ "$(cat "$scratch/apt-broken.count")" = 1 ] || fail "another failure was retried"
grep -q 'Unable to locate package' "$scratch/err" || fail "the command's error was not shown"

rm -f "$scratch/apt-locked.count"
status=0
APT_LOCK_WAIT_SECONDS=0 APT_LOCK_RETRY_SECONDS=0 "$wrapper" "$scratch/apt-locked" 2>"$scratch/err" || status=$?
[ "$status" = 100 ] || fail "a lock held past the limit should fail, got $status"
grep -q 'gave up after 0s' "$scratch/err" || fail "no give-up message"
echo "with-apt-lock: ok"
