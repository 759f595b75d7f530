// The WebSocket frame opcodes (RFC 6455 §5.2).
#pragma once

#include <cstdint>

namespace registryd::websocket::opcode {

inline constexpr std::uint8_t continuation = 0x0;
inline constexpr std::uint8_t text = 0x1;
inline constexpr std::uint8_t binary = 0x2;
inline constexpr std::uint8_t close = 0x8;
inline constexpr std::uint8_t ping = 0x9;
inline constexpr std::uint8_t pong = 0xA;

// Control frames (close, ping, pong and the reserved 0xB-0xF) have the high bit set.
constexpr bool is_control(std::uint8_t op) noexcept { return (op & 0x8) != 0; }

}  // namespace registryd::websocket::opcode
