#!/usr/bin/env bash
# Makes sure `node` and `npm` exist for the JavaScript client (clients/js).
# Only when they are missing does it install Debian 12's own packages
# (nodejs 18, npm 9): a machine with a newer Node (NodeSource's 20, which the
# client is developed and tested with) keeps it. Needs root (or sudo) then.
set -euo pipefail
here="$(dirname "$0")"
command -v node >/dev/null || "$here/apt-install.sh" nodejs npm
command -v npm >/dev/null || "$here/apt-install.sh" npm
