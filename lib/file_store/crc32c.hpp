// CRC-32C (Castagnoli): the checksum of journal records and snapshots.
#pragma once

#include <cstdint>
#include <string_view>

namespace registry::detail {

inline constexpr std::uint32_t crc32c_initial = 0xFFFFFFFFu;

// Feeds `bytes` to a running CRC-32C; crc32c_final(state) is the checksum.
std::uint32_t crc32c_update(std::uint32_t crc, std::string_view bytes);

inline std::uint32_t crc32c_final(std::uint32_t crc) { return ~crc; }

inline std::uint32_t crc32c(std::string_view bytes) { return crc32c_final(crc32c_update(crc32c_initial, bytes)); }

}  // namespace registry::detail
