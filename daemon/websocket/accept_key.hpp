// The opening handshake's key check (RFC 6455 §4.2): the client's
// Sec-WebSocket-Key is 16 random bytes in base64, and the server proves it
// read it by answering Sec-WebSocket-Accept = base64(SHA-1(key + GUID)).
#pragma once

#include <string>
#include <string_view>

namespace registryd::websocket {

// True for 24 characters of base64 that decode to exactly 16 bytes.
bool is_valid_key(std::string_view key) noexcept;

std::string accept_key(std::string_view key);

}  // namespace registryd::websocket
