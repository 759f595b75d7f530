#!/usr/bin/env bash
# Builds the root filesystem tarballs of the container images, unless they
# are there already. No registry and no network needed: the test harness (or
# scripts/build-repl-images.sh) `podman import`s them.
#
#   busybox: /usr/bin/busybox from busybox-static plus a symlink per applet
#            → localhost/registry-busybox (the REPL's sh language)
#   python:  the same, plus the Debian packages python3-minimal,
#            python3.11-minimal, libpython3.11-minimal and libpython3.11-stdlib
#            as installed on this host, and the shared libraries they load
#            → localhost/registry-python (the REPL's python language). It was
#            built by mmdebstrap before, which failed in CI whenever its
#            downloads from the mirror did (three attempts running); copying
#            installed packages needs no network and takes a few seconds.
#
#   node:    the same, plus this host's `node` (NodeSource's or Debian's
#            nodejs) and the shared libraries it loads
#            → localhost/registry-node (the REPL's node language)
#   gcc:     the same, plus the Debian packages of gcc-12 and g++-12 with
#            binutils, the C library's and libstdc++'s development files, as
#            installed on this host → localhost/registry-gcc (the REPL's c and
#            cpp languages, which compile and then run)
#   clang:   the gcc image plus the Debian packages of clang 14 (clang-14,
#            its libraries and headers); it links with gcc's binutils, C
#            library and libstdc++ → localhost/registry-clang (the "clang 14"
#            versions of the c and cpp languages)
#   go:      the same as python, plus the Debian packages golang-go and
#            golang-1.19-go with its standard library, sources included (the
#            go tool hashes them), as installed on this host
#            → localhost/registry-go (the REPL's go language; it builds
#            without cgo, so no C toolchain)
#
#   tests/containers/build-images.sh OUT_DIR [busybox] [python] [node] [gcc] [clang] [go]
#       → OUT_DIR/registry-busybox.tar.gz, OUT_DIR/registry-python.tar,
#         OUT_DIR/registry-node.tar, OUT_DIR/registry-gcc.tar,
#         OUT_DIR/registry-clang.tar, OUT_DIR/registry-go.tar
set -euo pipefail

out_dir=${1:?usage: build-images.sh OUT_DIR [busybox] [python] [node] [gcc] [clang] [go]}
shift
images=("$@")
((${#images[@]})) || images=(busybox)
for image in "${images[@]}"; do
  case $image in
    busybox | python | node | gcc | clang | go) ;;
    *) echo "build-images: unknown image '$image' (busybox, python, node, gcc, clang, go)" >&2; exit 2 ;;
  esac
done

find_busybox() {
  local candidate
  for candidate in /bin/busybox /usr/bin/busybox; do
    if [ -x "$candidate" ]; then
      if ldd "$candidate" >/dev/null 2>&1; then
        echo "build-images: $candidate is dynamically linked; install busybox-static (scripts/setup-containers.sh)" >&2
        return 1
      fi
      echo "$candidate"
      return 0
    fi
  done
  echo "build-images: busybox not found; run scripts/setup-containers.sh (installs busybox-static)" >&2
  return 1
}

# A merged-/usr tree owned by root: busybox and its applets in /usr/bin, the
# usual top-level directories, root and nobody.
make_base_rootfs() {  # root dir
  local root=$1 busybox
  busybox=$(find_busybox) || return 1
  mkdir -p "$root"/{dev,etc,proc,root,sys,tmp,var/tmp,usr/bin,usr/lib,usr/lib64}
  chmod 1777 "$root/tmp" "$root/var/tmp"
  chmod 0700 "$root/root"
  ln -s usr/bin "$root/bin"
  ln -s usr/bin "$root/sbin"
  ln -s usr/lib "$root/lib"
  ln -s usr/lib64 "$root/lib64"
  cp "$busybox" "$root/usr/bin/busybox"
  local applet
  for applet in $("$busybox" --list); do
    [ "$applet" = busybox ] || ln -s busybox "$root/usr/bin/$applet"
  done
  printf 'root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/:/bin/false\n' >"$root/etc/passwd"
  printf 'root:x:0:\nnobody:x:65534:\n' >"$root/etc/group"
}

# Every file and symlink of these installed Debian packages (tar creates
# their directories and follows the tree's /lib → usr/lib).
add_packages() {  # root dir, packages...
  local root=$1 package
  shift
  for package in "$@"; do
    if ! dpkg-query -W -f='${Status}' "$package" 2>/dev/null | grep -q 'install ok installed'; then
      echo "build-images: $package is not installed; run scripts/setup-containers.sh" >&2
      return 1
    fi
  done
  copy_into "$root" < <(dpkg -L "$@" | sort -u | while read -r path; do
    [ -f "$path" ] || [ -L "$path" ] && echo "$path"
  done)
}

# The shared libraries (and the loader) of every executable and shared
# object in the tree, as this host resolves them: the name they are loaded
# by, which may be a symlink, and the real file.
# A library the tree's own files resolve inside the tree (an $ORIGIN
# RUNPATH, as gcc's plugins have) is there already: copying its host path
# would put the build directory into the image (and a /work there would
# turn the REPL's /work tmpfs into a copy of it, not writable by the user).
add_shared_libraries() {  # root dir
  local root=$1 inside
  inside=$(cd "$root" && pwd)
  copy_into "$root" < <(find "$root/usr/bin" "$root/usr/lib" "$root/usr/libexec" -type f \( -perm -u+x -o -name '*.so*' \) -print0 2>/dev/null |
    xargs -0 ldd 2>/dev/null |
    awk '$2 == "=>" && $3 ~ /^\// { print $3 } NF == 2 && $1 ~ /^\// && $2 ~ /^\(/ { print $1 }' |
    sort -u | while read -r lib; do
      case $lib in "$inside"/*) continue ;; esac
      echo "$lib"
      readlink -f "$lib"
    done)
}

add_python() {  # root dir
  add_packages "$1" python3-minimal python3.11-minimal libpython3.11-minimal libpython3.11-stdlib &&
    add_shared_libraries "$1"
}

add_node() {  # root dir
  local node
  node=$(command -v node) || { echo "build-images: node not found; run scripts/setup-node.sh" >&2; return 1; }
  { echo "$node"; readlink -f "$node"; } | copy_into "$1"
  add_shared_libraries "$1"
}

# gcc finds cc1, collect2, as and ld through its own paths; libgcc_s and
# libstdc++ are linked against at compile time and loaded at run time.
add_gcc() {  # root dir
  local triplet
  triplet=$(gcc-12 -dumpmachine) || { echo "build-images: gcc-12 not found; run scripts/setup-containers.sh" >&2; return 1; }
  local packages=(gcc-12 g++-12 cpp-12 libgcc-12-dev libstdc++-12-dev libc6-dev linux-libc-dev libcrypt-dev
    binutils libbinutils libc6 libgcc-s1 libstdc++6 "binutils-${triplet//_/-}")
  add_packages "$1" "${packages[@]}" && add_shared_libraries "$1" || return 1
  # The names the languages call them by.
  ln -sf gcc-12 "$1/usr/bin/gcc"
  ln -sf g++-12 "$1/usr/bin/g++"
  ln -sf gcc-12 "$1/usr/bin/cc"
}

# clang drives gcc's toolchain (crt files, libgcc, libstdc++, ld) found
# through /usr/lib/gcc: the gcc image's packages, plus clang's own.
add_clang() {  # root dir
  add_gcc "$1" || return 1
  command -v clang-14 >/dev/null || { echo "build-images: clang-14 not found; run scripts/setup-containers.sh" >&2; return 1; }
  add_packages "$1" clang-14 libclang-cpp14 libllvm14 libclang-common-14-dev && add_shared_libraries "$1" || return 1
  ln -sf ../lib/llvm-14/bin/clang "$1/usr/bin/clang"
  ln -sf ../lib/llvm-14/bin/clang++ "$1/usr/bin/clang++"
}

# The go tool and its precompiled standard library; /usr/lib/go and
# /usr/bin/go are golang-go's symlinks to go-1.19.
add_go() {  # root dir
  add_packages "$1" golang-go golang-src golang-1.19-go golang-1.19-src && add_shared_libraries "$1"
}

copy_into() {  # root dir; absolute host paths on stdin
  sed 's|^/||' | tar -C / --no-recursion -cf - -T - | tar -C "$1" --keep-directory-symlink -xf -
}

build() {  # image name, tarball, tar compression flag
  local name=$1 tarball=$2 compress=$3
  [ -s "$tarball" ] && return 0
  mkdir -p "$out_dir"
  local work
  work=$(mktemp -d "$out_dir/.build.XXXXXX")
  local ok=0
  if make_base_rootfs "$work/rootfs" && case $name in
    python) add_python "$work/rootfs" ;;
    node) add_node "$work/rootfs" ;;
    gcc) add_gcc "$work/rootfs" ;;
    clang) add_clang "$work/rootfs" ;;
    go) add_go "$work/rootfs" ;;
    *) true ;;
  esac; then
    tar --numeric-owner --owner=0 --group=0 -C "$work/rootfs" $compress -cf "$work/image" . &&
      mv -f "$work/image" "$tarball" && ok=1
  fi
  rm -rf "$work"
  [ "$ok" = 1 ] || return 1
  echo "build-images: built $tarball"
}

for image in "${images[@]}"; do
  case $image in
    busybox) build busybox "$out_dir/registry-busybox.tar.gz" -z ;;
    python) build python "$out_dir/registry-python.tar" "" ;;
    node) build node "$out_dir/registry-node.tar" "" ;;
    gcc) build gcc "$out_dir/registry-gcc.tar" "" ;;
    clang) build clang "$out_dir/registry-clang.tar" "" ;;
    go) build go "$out_dir/registry-go.tar" "" ;;
  esac
done
