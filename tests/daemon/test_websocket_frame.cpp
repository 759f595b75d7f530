// The WebSocket codec of registryd (daemon/websocket/frame_*,
// websocket/accept_key, utf8_validator), in isolation: client frames built
// byte by byte, fed whole and in every split.

#include "websocket/utf8_validator.hpp"
#include "websocket/accept_key.hpp"
#include "websocket/frame_parser.hpp"
#include "websocket/frame_writer.hpp"

#include <doctest/doctest.h>

#include <cstdint>
#include <string>
#include <vector>

namespace ws = registryd::websocket;
using kind = ws::parse_event::kind;

namespace {

enum class length_form { minimal, bits16, bits64 };

struct frame_options {
    bool fin = true;
    bool masked = true;
    std::uint8_t rsv = 0;  // the three reserved bits, already shifted (0x40, 0x20, 0x10)
    length_form form = length_form::minimal;
};

// A client frame: header, mask key 0x37 0xfa 0x21 0x3d, masked payload.
std::string client_frame(std::uint8_t opcode, const std::string& payload, frame_options o = {}) {
    std::string out;
    out.push_back(static_cast<char>((o.fin ? 0x80 : 0) | o.rsv | opcode));
    const std::uint8_t mask_bit = o.masked ? 0x80 : 0;
    const std::uint64_t n = payload.size();
    if (o.form == length_form::minimal && n <= 125) {
        out.push_back(static_cast<char>(mask_bit | n));
    } else if (o.form != length_form::bits64 && n <= 0xFFFF) {
        out.push_back(static_cast<char>(mask_bit | 126));
        out.push_back(static_cast<char>(n >> 8));
        out.push_back(static_cast<char>(n & 0xFF));
    } else {
        out.push_back(static_cast<char>(mask_bit | 127));
        for (int i = 7; i >= 0; --i) out.push_back(static_cast<char>((n >> (8 * i)) & 0xFF));
    }
    const std::uint8_t key[4] = {0x37, 0xfa, 0x21, 0x3d};
    if (o.masked) out.append(reinterpret_cast<const char*>(key), 4);
    for (std::size_t i = 0; i < payload.size(); ++i) {
        const auto b = static_cast<std::uint8_t>(payload[i]);
        out.push_back(static_cast<char>(o.masked ? b ^ key[i % 4] : b));
    }
    return out;
}

std::string close_payload(std::uint16_t code, const std::string& reason = {}) {
    std::string p;
    p.push_back(static_cast<char>(code >> 8));
    p.push_back(static_cast<char>(code & 0xFF));
    return p + reason;
}

// An event with owned bytes; consecutive data pieces of one message merged.
struct seen {
    kind what;
    bool binary = false;
    bool last = false;
    std::string bytes;
    ws::close_code code = ws::close_code::none;
};

// Feeds `wire` in pieces of `step` bytes (0: all at once) and collects the
// events; stops at the first error.
std::vector<seen> parse_all(const std::string& wire, std::size_t step = 0) {
    ws::frame_parser p;
    std::string buf = wire;  // unmasked in place
    std::vector<seen> out;
    std::size_t pos = 0;
    while (pos < buf.size()) {
        const std::size_t n = step == 0 ? buf.size() - pos : std::min(step, buf.size() - pos);
        std::span<char> in(buf.data() + pos, n);
        pos += n;
        for (;;) {
            const ws::parse_event e = p.next(in);
            if (e.what == kind::need_more) break;
            if (e.what == kind::data && !out.empty() && out.back().what == kind::data && !out.back().last) {
                out.back().bytes.append(e.bytes);
                out.back().last = e.last;
            } else {
                out.push_back(seen{e.what, e.binary, e.last, std::string(e.bytes), e.code});
            }
            if (e.what == kind::error) return out;
        }
        REQUIRE(in.empty());
    }
    return out;
}

// The same events whatever the split.
std::vector<seen> parse_every_split(const std::string& wire) {
    const std::vector<seen> whole = parse_all(wire);
    for (std::size_t step : {1, 2, 3, 7, 13}) {
        const std::vector<seen> split = parse_all(wire, step);
        REQUIRE(split.size() == whole.size());
        for (std::size_t i = 0; i < whole.size(); ++i) {
            CHECK(split[i].what == whole[i].what);
            CHECK(split[i].bytes == whole[i].bytes);
            CHECK(split[i].last == whole[i].last);
            CHECK(split[i].code == whole[i].code);
        }
    }
    return whole;
}

ws::close_code first_error(const std::string& wire) {
    const std::vector<seen> events = parse_all(wire);
    REQUIRE(!events.empty());
    REQUIRE(events.back().what == kind::error);
    return events.back().code;
}

}  // namespace

TEST_CASE("frame parser: a masked text frame is unmasked, in any split") {
    const auto events = parse_every_split(client_frame(0x1, R"({"id":"1","type":"request"})"));
    REQUIRE(events.size() == 1);
    CHECK(events[0].what == kind::data);
    CHECK_FALSE(events[0].binary);
    CHECK(events[0].last);
    CHECK(events[0].bytes == R"({"id":"1","type":"request"})");
}

TEST_CASE("frame parser: an empty text message and an empty ping are reported") {
    const auto events = parse_every_split(client_frame(0x1, "") + client_frame(0x9, ""));
    REQUIRE(events.size() == 2);
    CHECK(events[0].what == kind::data);
    CHECK(events[0].last);
    CHECK(events[0].bytes.empty());
    CHECK(events[1].what == kind::ping);
    CHECK(events[1].bytes.empty());
}

TEST_CASE("frame parser: 16-bit, 64-bit and non-minimal lengths") {
    const std::string medium(300, 'm');
    const std::string large(70000, 'L');
    const auto events = parse_every_split(client_frame(0x1, medium) + client_frame(0x2, large) +
                                          client_frame(0x1, "tiny", {.form = length_form::bits64}) +
                                          client_frame(0x1, "short", {.form = length_form::bits16}));
    REQUIRE(events.size() == 4);
    CHECK(events[0].bytes == medium);
    CHECK(events[1].bytes == large);
    CHECK(events[1].binary);
    CHECK(events[2].bytes == "tiny");
    CHECK(events[3].bytes == "short");
}

TEST_CASE("frame parser: a ping between the fragments of a message is reported between them") {
    const std::string wire = client_frame(0x1, "{\"id\":", {.fin = false}) + client_frame(0x9, "are you there") +
                             client_frame(0x0, "\"7\"", {.fin = false}) + client_frame(0x0, "}");
    const auto events = parse_every_split(wire);
    REQUIRE(events.size() == 3);
    CHECK(events[0].what == kind::data);
    CHECK_FALSE(events[0].last);
    CHECK(events[0].bytes == "{\"id\":");
    CHECK(events[1].what == kind::ping);
    CHECK(events[1].bytes == "are you there");
    CHECK(events[2].what == kind::data);
    CHECK(events[2].last);
    CHECK(events[2].bytes == "\"7\"}");
}

TEST_CASE("frame parser: protocol violations are 1002") {
    SUBCASE("unmasked frame") {
        CHECK(first_error(client_frame(0x1, "hi", {.masked = false})) == ws::close_code::protocol_error);
    }
    SUBCASE("reserved bits") {
        for (std::uint8_t rsv : {0x40, 0x20, 0x10})
            CHECK(first_error(client_frame(0x1, "hi", {.rsv = rsv})) == ws::close_code::protocol_error);
    }
    SUBCASE("unknown opcodes") {
        for (std::uint8_t op : {0x3, 0x7, 0xB, 0xF})
            CHECK(first_error(client_frame(op, "")) == ws::close_code::protocol_error);
    }
    SUBCASE("fragmented control frame") {
        CHECK(first_error(client_frame(0x9, "x", {.fin = false})) == ws::close_code::protocol_error);
    }
    SUBCASE("control frame above 125 bytes") {
        CHECK(first_error(client_frame(0x9, std::string(126, 'p'))) == ws::close_code::protocol_error);
    }
    SUBCASE("continuation without a message") {
        CHECK(first_error(client_frame(0x0, "x")) == ws::close_code::protocol_error);
    }
    SUBCASE("a new message inside a fragmented one") {
        CHECK(first_error(client_frame(0x1, "a", {.fin = false}) + client_frame(0x1, "b")) ==
              ws::close_code::protocol_error);
        CHECK(first_error(client_frame(0x2, "a", {.fin = false}) + client_frame(0x1, "b")) ==
              ws::close_code::protocol_error);
    }
    SUBCASE("64-bit length with the top bit set") {
        std::string wire = client_frame(0x1, "abc", {.form = length_form::bits64});
        wire[2] = static_cast<char>(0x80);
        CHECK(first_error(wire) == ws::close_code::protocol_error);
    }
    SUBCASE("the parser stays failed") {
        ws::frame_parser p;
        std::string wire = client_frame(0x1, "hi", {.masked = false}) + client_frame(0x1, "ok");
        std::span<char> in(wire.data(), wire.size());
        CHECK(p.next(in).what == kind::error);
        CHECK(p.next(in).what == kind::error);
        CHECK(in.empty());
    }
}

TEST_CASE("frame parser: text that is not UTF-8 is 1007, across fragments too") {
    CHECK(first_error(client_frame(0x1, "bad \xC3\x28")) == ws::close_code::bad_payload);
    CHECK(first_error(client_frame(0x1, "overlong \xC0\xAF")) == ws::close_code::bad_payload);
    CHECK(first_error(client_frame(0x1, "surrogate \xED\xA0\x80")) == ws::close_code::bad_payload);
    CHECK(first_error(client_frame(0x1, "above U+10FFFF \xF4\x90\x80\x80")) == ws::close_code::bad_payload);
    // A character cut at the end of the message.
    CHECK(first_error(client_frame(0x1, "cut \xE2\x82")) == ws::close_code::bad_payload);
    CHECK(first_error(client_frame(0x1, "cut \xE2", {.fin = false}) + client_frame(0x0, "\x82")) ==
          ws::close_code::bad_payload);

    // A character split between fragments is fine; binary is not checked.
    const auto events = parse_every_split(client_frame(0x1, "euro \xE2", {.fin = false}) +
                                          client_frame(0x0, "\x82\xAC", {.fin = false}) + client_frame(0x0, "!") +
                                          client_frame(0x2, "\xC3\x28"));
    REQUIRE(events.size() == 2);
    CHECK(events[0].bytes == "euro \xE2\x82\xAC!");
    CHECK(events[1].binary);
}

TEST_CASE("frame parser: close frames") {
    SUBCASE("without a code") {
        const auto events = parse_every_split(client_frame(0x8, ""));
        REQUIRE(events.size() == 1);
        CHECK(events[0].what == kind::close);
        CHECK(events[0].code == ws::close_code::none);
    }
    SUBCASE("with a code and a reason") {
        const auto events = parse_every_split(client_frame(0x8, close_payload(1000, "bye \xC3\xA9")));
        REQUIRE(events.size() == 1);
        CHECK(events[0].what == kind::close);
        CHECK(static_cast<int>(events[0].code) == 1000);
        CHECK(events[0].bytes == "bye \xC3\xA9");
        for (std::uint16_t code : {1001, 1003, 1007, 1011, 1013, 3000, 4999}) {
            const auto e = parse_all(client_frame(0x8, close_payload(code)));
            REQUIRE(e.size() == 1);
            CHECK(e[0].what == kind::close);
            CHECK(static_cast<int>(e[0].code) == code);
        }
    }
    SUBCASE("codes a peer may not send are 1002") {
        for (std::uint16_t code : {0, 999, 1004, 1005, 1006, 1014, 1015, 1016, 2999, 5000, 65535})
            CHECK(first_error(client_frame(0x8, close_payload(code))) == ws::close_code::protocol_error);
    }
    SUBCASE("a 1-byte payload is 1002") {
        CHECK(first_error(client_frame(0x8, std::string(1, '\x03'))) == ws::close_code::protocol_error);
    }
    SUBCASE("a reason that is not UTF-8 is 1007") {
        CHECK(first_error(client_frame(0x8, close_payload(1000, "\xFF"))) == ws::close_code::bad_payload);
    }
}

TEST_CASE("frame parser: at a message boundary only between whole messages") {
    ws::frame_parser p;
    CHECK(p.at_message_boundary());
    std::string wire = client_frame(0x1, "ab", {.fin = false}) + client_frame(0x0, "cd");
    std::span<char> in(wire.data(), 1);  // half a header
    CHECK(p.next(in).what == kind::need_more);
    CHECK_FALSE(p.at_message_boundary());
    in = std::span<char>(wire.data() + 1, 7);  // the first frame
    CHECK(p.next(in).what == kind::data);
    CHECK_FALSE(p.at_message_boundary());  // the message goes on
    in = std::span<char>(wire.data() + 8, wire.size() - 8);
    const ws::parse_event e = p.next(in);
    CHECK(e.what == kind::data);
    CHECK(e.last);
    CHECK(p.at_message_boundary());
}

TEST_CASE("frame writer: text headers use the shortest length form") {
    CHECK(ws::text_frame_header(0).view() == std::string("\x81\x00", 2));
    CHECK(ws::text_frame_header(125).view() == std::string("\x81\x7D", 2));
    CHECK(ws::text_frame_header(126).view() == std::string("\x81\x7E\x00\x7E", 4));
    CHECK(ws::text_frame_header(65535).view() == std::string("\x81\x7E\xFF\xFF", 4));
    CHECK(ws::text_frame_header(65536).view() == std::string("\x81\x7F\x00\x00\x00\x00\x00\x01\x00\x00", 10));
}

TEST_CASE("frame writer: control frames") {
    CHECK(ws::ping_frame("") == std::string("\x89\x00", 2));
    CHECK(ws::pong_frame("abc") == std::string("\x8A\x03"
                                               "abc",
                                               5));
    CHECK(ws::close_frame(ws::close_code::none, "ignored") == std::string("\x88\x00", 2));
    CHECK(ws::close_frame(ws::close_code::policy_error, "slow consumer: outbound queue full") ==
          std::string("\x88\x24\x03\xF0", 4) + "slow consumer: outbound queue full");
    // A long reason is cut to 123 bytes without cutting a character.
    const std::string reason = std::string(122, 'r') + "\xC3\xA9";
    const std::string frame = ws::close_frame(ws::close_code::normal, reason);
    CHECK(frame.size() == 2 + 2 + 122);
    CHECK(frame.substr(4) == std::string(122, 'r'));
    // A frame the writer makes is one the parser takes (masking aside).
    const auto events = parse_all(client_frame(0x8, frame.substr(2)));
    REQUIRE(events.size() == 1);
    CHECK(events[0].what == kind::close);
}

TEST_CASE("accept key: the RFC 6455 example and malformed keys") {
    CHECK(ws::accept_key("dGhlIHNhbXBsZSBub25jZQ==") == "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=");
    CHECK(ws::is_valid_key("dGhlIHNhbXBsZSBub25jZQ=="));
    CHECK_FALSE(ws::is_valid_key(""));
    CHECK_FALSE(ws::is_valid_key("dGhlIHNhbXBsZSBub25jZQ"));     // no padding
    CHECK_FALSE(ws::is_valid_key("dGhlIHNhbXBsZSBub25jZQ==="));  // too long
    CHECK_FALSE(ws::is_valid_key("dGhlIHNhbXBsZSBub25j*Q=="));   // not base64
    CHECK_FALSE(ws::is_valid_key("dGhlIHNhbXBsZSBub25jZR=="));   // bits after the 16th byte
}

TEST_CASE("utf8 validator: incremental") {
    registryd::utf8_validator v;
    CHECK(v.feed("plain ascii"));
    CHECK(v.complete());
    CHECK(v.feed("\xF0\x9F"));
    CHECK_FALSE(v.complete());
    CHECK(v.feed("\x98\x80"));  // U+1F600 in two pieces
    CHECK(v.complete());
    CHECK_FALSE(v.feed("\x80"));  // a lone continuation byte
    v.reset();
    CHECK_FALSE(v.feed("\xE0\x80\x80"));  // overlong
    v.reset();
    CHECK_FALSE(v.feed("\xF5"));  // never valid
}

// The client role (registry::client reads registryd's frames and writes
// masked ones): the parser takes unmasked frames and refuses masked ones;
// masked_frame() is what a server-role parser reads back.
TEST_CASE("websocket: a parser of server frames takes unmasked frames and refuses masked ones") {
    ws::frame_parser p(ws::frame_parser::peer::server);
    std::string wire = client_frame(0x1, std::string(300, 'x'), {.masked = false}) + client_frame(0x9, "hi", {.masked = false});
    std::span<char> in(wire.data(), wire.size());
    ws::parse_event e = p.next(in);
    REQUIRE(e.what == kind::data);
    CHECK(e.last);
    CHECK(e.bytes == std::string(300, 'x'));
    e = p.next(in);
    REQUIRE(e.what == kind::ping);
    CHECK(e.bytes == "hi");
    CHECK(p.next(in).what == kind::need_more);

    ws::frame_parser q(ws::frame_parser::peer::server);
    std::string masked = client_frame(0x1, "abc");
    std::span<char> m(masked.data(), masked.size());
    e = q.next(m);
    REQUIRE(e.what == kind::error);
    CHECK(e.code == ws::close_code::protocol_error);
    CHECK(e.bytes == "server frames must not be masked");
}

TEST_CASE("websocket: masked_frame is a client frame the server's parser reads back, at every length form") {
    for (const std::size_t n : {std::size_t{0}, std::size_t{5}, std::size_t{125}, std::size_t{126}, std::size_t{70000}}) {
        std::string payload(n, 'a');
        for (std::size_t i = 0; i < n; ++i) payload[i] = static_cast<char>('a' + i % 26);
        const std::string wire = ws::masked_frame(0x1, payload, {0x01, 0x80, 0xff, 0x7e});
        CHECK((static_cast<std::uint8_t>(wire[1]) & 0x80) != 0);
        const auto events = parse_all(wire, 7);
        REQUIRE(events.size() == 1);
        CHECK(events[0].what == kind::data);
        CHECK(events[0].last);
        CHECK(events[0].bytes == payload);
    }
    const auto closing = parse_all(ws::masked_frame(0x8, ws::close_payload(ws::close_code::normal, "bye"), {1, 2, 3, 4}));
    REQUIRE(closing.size() == 1);
    CHECK(closing[0].what == kind::close);
    CHECK(closing[0].code == ws::close_code::normal);
    CHECK(closing[0].bytes == "bye");
}
