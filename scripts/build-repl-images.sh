#!/usr/bin/env bash
# Builds the images of the shipped REPL languages and imports them into the
# local Podman storage, skipping what is already there:
#   localhost/registry-busybox:latest  (language sh)
#   localhost/registry-python:latest   (language python)
#   localhost/registry-node:latest     (language node: the host's node)
#   localhost/registry-gcc:latest      (languages c and cpp, version "gcc 12": gcc-12, g++-12)
#   localhost/registry-clang:latest    (languages c and cpp, version "clang 14": clang-14 and gcc's)
#   localhost/registry-go:latest       (language go: golang-go 1.19)
# The root filesystems are cached in build/container-images. Extra arguments
# go to every podman command (e.g. --root DIR --runroot DIR for another
# storage). Needs podman, busybox-static, python3, gcc-12, g++-12, clang-14,
# golang-go (scripts/setup-containers.sh) and node (scripts/setup-node.sh).
set -euo pipefail
cd "$(dirname "$0")/.."
cache=build/container-images
tests/containers/build-images.sh "$cache" busybox python node gcc clang go
import() {  # image, tarball
  podman "${@:3}" image exists "$1" && return 0
  podman "${@:3}" import --change 'CMD ["/bin/sh"]' "$2" "$1" >/dev/null
  echo "build-repl-images: imported $1"
}
import localhost/registry-busybox:latest "$cache/registry-busybox.tar.gz" "$@"
import localhost/registry-python:latest "$cache/registry-python.tar" "$@"
import localhost/registry-node:latest "$cache/registry-node.tar" "$@"
import localhost/registry-gcc:latest "$cache/registry-gcc.tar" "$@"
import localhost/registry-clang:latest "$cache/registry-clang.tar" "$@"
import localhost/registry-go:latest "$cache/registry-go.tar" "$@"
