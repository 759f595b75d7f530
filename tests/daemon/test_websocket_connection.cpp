// The WebSocket connection state machine (daemon/websocket/connection) without
// a socket: client bytes in, a fake clock, and the actions it asks for
// checked (the frames it gathers to write, the messages it delivers, the
// close codes, closing the transport, the memory it charges).

#include "websocket/connection.hpp"
#include "websocket/opcode.hpp"

#include <doctest/doctest.h>

#include <algorithm>
#include <array>
#include <cstdint>
#include <memory>
#include <span>
#include <map>
#include <string>
#include <vector>

namespace ws = registryd::websocket;
using namespace std::chrono_literals;

namespace {

using time_point = ws::connection::clock::time_point;

// A client frame: header, mask key 0x37 0xfa 0x21 0x3d, masked payload.
std::string client_frame(std::uint8_t opcode, const std::string& payload, bool fin = true, bool masked = true) {
    std::string out;
    out.push_back(static_cast<char>((fin ? 0x80 : 0) | opcode));
    const std::uint8_t mask_bit = masked ? 0x80 : 0;
    const std::uint64_t n = payload.size();
    if (n <= 125) {
        out.push_back(static_cast<char>(mask_bit | n));
    } else if (n <= 0xFFFF) {
        out.push_back(static_cast<char>(mask_bit | 126));
        out.push_back(static_cast<char>(n >> 8));
        out.push_back(static_cast<char>(n & 0xFF));
    } else {
        out.push_back(static_cast<char>(mask_bit | 127));
        for (int i = 7; i >= 0; --i) out.push_back(static_cast<char>((n >> (8 * i)) & 0xFF));
    }
    const std::uint8_t key[4] = {0x37, 0xfa, 0x21, 0x3d};
    if (masked) out.append(reinterpret_cast<const char*>(key), 4);
    for (std::size_t i = 0; i < payload.size(); ++i) {
        const auto b = static_cast<std::uint8_t>(payload[i]);
        out.push_back(static_cast<char>(masked ? b ^ key[i % 4] : b));
    }
    return out;
}

std::string close_payload(std::uint16_t code, const std::string& reason = {}) {
    std::string p;
    p.push_back(static_cast<char>(code >> 8));
    p.push_back(static_cast<char>(code & 0xFF));
    return p + reason;
}

// A frame the server wrote (unmasked, final).
struct server_frame {
    std::uint8_t opcode = 0;
    std::string payload;

    std::uint16_t close_code() const {
        REQUIRE(payload.size() >= 2);
        return static_cast<std::uint16_t>((static_cast<std::uint8_t>(payload[0]) << 8) |
                                          static_cast<std::uint8_t>(payload[1]));
    }
    std::string close_reason() const { return payload.substr(2); }
};

std::vector<server_frame> decode(const std::string& wire) {
    std::vector<server_frame> out;
    std::size_t pos = 0;
    while (pos < wire.size()) {
        REQUIRE(wire.size() - pos >= 2);
        const auto b0 = static_cast<std::uint8_t>(wire[pos]);
        const auto b1 = static_cast<std::uint8_t>(wire[pos + 1]);
        CHECK((b0 & 0x80) != 0);  // final
        CHECK((b1 & 0x80) == 0);  // unmasked
        std::uint64_t n = b1 & 0x7F;
        pos += 2;
        const int extra = n == 126 ? 2 : n == 127 ? 8 : 0;
        if (extra != 0) {
            n = 0;
            for (int i = 0; i < extra; ++i) n = (n << 8) | static_cast<std::uint8_t>(wire[pos + i]);
            pos += extra;
        }
        REQUIRE(wire.size() - pos >= n);
        out.push_back(server_frame{static_cast<std::uint8_t>(b0 & 0x0F), wire.substr(pos, n)});
        pos += n;
    }
    return out;
}

constexpr std::uint8_t op_text = 0x1, op_binary = 0x2, op_continuation = 0x0, op_close = 0x8, op_ping = 0x9,
                       op_pong = 0xA;

// A driver without a socket: it records what the connection asks for.
class fake_driver final : public ws::connection {
public:
    explicit fake_driver(const ws::connection_policy& p, std::uint64_t budget = 1ull << 40)
        : connection(7, "127.0.0.1:5000"), policy_(p), budget_(budget) {}
    ~fake_driver() { finish(); }

    time_point t{std::chrono::seconds(1000)};

    // What it asked for.
    std::vector<std::string> delivered;
    std::vector<std::size_t> delivered_charges;
    std::vector<std::pair<registry::errc, std::string>> rejected;
    int protocol_ended_now = 0;
    int protocol_ended_deferred = 0;
    bool send_shut = false;
    bool transport_closed = false;
    int output_signals = 0;
    std::map<ws::connection_metric, int> counted;
    std::uint64_t used = 0;

    // Completes the requests delivered when set (as a request answered inline).
    bool answer_inline = false;

    void open() {
        accept("HTTP/1.1 101 Switching Protocols\r\n\r\n", t);
        const std::string handshake = write_all();
        CHECK(handshake == "HTTP/1.1 101 Switching Protocols\r\n\r\n");
    }

    void feed(const std::string& bytes) {
        std::string buf = bytes;  // unmasked in place
        received(std::span<char>(buf.data(), buf.size()), t);
    }

    // Writes everything queued, up to `limit` bytes, as a socket would.
    std::string write_all(std::size_t limit = SIZE_MAX) {
        std::string out;
        while (has_output() && limit > 0) {
            std::array<iovec, max_write_buffers> iov;
            const std::size_t count = gather(iov);
            std::size_t n = 0;
            for (std::size_t i = 0; i < count && limit > 0; ++i) {
                const std::size_t take = std::min(iov[i].iov_len, limit);
                out.append(static_cast<const char*>(iov[i].iov_base), take);
                n += take;
                limit -= take;
            }
            written(n);
        }
        return out;
    }

    std::vector<server_frame> frames() { return decode(write_all()); }

    void complete(std::size_t i) { request_done(delivered_charges.at(i), t); }

    registry::protocol::frame text(std::string s) {
        registry::protocol::frame f;
        f.head = std::move(s);
        return f;
    }

private:
    const ws::connection_policy& policy() const noexcept override { return policy_; }
    bool charge(std::uint64_t n) override {
        if (n > budget_ - used) return false;
        used += n;
        return true;
    }
    void release(std::uint64_t n) noexcept override { used -= n; }
    clock::time_point now() const override { return t; }
    void output_queued() override { ++output_signals; }
    void deliver(std::string text, std::size_t charge) override {
        delivered.push_back(std::move(text));
        delivered_charges.push_back(charge);
        if (answer_inline) {
            send(this->text(R"({"id":"1","ok":true})"));
            request_done(charge, t);
        }
    }
    void reject(registry::errc code, std::string message) override {
        rejected.emplace_back(code, std::move(message));
    }
    void end_protocol(bool deferred) override { ++(deferred ? protocol_ended_deferred : protocol_ended_now); }
    void shutdown_send() override { send_shut = true; }
    void close_transport() override { transport_closed = true; }
    void count(ws::connection_metric what) override { ++counted[what]; }

    const ws::connection_policy& policy_;
    std::uint64_t budget_;
};

ws::connection_policy small_policy() {
    ws::connection_policy p;
    p.max_message_bytes = 64;
    p.max_inflight = 4;
    p.outbound_queue_messages = 3;
    p.outbound_queue_bytes = 1024;
    p.idle = 60s;
    p.handshake = 10s;
    return p;
}

}  // namespace

TEST_CASE("connection: a message cut anywhere is delivered once, whole, and its charge given back") {
    const auto policy = small_policy();
    const std::string wire = client_frame(op_text, R"({"id":"1","action":"list"})");
    for (std::size_t step : {1, 2, 5, 100}) {
        fake_driver c(policy);
        c.open();
        for (std::size_t pos = 0; pos < wire.size(); pos += step) c.feed(wire.substr(pos, step));
        REQUIRE(c.delivered.size() == 1);
        CHECK(c.delivered[0] == R"({"id":"1","action":"list"})");
        CHECK(c.in_flight() == 1);
        CHECK(c.used == c.delivered_charges[0]);
        CHECK(c.used >= c.delivered[0].size());
        c.complete(0);
        CHECK(c.used == 0);
        CHECK(c.wants_read());
    }
}

TEST_CASE("connection: control frames between fragments are answered, the message stays whole") {
    const auto policy = small_policy();
    fake_driver c(policy);
    c.open();
    c.feed(client_frame(op_text, "{\"a\":", false) + client_frame(op_ping, "p1") +
           client_frame(op_continuation, "1", false) + client_frame(op_pong, "unsolicited") +
           client_frame(op_continuation, "}", true));
    REQUIRE(c.delivered.size() == 1);
    CHECK(c.delivered[0] == "{\"a\":1}");
    const auto out = c.frames();
    REQUIRE(out.size() == 1);
    CHECK(out[0].opcode == op_pong);
    CHECK(out[0].payload == "p1");
}

TEST_CASE("connection: pings not yet answered get one pong, with the latest payload") {
    const auto policy = small_policy();
    fake_driver c(policy);
    c.open();
    for (int i = 0; i < 1000; ++i) c.feed(client_frame(op_ping, "ping " + std::to_string(i)));
    const auto out = c.frames();
    REQUIRE(out.size() == 1);
    CHECK(out[0].opcode == op_pong);
    CHECK(out[0].payload == "ping 999");

    // A pong partly written is finished; the next ping gets a pong of its own.
    c.feed(client_frame(op_ping, "a"));
    const std::string first = c.write_all(1);
    c.feed(client_frame(op_ping, "b"));
    const auto rest = decode(first + c.write_all());
    REQUIRE(rest.size() == 2);
    CHECK(rest[0].payload == "a");
    CHECK(rest[1].payload == "b");
}

TEST_CASE("connection: an oversize text message is discarded and answered, the connection stays open") {
    const auto policy = small_policy();
    fake_driver c(policy);
    c.open();
    const std::string big(100, 'x');
    c.feed(client_frame(op_text, big.substr(0, 50), false));
    c.feed(client_frame(op_continuation, big.substr(50), true));
    CHECK(c.delivered.empty());
    REQUIRE(c.rejected.size() == 1);
    CHECK(c.rejected[0].first == registry::errc::payload_too_large);
    CHECK(c.rejected[0].second == "message of 100 bytes exceeds the limit of 64 bytes");
    CHECK(c.counted[ws::connection_metric::rejected_too_large] == 1);
    CHECK(c.used == 0);
    CHECK(c.is_open());

    // The next message is handled as usual.
    c.feed(client_frame(op_text, "{}"));
    REQUIRE(c.delivered.size() == 1);
    CHECK(c.delivered[0] == "{}");
}

TEST_CASE("connection: a binary message is discarded and answered with invalid_request") {
    const auto policy = small_policy();
    fake_driver c(policy);
    c.open();
    c.feed(client_frame(op_binary, "\x01\x02\x03"));
    CHECK(c.delivered.empty());
    REQUIRE(c.rejected.size() == 1);
    CHECK(c.rejected[0].first == registry::errc::invalid_request);
    CHECK(c.rejected[0].second == "binary frames are not supported");
    CHECK(c.counted[ws::connection_metric::rejected_binary] == 1);
    CHECK(c.is_open());
}

TEST_CASE("connection: a message above the hard cap closes with 1009 and waits for the hang-up") {
    const auto policy = small_policy();
    fake_driver c(policy);
    c.open();
    const std::uint64_t total = ws::connection::hard_message_cap_min + 1;
    // One binary frame announcing it all; its payload fed in 1 MiB pieces.
    std::string header = client_frame(op_binary, std::string(1 << 16, 'a')).substr(0, 14);
    header[1] = static_cast<char>(0x80 | 127);
    for (int i = 0; i < 8; ++i) header[2 + i] = static_cast<char>((total >> (8 * (7 - i))) & 0xFF);
    c.feed(header);
    std::string piece(1 << 20, 'a');
    std::uint64_t fed = 0;
    while (fed < total && c.is_open()) {
        const std::size_t n = static_cast<std::size_t>(std::min<std::uint64_t>(piece.size(), total - fed));
        c.feed(piece.substr(0, n));
        fed += n;
    }
    CHECK(c.is_closing());
    const auto out = c.frames();
    REQUIRE(out.size() == 1);
    CHECK(out[0].opcode == op_close);
    CHECK(out[0].close_code() == 1009);
    CHECK(out[0].close_reason() == "message too big");
    // Nothing more is sent: the server's side is shut, it waits for the peer.
    CHECK(c.send_shut);
    CHECK_FALSE(c.transport_closed);
    CHECK(c.protocol_ended_deferred == 1);
    c.hung_up();
    CHECK(c.transport_closed);
    CHECK(c.is_closed());
}

TEST_CASE("connection: a protocol violation closes with 1002, bad UTF-8 with 1007") {
    const auto policy = small_policy();
    {
        fake_driver c(policy);
        c.open();
        c.feed(client_frame(op_text, "{}", true, false));  // unmasked
        const auto out = c.frames();
        REQUIRE(out.size() == 1);
        CHECK(out[0].close_code() == 1002);
        CHECK(c.send_shut);
        // What follows is ignored.
        c.feed(client_frame(op_text, "{}"));
        CHECK(c.delivered.empty());
        CHECK(c.wants_read());  // for the hang-up
    }
    {
        fake_driver c(policy);
        c.open();
        c.feed(client_frame(op_text, "\xff\xfe"));
        const auto out = c.frames();
        REQUIRE(out.size() == 1);
        CHECK(out[0].close_code() == 1007);
        CHECK(c.delivered.empty());
    }
}

TEST_CASE("connection: the peer's close is echoed after the responses to what it sent before") {
    const auto policy = small_policy();
    fake_driver c(policy);
    c.open();
    c.feed(client_frame(op_text, "{\"id\":1}") + client_frame(op_close, close_payload(4001, "bye")) +
           client_frame(op_text, "{\"id\":2}"));
    REQUIRE(c.delivered.size() == 1);  // nothing after the close is read
    CHECK_FALSE(c.wants_read());
    CHECK(c.frames().empty());  // the request is still running

    CHECK(c.send(c.text(R"({"id":1,"ok":true})")));
    c.complete(0);
    const auto out = c.frames();
    REQUIRE(out.size() == 2);
    CHECK(out[0].opcode == op_text);
    CHECK(out[0].payload == R"({"id":1,"ok":true})");
    CHECK(out[1].opcode == op_close);
    CHECK(out[1].close_code() == 4001);
    // The handshake is complete: the transport closes, the protocol ended
    // from a fresh handler only.
    CHECK(c.transport_closed);
    CHECK(c.protocol_ended_deferred == 1);
    CHECK(c.protocol_ended_now == 0);
    CHECK(c.used == 0);
}

TEST_CASE("connection: a request still running at the peer's close does not hold it past the deadline") {
    const auto policy = small_policy();
    fake_driver c(policy);
    c.open();
    c.feed(client_frame(op_text, "{}") + client_frame(op_close, ""));
    CHECK_FALSE(c.due(c.t + policy.handshake - 1ms));
    c.t += policy.handshake;
    CHECK(c.due(c.t));
    c.tick(c.t, 0);
    const auto out = c.frames();
    REQUIRE(out.size() == 1);
    CHECK(out[0].close_code() == 1000);  // an empty close is answered with 1000
    CHECK(c.transport_closed);
    // Its response, when it comes, has nowhere to go.
    CHECK(c.send(c.text("{}")));
    CHECK_FALSE(c.has_output());
    c.complete(0);
    CHECK(c.used == 0);
}

TEST_CASE("connection: idle, it pings at half the timeout and ends at the timeout") {
    const auto policy = small_policy();
    fake_driver c(policy);
    c.open();
    CHECK_FALSE(c.due(c.t + 29s));
    c.t += 30s;
    c.tick(c.t, 0);
    auto out = c.frames();
    REQUIRE(out.size() == 1);
    CHECK(out[0].opcode == op_ping);

    // Inbound bytes (the pong) start the count again.
    c.t += 20s;
    c.feed(client_frame(op_pong, ""));
    c.t += 29s;
    CHECK_FALSE(c.due(c.t));
    c.t += 1s;
    c.tick(c.t, 0);
    CHECK(c.frames().size() == 1);  // the second ping
    c.t += 29s;
    c.tick(c.t, 0);
    CHECK_FALSE(c.transport_closed);
    c.t += 1s;
    c.tick(c.t, 0);
    CHECK(c.transport_closed);  // no close frame: the peer is presumed gone
    CHECK(c.protocol_ended_now == 1);
    CHECK_FALSE(c.has_output());
}

TEST_CASE("connection: server shutdown lets requests finish, closes with 1001, waits for the answer") {
    const auto policy = small_policy();
    fake_driver c(policy);
    c.open();
    c.feed(client_frame(op_text, "{\"id\":1}"));
    c.shutdown(c.t);
    CHECK_FALSE(c.wants_read());
    CHECK(c.frames().empty());
    CHECK(c.send(c.text("{\"id\":1,\"ok\":true}")));
    c.complete(0);
    auto out = c.frames();
    REQUIRE(out.size() == 2);
    CHECK(out[0].opcode == op_text);
    CHECK(out[1].close_code() == 1001);
    CHECK(out[1].close_reason() == "server shutting down");
    CHECK(c.is_closing());
    CHECK(c.wants_read());  // for the peer's close
    c.feed(client_frame(op_close, close_payload(1001)));
    CHECK(c.transport_closed);
    CHECK(c.protocol_ended_now == 0);
}

TEST_CASE("connection: a closing deadline moves on while the peer still reads, not when it stalls") {
    const auto policy = small_policy();
    fake_driver c(policy);
    c.open();
    c.shutdown(c.t);
    CHECK(c.frames().size() == 1);
    const auto deadline = c.t + policy.handshake + ws::connection::close_grace_extra;
    CHECK_FALSE(c.due(deadline - 1ms));
    c.t = deadline;
    c.tick(c.t, 5000);  // the kernel still holds bytes: the peer reads
    CHECK_FALSE(c.transport_closed);
    c.t += policy.handshake + ws::connection::close_grace_extra - 1ms;
    CHECK_FALSE(c.due(c.t));
    c.t += 1ms;
    c.tick(c.t, 4000);  // fewer than before
    CHECK_FALSE(c.transport_closed);
    c.t += policy.handshake + ws::connection::close_grace_extra;
    c.tick(c.t, 4000);  // no progress
    CHECK(c.transport_closed);
}

TEST_CASE("connection: a slow consumer's full queue closes with 1008, dropping what waits") {
    const auto policy = small_policy();
    fake_driver c(policy);
    c.open();
    CHECK(c.send(c.text("{\"n\":1}")));
    CHECK(c.send(c.text("{\"n\":2}")));
    CHECK(c.send(c.text("{\"n\":3}")));
    CHECK_FALSE(c.send(c.text("{\"n\":4}")));  // outbound_queue_messages = 3
    CHECK(c.counted[ws::connection_metric::slow_consumer] == 1);
    CHECK(c.is_closing());
    CHECK(c.used == 0);
    const auto out = c.frames();
    REQUIRE(out.size() == 1);
    CHECK(out[0].close_code() == 1008);
    CHECK(out[0].close_reason() == "slow consumer: outbound queue full");
}

TEST_CASE("connection: a frame partly written is finished before the close frame") {
    const auto policy = small_policy();
    fake_driver c(policy);
    c.open();
    CHECK(c.send(c.text("{\"n\":1}")));
    CHECK(c.send(c.text("{\"n\":2}")));
    CHECK(c.send(c.text("{\"n\":3}")));
    const std::string part = c.write_all(4);
    CHECK_FALSE(c.send(c.text("{\"n\":4}")));
    const auto out = decode(part + c.write_all());
    REQUIRE(out.size() == 2);
    CHECK(out[0].payload == "{\"n\":1}");
    CHECK(out[1].close_code() == 1008);
}

TEST_CASE("connection: a single response larger than the queue's bound still goes out") {
    const auto policy = small_policy();
    fake_driver c(policy);
    c.open();
    const std::string big(4000, 'x');
    CHECK(c.send(c.text(big)));
    const auto out = c.frames();
    REQUIRE(out.size() == 1);
    CHECK(out[0].payload == big);
}

TEST_CASE("connection: the memory budget short, it closes with 1013") {
    const auto policy = small_policy();
    fake_driver c(policy, 16);
    c.open();
    CHECK_FALSE(c.send(c.text(std::string(32, 'x'))));
    CHECK(c.counted[ws::connection_metric::shed] == 1);
    const auto out = c.frames();
    REQUIRE(out.size() == 1);
    CHECK(out[0].close_code() == 1013);
    CHECK(out[0].close_reason() == "server memory budget exhausted");
    CHECK(c.used == 0);
}

TEST_CASE("connection: at the in-flight limit it stops reading, the rest waits, charged, until a request completes") {
    auto policy = small_policy();
    policy.max_inflight = 1;
    fake_driver c(policy);
    c.open();
    c.feed(client_frame(op_text, "{\"id\":1}") + client_frame(op_text, "{\"id\":2}"));
    REQUIRE(c.delivered.size() == 1);
    CHECK_FALSE(c.wants_read());
    CHECK(c.sheddable() > 0);  // the second frame's bytes
    c.complete(0);
    REQUIRE(c.delivered.size() == 2);
    CHECK(c.delivered[1] == "{\"id\":2}");
    CHECK_FALSE(c.wants_read());
    c.complete(1);
    CHECK(c.wants_read());
    CHECK(c.used == 0);
}

TEST_CASE("connection: requests answered inline do not re-enter the parser") {
    auto policy = small_policy();
    policy.max_inflight = 1;
    fake_driver c(policy);
    c.answer_inline = true;
    c.open();
    c.feed(client_frame(op_text, "{\"id\":1}") + client_frame(op_text, "{\"id\":2}") +
           client_frame(op_text, "{\"id\":3}"));
    CHECK(c.delivered.size() == 3);
    CHECK(c.in_flight() == 0);
    CHECK(c.frames().size() == 3);
    CHECK(c.wants_read());
}

TEST_CASE("connection: events are counted once written") {
    const auto policy = small_policy();
    fake_driver c(policy);
    c.open();
    // Counted by the kind its encoder gave it (registryd_events_sent_total).
    registry::protocol::frame event;
    event.head = "{\"type\":";
    event.body = std::make_shared<const std::string>("\"event\",\"revision\":3}");
    event.kind = registry::protocol::frame_kind::event;
    CHECK(c.send(event));
    CHECK(c.send(c.text(R"({"id":"1","type":"response"})")));
    CHECK(c.counted[ws::connection_metric::event_sent] == 0);
    c.write_all();
    CHECK(c.counted[ws::connection_metric::event_sent] == 1);
}

TEST_CASE("connection: a refused upgrade is the last thing written, then the transport closes") {
    const auto policy = small_policy();
    fake_driver c(policy);
    c.refuse("HTTP/1.1 400 Bad Request\r\n\r\n", c.t);
    CHECK(c.is_closing());
    CHECK(c.write_all() == "HTTP/1.1 400 Bad Request\r\n\r\n");
    CHECK(c.transport_closed);
}

TEST_CASE("connection: a transport failure ends the protocol at once and drops the queue") {
    const auto policy = small_policy();
    fake_driver c(policy);
    c.open();
    CHECK(c.send(c.text("{}")));
    c.feed(client_frame(op_text, "{\"a\":", false));
    CHECK(c.used > 0);
    c.transport_failed();
    CHECK(c.is_closed());
    CHECK(c.protocol_ended_now == 1);
    CHECK_FALSE(c.has_output());
    CHECK(c.used == 0);
    CHECK_FALSE(c.wants_read());
}
