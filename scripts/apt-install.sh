#!/usr/bin/env bash
# apt-install.sh PACKAGE...: installs the Debian packages that are not
# installed yet (as root, or through sudo). The one place the project's set-up
# scripts install from. Waits for the package lock when another install holds
# it (scripts/with-apt-lock.sh).
set -euo pipefail
here="$(dirname "$0")"

missing=()
for p in "$@"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
((${#missing[@]})) || exit 0

sudo=""
[ "$(id -u)" -eq 0 ] || sudo="sudo"
echo "installing ${missing[*]}"
$sudo "$here/with-apt-lock.sh" apt-get update -qq
DEBIAN_FRONTEND=noninteractive $sudo "$here/with-apt-lock.sh" \
  apt-get install -y -qq --no-install-recommends -o DPkg::Lock::Timeout=60 "${missing[@]}" >/dev/null
