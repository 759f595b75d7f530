// The only translation unit of registryd that includes Boost.Beast.
//
// Structure (after Beast's advanced_server example):
//   listener      accepts TCP connections, hands each to an http_session.
//   http_session  reads HTTP requests (Beast); serves /healthz and /metrics;
//                 on a WebSocket upgrade hands its socket to a ws_session.
//   ws_session    one per WebSocket connection: answers the upgrade, speaks
//                 RFC 6455 itself over the TCP socket (websocket/frame_*),
//                 owns the library's protocol::connection and is its outbox.
//   sweep         one server-wide periodic check of every ws_session's idle
//                 and closing deadlines (no timer per connection).
//
// Lifetimes are explicit: a session is owned by shared_ptrs held by its
// pending asynchronous operations and by its in-flight request coroutines;
// it is destroyed when the last of them completes. Everything runs on the one
// io_context thread (no strands needed).

#include "server.hpp"

#include "observability/log.hpp"
#include "websocket/accept_key.hpp"
#include "websocket/close_code.hpp"
#include "websocket/frame_fifo.hpp"
#include "websocket/frame_parser.hpp"
#include "websocket/frame_writer.hpp"
#include "websocket/memory_budget.hpp"

#include <registry/async_scope.hpp>
#include <registry/protocol/connection.hpp>
#include <registry/protocol/frame.hpp>
#include <registry/registry.hpp>
#include <registry/task.hpp>

#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/core/tcp_stream.hpp>
#include <boost/beast/http/parser.hpp>
#include <boost/beast/http/read.hpp>
#include <boost/beast/http/rfc7230.hpp>
#include <boost/beast/http/string_body.hpp>
#include <boost/beast/http/write.hpp>
#include <boost/beast/websocket/rfc6455.hpp>

#include <linux/sockios.h>
#include <sys/ioctl.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <chrono>
#include <cstdint>
#include <exception>
#include <limits>
#include <map>
#include <optional>
#include <span>
#include <sstream>
#include <stdexcept>
#include <string>
#include <unordered_map>
#include <utility>
#include <vector>

namespace registryd {

namespace {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
using tcp = asio::ip::tcp;
using error_code = boost::system::error_code;

constexpr std::string_view server_name = "registryd";

// Plain HTTP requests are tiny (GET without a body).
constexpr std::size_t http_header_limit = 16 * 1024;
constexpr std::uint64_t http_body_limit = 64 * 1024;

// WebSocket input is read in pieces of at most this many bytes, into one
// buffer shared by every session (one thread; nothing is kept in it between
// reads).
constexpr std::size_t read_chunk_bytes = 64 * 1024;
std::array<char, read_chunk_bytes> read_scratch;

// At most this many queued frames go out in one sendmsg (3 iovecs each).
constexpr std::size_t max_frames_per_write = 64;

// The server's list of sessions to flush keeps at most this capacity.
constexpr std::size_t flush_list_keep = 4096;

// Beyond limits.max_message_bytes a message is read and discarded (the
// connection survives, see ws_session). Beyond this hard cap the connection
// is closed with 1009: nobody legitimately streams that much into a registry
// request.
constexpr std::uint64_t hard_message_cap_min = 64 * 1024 * 1024;

// After a retryable accept error (EMFILE, ENFILE, ENOBUFS, ENOMEM) wait this
// long before accepting again instead of spinning.
constexpr auto accept_backoff = std::chrono::milliseconds(100);

// How long a closing WebSocket may take (its last write, the close frame and
// the peer's reply) beyond timeouts.handshake before its socket is closed
// under it.
constexpr auto close_grace_extra = std::chrono::seconds(1);

// The sweep runs every quarter of the shortest WebSocket timeout, between
// these bounds: a ping or a close is at most that late.
constexpr auto sweep_period_min = std::chrono::milliseconds(100);
constexpr auto sweep_period_max = std::chrono::milliseconds(1000);

std::chrono::milliseconds sweep_period_for(const config& c) {
    const auto shortest = std::chrono::duration_cast<std::chrono::milliseconds>(
        std::min(c.timeouts.idle, c.timeouts.handshake));
    return std::clamp(shortest / 4, sweep_period_min, sweep_period_max);
}

// A WebSocket session's socket is bound to the io_context's own executor:
// then a pending wait carries an 8-byte executor instead of two
// any_io_executors, which is most of what an idle connection's pending
// operation costs.
using ws_socket = asio::basic_stream_socket<tcp, asio::io_context::executor_type>;

// Moves an accepted socket's descriptor into a ws_socket.
ws_socket adopt_socket(asio::io_context& ioc, tcp::socket&& s, error_code& ec) {
    ws_socket out(ioc.get_executor());
    const tcp protocol = s.local_endpoint(ec).protocol();
    if (ec) return out;
    const auto fd = s.release(ec);
    if (ec) return out;
    out.assign(protocol, fd, ec);
    if (ec) ::close(fd);
    return out;
}

std::string endpoint_string(const tcp::socket& s) {
    error_code ec;
    auto ep = s.remote_endpoint(ec);
    if (ec) return "?";
    const auto addr = ep.address();
    return (addr.is_v6() ? "[" + addr.to_string() + "]" : addr.to_string()) + ":" + std::to_string(ep.port());
}

// The address part of endpoint_string()'s "ADDR:PORT" / "[V6]:PORT": what
// the protocol's per-source quotas count by.
std::string source_address(std::string_view endpoint) {
    endpoint = endpoint.substr(0, endpoint.rfind(':'));
    if (endpoint.size() >= 2 && endpoint.front() == '[') endpoint = endpoint.substr(1, endpoint.size() - 2);
    return std::string(endpoint);
}

registry::protocol::limits protocol_limits_from(const config& c) {
    registry::protocol::limits l;
    l.max_message_bytes = c.limits.max_message_bytes;
    l.max_subscriptions = c.limits.max_subscriptions_per_connection;
    l.max_subscriptions_per_source = c.quotas.subscriptions_per_address;
    l.max_page_items = c.listings.max_page_items;
    l.max_open_listings = c.listings.max_open;
    l.max_open_listings_per_connection = c.listings.max_open_per_connection;
    return l;
}

// True for frames that carry an event (as opposed to a response); they are
// counted in registryd_events_sent_total once written. The protocol layer
// encodes events as `{"type":"event",...`.
bool is_event_frame(const registry::protocol::frame& f) noexcept {
    constexpr std::string_view prefix = "{\"type\":\"event\"";
    std::string_view head = f.head;
    if (head.size() >= prefix.size()) return head.substr(0, prefix.size()) == prefix;
    // A head shorter than the prefix: the prefix continues into the body.
    if (!f.body || prefix.substr(0, head.size()) != head) return false;
    const std::string_view rest = prefix.substr(head.size());
    return std::string_view(*f.body).substr(0, rest.size()) == rest;
}

class ws_session;
class http_session;

// One connection's place in its source address's count
// (limits.max_connections_per_source): taken at accept, moved from the HTTP
// session to the WebSocket session, given back when the connection ends.
// (One pointer: it is part of every idle connection.)
class source_slot {
public:
    struct count {
        std::size_t connections = 0;
        std::unordered_map<asio::ip::address, count>* in = nullptr;  // to erase itself at 0
    };
    using counts = std::unordered_map<asio::ip::address, count>;

    source_slot() = default;
    source_slot(counts& c, const asio::ip::address& a) : entry_(&*c.try_emplace(a).first) {
        entry_->second.in = &c;
        ++entry_->second.connections;
    }
    source_slot(source_slot&& o) noexcept : entry_(std::exchange(o.entry_, nullptr)) {}
    source_slot& operator=(source_slot&& o) noexcept {
        if (this != &o) {
            give_back();
            entry_ = std::exchange(o.entry_, nullptr);
        }
        return *this;
    }
    ~source_slot() { give_back(); }

private:
    void give_back() noexcept {
        if (entry_ && --entry_->second.connections == 0) entry_->second.in->erase(entry_->first);
        entry_ = nullptr;
    }

    counts::value_type* entry_ = nullptr;  // unordered_map nodes never move
};

}  // namespace

// State shared by the listener and every session. Sessions hold a
// shared_ptr to it.
struct server::state : std::enable_shared_from_this<server::state> {
    state(asio::io_context& io, const config& c, registry::registry& r, metrics& mm,
          std::function<metrics::gauges()> g, registry::container_manager* containers)
        : ioc(io),
          cfg(c),
          reg(r),
          proto(r, protocol_limits_from(c), containers),
          m(mm),
          gauges(std::move(g)),
          acceptor(io),
          backoff(io),
          sweep_timer(io),
          sweep_period(sweep_period_for(c)),
          budget(c.limits.memory_budget_bytes) {
        m.watch(budget);
    }

    asio::io_context& ioc;
    const config cfg;
    registry::registry& reg;
    registry::protocol::server proto;
    metrics& m;
    std::function<metrics::gauges()> gauges;

    tcp::acceptor acceptor;
    asio::steady_timer backoff;
    asio::steady_timer sweep_timer;
    const std::chrono::milliseconds sweep_period;

    // Sessions with frames to write, flushed together by one posted handler:
    // the frames each one queues meanwhile (pipelined responses, the events
    // of a change) go out in one write.
    std::vector<std::shared_ptr<ws_session>> to_flush;

    std::uint64_t next_id = 1;  // connection ids; also the registry's session ids (never 0)
    // Connections not (yet) upgraded, oldest (lowest id) first: at
    // limits.max_handshakes the oldest is closed for a new one.
    std::map<std::uint64_t, std::weak_ptr<http_session>> http_sessions;
    std::unordered_map<std::uint64_t, std::weak_ptr<ws_session>> ws_sessions;
    // Connections per source address (limits.max_connections_per_source).
    source_slot::counts per_source;
    // Sockets the server may hold: RLIMIT_NOFILE less server::descriptor_reserve.
    std::size_t socket_cap = 0;

    memory_budget budget;

    bool shutting_down = false;
    std::function<void()> on_drained;

    void do_accept();
    void on_accept(const error_code& ec, tcp::socket socket);

    void schedule_flush(std::shared_ptr<ws_session> s);
    void flush_scheduled();

    void arm_sweep();
    void sweep();

    // Frees at least `n` bytes of the memory budget by shedding the most
    // expensive WebSocket connections, as long as they cost more than
    // `asking` does with `n` more; false if that is not enough (the asking
    // connection is then the most expensive).
    bool relieve(std::uint64_t n, const ws_session& asking);

    // Closes the oldest connection that has not upgraded (to make room).
    bool evict_oldest_handshake(std::string_view reason);

    void check_drained() {
        if (!shutting_down || !on_drained || !http_sessions.empty() || !ws_sessions.empty()) return;
        asio::post(ioc, std::exchange(on_drained, {}));
    }

    // The sessions still alive, held: shutting one down may end it and erase
    // it from the map, so callers walk this copy instead.
    template <typename Map>
    static auto live(const Map& sessions) {
        using session = typename Map::mapped_type::element_type;
        std::vector<std::shared_ptr<session>> out;
        for (const auto& [id, w] : sessions)
            if (auto s = w.lock()) out.push_back(std::move(s));
        return out;
    }
};

namespace {

//------------------------------------------------------------------------------
// WebSocket session
//
// registryd's own RFC 6455 server side over the plain TCP socket (Beast only
// reads the upgrade request): the frame codec is websocket/frame_parser /
// websocket/frame_writer, the session does the I/O and the policies below.
// An idle connection holds no buffer and no composed operation: it waits for
// readability (socket.async_wait), reads into one buffer shared by every
// session (everything runs on one thread) and keeps only what the parser
// needs between reads (a cut frame header, a control frame's payload, the
// message being assembled). Timeouts are not per-connection timers but one
// server-wide sweep (server::state::sweep) over each session's timestamps.
//
// Handshake:
//   Beast's checks and answers are reproduced (400 for a request that is not
//   a valid upgrade or has a missing/malformed Sec-WebSocket-Key, 426 with
//   Sec-WebSocket-Version: 13 for another version); no subprotocol and no
//   extension is ever accepted (permessage-deflate is not offered back).
//   Bytes Beast read past the upgrade request (a client pipelining its first
//   frames) are handed over and parsed first.
//
// MEMORY BUDGET (docs/protocol.md, "Limits"):
//   The message being assembled, the texts of requests in flight, bytes kept
//   while paused and the queued library frames are charged to the server's
//   one memory_budget before they are allocated (a message grows by doubling
//   up to limits.max_message_bytes). A charge that does not fit sheds the
//   connections that hold more (server::state::relieve); if this one holds
//   the most, it is closed itself: 1013, reason "server memory budget
//   exhausted", its queue and partial message dropped at once. Control
//   frames are not charged: at most one pong waits unwritten (queue_pong),
//   plus one idle ping and the close frame.
//
// Outbound (the library calls send()):
//   Frames go into a bounded FIFO queue, each entry holding its frame header
//   inline and the library's {head, *body} (never copied). Every frame queued
//   when the session gets to write goes out in one gather write (sendmsg of
//   up to max_frames_per_write frames), attempted right away on the
//   non-blocking socket; only when the socket's buffer is full does the
//   session wait for writability. SLOW-CONSUMER POLICY: when a frame arrives
//   while the queue already holds limits.outbound_queue_messages frames, or
//   would then hold more than limits.outbound_queue_bytes bytes, send()
//   refuses it (returns false; the library ends the connection's
//   subscriptions) and the session closes the WebSocket with 1008 (policy
//   violation), reason "slow consumer: outbound queue full". Frames still
//   queued are dropped; a frame partly written is finished first, then the
//   close frame is sent. An empty queue always takes one frame, so a single
//   response larger than outbound_queue_bytes is still delivered. The client
//   is expected to reconnect and resume with from_revision (it loses nothing).
//
// Inbound:
//   Frames are parsed as they arrive. A protocol violation (unmasked frame,
//   reserved bit, unknown opcode, bad fragmentation, bad close frame) closes
//   the connection with 1002, a text message that is not UTF-8 with 1007.
//   Pings are answered with a pong carrying their payload, also between the
//   fragments of a message; a pong not yet written answers the latest ping
//   only. OVERSIZE POLICY: a text message longer than
//   limits.max_message_bytes is not an error of the connection: the rest of
//   it is read and discarded, and once it is complete the client gets
//   {id:null, error:{code:"payload_too_large"}} through connection::reject();
//   the connection stays open. Binary messages are discarded likewise and
//   answered with invalid_request. Only a message above the hard cap
//   (max(64 MiB, 4 x max_message_bytes)) fails the connection: close 1009.
//   Each complete text message is copied into a coroutine that runs
//   connection::handle() in the session's async_scope. At most
//   limits.max_inflight_per_connection of them run at once: at that count the
//   session stops reading until one completes (TCP back-pressure; bytes
//   already read wait in a buffer released once they are parsed). (While
//   reading is paused no inbound traffic is seen: a pause longer than
//   timeouts.idle_seconds, i.e. a stalled store, ends in an idle timeout.)
//
// Idle timeout:
//   After timeouts.idle_seconds / 2 without inbound traffic the session sends
//   a ping; after timeouts.idle_seconds without any it closes the TCP
//   connection (no close frame: the peer is presumed gone). Checked by the
//   sweep, so up to one sweep period (at most 1 s) late.
//
// Closing:
//   On a read/write error: connection::close() at once, the queue is
//   dropped; in-flight requests run to completion (their responses are
//   discarded) and hold the session alive until then.
//   On the peer's close frame: nothing after it is read; as on a server
//   shutdown (below) the requests before it complete (within
//   timeouts.handshake_seconds, checked by the sweep) and their responses are
//   sent, then the close is answered with the peer's code (1000 if it gave
//   none) and the TCP connection is closed.
//   On server shutdown: stop reading, let in-flight requests complete (their
//   responses are still sent), connection::close(), flush the queue, close
//   with 1001 (going away).
//   A close the server starts waits for the peer's close frame (reading and
//   discarding anything else) for at most timeouts.handshake_seconds + 1 s,
//   then the socket is closed under it; after a protocol error the server
//   stops sending and only waits for the peer to hang up, as long. The
//   deadline starts again while the kernel's send queue (SIOCOUTQ) shrinks:
//   a peer that still reads, however slowly, gets up to the close frame.
//------------------------------------------------------------------------------
class ws_session final : public std::enable_shared_from_this<ws_session>, public registry::protocol::outbox {
public:
    using clock = std::chrono::steady_clock;

    ws_session(std::shared_ptr<server::state> st, std::uint64_t id, ws_socket&& socket, std::string remote,
               source_slot slot)
        : st_(std::move(st)),
          slot_(std::move(slot)),
          id_(id),
          remote_(std::move(remote)),
          socket_(std::move(socket)),
          conn_(st_->proto, *this, id, source_address(remote_)) {
        st_->m.connection_opened();
    }

    ~ws_session() override {
        // Every in-flight request has completed (each held a shared_ptr).
        state_ = phase::closed;  // the connection may still send while it ends
        conn_.close();
        drop_message();
        drop_unread();
        release(queued_bytes_);
        st_->ws_sessions.erase(id_);
        st_->m.connection_closed();
        log::debug("connection closed", {{"conn", id_}, {"remote", remote_}});
        st_->check_drained();
    }

    ws_session(const ws_session&) = delete;
    ws_session& operator=(const ws_session&) = delete;

    // `early` holds bytes that arrived after the upgrade request in the same
    // read (a pipelining client's first frames): they are parsed first.
    template <typename Body, typename Allocator>
    void run(const http::request<Body, http::basic_fields<Allocator>>& req, std::string_view early) {
        st_->ws_sessions.emplace(id_, weak_from_this());
        error_code ec;
        socket_.non_blocking(true, ec);
        if (ec) {
            log::debug("websocket handshake failed", {{"conn", id_}, {"remote", remote_}, {"error", ec.message()}});
            state_ = phase::closed;
            return;
        }

        // The answer is written at once (a fresh socket's buffer takes it).
        auto answer = upgrade_response(req);
        queued q;
        q.f.head = std::move(answer.bytes);
        if (!answer.accepted) {
            log::debug("websocket handshake failed", {{"conn", id_}, {"remote", remote_}, {"error", answer.error}});
            // The refusal is the last thing written; then the socket closes.
            state_ = phase::closing;
            peer_closed_ = true;
            deadline_ = clock::now() + st_->cfg.timeouts.handshake;
            q.what = queued::kind::close;
            queue_.push_back(std::move(q));
            flush();
            return;
        }
        queue_.push_back(std::move(q));
        state_ = phase::open;
        flush();
        if (state_ != phase::open) return;  // the write failed
        last_inbound_ = clock::now();
        log::debug("connection opened", {{"conn", id_}, {"remote", remote_}});
        if (st_->shutting_down) {
            shutdown();
            return;
        }
        if (!early.empty()) {
            std::string bytes(early);  // the parser unmasks in place
            std::span<char> in(bytes.data(), bytes.size());
            parse(in);
            keep_unread(in);
        }
        maybe_read();
    }

    // Server shutdown, see the class comment.
    void shutdown() {
        if (state_ != phase::open) return;
        state_ = phase::draining;
        drop_unread();
        if (in_flight_ == 0) begin_close(drain_code_, "server shutting down", true);
    }

    void close_socket() {
        error_code ec;
        socket_.close(ec);
    }

    // The sweep's question: does tick() have something to do at `now`?
    bool due(clock::time_point now) const noexcept {
        switch (state_) {
            case phase::open: {
                const clock::duration idle = st_->cfg.timeouts.idle;
                return now - last_inbound_ >= (ping_sent_ ? idle : idle / 2);
            }
            case phase::closing:
                return now >= deadline_;
            case phase::draining:  // after the peer's close: its requests have until deadline_
                return peer_closed_ && now >= deadline_;
            default:
                return false;
        }
    }

    // Idle ping and timeout, closing deadline (see the class comment).
    void tick(clock::time_point now) {
        if (!due(now)) return;
        if (state_ == phase::draining) {
            log::debug("requests still in flight at the peer's close, closing", {{"conn", id_}, {"in_flight", in_flight_}});
            begin_close(drain_code_, {}, true);
            return;
        }
        if (state_ == phase::closing) {
            // A peer that still reads what the kernel holds for it is given
            // the time to read up to the close frame (a slow consumer gets
            // its 1008).
            int unsent = 0;
            if (::ioctl(socket_.native_handle(), SIOCOUTQ, &unsent) == 0 && unsent > 0 &&
                static_cast<std::uint32_t>(unsent) < kernel_unsent_) {
                kernel_unsent_ = static_cast<std::uint32_t>(unsent);
                extend_close_deadline();
                return;
            }
            log::debug("closing connection forcibly", {{"conn", id_}});
            end(false);
            return;
        }
        if (!ping_sent_) {
            ping_sent_ = true;
            enqueue(websocket::ping_frame({}), queued::kind::control);
            return;
        }
        log::info("connection timed out", {{"conn", id_}, {"remote", remote_}});
        end(false);
    }

    // registry::protocol::outbox
    bool send(registry::protocol::frame f) override {
        // The transport is gone or going: the frame has nowhere to go. This
        // is not back-pressure, so it is not refused.
        if (state_ != phase::open && state_ != phase::draining) return true;

        const auto& lim = st_->cfg.limits;
        const std::size_t size = f.size();
        if (queued_frames_ != 0 &&
            (queued_frames_ >= lim.outbound_queue_messages || queued_bytes_ + size > lim.outbound_queue_bytes)) {
            st_->m.slow_consumer_disconnect();
            log::warn("slow consumer: outbound queue full, closing",
                      {{"conn", id_},
                       {"remote", remote_},
                       {"queued_messages", queued_frames_},
                       {"queued_bytes", queued_bytes_}});
            // We are inside the library (send() is called while it fans out
            // events): connection::close() must wait for a fresh handler.
            st_->m.refused("slow_consumer");
            begin_close(websocket::close_code::policy_error, "slow consumer: outbound queue full", false);
            return false;
        }
        if (!charge(size)) {
            shed();
            return false;
        }

        queued q;
        q.what = is_event_frame(f) ? queued::kind::event : queued::kind::response;
        q.header = websocket::text_frame_header(size);
        q.f = std::move(f);
        push(std::move(q));
        ++queued_frames_;
        queued_bytes_ += size;
        return true;
    }

    // What this connection holds of the memory budget.
    std::uint64_t charged() const noexcept { return sheddable() + inflight_bytes_; }

    // What closing it would give back at once (requests in flight keep
    // theirs until they complete).
    std::uint64_t sheddable() const noexcept {
        if (state_ != phase::open && state_ != phase::draining) return 0;
        return queued_bytes_ + message_charge_ + (unread_ ? unread_->size() : 0);
    }

    // The memory budget is short and this connection costs the most: close
    // it with 1013, dropping what it holds.
    void shed() {
        if (state_ != phase::open && state_ != phase::draining) return;
        st_->m.refused("memory_budget");
        log::warn("memory budget exhausted, closing the most expensive connection",
                  {{"conn", id_}, {"remote", remote_}, {"charged_bytes", charged()}});
        begin_close(websocket::close_code::try_again_later, "server memory budget exhausted", false);
    }

    // Writes what is queued (see the class comment); called once per burst
    // of send()s through server::state::schedule_flush.
    void flush() {
        flush_scheduled_ = false;
        if (writing_ || state_ == phase::closed) return;
        while (!queue_.empty()) {
            const ssize_t n = write_queued();
            if (n < 0) {
                if (errno == EINTR) continue;
                if (errno == EAGAIN || errno == EWOULDBLOCK) {
                    wait_writable();
                    return;
                }
                on_transport_error(error_code(errno, boost::system::system_category()), "write");
                return;
            }
            written(static_cast<std::size_t>(n));
            if (state_ == phase::closed) return;
        }
    }

private:
    enum class phase : std::uint8_t {
        created,
        open,      // reading and writing
        draining,  // server shutdown: no more reads, waiting for in-flight requests
        closing,   // connection closed; flushing, closing the WebSocket
        closed,    // transport gone
    };

    struct queued {
        enum class kind : std::uint8_t {
            response,  // a library frame
            event,     // a library frame carrying an event (counted once written)
            control,   // bytes written as they are (ping, the 101 response)
            pong,      // at most one waits unwritten (queue_pong)
            close,     // the last bytes the session writes (close frame, refusal)
        };
        registry::protocol::frame f;
        websocket::frame_header header;  // empty unless a library frame
        kind what = kind::control;

        std::size_t wire_size() const noexcept { return header.size + f.size(); }
    };

    struct upgrade_answer {
        bool accepted = false;
        std::string bytes;  // the HTTP response
        std::string error;  // why it was refused
    };

    // Beast's accept checks, in its order, with its messages.
    template <typename Body, typename Allocator>
    static upgrade_answer upgrade_response(const http::request<Body, http::basic_fields<Allocator>>& req) {
        upgrade_answer out;
        http::response<http::string_body> res;
        res.version(req.version());
        auto refuse = [&](http::status status, std::string_view why) {
            res.result(status);
            res.set(http::field::server, server_name);
            res.body() = std::string(why);
            res.prepare_payload();
            out.error = std::string(why);
        };
        const auto connection = req.find(http::field::connection);
        const auto upgrade = req.find(http::field::upgrade);
        const auto key = req.find(http::field::sec_websocket_key);
        const auto version = req.find(http::field::sec_websocket_version);
        if (req.version() != 11) {
            refuse(http::status::bad_request, "The WebSocket handshake was not HTTP/1.1");
        } else if (req.method() != http::verb::get) {
            refuse(http::status::bad_request, "The WebSocket handshake method was not GET");
        } else if (req.count(http::field::host) == 0) {
            refuse(http::status::bad_request, "The WebSocket handshake Host field is missing");
        } else if (connection == req.end()) {
            refuse(http::status::bad_request, "The WebSocket handshake Connection field is missing");
        } else if (!http::token_list{connection->value()}.exists("upgrade")) {
            refuse(http::status::bad_request, "The WebSocket handshake Connection field is missing the upgrade token");
        } else if (upgrade == req.end()) {
            refuse(http::status::bad_request, "The WebSocket handshake Upgrade field is missing");
        } else if (!http::token_list{upgrade->value()}.exists("websocket")) {
            refuse(http::status::bad_request, "The WebSocket handshake Upgrade field is missing the websocket token");
        } else if (key == req.end()) {
            refuse(http::status::bad_request, "The WebSocket handshake Sec-WebSocket-Key field is missing");
        } else if (!websocket::is_valid_key(key->value())) {
            refuse(http::status::bad_request, "The WebSocket handshake Sec-WebSocket-Key field is invalid");
        } else if (version == req.end()) {
            refuse(http::status::bad_request, "The WebSocket handshake Sec-WebSocket-Version field is missing");
        } else if (version->value() != "13") {
            res.set(http::field::sec_websocket_version, "13");
            refuse(http::status::upgrade_required, "The WebSocket handshake Sec-WebSocket-Version field is invalid");
        } else {
            out.accepted = true;
            res.result(http::status::switching_protocols);
            res.set(http::field::upgrade, "websocket");
            res.set(http::field::connection, "upgrade");
            res.set(http::field::sec_websocket_accept, websocket::accept_key(key->value()));
            res.set(http::field::server, server_name);
        }
        std::ostringstream text;
        text << res;
        out.bytes = std::move(text).str();
        return out;
    }

    //--------------------------------------------------------------------------
    // Reading

    // Reads on while the session is open and below its in-flight limit
    // (resumed by request_done()), or closing (for the peer's answer).
    void maybe_read() {
        if (reading_ || parsing_) return;
        const std::size_t max_inflight = st_->cfg.limits.max_inflight_per_connection;
        if (state_ == phase::open && unread_ && in_flight_ < max_inflight) {
            // Bytes read before the pause come first.
            const std::unique_ptr<std::string> pending = std::move(unread_);
            std::span<char> in(pending->data(), pending->size());
            parse(in);
            keep_unread(in);
            release(pending->size());
        }
        if (state_ == phase::open && (unread_ || in_flight_ >= max_inflight)) return;
        if (state_ != phase::open && state_ != phase::closing) return;
        reading_ = true;
        if (may_have_more_) {
            // The last read filled the buffer: more may be waiting, and Asio's
            // epoll reactor is edge-triggered, so a wait would see no new edge
            // if the peer cannot send more until we read (its window closed).
            // Read again, after what else is ready to run.
            may_have_more_ = false;
            asio::post(socket_.get_executor(), [self = shared_from_this()] { self->on_readable({}); });
            return;
        }
        socket_.async_wait(ws_socket::wait_read,
                           [self = shared_from_this()](const error_code& ec) { self->on_readable(ec); });
    }

    void on_readable(const error_code& ec) {
        reading_ = false;
        if (ec) {
            on_transport_error(ec, "read");
            return;
        }
        if (state_ == phase::closed) return;
        error_code rec;
        const std::size_t n = socket_.read_some(asio::buffer(read_scratch), rec);
        if (rec == asio::error::would_block || rec == asio::error::try_again) {
            maybe_read();
            return;
        }
        if (rec) {
            if (state_ == phase::closing && rec == asio::error::eof) {
                // The peer hung up after (or instead of) answering our close.
                end(true);
                return;
            }
            on_transport_error(rec, "read");
            return;
        }
        last_inbound_ = clock::now();
        ping_sent_ = false;
        may_have_more_ = n == read_scratch.size();
        std::span<char> in(read_scratch.data(), n);
        if (input_failed_) in = {};  // after a protocol error only the hang-up matters
        parse(in);
        keep_unread(in);
        maybe_read();
    }

    // Bytes left unparsed by a pause wait in a buffer of their own (the read
    // buffer is shared), released once they are parsed.
    void keep_unread(std::span<char> rest) {
        if (rest.empty() || state_ != phase::open) return;
        if (!charge(rest.size())) {
            shed();
            return;
        }
        unread_ = std::make_unique<std::string>(rest.data(), rest.size());
    }

    void drop_unread() {
        if (!unread_) return;
        release(unread_->size());
        unread_.reset();
    }

    void drop_message() {
        // Not `message_ = std::string()`: assigning a short string keeps the
        // buffer (libstdc++), which the budget would no longer count.
        std::string().swap(message_);
        release(std::exchange(message_charge_, 0));
    }

    // Parses `in` until it is used up, or the session pauses (the rest is
    // left in `in`) or stops reading.
    void parse(std::span<char>& in) {
        parsing_ = true;
        while (!in.empty()) {
            if (state_ == phase::open && in_flight_ >= st_->cfg.limits.max_inflight_per_connection) break;
            if (state_ == phase::closed) {
                in = {};
                break;
            }
            const websocket::parse_event e = parser_.next(in);
            using kind = websocket::parse_event::kind;
            if (e.what == kind::data) {
                on_data(e);
            } else if (e.what == kind::ping) {
                if (state_ == phase::open || state_ == phase::draining) queue_pong(e.bytes);
            } else if (e.what == kind::close) {
                on_peer_close(e.code);
                in = {};  // nothing may follow a close frame
            } else if (e.what == kind::error) {
                on_protocol_error(e.code, e.bytes);
                in = {};
            }
        }
        parsing_ = false;
    }

    void on_data(const websocket::parse_event& e) {
        if (state_ == phase::draining) {
            // Shutting down: nothing more is dispatched.
            drop_message();
            if (e.last) st_->m.message_rejected("shutting_down");
            return;
        }
        if (state_ != phase::open) return;  // closing: the rest is discarded

        message_bytes_ += e.bytes.size();
        if (message_bytes_ > hard_message_cap()) {
            log::warn("message above the hard cap, connection closed", {{"conn", id_}, {"remote", remote_}});
            fail_input(websocket::close_code::too_big, "message too big");
            return;
        }
        const std::size_t limit = st_->cfg.limits.max_message_bytes;
        if (!discarding_ && (e.binary || message_bytes_ > limit)) {
            discarding_ = true;
            drop_message();
        }
        if (!discarding_) {
            // The message grows by doubling (up to the limit), each step
            // charged to the memory budget before it is allocated.
            const std::size_t need = message_.size() + e.bytes.size();
            if (need > message_charge_) {
                const std::size_t want = std::min(std::max(need, 2 * message_charge_), limit);
                if (!charge(want - message_charge_)) {
                    shed();
                    return;
                }
                message_.reserve(want);
                message_charge_ = want;
            }
            message_.append(e.bytes);
        }
        if (!e.last) return;

        const std::uint64_t bytes = message_bytes_;
        const bool discarded = discarding_;
        // The coroutine owns its bytes; the session's message state is reset
        // before dispatching: the request may complete inline.
        std::string text = std::exchange(message_, {});
        const std::size_t text_charge = std::exchange(message_charge_, 0);
        message_bytes_ = 0;
        discarding_ = false;
        if (!discarded) {
            dispatch(std::move(text), text_charge);
        } else if (e.binary) {
            st_->m.message_rejected("binary");
            log::debug("binary message rejected", {{"conn", id_}, {"bytes", bytes}});
            conn_.reject(registry::errc::invalid_request, "binary frames are not supported");
        } else {
            st_->m.message_rejected("too_large");
            log::info("oversize message rejected",
                      {{"conn", id_}, {"remote", remote_}, {"bytes", bytes}, {"limit", limit}});
            conn_.reject(registry::errc::payload_too_large, "message of " + std::to_string(bytes) +
                                                                " bytes exceeds the limit of " +
                                                                std::to_string(limit) + " bytes");
        }
    }

    std::uint64_t hard_message_cap() const noexcept {
        return std::max<std::uint64_t>(hard_message_cap_min, std::uint64_t{st_->cfg.limits.max_message_bytes} * 4);
    }

    void on_peer_close(websocket::close_code code) {
        if (state_ == phase::closing) {
            // The answer to our close frame (or a close crossing it).
            peer_closed_ = true;
            if (close_sent_) end(true);
            return;
        }
        log::debug("connection closed by peer", {{"conn", id_}, {"code", static_cast<std::uint64_t>(code)}});
        peer_closed_ = true;
        drop_unread();
        // What the peer sent before its close is answered first: requests in
        // flight complete (draining), their responses and those queued are
        // written, then the close is echoed.
        drain_code_ = code == websocket::close_code::none ? websocket::close_code::normal : code;
        if (state_ == phase::open) state_ = phase::draining;
        if (in_flight_ == 0) {
            begin_close(drain_code_, {}, true);
        } else {
            // A request that takes longer does not hold the close: its
            // response is dropped.
            deadline_ = clock::now() + st_->cfg.timeouts.handshake;
        }
    }

    void on_protocol_error(websocket::close_code code, std::string_view why) {
        log::debug("websocket protocol error", {{"conn", id_}, {"remote", remote_}, {"error", why}});
        fail_input(code, why);
    }

    // The peer's input cannot be trusted any more: close with `code`, stop
    // parsing, wait for the hang-up.
    void fail_input(websocket::close_code code, std::string_view why) {
        input_failed_ = true;
        drop_message();
        drop_unread();
        if (state_ == phase::closing) return;
        begin_close(code, why, false);
    }

    //--------------------------------------------------------------------------
    // Requests

    // The message's charge to the memory budget stays with the request until
    // it completes.
    void dispatch(std::string text, std::size_t charge) {
        ++in_flight_;
        inflight_bytes_ += charge;
        scope_.spawn(handle_request(shared_from_this(), std::move(text), charge));
    }

    // Owns the request's bytes and a reference to the session for as long as
    // the library works on it.
    static registry::task<void> handle_request(std::shared_ptr<ws_session> self, std::string text,
                                               std::size_t charge) {
        const auto start = std::chrono::steady_clock::now();
        try {
            const registry::protocol::outcome o = co_await self->conn_.handle(text);
            self->record(o.action, o.code, start);
        } catch (const std::exception& e) {
            log::error("request handler failed", {{"conn", self->id_}, {"error", e.what()}});
            self->record({}, "internal", start);
        } catch (...) {
            log::error("request handler failed", {{"conn", self->id_}, {"error", "unknown exception"}});
            self->record({}, "internal", start);
        }
        self->request_done(charge);
    }

    void record(std::string_view action, std::string_view code, std::chrono::steady_clock::time_point start) {
        const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
        st_->m.request(action, code, seconds);
        if (log::enabled(log::level::debug)) {
            log::debug("request", {{"conn", id_}, {"action", action}, {"code", code}, {"seconds", seconds}});
        }
    }

    void request_done(std::size_t charge) {
        --in_flight_;
        inflight_bytes_ -= charge;
        release(charge);
        if (state_ == phase::draining) {
            if (in_flight_ == 0) begin_close(drain_code_, peer_closed_ ? "" : "server shutting down", true);
            return;
        }
        maybe_read();
    }

    //--------------------------------------------------------------------------
    // Writing

    // Draws `n` bytes from the memory budget, shedding more expensive
    // connections if it is short; false if this one is the most expensive.
    bool charge(std::uint64_t n) {
        return st_->budget.try_charge(n) || st_->relieve(n, *this);
    }

    void release(std::uint64_t n) noexcept { st_->budget.release(n); }

    // Queues bytes of the session's own (not subject to the queue's bounds).
    void enqueue(std::string bytes, queued::kind what) {
        queued q;
        q.f.head = std::move(bytes);
        q.what = what;
        push(std::move(q));
    }

    // RFC 6455 5.5.3 lets a pong answer only the latest of several pings: a
    // pong still waiting unwritten takes the new payload, so a client that
    // pings without reading grows nothing (issue 15, ping flood).
    void queue_pong(std::string_view payload) {
        if (!queue_.empty() && queue_.back().what == queued::kind::pong && (queue_.size() > 1 || write_offset_ == 0)) {
            queue_.back().f.head = websocket::pong_frame(payload);
            return;
        }
        enqueue(websocket::pong_frame(payload), queued::kind::pong);
    }

    void push(queued q) {
        queue_.push_back(std::move(q));
        if (!flush_scheduled_ && !writing_) {
            flush_scheduled_ = true;
            st_->schedule_flush(shared_from_this());
        }
    }

    // One sendmsg of the queued frames, the first one from write_offset_.
    ssize_t write_queued() {
        std::array<iovec, 3 * max_frames_per_write> iov;
        std::size_t count = 0;
        std::size_t skip = write_offset_;
        auto add = [&](const char* data, std::size_t size) {
            if (skip >= size) {
                skip -= size;
                return;
            }
            iov[count++] = iovec{const_cast<char*>(data + skip), size - skip};
            skip = 0;
        };
        const std::size_t frames = std::min(queue_.size(), max_frames_per_write);
        for (std::size_t i = 0; i < frames; ++i) {
            const queued& q = queue_[i];
            add(q.header.bytes.data(), q.header.size);
            add(q.f.head.data(), q.f.head.size());
            if (q.f.body) add(q.f.body->data(), q.f.body->size());
        }
        msghdr msg{};
        msg.msg_iov = iov.data();
        msg.msg_iovlen = count;
        return ::sendmsg(socket_.native_handle(), &msg, MSG_NOSIGNAL);
    }

    // Accounts for `n` bytes written from the front of the queue.
    void written(std::size_t n) {
        while (n > 0 && !queue_.empty()) {
            queued& q = queue_.front();
            const std::size_t left = q.wire_size() - write_offset_;
            if (n < left) {
                write_offset_ += n;
                return;
            }
            n -= left;
            write_offset_ = 0;
            const queued::kind what = q.what;
            if (what == queued::kind::response || what == queued::kind::event) {
                --queued_frames_;
                queued_bytes_ -= q.f.size();
                release(q.f.size());
            }
            queue_.pop_front();
            if (what == queued::kind::event) st_->m.events_sent();
            if (what == queued::kind::close) on_close_written();
        }
    }

    void wait_writable() {
        writing_ = true;
        socket_.async_wait(ws_socket::wait_write, [self = shared_from_this()](const error_code& ec) {
            self->writing_ = false;
            if (ec) {
                self->on_transport_error(ec, "write");
                return;
            }
            self->flush();
        });
    }

    // Drops every queued frame except one partly written.
    void drop_queue() {
        const std::size_t keep = write_offset_ > 0 ? 1 : 0;
        while (queue_.size() > keep) {
            const queued& q = queue_.back();
            if (q.what == queued::kind::response || q.what == queued::kind::event) {
                --queued_frames_;
                queued_bytes_ -= q.f.size();
                release(q.f.size());
            }
            queue_.pop_back();
        }
    }

    //--------------------------------------------------------------------------
    // Closing

    // Closes the WebSocket with `code`: the queue is written (`flush`) or
    // dropped (except a frame partly written), then the close frame goes out.
    // connection::close() (ending the subscriptions) runs from a posted
    // handler: begin_close() may be called from inside the library (send()
    // during a fan-out, or a request coroutine resumed by the registry).
    // Frames sent meanwhile are dropped (state closing).
    void begin_close(websocket::close_code code, std::string_view reason, bool flush) {
        if (state_ == phase::closing || state_ == phase::closed) return;
        state_ = phase::closing;
        drop_unread();
        drop_message();
        if (!flush) drop_queue();
        asio::post(socket_.get_executor(), [self = shared_from_this()] { self->conn_.close(); });
        extend_close_deadline();
        enqueue(websocket::close_frame(code, reason), queued::kind::close);
        maybe_read();  // for the peer's answer
    }

    void extend_close_deadline() {
        deadline_ = clock::now() + st_->cfg.timeouts.handshake + close_grace_extra;
    }

    void on_close_written() {
        close_sent_ = true;
        if (peer_closed_) {
            end(true);
        } else if (input_failed_) {
            // Nothing more will be sent: tell the peer, and wait for its end.
            error_code ignored;
            socket_.shutdown(ws_socket::shutdown_send, ignored);
        }
    }

    // The end of the transport: `clean` after a completed closing handshake.
    void end(bool clean) {
        if (!clean) conn_.close();
        state_ = phase::closed;
        queue_.clear();
        queued_frames_ = 0;
        release(std::exchange(queued_bytes_, 0));
        write_offset_ = 0;
        drop_unread();
        drop_message();
        // shutdown() before close(): the descriptor may have been inherited
        // by a child process (a deployed service), and then close() alone
        // would not end the TCP connection.
        error_code ignored;
        socket_.shutdown(ws_socket::shutdown_both, ignored);
        close_socket();  // pending waits complete with operation_aborted
    }

    void on_transport_error(const error_code& ec, std::string_view op) {
        if (state_ == phase::closed) return;
        if (ec != asio::error::operation_aborted && ec != asio::error::eof) {
            log::debug("connection failed", {{"conn", id_}, {"op", op}, {"error", ec.message()}});
        } else if (ec == asio::error::eof && state_ != phase::closing) {
            log::debug("connection failed", {{"conn", id_}, {"op", op}, {"error", ec.message()}});
        }
        end(false);
    }

    std::shared_ptr<server::state> st_;
    source_slot slot_;
    const std::uint64_t id_;
    const std::string remote_;
    ws_socket socket_;

    // Outbound queue. Declared before conn_: the connection may still send
    // while it is being destroyed.
    frame_fifo<queued> queue_;
    std::size_t queued_frames_ = 0;  // library frames in queue_ (the bounds count only them)
    std::size_t queued_bytes_ = 0;
    std::size_t write_offset_ = 0;  // bytes of queue_.front() already written

    // Inbound.
    websocket::frame_parser parser_;
    std::string message_;  // the text message being assembled
    std::uint64_t message_bytes_ = 0;
    std::unique_ptr<std::string> unread_;  // read while paused, not yet parsed

    // Charged to the memory budget, besides queued_bytes_ and unread_'s size.
    std::size_t message_charge_ = 0;  // message_'s reserved capacity
    std::size_t inflight_bytes_ = 0;  // the texts of requests in flight

    clock::time_point last_inbound_{};
    clock::time_point deadline_{};  // closing: when the socket is closed under it
    std::size_t in_flight_ = 0;
    phase state_ = phase::created;
    bool reading_ = false;          // a wait for readability (or a posted read) is pending
    bool may_have_more_ = false;    // the last read filled read_scratch
    bool parsing_ = false;          // inside parse(): requests completing inline must not read
    bool writing_ = false;          // a wait for writability is pending
    bool flush_scheduled_ = false;  // in server::state's flush list
    bool discarding_ = false;       // the current message is over the limit or binary
    bool ping_sent_ = false;        // an idle ping is out since the last inbound bytes
    bool close_sent_ = false;
    bool peer_closed_ = false;   // the peer's close frame arrived (or a refusal is being written)
    bool input_failed_ = false;  // a protocol error: the rest of the input is ignored
    // The close code sent once draining ends: 1001 for a server shutdown,
    // the peer's code after its close frame.
    websocket::close_code drain_code_ = websocket::close_code::going_away;
    // Closing: the least the kernel's send queue held at a closing deadline.
    std::uint32_t kernel_unsent_ = std::numeric_limits<std::uint32_t>::max();

    registry::protocol::connection conn_;
    // Declared last, destroyed first: it is idle by then (every request
    // coroutine held a reference to this session).
    registry::async_scope scope_;
};

//------------------------------------------------------------------------------
// Plain HTTP session (and the door to WebSocket)
//------------------------------------------------------------------------------
class http_session final : public std::enable_shared_from_this<http_session> {
public:
    http_session(std::shared_ptr<server::state> st, std::uint64_t id, tcp::socket&& socket, source_slot slot)
        : st_(std::move(st)),
          slot_(std::move(slot)),
          id_(id),
          remote_(endpoint_string(socket)),
          stream_(std::move(socket)) {}

    ~http_session() {
        st_->http_sessions.erase(id_);
        st_->check_drained();
    }

    http_session(const http_session&) = delete;
    http_session& operator=(const http_session&) = delete;

    void run() {
        st_->http_sessions.emplace(id_, weak_from_this());
        do_read();
    }

    // Server shutdown: an idle connection is closed now; one that is writing
    // a response is closed after it.
    void shutdown() {
        if (!writing_) close();
    }

    void close() {
        error_code ec;
        stream_.socket().shutdown(tcp::socket::shutdown_both, ec);
        stream_.close();
    }

private:
    void do_read() {
        parser_.emplace();
        parser_->header_limit(http_header_limit);
        parser_->body_limit(http_body_limit);
        // Bounds both the first request (and so the WebSocket handshake
        // request) and an idle keep-alive connection.
        stream_.expires_after(st_->cfg.timeouts.handshake);
        http::async_read(stream_, buffer_, *parser_,
                         [self = shared_from_this()](const error_code& ec, std::size_t) { self->on_read(ec); });
    }

    void on_read(const error_code& ec) {
        if (ec == http::error::end_of_stream) {
            error_code ignored;
            stream_.socket().shutdown(tcp::socket::shutdown_send, ignored);
            return;
        }
        if (ec == http::error::header_limit) {
            respond(http::status::request_header_fields_too_large, "request header fields too large\n", false);
            return;
        }
        if (ec == http::error::body_limit) {
            respond(http::status::payload_too_large, "request body too large\n", false);
            return;
        }
        if (ec) {
            if (ec != beast::error::timeout && ec != asio::error::operation_aborted) {
                log::debug("http read failed", {{"conn", id_}, {"error", ec.message()}});
            }
            return;
        }

        auto& req = parser_->get();
        // Any request naming the websocket upgrade goes to the handshake's
        // checks (an HTTP/1.0 or POST one is refused there with 400, not 404).
        const auto upgrade = req.find(http::field::upgrade);
        if (upgrade != req.end() && http::token_list{upgrade->value()}.exists("websocket")) {
            if (st_->shutting_down) {
                respond(http::status::service_unavailable, "shutting down\n", false);
                return;
            }
            if (st_->m.connections() >= st_->cfg.limits.max_connections) {
                st_->m.connection_refused();
                st_->m.refused("max_connections");
                log::warn("connection limit reached, upgrade refused",
                          {{"remote", remote_}, {"max_connections", st_->cfg.limits.max_connections}});
                respond(http::status::service_unavailable, "too many connections\n", false);
                return;
            }
            // The socket moves to the WebSocket session; this session ends.
            error_code ec;
            ws_socket socket = adopt_socket(st_->ioc, stream_.release_socket(), ec);
            if (ec) {
                log::debug("websocket handshake failed", {{"conn", id_}, {"remote", remote_}, {"error", ec.message()}});
                return;
            }
            auto ws = std::make_shared<ws_session>(st_, id_, std::move(socket), remote_, std::move(slot_));
            const auto early = buffer_.data();
            ws->run(parser_->release(), std::string_view(static_cast<const char*>(early.data()), early.size()));
            return;
        }

        const bool keep_alive = req.keep_alive();
        std::string_view target = req.target();
        target = target.substr(0, target.find('?'));

        if (req.method() == http::verb::get && target == "/healthz") {
            if (st_->reg.available()) {
                respond(http::status::ok, "ok\n", keep_alive);
            } else {
                respond(http::status::service_unavailable, "unavailable\n", keep_alive);
            }
        } else if (req.method() == http::verb::get && target == "/metrics") {
            respond(http::status::ok, st_->m.render(st_->gauges()), keep_alive,
                    "text/plain; version=0.0.4; charset=utf-8");
        } else {
            respond(http::status::not_found, "not found\n", keep_alive);
        }
    }

    void respond(http::status status, std::string body, bool keep_alive,
                 std::string_view content_type = "text/plain; charset=utf-8") {
        if (st_->shutting_down) keep_alive = false;
        res_.emplace(status, parser_->get().version());
        res_->set(http::field::server, server_name);
        res_->set(http::field::content_type, content_type);
        res_->keep_alive(keep_alive);
        res_->body() = std::move(body);
        res_->prepare_payload();
        writing_ = true;
        http::async_write(stream_, *res_, [self = shared_from_this()](const error_code& ec, std::size_t) {
            self->on_write(ec);
        });
    }

    void on_write(const error_code& ec) {
        writing_ = false;
        const bool keep_alive = res_->keep_alive();
        res_.reset();
        if (ec) return;
        if (!keep_alive || st_->shutting_down) {
            error_code ignored;
            stream_.socket().shutdown(tcp::socket::shutdown_send, ignored);
            linger();
            return;
        }
        do_read();
    }

    // After the last response: what the client still sends (the rest of a
    // refused header block) is read and discarded until it hangs up, within
    // the handshake timeout. Closing with unread bytes would send a reset,
    // which can destroy the response before the client reads it.
    void linger() {
        buffer_.clear();
        stream_.async_read_some(buffer_.prepare(4096), [self = shared_from_this()](const error_code& ec, std::size_t) {
            if (!ec) self->linger();
        });
    }

    std::shared_ptr<server::state> st_;
    source_slot slot_;  // moves to the WebSocket session
    const std::uint64_t id_;
    const std::string remote_;
    beast::tcp_stream stream_;
    beast::flat_buffer buffer_;
    std::optional<http::request_parser<http::string_body>> parser_;
    std::optional<http::response<http::string_body>> res_;
    bool writing_ = false;
};

}  // namespace

//------------------------------------------------------------------------------
// Flushing and the sweep

void server::state::schedule_flush(std::shared_ptr<ws_session> s) {
    to_flush.push_back(std::move(s));
    if (to_flush.size() == 1) asio::post(ioc, [self = shared_from_this()] { self->flush_scheduled(); });
}

void server::state::flush_scheduled() {
    // Sessions scheduled while these flush wait for the next round.
    std::vector<std::shared_ptr<ws_session>> now;
    now.swap(to_flush);
    for (auto& s : now) s->flush();
    now.clear();
    // Keep the capacity of an ordinary burst (a fan-out to a few thousand).
    if (to_flush.empty() && now.capacity() <= flush_list_keep) to_flush.swap(now);
}

void server::state::arm_sweep() {
    sweep_timer.expires_after(sweep_period);
    sweep_timer.async_wait([self = shared_from_this()](const error_code& ec) {
        if (!ec) self->sweep();
    });
}

void server::state::sweep() {
    const auto now = std::chrono::steady_clock::now();
    // Collected first: what a session does on its tick must not change the
    // map being walked. Every live session has an owner besides this lock.
    std::vector<std::shared_ptr<ws_session>> due;
    for (const auto& [id, w] : ws_sessions) {
        auto s = w.lock();
        if (s && s->due(now)) due.push_back(std::move(s));
    }
    for (auto& s : due) s->tick(now);
    due.clear();
    if (shutting_down && ws_sessions.empty()) return;
    arm_sweep();
}

//------------------------------------------------------------------------------
// The memory budget and the connection limits

bool server::state::relieve(std::uint64_t n, const ws_session& asking) {
    // Scans every connection: this runs only when the budget is short.
    for (int round = 0; round < 16; ++round) {
        std::shared_ptr<ws_session> victim;
        std::uint64_t most = asking.charged() + n;
        for (const auto& [id, w] : ws_sessions) {
            auto s = w.lock();
            if (!s || s.get() == &asking || s->sheddable() == 0) continue;
            if (s->charged() > most) {
                most = s->charged();
                victim = std::move(s);
            }
        }
        if (!victim) return false;
        victim->shed();
        if (budget.try_charge(n)) return true;
    }
    return false;
}

bool server::state::evict_oldest_handshake(std::string_view reason) {
    while (!http_sessions.empty()) {
        const auto oldest = http_sessions.begin();
        auto s = oldest->second.lock();
        http_sessions.erase(oldest);  // it is going: not counted any more
        if (!s) continue;
        m.refused(reason);
        log::debug("connection closed to make room", {{"reason", reason}});
        s->close();
        return true;
    }
    return false;
}

//------------------------------------------------------------------------------
// Listener

void server::state::do_accept() {
    acceptor.async_accept([self = shared_from_this()](const error_code& ec, tcp::socket socket) {
        self->on_accept(ec, std::move(socket));
    });
}

void server::state::on_accept(const error_code& ec, tcp::socket socket) {
    if (shutting_down || !acceptor.is_open()) return;
    if (ec) {
        if (ec == asio::error::operation_aborted) return;
        log::warn("accept failed", {{"error", ec.message()}});
        if (ec == asio::error::no_descriptors || ec == asio::error::no_buffer_space || ec == asio::error::no_memory ||
            ec.value() == ENFILE) {
            backoff.expires_after(accept_backoff);
            backoff.async_wait([self = shared_from_this()](const error_code& e) {
                if (!e && !self->shutting_down) self->do_accept();
            });
            return;
        }
        do_accept();
        return;
    }
    error_code ec2;
    const tcp::endpoint peer = socket.remote_endpoint(ec2);
    if (ec2) {  // already gone
        do_accept();
        return;
    }
    const auto refuse = [&](std::string_view reason) {
        m.refused(reason);
        log::debug("connection refused", {{"reason", reason}, {"remote", peer.address().to_string()}});
        error_code ignored;
        socket.close(ignored);
        do_accept();
    };
    if (const auto it = per_source.find(peer.address());
        it != per_source.end() && it->second.connections >= cfg.limits.max_connections_per_source) {
        refuse("source_quota");
        return;
    }
    // Connections that never upgrade cannot crowd out new ones: the oldest
    // makes room, within limits.max_handshakes and the descriptors.
    if (http_sessions.size() >= cfg.limits.max_handshakes) {
        evict_oldest_handshake("handshake_limit");
    } else if (http_sessions.size() + ws_sessions.size() >= socket_cap && !evict_oldest_handshake("descriptors")) {
        refuse("descriptors");
        return;
    }
    error_code ignored;
    socket.set_option(tcp::no_delay(true), ignored);
    const std::uint64_t id = next_id++;
    std::make_shared<http_session>(shared_from_this(), id, std::move(socket), source_slot(per_source, peer.address()))
        ->run();
    do_accept();
}

//------------------------------------------------------------------------------
// server

server::server(asio::io_context& ioc, const config& cfg, registry::registry& reg, metrics& m,
               std::function<metrics::gauges()> gauges, registry::container_manager* containers)
    : state_(std::make_shared<state>(ioc, cfg, reg, m, std::move(gauges), containers)) {}

server::~server() {
    error_code ignored;
    state_->acceptor.close(ignored);
    state_->backoff.cancel();
    state_->sweep_timer.cancel();
}

registry::protocol::server& server::protocol() noexcept { return state_->proto; }

listen_address server::listen() {
    auto& st = *state_;
    const auto& want = st.cfg.listen;
    const std::string shown = want.to_string();

    error_code ec;
    tcp::endpoint ep;
    const auto addr = asio::ip::make_address(want.host, ec);
    if (!ec) {
        ep = tcp::endpoint(addr, want.port);
    } else {
        tcp::resolver resolver(st.ioc);
        auto results = resolver.resolve(want.host, std::to_string(want.port), tcp::resolver::passive, ec);
        if (ec || results.empty()) {
            throw std::runtime_error("cannot resolve listen host \"" + want.host +
                                     "\": " + (ec ? ec.message() : std::string("no address")));
        }
        ep = results.begin()->endpoint();
    }

    auto check = [&](std::string_view what) {
        if (ec) throw std::runtime_error("cannot listen on " + shown + ": " + std::string(what) + ": " + ec.message());
    };
    st.acceptor.open(ep.protocol(), ec);
    check("open");
    st.acceptor.set_option(asio::socket_base::reuse_address(true), ec);
    check("setsockopt");
    st.acceptor.bind(ep, ec);
    check("bind");
    st.acceptor.listen(asio::socket_base::max_listen_connections, ec);
    check("listen");
    const tcp::endpoint bound = st.acceptor.local_endpoint(ec);
    check("getsockname");

    rlimit rl{};
    st.socket_cap = std::numeric_limits<std::size_t>::max();
    if (::getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur != RLIM_INFINITY)
        st.socket_cap = rl.rlim_cur > descriptor_reserve ? rl.rlim_cur - descriptor_reserve : 1;

    st.do_accept();
    st.arm_sweep();
    return listen_address{bound.address().to_string(), bound.port()};
}

void server::shutdown(std::function<void()> on_drained) {
    auto& st = *state_;
    st.shutting_down = true;
    st.on_drained = std::move(on_drained);
    error_code ignored;
    st.acceptor.close(ignored);
    st.backoff.cancel();

    auto https = st.live(st.http_sessions);
    auto wss = st.live(st.ws_sessions);

    log::info("shutting down", {{"websocket_connections", wss.size()}, {"http_connections", https.size()}});
    for (auto& s : https) s->shutdown();
    for (auto& s : wss) s->shutdown();
    https.clear();
    wss.clear();
    st.check_drained();
}

void server::force_close() {
    auto& st = *state_;
    for (auto& s : st.live(st.http_sessions)) s->close();
    for (auto& s : st.live(st.ws_sessions)) s->close_socket();
}

std::size_t server::connections() const noexcept {
    return state_->http_sessions.size() + state_->ws_sessions.size();
}

void server::attach(registry::deploy::deployer& d) { state_->proto.attach(d); }
void server::attach(registry::deploy::package_uploads& u) { state_->proto.attach(u); }

}  // namespace registryd
