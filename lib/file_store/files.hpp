// The store's file handling: descriptors, whole writes, read-only mappings,
// and the errors a failed syscall or a corrupt file become.
#pragma once

#include <registry/ports/store.hpp>

#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <string_view>
#include <utility>

#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

namespace registry::detail {

[[noreturn]] void throw_system_error(std::string_view what, const std::filesystem::path& path, int err);

[[noreturn]] void throw_corrupt(const std::filesystem::path& path, std::string_view why);

class unique_fd {
public:
    explicit unique_fd(int fd) noexcept : fd_(fd) {}
    unique_fd(const unique_fd&) = delete;
    unique_fd& operator=(const unique_fd&) = delete;
    ~unique_fd() {
        if (fd_ >= 0) ::close(fd_);
    }
    int get() const noexcept { return fd_; }
    int release() noexcept { return std::exchange(fd_, -1); }

private:
    int fd_;
};


unique_fd open_file(const std::filesystem::path& path, int flags);

void write_all(int fd, std::string_view bytes, std::uint64_t offset, const std::filesystem::path& path);

// A whole file, mapped read-only for as long as one operation reads it (open,
// state(), compaction). Mapping it (populated in one go) instead of read()
// into a zero-filled string saves the zeroing, the copy and a page fault per
// page of a fresh buffer, a fifth of the start-up CPU with 10,000 services.
// The store holds the directory's lock, so nobody truncates the file while it
// is mapped.
class mapped_file {
public:
    mapped_file(int fd, const std::filesystem::path& path) {
        struct stat st {};
        if (::fstat(fd, &st) != 0) throw_system_error("stat", path, errno);
        size_ = static_cast<std::size_t>(st.st_size);
        if (size_ == 0) return;  // mmap refuses an empty range
        void* p = ::mmap(nullptr, size_, PROT_READ, MAP_PRIVATE | MAP_POPULATE, fd, 0);
        if (p == MAP_FAILED) throw_system_error("mmap", path, errno);
        data_ = static_cast<const char*>(p);
    }
    mapped_file(const mapped_file&) = delete;
    mapped_file& operator=(const mapped_file&) = delete;
    ~mapped_file() { unmap(); }

    std::string_view bytes() const noexcept { return {data_, size_}; }

    void unmap() noexcept {
        if (data_) ::munmap(const_cast<char*>(data_), size_);
        data_ = nullptr;
        size_ = 0;
    }

private:
    const char* data_ = nullptr;
    std::size_t size_ = 0;
};

}  // namespace registry::detail
