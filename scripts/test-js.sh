#!/usr/bin/env bash
# Runs the JavaScript client's tests (clients/js) against a registryd binary:
# `npm ci`, then `node --test`. Usage: scripts/test-js.sh REGISTRYD_BIN TAP_LOG
# Node's spec report goes to stdout, its TAP report to TAP_LOG, whose
# "# pass N" / "# fail N" / "# cancelled N" lines scripts/test.sh counts.
set -uo pipefail
cd "$(dirname "$0")/.."
bin=$(realpath -m "$1")
log=$(realpath -m "$2")
: >"$log"
scripts/setup-node.sh || exit 1
scripts/setup-browser.sh || exit 1  # test/browser_bundle.test.js runs the bundled client in chromium
major=$(node -p 'process.versions.node.split(".")[0]')
[ "$major" -ge 20 ] || echo "warning: node $(node --version) is older than the client's supported 20"
cd clients/js
npm ci --no-audit --no-fund --loglevel=error || { echo "npm ci failed"; exit 1; }
REGISTRYD_BIN="$bin" node --test --test-concurrency=2 \
  --test-reporter=spec --test-reporter-destination=stdout \
  --test-reporter=tap --test-reporter-destination="$log" \
  test/*.test.js
