// Encoding of the frames registryd sends (RFC 6455 §5.2): never masked
// (server to client), never fragmented, no reserved bit. A data frame is its
// header followed by the payload, which the caller writes from wherever it
// lives (a gather write); control frames are small and encoded whole.
#pragma once

#include "websocket/close_code.hpp"

#include <array>
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

namespace registryd::websocket {

// The header of a final text frame: 2, 4 or 10 bytes.
struct frame_header {
    std::array<char, 10> bytes{};
    std::uint8_t size = 0;

    std::string_view view() const noexcept { return {bytes.data(), size}; }
};

frame_header text_frame_header(std::uint64_t payload_bytes) noexcept;

// Whole control frames. A payload is cut to 125 bytes (a close reason to
// 123, at a UTF-8 character boundary).
std::string ping_frame(std::string_view payload);
std::string pong_frame(std::string_view payload);
// A close frame with `code` and `reason`; with close_code::none an empty one.
std::string close_frame(close_code code, std::string_view reason);

}  // namespace registryd::websocket
