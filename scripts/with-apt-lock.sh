#!/usr/bin/env bash
# with-apt-lock.sh COMMAND...: runs an apt-get/dpkg command, and while it fails
# because another install holds the Debian package lock (a fresh machine's own
# unattended upgrade often does, for minutes), waits and tries again instead
# of failing at once. Gives up after APT_LOCK_WAIT_SECONDS (default 900).
# apt-get's own DPkg::Lock::Timeout covers only the dpkg lock, not the
# lists lock that `apt-get update` takes, hence this loop around both.
set -uo pipefail
limit=${APT_LOCK_WAIT_SECONDS:-900}
start=$SECONDS
err=$(mktemp)
trap 'rm -f "$err"' EXIT
while :; do
  "$@" 2>"$err"
  status=$?
  if [ "$status" -eq 0 ]; then
    cat "$err" >&2
    exit 0
  fi
  if ! grep -qE 'Could not get lock|Unable to acquire the dpkg frontend lock|Unable to lock directory' "$err"; then
    cat "$err" >&2
    exit "$status"
  fi
  if ((SECONDS - start >= limit)); then
    cat "$err" >&2
    echo "gave up after ${limit}s waiting for the Debian package lock" >&2
    exit "$status"
  fi
  echo "waiting for the Debian package lock ($(grep -m1 -oE 'held by process [0-9]+[^.]*' "$err" || echo 'held by another install'))" >&2
  sleep "${APT_LOCK_RETRY_SECONDS:-5}"
done
