#!/usr/bin/env bash
# test_library.sh BUILD_DIR: the library as a package (issue 18), from the
# release tree's own install rules:
#  1. `cmake --install --component library` into a prefix: headers, one static
#     library per part, the CMake package (config + version) and a pkg-config
#     file per part.
#  2. a project outside the tree (tests/package/consumer) configured against
#     the prefix with find_package(registry 0.2 ... COMPONENTS core), built
#     from examples/embed_registry.cpp and protocol_embed.cpp and run; its link line names none of
#     yaml-cpp, libarchive, libssh2, OpenSSL or Boost (registry::core needs
#     only simdjson); asking for an older major version or a part that is not
#     installed fails at configure time.
#     The same project builds examples/register_service.cpp with
#     find_package(registry 0.2 COMPONENTS client) and registry::client; run
#     against the build tree's registryd, it registers a service, finds it
#     and deregisters it.
#  3. the same example built with `pkg-config registry-core` and run.
set -euo pipefail
build=$(realpath "$1")
src=$(realpath "$(dirname "$0")/../..")
scratch=$(mktemp -d)
trap 'rm -rf "$scratch"' EXIT
fail() { echo "FAIL: $*" >&2; exit 1; }

prefix=$scratch/prefix
cmake --install "$build" --prefix "$prefix" --component library >/dev/null
for f in include/registry/registry.hpp include/registry/task.hpp include/registry/testing/fake_clock.hpp \
  include/registry/client/client.hpp lib/libregistry_client.a lib/pkgconfig/registry-client.pc \
  lib/libregistry_core.a lib/cmake/registry/registryConfig.cmake lib/cmake/registry/registryConfigVersion.cmake \
  lib/pkgconfig/registry-core.pc; do
  [ -e "$prefix/$f" ] || fail "cmake --install: no $f under the prefix"
done
# registry::client is on Asio; the library's headers never include it.
boosted=$(grep -rl '#include <boost/' "$prefix/include" | grep -v "^$prefix/include/registry/client/" || true)
[ -z "$boosted" ] || fail "installed headers include Boost (the library never includes Asio): $boosted"

# 2. find_package
consumer=$scratch/consumer
cmake -S "$src/tests/package/consumer" -B "$consumer" -G Ninja -DCMAKE_PREFIX_PATH="$prefix" \
  -DEXAMPLES_DIR="$src/examples" >"$scratch/configure.log" 2>&1 ||
  fail "the consumer does not configure against the installed package: $(tail -20 "$scratch/configure.log")"
cmake --build "$consumer" >"$scratch/build.log" 2>&1 || fail "the consumer does not build: $(tail -30 "$scratch/build.log")"
"$consumer/embed_registry" || fail "the consumer's registry built with find_package does not run correctly"
"$consumer/protocol_embed" >/dev/null || fail "the consumer's protocol built with find_package does not run correctly"
bash "$src/examples/with_registryd.sh" "$build/registryd" "$consumer/register_service" >"$scratch/client.log" 2>&1 ||
  fail "the consumer's registry::client did not register a service with registryd: $(cat "$scratch/client.log")"
grep -q '^registered hello-1 ' "$scratch/client.log" || fail "register_service said: $(cat "$scratch/client.log")"
# What the consumer's link line names (the linker's --as-needed would hide
# an unneeded library from ldd, not from the build's dependencies).
link=$(cd "$consumer" && ninja -t commands embed_registry protocol_embed | grep -- ' -o ')
for lib in yaml-cpp archive ssh2 crypto ssl boost; do
  ! grep -q "lib$lib" <<<"$link" || fail "a consumer of registry::core links lib$lib: $link"
done
grep -q libsimdjson <<<"$link" || fail "a consumer of registry::core does not link simdjson: $link"
echo "a registry::core consumer links: $(grep -oE '[^ /]+\.(a|so)[.0-9]*' <<<"$link" | tr '\n' ' ')"

# A version the package does not satisfy, and a part that is not there, fail clearly.
mkdir -p "$scratch/v1"
sed 's/find_package(registry 0.2 /find_package(registry 1.0 /' "$src/tests/package/consumer/CMakeLists.txt" >"$scratch/v1/CMakeLists.txt"
! cmake -S "$scratch/v1" -B "$scratch/v1/build" -DCMAKE_PREFIX_PATH="$prefix" -DEXAMPLES_DIR=x >"$scratch/v1.log" 2>&1 ||
  fail "find_package(registry 1.0) accepted version $(grep -o 'VERSION [0-9.]*' "$src/CMakeLists.txt" | head -1)"
grep -q 'requested version "1.0"' "$scratch/v1.log" || fail "find_package(registry 1.0) failed without naming the version: $(cat "$scratch/v1.log")"
mkdir -p "$scratch/nopart"
sed 's/COMPONENTS core/COMPONENTS core nonexistent/' "$src/tests/package/consumer/CMakeLists.txt" >"$scratch/nopart/CMakeLists.txt"
! cmake -S "$scratch/nopart" -B "$scratch/nopart/build" -DCMAKE_PREFIX_PATH="$prefix" -DEXAMPLES_DIR=x \
  >"$scratch/nopart.log" 2>&1 || fail "find_package(registry COMPONENTS nonexistent) succeeded"
grep -q "part 'nonexistent' is not installed" "$scratch/nopart.log" ||
  fail "a missing part is not named: $(cat "$scratch/nopart.log")"

# A part brings the parts it builds on: repl needs containers and core.
mkdir -p "$scratch/repl"
cat >"$scratch/repl/CMakeLists.txt" <<'CMAKE'
cmake_minimum_required(VERSION 3.25)
project(repl_consumer LANGUAGES CXX)
find_package(registry 0.2 CONFIG REQUIRED COMPONENTS repl)
foreach(part coro core containers repl)
  if(NOT TARGET registry::${part})
    message(FATAL_ERROR "COMPONENTS repl did not define registry::${part}")
  endif()
endforeach()
if(TARGET registry::deploy)
  message(FATAL_ERROR "COMPONENTS repl loaded registry::deploy")
endif()
CMAKE
cmake -S "$scratch/repl" -B "$scratch/repl/build" -DCMAKE_PREFIX_PATH="$prefix" >"$scratch/repl.log" 2>&1 ||
  fail "find_package(registry COMPONENTS repl): $(tail -20 "$scratch/repl.log")"

# 3. pkg-config
flags=$(PKG_CONFIG_PATH="$prefix/lib/pkgconfig" pkg-config --cflags --libs registry-core) ||
  fail "pkg-config registry-core failed"
# shellcheck disable=SC2086 # the flags are words
c++ -o "$scratch/embed_pc" "$src/examples/embed_registry.cpp" $flags || fail "the example does not build with pkg-config: $flags"
"$scratch/embed_pc" >/dev/null || fail "the consumer built with pkg-config does not run correctly"
echo "library package: headers, parts, CMake config and pkg-config verified"
