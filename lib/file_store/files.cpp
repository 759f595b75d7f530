#include "files.hpp"

#include <cerrno>
#include <cstring>
#include <string>

#include <fcntl.h>

namespace registry::detail {

namespace fs = std::filesystem;

[[noreturn]] void throw_system_error(std::string_view what, const fs::path& path, int err) {
    throw store_error("file_store: " + std::string(what) + " " + path.string() + ": " + std::strerror(err));
}

[[noreturn]] void throw_corrupt(const fs::path& path, std::string_view why) {
    throw store_error("file_store: " + path.string() + " is corrupt: " + std::string(why));
}

unique_fd open_file(const fs::path& path, int flags) {
    int fd = ::open(path.c_str(), flags | O_CLOEXEC, 0644);
    if (fd < 0) throw_system_error("open", path, errno);
    return unique_fd(fd);
}

void write_all(int fd, std::string_view bytes, std::uint64_t offset, const fs::path& path) {
    while (!bytes.empty()) {
        ssize_t n = ::pwrite(fd, bytes.data(), bytes.size(), static_cast<off_t>(offset));
        if (n < 0) {
            if (errno == EINTR) continue;
            throw_system_error("write", path, errno);
        }
        bytes.remove_prefix(static_cast<std::size_t>(n));
        offset += static_cast<std::uint64_t>(n);
    }
}

}  // namespace registry::detail
