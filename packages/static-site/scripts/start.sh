#!/bin/sh
# Starts the HTTP server in the background (it outlives this script) and
# records its pid for stop.sh. registryd gives PACKAGE_DIR and PORT_HTTP.
set -eu
mkdir -p "$PACKAGE_DIR/run"
. "$PACKAGE_DIR/config/site.conf"
cd "$PACKAGE_DIR/www"
nohup python3 -m http.server "$PORT_HTTP" --bind "$BIND_ADDRESS" </dev/null >"$PACKAGE_DIR/run/server.log" 2>&1 &
echo $! >"$PACKAGE_DIR/run/pid"
echo "static-site $PACKAGE_VERSION: http.server on $BIND_ADDRESS:$PORT_HTTP, pid $!"
