// Little-endian fields of the store's files: appended to a string, and read
// back with bounds checks.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

namespace registry::detail {

inline void store_le(char* out, std::uint64_t value, std::size_t width) {
    for (std::size_t i = 0; i < width; ++i) out[i] = static_cast<char>(value >> (8 * i));
}

inline void append_le(std::string& out, std::uint64_t value, std::size_t width) {
    char bytes[8];
    store_le(bytes, value, width);
    out.append(bytes, width);
}

inline void append_u32(std::string& out, std::uint32_t value) { append_le(out, value, 4); }
inline void append_u64(std::string& out, std::uint64_t value) { append_le(out, value, 8); }

inline void append_bytes(std::string& out, std::string_view bytes) {
    append_u32(out, static_cast<std::uint32_t>(bytes.size()));
    out.append(bytes);
}

// Reads little-endian fields; running past the end sets failed() and yields
// zeros, so parsers check once at the end instead of after every field.
// offset() is where the next field lies in the file the bytes come from,
// given where they start (`file_offset`).
class byte_reader {
public:
    explicit byte_reader(std::string_view bytes, std::uint64_t file_offset = 0)
        : rest_(bytes), end_offset_(file_offset + bytes.size()) {}

    std::uint8_t u8() { return static_cast<std::uint8_t>(le(1)); }
    std::uint32_t u32() { return static_cast<std::uint32_t>(le(4)); }
    std::uint64_t u64() { return le(8); }
    std::string_view bytes(std::size_t n) {
        if (n > rest_.size()) {
            failed_ = true;
            rest_ = {};
            return {};
        }
        std::string_view taken = rest_.substr(0, n);
        rest_.remove_prefix(n);
        return taken;
    }
    std::string_view sized_bytes() { return bytes(u32()); }

    bool failed() const noexcept { return failed_; }
    bool at_end() const noexcept { return !failed_ && rest_.empty(); }
    std::uint64_t offset() const noexcept { return end_offset_ - rest_.size(); }

private:
    std::uint64_t le(std::size_t width) {
        std::string_view b = bytes(width);
        std::uint64_t value = 0;
        for (std::size_t i = 0; i < b.size(); ++i) value |= std::uint64_t{static_cast<unsigned char>(b[i])} << (8 * i);
        return value;
    }

    std::string_view rest_;
    std::uint64_t end_offset_;
    bool failed_ = false;
};

}  // namespace registry::detail
