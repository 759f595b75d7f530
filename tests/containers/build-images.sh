#!/usr/bin/env bash
# Builds the root filesystem tarball of the container tests' image, unless it
# is there already: /bin/busybox from busybox-static plus a symlink per
# applet, a few empty directories, owned by root. No registry needed: the
# test harness `podman import`s the tarball into each test's own storage as
# localhost/registry-busybox:latest.
#
#   tests/containers/build-images.sh OUT_DIR     → OUT_DIR/registry-busybox.tar.gz
set -euo pipefail

out_dir=${1:?usage: build-images.sh OUT_DIR}
tarball="$out_dir/registry-busybox.tar.gz"
[ -s "$tarball" ] && exit 0

busybox=""
for candidate in /bin/busybox /usr/bin/busybox; do
  [ -x "$candidate" ] && { busybox=$candidate; break; }
done
if [ -z "$busybox" ]; then
  echo "build-images: busybox not found; run scripts/setup-containers.sh (installs busybox-static)" >&2
  exit 1
fi
if ldd "$busybox" >/dev/null 2>&1; then
  echo "build-images: $busybox is dynamically linked; install busybox-static (scripts/setup-containers.sh)" >&2
  exit 1
fi

mkdir -p "$out_dir"
work=$(mktemp -d "$out_dir/.build.XXXXXX")
trap 'rm -rf "$work"' EXIT

root="$work/rootfs"
mkdir -p "$root"/{bin,dev,etc,proc,root,sys,tmp,var/tmp,usr}
chmod 1777 "$root/tmp" "$root/var/tmp"
chmod 0700 "$root/root"
cp "$busybox" "$root/bin/busybox"
for applet in $("$busybox" --list); do
  [ "$applet" = busybox ] || ln -s busybox "$root/bin/$applet"
done
ln -s ../bin "$root/usr/bin"
ln -s bin "$root/sbin"
printf 'root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/:/bin/false\n' >"$root/etc/passwd"
printf 'root:x:0:\nnobody:x:65534:\n' >"$root/etc/group"

tar --numeric-owner --owner=0 --group=0 -C "$root" -czf "$work/image.tar.gz" .
mv -f "$work/image.tar.gz" "$tarball"
echo "build-images: built $tarball"
