// The WebSocket close codes registryd sends or checks (RFC 6455 §7.4).
#pragma once

#include <cstdint>

namespace registryd::websocket {

enum class close_code : std::uint16_t {
    none = 0,  // a close frame without a code
    normal = 1000,
    going_away = 1001,
    protocol_error = 1002,
    bad_payload = 1007,  // a text message that is not UTF-8
    policy_error = 1008,
    too_big = 1009,
    try_again_later = 1013,  // shed when the memory budget runs short
};

// Whether a peer may send `code` in a close frame: 1004-1006 and 1015 are
// reserved for reporting, never sent; below 1000 and 1016-2999 are not
// assigned; 3000-4999 belong to libraries and applications.
constexpr bool is_sendable_close_code(std::uint16_t code) noexcept {
    return (code >= 1000 && code <= 1003) || (code >= 1007 && code <= 1013) || (code >= 3000 && code <= 4999);
}

}  // namespace registryd::websocket
