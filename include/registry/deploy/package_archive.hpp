// Unpacking a package archive (name-version.tar.gz), which is treated as
// hostile: it is read with libarchive and written with *at() system calls
// relative to the staging directory, entry by entry, after checking each one.
//
// Refused, each with errc::invalid_package and a message naming the entry:
// an archive that is not a regular file (opened without blocking: a FIFO
// is refused, not waited on), absolute paths, ".." components, paths through
// a symlink, symlinks or hard links that point outside the package, device
// nodes, FIFOs and sockets, sparse files, duplicate entries, more entries /
// more bytes (a hard link counts as a copy of its file: targets write it out)
// / a higher compression ratio than the limits allow, a missing or invalid
// manifest.yaml, missing
// scripts/start.sh or scripts/stop.sh, a manifest whose name or version is
// not the one asked for. setuid/setgid/sticky bits are dropped.
//
// Blocking file I/O, no threads: the embedder calls it where blocking is
// fine (registryd: off its event loop). Nothing is written outside `staging`,
// and on failure `staging` is removed.
#pragma once

#include <registry/deploy/package_manifest.hpp>
#include <registry/result.hpp>

#include <cstdint>
#include <filesystem>
#include <optional>
#include <string>

namespace registry::deploy {

struct archive_limits {
    std::size_t max_entries = 10000;
    std::uint64_t max_total_bytes = 512ull << 20;  // sum of the unpacked file sizes
    std::uint64_t max_ratio = 200;                 // unpacked / compressed, checked beyond ratio_floor_bytes
    std::uint64_t ratio_floor_bytes = 1ull << 20;  // small archives compress well legitimately
    std::size_t max_path_bytes = 1024;
    std::uint64_t max_manifest_bytes = 64 * 1024;
};

struct unpack_request {
    std::filesystem::path archive;
    std::filesystem::path staging;        // must not exist yet; created by unpack_package
    std::optional<std::string> name;      // when set, the manifest's name must equal it
    std::optional<std::string> version;   // likewise
    archive_limits limits;
};

struct unpacked_package {
    package_manifest manifest;
    std::size_t entries = 0;
    std::uint64_t bytes = 0;
};

result<unpacked_package> unpack_package(const unpack_request& request);

}  // namespace registry::deploy
