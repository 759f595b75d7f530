// The client's side of the WebSocket opening handshake (RFC 6455 §4.1), for
// the two clients built on registryd's framing: registry::client (C++) and a
// standby's writer_link. Text in, text out; the I/O is theirs.
#pragma once

#include <cstddef>
#include <optional>
#include <string>
#include <string_view>

namespace registryd::websocket {

struct ws_url {
    bool tls = false;    // wss://
    std::string host;    // without the brackets of an IPv6 literal
    std::string port;    // 80 or 443 when the URL has none
    std::string target;  // the path, "/" at least
};

// ws://host[:port][/path] or wss://...; nullopt with `why` ("must start with
// ws:// or wss://", "has no host", ...) otherwise.
std::optional<ws_url> parse_ws_url(std::string_view text, std::string& why);

// Sec-WebSocket-Key: 16 random bytes in base64.
std::string new_upgrade_key();

// The upgrade request for `where`, with `Authorization: Bearer` when
// `bearer_token` is not empty.
std::string upgrade_request(const ws_url& where, std::string_view key, std::string_view bearer_token);

// The response's head, up to and including its empty line's first CRLF.
struct upgrade_response {
    int status = 0;           // 0: not an HTTP/1.x status line
    std::string status_line;  // trimmed
    bool accepted = false;    // Sec-WebSocket-Accept answers the key
    std::size_t content_length = 0;
};
upgrade_response read_upgrade_response(std::string_view head, std::string_view key);

// What a client reads of the response at most before its empty line.
inline constexpr std::size_t max_upgrade_response_bytes = 16 * 1024;

}  // namespace registryd::websocket
