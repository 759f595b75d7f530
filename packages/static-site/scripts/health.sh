#!/bin/sh
# Fetches /health.txt from the running server. Exit codes as Habitat's
# health hooks: 0 healthy ("ok"), 1 warning (any other answer), 2 critical
# (no answer), 3 unknown.
. "$PACKAGE_DIR/config/site.conf"
body=$(python3 - "$BIND_ADDRESS" "$PORT_HTTP" <<'PY'
import sys, urllib.request
try:
    url = "http://%s:%s/health.txt" % (sys.argv[1], sys.argv[2])
    with urllib.request.urlopen(url, timeout=2) as r:
        print(r.read().decode().strip())
except Exception as e:
    print("unreachable: %s" % e)
    sys.exit(2)
PY
)
rc=$?
echo "$body"
[ "$rc" -eq 0 ] || exit 2
[ "$body" = ok ] && exit 0
exit 1
