#pragma once

#include "byte_io.hpp"
#include "crc32c.hpp"
#include "files.hpp"

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <string>
#include <string_view>

namespace registry::detail {

// Writes a new file front to back through a bounded buffer, so compaction
// never holds a whole snapshot in memory, and checksums what it writes after
// its first `unchecked` bytes.
class checksummed_writer {
public:
    checksummed_writer(int fd, const std::filesystem::path& path, std::size_t unchecked)
        : fd_(fd), path_(path), unchecked_(unchecked) {
        buffer_.reserve(buffer_bytes);
    }

    void append(std::string_view bytes) {
        if (buffer_.size() + bytes.size() > buffer_bytes) flush();
        if (bytes.size() >= buffer_bytes) {
            write(bytes);
        } else {
            buffer_.append(bytes);
        }
    }
    void append_u32(std::uint32_t value) { append_le(value, 4); }
    void append_u64(std::uint64_t value) { append_le(value, 8); }

    // Where the next byte goes.
    std::uint64_t offset() const noexcept { return written_ + buffer_.size(); }

    // Writes out the buffer; returns the CRC-32C of everything after the
    // unchecked prefix.
    std::uint32_t finish() {
        flush();
        return crc32c_final(crc_);
    }

private:
    static constexpr std::size_t buffer_bytes = 64 << 10;

    void append_le(std::uint64_t value, std::size_t width) {
        char bytes[8];
        store_le(bytes, value, width);
        append(std::string_view(bytes, width));
    }

    void flush() {
        write(buffer_);
        buffer_.clear();
    }

    void write(std::string_view bytes) {
        std::size_t skip = written_ < unchecked_ ? std::min<std::uint64_t>(unchecked_ - written_, bytes.size()) : 0;
        crc_ = crc32c_update(crc_, bytes.substr(skip));
        write_all(fd_, bytes, written_, path_);
        written_ += bytes.size();
    }

    int fd_;
    const std::filesystem::path& path_;
    std::size_t unchecked_;
    std::string buffer_;
    std::uint64_t written_ = 0;
    std::uint32_t crc_ = crc32c_initial;
};

}  // namespace registry::detail
