#include "websocket/frame_parser.hpp"

#include "websocket/opcode.hpp"

namespace registryd::websocket {

using opcode::is_control;

parse_event frame_parser::fail(close_code code, std::string_view why) {
    state_ = state::failed;
    error_ = why;
    error_code_ = code;
    parse_event e;
    e.what = parse_event::kind::error;
    e.code = code;
    e.bytes = why;
    return e;
}

parse_event frame_parser::next(std::span<char>& in) {
    for (;;) {
        if (state_ == state::failed) {
            in = in.subspan(in.size());
            parse_event e;
            e.what = parse_event::kind::error;
            e.code = error_code_;
            e.bytes = error_;
            return e;
        }
        if (state_ == state::payload) {
            parse_event e = payload(in);
            if (e.what != parse_event::kind::need_more || in.empty()) return e;
            continue;
        }

        // state::header
        while (header_len_ < header_need_ && !in.empty()) {
            header_[header_len_++] = static_cast<std::uint8_t>(in.front());
            in = in.subspan(1);
            if (header_len_ != 2) continue;

            // The first two bytes decide the header's length and everything
            // that can be refused before the payload.
            const std::uint8_t b0 = header_[0];
            const std::uint8_t b1 = header_[1];
            fin_ = (b0 & 0x80) != 0;
            opcode_ = b0 & 0x0F;
            const std::uint8_t len7 = b1 & 0x7F;
            if ((b0 & 0x70) != 0) {
                return fail(close_code::protocol_error, "reserved bits set (no extension was negotiated)");
            }
            masked_ = (b1 & 0x80) != 0;
            if (from_ == peer::client && !masked_) {
                return fail(close_code::protocol_error, "client frames must be masked");
            }
            if (from_ == peer::server && masked_) {
                return fail(close_code::protocol_error, "server frames must not be masked");
            }
            if (opcode_ != opcode::continuation && opcode_ != opcode::text && opcode_ != opcode::binary &&
                opcode_ != opcode::close && opcode_ != opcode::ping && opcode_ != opcode::pong) {
                return fail(close_code::protocol_error, "unknown opcode");
            }
            if (is_control(opcode_)) {
                if (!fin_) return fail(close_code::protocol_error, "fragmented control frame");
                if (len7 > 125) return fail(close_code::protocol_error, "control frame payload above 125 bytes");
            } else if (opcode_ == opcode::continuation && !in_message_) {
                return fail(close_code::protocol_error, "continuation frame without a message to continue");
            } else if (opcode_ != opcode::continuation && in_message_) {
                return fail(close_code::protocol_error, "new message before the fragmented one was finished");
            }
            header_need_ = static_cast<std::uint8_t>(2 + (len7 == 126 ? 2 : len7 == 127 ? 8 : 0) + (masked_ ? 4 : 0));
        }
        if (header_len_ < header_need_) return {};  // `in` is used up

        parse_event e = header_complete();
        if (e.what != parse_event::kind::need_more) return e;
    }
}

parse_event frame_parser::header_complete() {
    const std::uint8_t len7 = header_[1] & 0x7F;
    std::size_t pos = 2;
    std::uint64_t length = len7;
    if (len7 == 126) {
        length = (std::uint64_t{header_[2]} << 8) | header_[3];
        pos = 4;
    } else if (len7 == 127) {
        length = 0;
        for (std::size_t i = 2; i < 10; ++i) length = (length << 8) | header_[i];
        pos = 10;
        // Non-minimal length encodings are allowed; the top bit is not.
        if ((length >> 63) != 0) return fail(close_code::protocol_error, "64-bit payload length with the top bit set");
    }
    for (std::size_t i = 0; i < 4; ++i) mask_[i] = masked_ ? header_[pos + i] : 0;
    mask_pos_ = 0;
    remaining_ = length;
    header_len_ = 0;
    header_need_ = 2;
    state_ = state::payload;

    if (is_control(opcode_)) {
        control_.clear();
        if (remaining_ == 0) {
            state_ = state::header;
            return control_complete();
        }
        return {};
    }
    if (opcode_ != opcode::continuation) {
        in_message_ = true;
        message_binary_ = opcode_ == opcode::binary;
        utf8_.reset();
    }
    if (remaining_ == 0) {
        state_ = state::header;
        if (!fin_) return {};  // an empty fragment: nothing to report
        std::span<char> none;
        return payload(none);
    }
    return {};
}

parse_event frame_parser::payload(std::span<char>& in) {
    const std::size_t take = remaining_ < in.size() ? static_cast<std::size_t>(remaining_) : in.size();
    const std::span<char> piece = in.first(take);
    in = in.subspan(take);
    remaining_ -= take;
    if (masked_) unmask(piece);
    const bool frame_done = remaining_ == 0;
    if (frame_done) state_ = state::header;

    if (is_control(opcode_)) {
        control_.append(piece.data(), piece.size());
        if (!frame_done) return {};
        return control_complete();
    }

    const std::string_view bytes(piece.data(), piece.size());
    if (!message_binary_ && !utf8_.feed(bytes)) {
        return fail(close_code::bad_payload, "text message is not valid UTF-8");
    }
    const bool last = frame_done && fin_;
    if (last) {
        if (!message_binary_ && !utf8_.complete()) {
            return fail(close_code::bad_payload, "text message is not valid UTF-8");
        }
        in_message_ = false;
    } else if (take == 0) {
        return {};
    }
    parse_event e;
    e.what = parse_event::kind::data;
    e.binary = message_binary_;
    e.last = last;
    e.bytes = bytes;
    return e;
}

parse_event frame_parser::control_complete() {
    parse_event e;
    e.bytes = control_;
    if (opcode_ == opcode::ping) {
        e.what = parse_event::kind::ping;
        return e;
    }
    if (opcode_ == opcode::pong) {
        e.what = parse_event::kind::pong;
        return e;
    }
    // opcode::close
    e.what = parse_event::kind::close;
    if (control_.empty()) return e;
    if (control_.size() == 1) return fail(close_code::protocol_error, "close frame payload of 1 byte");
    const auto code = static_cast<std::uint16_t>((static_cast<std::uint8_t>(control_[0]) << 8) |
                                                 static_cast<std::uint8_t>(control_[1]));
    if (!is_sendable_close_code(code)) return fail(close_code::protocol_error, "close frame with an invalid code");
    const std::string_view reason = std::string_view(control_).substr(2);
    utf8_validator check;
    if (!check.feed(reason) || !check.complete()) {
        return fail(close_code::bad_payload, "close reason is not valid UTF-8");
    }
    e.code = static_cast<close_code>(code);
    e.bytes = reason;
    return e;
}

void frame_parser::unmask(std::span<char> bytes) noexcept {
    for (char& c : bytes) {
        c = static_cast<char>(static_cast<std::uint8_t>(c) ^ mask_[mask_pos_]);
        mask_pos_ = (mask_pos_ + 1) & 3;
    }
}

}  // namespace registryd::websocket
