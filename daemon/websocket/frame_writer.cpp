#include "websocket/frame_writer.hpp"

#include "websocket/opcode.hpp"

namespace registryd::websocket {

namespace {

constexpr std::size_t max_control_payload = 125;

std::string control_frame(std::uint8_t op, std::string_view payload) {
    payload = payload.substr(0, max_control_payload);
    std::string out;
    out.reserve(2 + payload.size());
    out.push_back(static_cast<char>(0x80 | op));
    out.push_back(static_cast<char>(payload.size()));
    out.append(payload);
    return out;
}

// The longest prefix of `s` of at most `max` bytes that does not cut a
// UTF-8 character (continuation bytes are 10xxxxxx).
std::string_view utf8_prefix(std::string_view s, std::size_t max) {
    if (s.size() <= max) return s;
    std::size_t end = max;
    while (end > 0 && (static_cast<std::uint8_t>(s[end]) & 0xC0) == 0x80) --end;
    return s.substr(0, end);
}

}  // namespace

frame_header text_frame_header(std::uint64_t payload_bytes) noexcept {
    frame_header h;
    h.bytes[0] = static_cast<char>(0x80 | opcode::text);  // FIN, text
    if (payload_bytes <= 125) {
        h.bytes[1] = static_cast<char>(payload_bytes);
        h.size = 2;
    } else if (payload_bytes <= 0xFFFF) {
        h.bytes[1] = 126;
        h.bytes[2] = static_cast<char>(payload_bytes >> 8);
        h.bytes[3] = static_cast<char>(payload_bytes & 0xFF);
        h.size = 4;
    } else {
        h.bytes[1] = 127;
        for (int i = 0; i < 8; ++i) h.bytes[2 + i] = static_cast<char>((payload_bytes >> (56 - 8 * i)) & 0xFF);
        h.size = 10;
    }
    return h;
}

std::string ping_frame(std::string_view payload) { return control_frame(opcode::ping, payload); }

std::string pong_frame(std::string_view payload) { return control_frame(opcode::pong, payload); }

std::string close_payload(close_code code, std::string_view reason) {
    if (code == close_code::none) return {};
    const auto c = static_cast<std::uint16_t>(code);
    std::string payload;
    payload.push_back(static_cast<char>(c >> 8));
    payload.push_back(static_cast<char>(c & 0xFF));
    payload.append(utf8_prefix(reason, max_control_payload - 2));
    return payload;
}

std::string close_frame(close_code code, std::string_view reason) {
    return control_frame(opcode::close, close_payload(code, reason));
}

std::string masked_frame(std::uint8_t op, std::string_view payload, std::array<std::uint8_t, 4> mask_key) {
    if (opcode::is_control(op)) payload = payload.substr(0, max_control_payload);
    const frame_header h = text_frame_header(payload.size());
    std::string out;
    out.reserve(h.size + 4 + payload.size());
    out.append(h.view());
    out[0] = static_cast<char>(0x80 | op);
    out[1] = static_cast<char>(out[1] | 0x80);  // the mask bit
    for (const std::uint8_t k : mask_key) out.push_back(static_cast<char>(k));
    for (std::size_t i = 0; i < payload.size(); ++i) {
        out.push_back(static_cast<char>(static_cast<std::uint8_t>(payload[i]) ^ mask_key[i & 3]));
    }
    return out;
}

}  // namespace registryd::websocket
