#!/usr/bin/env bash
# Builds the root filesystem tarballs of the container images, unless they
# are there already. No registry needed: the test harness (or
# scripts/build-repl-images.sh) `podman import`s them.
#
#   busybox: /bin/busybox from busybox-static plus a symlink per applet, a
#            few empty directories, owned by root → localhost/registry-busybox
#   python:  Debian bookworm's essential set plus python3-minimal, built by
#            mmdebstrap (about 30 s on a fast mirror; docs and locales left
#            out) → localhost/registry-python (the REPL's python language)
#
#   tests/containers/build-images.sh OUT_DIR [busybox] [python]
#       → OUT_DIR/registry-busybox.tar.gz, OUT_DIR/registry-python.tar
set -euo pipefail

out_dir=${1:?usage: build-images.sh OUT_DIR [busybox] [python]}
shift
images=("$@")
((${#images[@]})) || images=(busybox)

build_python() {
  local tarball="$out_dir/registry-python.tar"
  [ -s "$tarball" ] && return 0
  if ! command -v mmdebstrap >/dev/null; then
    echo "build-images: mmdebstrap not found; run scripts/setup-containers.sh" >&2
    return 1
  fi
  mkdir -p "$out_dir"
  local tmp="$out_dir/.$$.registry-python.tar"  # mmdebstrap picks its format by the suffix
  # A download from the mirror fails now and then: try three times.
  local attempt
  for attempt in 1 2 3; do
    if mmdebstrap --quiet --format=tar --variant=essential --include=python3-minimal \
      --dpkgopt='path-exclude=/usr/share/doc/*' --dpkgopt='path-exclude=/usr/share/man/*' \
      --dpkgopt='path-exclude=/usr/share/locale/*' --dpkgopt='path-exclude=/usr/share/info/*' \
      bookworm "$tmp"; then
      break
    fi
    rm -f "$tmp"
    [ "$attempt" -lt 3 ] || return 1
    echo "build-images: mmdebstrap failed (attempt $attempt), retrying" >&2
    sleep $((attempt * 5))
  done
  mv -f "$tmp" "$tarball"
  echo "build-images: built $tarball"
}

for image in "${images[@]}"; do
  case $image in
    busybox) ;;
    python) build_python ;;
    *) echo "build-images: unknown image '$image' (busybox, python)" >&2; exit 2 ;;
  esac
done
[[ " ${images[*]} " == *" busybox "* ]] || exit 0
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
