#!/usr/bin/env bash
# Builds the images of the shipped REPL languages and imports them into the
# local Podman storage, skipping what is already there:
#   localhost/registry-busybox:latest  (language sh)
#   localhost/registry-python:latest   (language python)
# The root filesystems are cached in build/container-images. Extra arguments
# go to every podman command (e.g. --root DIR --runroot DIR for another
# storage). Needs podman, busybox-static, python3 (scripts/setup-containers.sh).
set -euo pipefail
cd "$(dirname "$0")/.."
cache=build/container-images
tests/containers/build-images.sh "$cache" busybox python
import() {  # image, tarball
  podman "${@:3}" image exists "$1" && return 0
  podman "${@:3}" import --change 'CMD ["/bin/sh"]' "$2" "$1" >/dev/null
  echo "build-repl-images: imported $1"
}
import localhost/registry-busybox:latest "$cache/registry-busybox.tar.gz" "$@"
import localhost/registry-python:latest "$cache/registry-python.tar" "$@"
