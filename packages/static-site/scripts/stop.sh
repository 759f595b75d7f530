#!/bin/sh
# Stops the server start.sh started: SIGTERM, then SIGKILL after 5 s.
set -u
pidfile="$PACKAGE_DIR/run/pid"
if [ ! -f "$pidfile" ]; then
  echo "static-site $PACKAGE_VERSION: not running"
  exit 0
fi
pid=$(cat "$pidfile")
kill "$pid" 2>/dev/null
i=0
while kill -0 "$pid" 2>/dev/null && [ "$i" -lt 50 ]; do
  sleep 0.1
  i=$((i + 1))
done
kill -9 "$pid" 2>/dev/null
rm -f "$pidfile"
echo "static-site $PACKAGE_VERSION: stopped pid $pid"
