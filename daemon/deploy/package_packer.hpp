// A package's directory tree packed into a .tar.gz file: what a member is
// sent to upload a package to a deploy target it offers, and what
// registry::deploy::unpack_package (include/registry/deploy/package_archive.hpp)
// unpacks on the other side.
#pragma once

#include <registry/result.hpp>

#include <filesystem>

namespace registryd {

// Writes the tree under `from` (regular files, directories, symlinks, with
// their permission bits but setuid/setgid/sticky; no owner names: uid/gid 0;
// a fixed modification time) as a gzip'd POSIX (pax) tar at `to` (created;
// must not exist: errc::internal if it does). Entries are relative to `from`
// ("manifest.yaml", "scripts/start.sh"), each directory before its contents,
// in sorted order: the same tree packs the same. Symlinks are not followed
// (a link is packed as a link); a file with several hard links is packed once
// per name. Blocking file I/O (call it off the event loop); a file is read
// 64 KiB at a time. Anything else in the tree (a FIFO, a device, a socket)
// fails with errc::invalid_package naming it; an I/O failure with
// errc::internal. On failure `to` is removed (when this call made it).
registry::result<void> pack_directory(const std::filesystem::path& from, const std::filesystem::path& to);

}  // namespace registryd
