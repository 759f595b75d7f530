// Incremental parser of the frames a WebSocket client sends (RFC 6455 §5),
// with every check the RFC asks of a server: client frames are masked, no
// reserved bit is set (registryd negotiates no extension), opcodes are known,
// control frames are final and at most 125 bytes and may come between the
// fragments of a message, continuations continue a message and only they do,
// text is UTF-8 across fragment boundaries, close frames carry a sendable
// code and a UTF-8 reason. A violation is reported once, with the close code
// to answer it with (1002, or 1007 for bad UTF-8); the parser is then spent.
// In the client role (registry::client reads registryd's frames) the one
// difference is the mask: a server's frames must not be masked (§5.1).
//
// No I/O: the caller hands it whatever bytes it read, in any split. Payload
// bytes are unmasked in place and handed back as views into the caller's
// buffer, so a message's bytes are copied at most once, by the caller. Only
// a control frame's payload (at most 125 bytes) is kept across calls, and a
// frame header cut by a read (at most 14 bytes).
#pragma once

#include "websocket/utf8_validator.hpp"
#include "websocket/close_code.hpp"

#include <array>
#include <cstddef>
#include <cstdint>
#include <span>
#include <string>
#include <string_view>

namespace registryd::websocket {

struct parse_event {
    enum class kind : std::uint8_t {
        need_more,  // every byte given was consumed; nothing else to report
        data,       // a piece of a text or binary message
        ping,
        pong,
        close,  // the peer's close frame
        error,  // a protocol violation: close the connection with `code`
    };
    kind what = kind::need_more;
    // data: the message is binary (else text); a binary message is not
    // checked for UTF-8.
    bool binary = false;
    // data: this piece ends the message (it may be empty).
    bool last = false;
    // data: the unmasked piece (a view into the caller's buffer);
    // ping/pong: the payload; close: the reason; error: what is wrong.
    // Valid until the next call.
    std::string_view bytes;
    // close: the peer's code (none if it sent none); error: the code to close with.
    close_code code = close_code::none;
};

class frame_parser {
public:
    // Whose frames are parsed: a client's (masked) or a server's (unmasked).
    enum class peer : std::uint8_t { client, server };

    explicit frame_parser(peer from = peer::client) noexcept : from_(from) {}

    // Consumes bytes from the front of `in` up to the next event and returns
    // it (need_more once `in` is used up). Call again with the rest of `in`
    // until need_more.
    parse_event next(std::span<char>& in);

    // True between frames with no fragmented message in progress: nothing of
    // the peer's is held.
    bool at_message_boundary() const noexcept { return state_ == state::header && header_len_ == 0 && !in_message_; }

private:
    enum class state : std::uint8_t { header, payload, failed };

    parse_event fail(close_code code, std::string_view why);
    parse_event header_complete();
    parse_event payload(std::span<char>& in);
    parse_event control_complete();
    void unmask(std::span<char> bytes) noexcept;

    peer from_;
    state state_ = state::header;
    bool masked_ = false;  // the current frame
    std::array<std::uint8_t, 14> header_{};  // 2 + 8 (length) + 4 (mask key)
    std::uint8_t header_len_ = 0;
    std::uint8_t header_need_ = 2;
    std::uint8_t opcode_ = 0;  // of the current frame
    bool fin_ = false;
    std::array<std::uint8_t, 4> mask_{};
    std::uint8_t mask_pos_ = 0;
    std::uint64_t remaining_ = 0;  // payload bytes of the current frame still to come

    bool in_message_ = false;  // a data message is started and not finished
    bool message_binary_ = false;
    utf8_validator utf8_;

    std::string control_;  // the current control frame's payload so far
    std::string_view error_;
    close_code error_code_ = close_code::none;
};

}  // namespace registryd::websocket
