// Encoding of the frames registryd sends (RFC 6455 §5.2): never masked
// (server to client), never fragmented, no reserved bit. A data frame is its
// header followed by the payload, which the caller writes from wherever it
// lives (a gather write); control frames are small and encoded whole.
// A client's frames (registry::client) are masked with a key it draws per
// frame (§5.3), so they are encoded whole too: masking copies the payload.
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

// A whole final frame of `op` (text, ping, pong or close) as a client sends
// it: masked with `mask_key`. A control payload is cut as above.
std::string masked_frame(std::uint8_t op, std::string_view payload, std::array<std::uint8_t, 4> mask_key);
// The payload of a close frame: the code and the reason cut to 123 bytes.
std::string close_payload(close_code code, std::string_view reason);

}  // namespace registryd::websocket
