// libFuzzer target: the WebSocket connection state machine
// (daemon/websocket/connection) driven by a script the input chooses: reads
// of raw bytes or of well-formed client frames, partial writes, library
// frames sent, requests completed, time passing, shutdown, shedding, the
// transport failing. Small limits and a small memory budget, so that every
// policy is reached. Checks beyond "no crash": the memory budget is never
// released beyond what was charged; a closed connection neither writes nor
// reads; gather() points inside the queue; and once every request has
// completed and the connection is finished, nothing is left charged.
#include "websocket/connection.hpp"

#include <array>
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <deque>
#include <span>
#include <string>

namespace ws = registryd::websocket;

namespace {

class script {
public:
    script(const std::uint8_t* data, std::size_t size) : data_(data), size_(size) {}
    bool done() const noexcept { return at_ >= size_; }
    std::uint8_t byte() noexcept { return at_ < size_ ? data_[at_++] : 0; }
    std::string bytes(std::size_t n) {
        n = std::min(n, size_ - std::min(at_, size_));
        std::string s(reinterpret_cast<const char*>(data_ + at_), n);
        at_ += n;
        return s;
    }

private:
    const std::uint8_t* data_;
    std::size_t size_;
    std::size_t at_ = 0;
};

class driver final : public ws::connection {
public:
    driver(const ws::connection_policy& p, std::uint64_t budget) : connection(1, "127.0.0.1:1"), policy_(p), budget_(budget) {}
    ~driver() { finish(); }

    clock::time_point t{std::chrono::seconds(1)};
    std::uint64_t used = 0;
    std::deque<std::size_t> requests;  // charges of the requests in flight
    bool closed_transport = false;

    void check_closed_is_quiet() const {
        if (is_closed() && (has_output() || wants_read())) std::abort();
    }

private:
    const ws::connection_policy& policy() const noexcept override { return policy_; }
    bool charge(std::uint64_t n) override {
        if (n > budget_ - used) return false;
        used += n;
        return true;
    }
    void release(std::uint64_t n) noexcept override {
        if (n > used) std::abort();  // released more than was charged
        used -= n;
    }
    clock::time_point now() const override { return t; }
    void output_queued() override {}
    void deliver(std::string, std::size_t charge) override { requests.push_back(charge); }
    void reject(registry::errc, std::string message) override {
        registry::protocol::frame f;
        f.head = "{\"id\":null,\"error\":\"" + message + "\"}";
        send(std::move(f));
    }
    void end_protocol(bool) override {}
    void shutdown_send() override {}
    void close_transport() override { closed_transport = true; }
    void count(ws::connection_metric) override {}

    const ws::connection_policy& policy_;
    std::uint64_t budget_;
};

// A client frame: opcode, FIN, payload masked with a fixed key.
std::string client_frame(std::uint8_t first, const std::string& payload) {
    std::string out;
    out.push_back(static_cast<char>(first));
    if (payload.size() <= 125) {
        out.push_back(static_cast<char>(0x80 | payload.size()));
    } else {
        out.push_back(static_cast<char>(0x80 | 126));
        out.push_back(static_cast<char>(payload.size() >> 8));
        out.push_back(static_cast<char>(payload.size() & 0xFF));
    }
    const char key[4] = {0x11, 0x22, 0x33, 0x44};
    out.append(key, 4);
    for (std::size_t i = 0; i < payload.size(); ++i) out.push_back(static_cast<char>(payload[i] ^ key[i % 4]));
    return out;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    script in(data, size);
    ws::connection_policy policy;
    policy.max_message_bytes = 64 + in.byte();
    policy.max_inflight = 1 + in.byte() % 4;
    policy.outbound_queue_messages = 1 + in.byte() % 8;
    policy.outbound_queue_bytes = 64 + 16 * std::size_t{in.byte()};
    policy.idle = std::chrono::seconds(4);
    policy.handshake = std::chrono::seconds(2);
    driver c(policy, 256 + 32 * std::uint64_t{in.byte()});
    if (in.byte() % 8 == 0) {
        c.refuse("HTTP/1.1 400 Bad Request\r\n\r\n", c.t);
    } else {
        c.accept("HTTP/1.1 101 Switching Protocols\r\n\r\n", c.t);
    }

    while (!in.done()) {
        switch (in.byte() % 10) {
            case 0: {  // raw bytes
                std::string b = in.bytes(1 + in.byte());
                if (c.wants_read()) c.received(std::span<char>(b.data(), b.size()), c.t);
                break;
            }
            case 1:
            case 2: {  // a well-formed frame (any opcode, FIN or not)
                const std::uint8_t first = in.byte() & 0x8F;
                std::string f = client_frame(first, in.bytes(in.byte() % 200));
                if (c.wants_read()) c.received(std::span<char>(f.data(), f.size()), c.t);
                break;
            }
            case 3: {  // a partial write
                std::size_t budget = 1 + 8 * std::size_t{in.byte()};
                std::array<iovec, ws::connection::max_write_buffers> iov;
                const std::size_t count = c.gather(iov);
                if (count > iov.size()) std::abort();
                std::size_t n = 0;
                for (std::size_t i = 0; i < count; ++i) {
                    if (iov[i].iov_len == 0 || iov[i].iov_base == nullptr) std::abort();
                    n += iov[i].iov_len;
                }
                if (c.has_output() != (n > 0)) std::abort();
                c.written(std::min(n, budget));
                break;
            }
            case 4: {  // a library frame
                registry::protocol::frame f;
                f.head = in.byte() % 2 ? "{\"type\":\"event\"}" : "{\"id\":1}";
                f.head.append(std::size_t{in.byte()} * 4, ' ');
                c.send(std::move(f));
                break;
            }
            case 5:  // the oldest request completes
                if (!c.requests.empty()) {
                    const std::size_t charge = c.requests.front();
                    c.requests.pop_front();
                    c.request_done(charge, c.t);
                }
                break;
            case 6: {  // time passes
                c.t += std::chrono::milliseconds(250 * std::int64_t{in.byte()});
                c.tick(c.t, in.byte() * 100u);
                break;
            }
            case 7:
                c.shutdown(c.t);
                break;
            case 8:
                c.shed(c.t);
                break;
            case 9:
                if (in.byte() % 2) {
                    c.transport_failed();
                } else {
                    c.hung_up();
                }
                break;
        }
        c.check_closed_is_quiet();
    }
    // Every request completes; then nothing may be left charged.
    while (!c.requests.empty()) {
        const std::size_t charge = c.requests.front();
        c.requests.pop_front();
        c.request_done(charge, c.t);
    }
    c.finish();
    if (c.used != 0) std::abort();
    return 0;
}
