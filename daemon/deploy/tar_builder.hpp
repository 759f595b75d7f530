// An in-memory tar archive, built with libarchive: what put_archive sends to
// the container engine (PUT /containers/{id}/archive takes a tar body).
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>

namespace registryd {

// Entries are written in the order added, as POSIX (pax) tar with owner
// root:root and a fixed modification time. A path must be relative and must
// not contain ".." components; a regular file's missing parent directories
// are added first (mode 0755). Throws std::invalid_argument for a bad path
// and std::runtime_error if libarchive fails.
class tar_builder {
public:
    tar_builder();
    tar_builder(const tar_builder&) = delete;
    tar_builder& operator=(const tar_builder&) = delete;
    ~tar_builder();

    tar_builder& add_file(std::string_view path, std::string_view contents, std::uint32_t mode = 0644);
    tar_builder& add_directory(std::string_view path, std::uint32_t mode = 0755);

    // Closes the archive and hands out its bytes; the builder is then empty
    // and accepts no more entries.
    std::string finish();

private:
    struct impl;
    std::unique_ptr<impl> impl_;
};

}  // namespace registryd
