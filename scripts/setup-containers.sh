#!/usr/bin/env bash
# Installs what the container-engine tests need on Debian 12 (Podman with the
# runc runtime, and busybox-static for the test image), skipping what is
# already there. Idempotent; needs root (or sudo). scripts/test.sh runs it;
# building without them: -DREGISTRY_CONTAINER_TESTS=OFF.
set -euo pipefail

packages=(podman runc busybox-static)

missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done

if ((${#missing[@]})); then
  sudo=""
  [ "$(id -u)" -eq 0 ] || sudo="sudo"
  echo "setup-containers: installing ${missing[*]}"
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi
