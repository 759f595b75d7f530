// The only translation unit of registryd that includes Boost.Beast.
//
// Structure (after Beast's advanced_server example):
//   listener      accepts TCP connections, hands each to an http_session.
//   http_session  reads HTTP requests; serves /healthz and /metrics; on a
//                 WebSocket upgrade hands its socket to a ws_session.
//   ws_session    one per WebSocket connection: owns the library's
//                 protocol::connection and is its outbox.
//
// Lifetimes are explicit: a session is owned by shared_ptrs held by its
// pending asynchronous operations and by its in-flight request coroutines;
// it is destroyed when the last of them completes. Everything runs on the one
// io_context thread (no strands needed).

#include "server.hpp"

#include "frame_fifo.hpp"
#include "log.hpp"

#include <registry/async_scope.hpp>
#include <registry/protocol/connection.hpp>
#include <registry/protocol/frame.hpp>
#include <registry/registry.hpp>
#include <registry/task.hpp>

#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/beast/core/buffers_to_string.hpp>
#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/core/tcp_stream.hpp>
#include <boost/beast/http/parser.hpp>
#include <boost/beast/http/read.hpp>
#include <boost/beast/http/string_body.hpp>
#include <boost/beast/http/write.hpp>
#include <boost/beast/websocket/rfc6455.hpp>
#include <boost/beast/websocket/stream.hpp>

#include <algorithm>
#include <array>
#include <chrono>
#include <cstdint>
#include <exception>
#include <optional>
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
namespace websocket = beast::websocket;
using tcp = asio::ip::tcp;
using error_code = boost::system::error_code;

constexpr std::string_view server_name = "registryd";

// Plain HTTP requests are tiny (GET without a body).
constexpr std::size_t http_header_limit = 16 * 1024;
constexpr std::uint64_t http_body_limit = 64 * 1024;

// A WebSocket message is read in pieces of at most this many bytes.
constexpr std::size_t read_chunk_bytes = 64 * 1024;

// Beyond limits.max_message_bytes a message is read and discarded (the
// connection survives, see ws_session). Beyond this hard cap Beast fails the
// read with message_too_big and closes the connection with 1009: nobody
// legitimately streams that much into a registry request.
constexpr std::size_t hard_message_cap_min = 64 * 1024 * 1024;

// After a retryable accept error (EMFILE, ENFILE, ENOBUFS, ENOMEM) wait this
// long before accepting again instead of spinning.
constexpr auto accept_backoff = std::chrono::milliseconds(100);

// How long a closing WebSocket may take (its last write, the close frame and
// the peer's reply) before its socket is closed under it.
constexpr auto close_grace_extra = std::chrono::seconds(1);

std::string endpoint_string(const tcp::socket& s) {
    error_code ec;
    auto ep = s.remote_endpoint(ec);
    if (ec) return "?";
    const auto addr = ep.address();
    return (addr.is_v6() ? "[" + addr.to_string() + "]" : addr.to_string()) + ":" + std::to_string(ep.port());
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

}  // namespace

// State shared by the listener and every session. Sessions hold a
// shared_ptr to it.
struct server::state : std::enable_shared_from_this<server::state> {
    state(asio::io_context& io, const config& c, registry::registry& r, metrics& mm,
          std::function<metrics::gauges()> g, registry::container_manager* containers)
        : ioc(io),
          cfg(c),
          reg(r),
          proto(r, registry::protocol::limits{c.limits.max_message_bytes, c.limits.max_subscriptions_per_connection},
                containers),
          m(mm),
          gauges(std::move(g)),
          acceptor(io),
          backoff(io) {}

    asio::io_context& ioc;
    const config cfg;
    registry::registry& reg;
    registry::protocol::server proto;
    metrics& m;
    std::function<metrics::gauges()> gauges;

    tcp::acceptor acceptor;
    asio::steady_timer backoff;

    std::uint64_t next_id = 1;  // connection ids; also the registry's session ids (never 0)
    std::unordered_map<std::uint64_t, std::weak_ptr<http_session>> http_sessions;
    std::unordered_map<std::uint64_t, std::weak_ptr<ws_session>> ws_sessions;

    bool shutting_down = false;
    std::function<void()> on_drained;

    void do_accept();
    void on_accept(const error_code& ec, tcp::socket socket);

    void check_drained() {
        if (!shutting_down || !on_drained || !http_sessions.empty() || !ws_sessions.empty()) return;
        asio::post(ioc, std::exchange(on_drained, {}));
    }

    // The sessions still alive, held: shutting one down may end it and erase
    // it from the map, so callers walk this copy instead.
    template <typename Session>
    static std::vector<std::shared_ptr<Session>> live(
        const std::unordered_map<std::uint64_t, std::weak_ptr<Session>>& sessions) {
        std::vector<std::shared_ptr<Session>> out;
        for (const auto& [id, w] : sessions)
            if (auto s = w.lock()) out.push_back(std::move(s));
        return out;
    }
};

namespace {

//------------------------------------------------------------------------------
// WebSocket session
//
// Outbound (the library calls send()):
//   Frames go into a bounded FIFO queue and are written one at a time, in
//   queue order, each as a two-buffer sequence {head, *body} (no copy into
//   one string). SLOW-CONSUMER POLICY: when a frame arrives while the queue
//   already holds limits.outbound_queue_messages frames, or would then hold
//   more than limits.outbound_queue_bytes bytes, send() refuses it (returns
//   false; the library ends the connection's subscriptions) and the session
//   closes the WebSocket with 1008 (policy violation), reason "slow consumer:
//   outbound queue full". Frames still queued are dropped; the frame being
//   written is finished first, then the close frame is sent. An empty queue
//   always takes one frame, so a single response larger than
//   outbound_queue_bytes is still delivered. The client is expected to
//   reconnect and resume with from_revision (it loses nothing).
//
// Inbound:
//   Messages are read in pieces (read_some). OVERSIZE POLICY: a text message
//   longer than limits.max_message_bytes is not an error of the connection:
//   the rest of it is read and discarded, and once it is complete the client
//   gets {id:null, error:{code:"payload_too_large"}} through
//   connection::reject(); the connection stays open. Binary messages are
//   discarded likewise and answered with invalid_request. Only a message
//   above the hard cap (max(64 MiB, 4 x max_message_bytes)) makes Beast fail
//   the connection (it attempts a 1009 close; with the rest of the message
//   still unread the client usually just sees the TCP connection reset).
//   Each complete text message is copied into a coroutine that runs
//   connection::handle() in the session's async_scope. At most
//   limits.max_inflight_per_connection of them run at once: at that count the
//   session stops reading until one completes (TCP back-pressure). (While
//   reading is paused, Beast sees no inbound traffic: a pause longer than
//   timeouts.idle_seconds, i.e. a stalled store, ends in an idle timeout.)
//
// Closing:
//   On a read/write error or the peer's close: connection::close() at once,
//   the queue is dropped; in-flight requests run to completion (their
//   responses are discarded) and hold the session alive until then.
//   On server shutdown: stop reading, let in-flight requests complete (their
//   responses are still sent), connection::close(), flush the queue, close
//   with 1001 (going away).
//------------------------------------------------------------------------------
class ws_session final : public std::enable_shared_from_this<ws_session>, public registry::protocol::outbox {
public:
    ws_session(std::shared_ptr<server::state> st, std::uint64_t id, tcp::socket&& socket, std::string remote)
        : st_(std::move(st)),
          id_(id),
          remote_(std::move(remote)),
          ws_(std::move(socket)),
          conn_(st_->proto, *this, id) {
        st_->m.connection_opened();
    }

    ~ws_session() override {
        // Every in-flight request has completed (each held a shared_ptr).
        conn_.close();
        st_->ws_sessions.erase(id_);
        st_->m.connection_closed();
        log::debug("connection closed", {{"conn", id_}, {"remote", remote_}});
        st_->check_drained();
    }

    ws_session(const ws_session&) = delete;
    ws_session& operator=(const ws_session&) = delete;

    template <typename Body, typename Allocator>
    void run(http::request<Body, http::basic_fields<Allocator>> req) {
        st_->ws_sessions.emplace(id_, weak_from_this());
        const auto& cfg = st_->cfg;

        // The HTTP read's deadline must not apply to the WebSocket: Beast's
        // own timeouts take over.
        beast::get_lowest_layer(ws_).expires_never();

        websocket::stream_base::timeout opt{};
        opt.handshake_timeout = cfg.timeouts.handshake;  // opening and closing handshakes
        opt.idle_timeout = cfg.timeouts.idle;            // ping after idle/2, close after idle
        opt.keep_alive_pings = true;
        ws_.set_option(opt);
        ws_.set_option(websocket::stream_base::decorator(
            [](websocket::response_type& res) { res.set(http::field::server, server_name); }));
        ws_.read_message_max(std::max(hard_message_cap_min, cfg.limits.max_message_bytes * 4));
        ws_.auto_fragment(false);

        state_ = phase::handshake;
        ws_.async_accept(req, [self = shared_from_this()](const error_code& ec) { self->on_accept(ec); });
    }

    // Server shutdown, see the class comment.
    void shutdown() {
        switch (state_) {
            case phase::handshake:
                close_socket();
                break;
            case phase::open:
                state_ = phase::draining;
                if (in_flight_ == 0) begin_close(websocket::close_code::going_away, "server shutting down", true);
                break;
            default:
                break;
        }
    }

    void close_socket() {
        error_code ec;
        beast::get_lowest_layer(ws_).socket().close(ec);
    }

    // registry::protocol::outbox
    bool send(registry::protocol::frame f) override {
        // The transport is gone or going: the frame has nowhere to go. This
        // is not back-pressure, so it is not refused.
        if (state_ == phase::closing || state_ == phase::closed) return true;

        const auto& lim = st_->cfg.limits;
        const std::size_t size = f.size();
        if (!queue_.empty() &&
            (queue_.size() >= lim.outbound_queue_messages || queued_bytes_ + size > lim.outbound_queue_bytes)) {
            st_->m.slow_consumer_disconnect();
            log::warn("slow consumer: outbound queue full, closing",
                      {{"conn", id_},
                       {"remote", remote_},
                       {"queued_messages", queue_.size()},
                       {"queued_bytes", queued_bytes_}});
            // We are inside the library (send() is called while it fans out
            // events): connection::close() must wait for a fresh handler.
            begin_close(websocket::close_code::policy_error, "slow consumer: outbound queue full", false);
            return false;
        }

        const bool event = is_event_frame(f);
        queued_bytes_ += size;
        queue_.push_back(queued{std::move(f), size, event});
        if (!writing_) do_write();
        return true;
    }

private:
    enum class phase {
        created,
        handshake,
        open,      // reading and writing
        draining,  // server shutdown: no more reads, waiting for in-flight requests
        closing,   // connection closed; flushing/closing the WebSocket
        closed,    // transport gone
    };

    struct queued {
        registry::protocol::frame f;
        std::size_t size;
        bool event;
    };

    void on_accept(const error_code& ec) {
        if (ec) {
            log::debug("websocket handshake failed", {{"conn", id_}, {"remote", remote_}, {"error", ec.message()}});
            state_ = phase::closed;
            conn_.close();
            return;
        }
        if (state_ != phase::handshake) return;
        state_ = phase::open;
        log::debug("connection opened", {{"conn", id_}, {"remote", remote_}});
        if (st_->shutting_down) {
            shutdown();
            return;
        }
        maybe_read();
    }

    //--------------------------------------------------------------------------
    // Reading

    void maybe_read() {
        if (reading_ || state_ != phase::open) return;
        if (in_flight_ >= st_->cfg.limits.max_inflight_per_connection) return;  // resumed by request_done()
        std::size_t want = read_chunk_bytes;
        if (!discarding_) {
            // One byte past the limit is enough to know it is exceeded.
            want = std::min(want, st_->cfg.limits.max_message_bytes + 1 - rbuf_.size());
        }
        reading_ = true;
        ws_.async_read_some(rbuf_, want, [self = shared_from_this()](const error_code& ec, std::size_t n) {
            self->on_read(ec, n);
        });
    }

    void on_read(const error_code& ec, std::size_t n) {
        reading_ = false;
        if (ec) {
            on_transport_error(ec, "read");
            return;
        }
        const bool done = ws_.is_message_done();

        if (state_ != phase::open) {
            // Shutting down: nothing more is dispatched, nothing more is read.
            rbuf_.clear();
            if (done) st_->m.message_rejected("shutting_down");
            return;
        }

        if (!discarding_ && (ws_.got_binary() || rbuf_.size() > st_->cfg.limits.max_message_bytes)) {
            discarding_ = true;
            discarded_bytes_ = rbuf_.size();
            rbuf_.clear();
        } else if (discarding_) {
            discarded_bytes_ += n;
            rbuf_.clear();
        }

        if (done) {
            if (discarding_) {
                const bool binary = ws_.got_binary();
                const std::uint64_t bytes = discarded_bytes_;
                reset_message();
                if (binary) {
                    st_->m.message_rejected("binary");
                    log::debug("binary message rejected", {{"conn", id_}, {"bytes", bytes}});
                    conn_.reject(registry::errc::invalid_request, "binary frames are not supported");
                } else {
                    st_->m.message_rejected("too_large");
                    log::info("oversize message rejected",
                              {{"conn", id_},
                               {"remote", remote_},
                               {"bytes", bytes},
                               {"limit", st_->cfg.limits.max_message_bytes}});
                    conn_.reject(registry::errc::payload_too_large,
                                 "message of " + std::to_string(bytes) + " bytes exceeds the limit of " +
                                     std::to_string(st_->cfg.limits.max_message_bytes) + " bytes");
                }
            } else {
                // The coroutine must own its bytes. Take them out of the
                // read buffer (and reset it) before dispatching: the request
                // may complete inline and start the next read.
                std::string text = beast::buffers_to_string(rbuf_.data());
                reset_message();
                dispatch(std::move(text));
            }
        }
        maybe_read();
    }

    void reset_message() {
        rbuf_.clear();
        if (rbuf_.capacity() > 2 * read_chunk_bytes) rbuf_.shrink_to_fit();
        discarding_ = false;
        discarded_bytes_ = 0;
    }

    //--------------------------------------------------------------------------
    // Requests

    void dispatch(std::string text) {
        ++in_flight_;
        scope_.spawn(handle_request(shared_from_this(), std::move(text)));
    }

    // Owns the request's bytes and a reference to the session for as long as
    // the library works on it.
    static registry::task<void> handle_request(std::shared_ptr<ws_session> self, std::string text) {
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
        self->request_done();
    }

    void record(std::string_view action, std::string_view code, std::chrono::steady_clock::time_point start) {
        const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
        st_->m.request(action, code, seconds);
        if (log::enabled(log::level::debug)) {
            log::debug("request", {{"conn", id_}, {"action", action}, {"code", code}, {"seconds", seconds}});
        }
    }

    void request_done() {
        --in_flight_;
        if (state_ == phase::draining) {
            if (in_flight_ == 0) begin_close(websocket::close_code::going_away, "server shutting down", true);
            return;
        }
        maybe_read();
    }

    //--------------------------------------------------------------------------
    // Writing

    void do_write() {
        writing_ = true;
        const auto& f = queue_.front().f;
        std::array<asio::const_buffer, 2> buffers{asio::buffer(f.head),
                                                  f.body ? asio::buffer(*f.body) : asio::const_buffer{}};
        ws_.text(true);
        ws_.async_write(buffers, [self = shared_from_this()](const error_code& ec, std::size_t) {
            self->on_write(ec);
        });
    }

    void on_write(const error_code& ec) {
        writing_ = false;
        if (ec) {
            on_transport_error(ec, "write");
            return;
        }
        if (!queue_.empty()) {  // empty if dropped by on_transport_error meanwhile
            if (queue_.front().event) st_->m.events_sent();
            queued_bytes_ -= queue_.front().size;
            queue_.pop_front();
        }
        if (state_ == phase::closed) return;
        if (!queue_.empty()) {
            do_write();
        } else if (state_ == phase::closing && !close_sent_) {
            send_close();
        }
    }

    // Drops every queued frame except the one being written.
    void drop_queue() {
        const std::size_t keep = writing_ ? 1 : 0;
        while (queue_.size() > keep) {
            queued_bytes_ -= queue_.back().size;
            queue_.pop_back();
        }
    }

    //--------------------------------------------------------------------------
    // Closing

    // Closes the WebSocket with `code`: the queue is written (`flush`) or
    // dropped (except a frame being written), then the close frame goes out.
    // connection::close() (ending the subscriptions) runs from a posted
    // handler: begin_close() may be called from inside the library (send()
    // during a fan-out, or a request coroutine resumed by the registry).
    // Frames sent meanwhile are dropped (state closing).
    void begin_close(websocket::close_code code, std::string_view reason, bool flush) {
        if (state_ == phase::closing || state_ == phase::closed) return;
        state_ = phase::closing;
        close_reason_ = websocket::close_reason(code, reason);
        if (!flush) drop_queue();
        asio::post(ws_.get_executor(), [self = shared_from_this()] { self->conn_.close(); });
        arm_close_deadline();
        if (!writing_ && queue_.empty() && !close_sent_) send_close();
    }

    void send_close() {
        close_sent_ = true;
        ws_.async_close(close_reason_, [self = shared_from_this()](const error_code& ec) {
            if (ec && ec != asio::error::operation_aborted) {
                log::debug("websocket close failed", {{"conn", self->id_}, {"error", ec.message()}});
            }
            self->state_ = phase::closed;
            self->cancel_close_deadline();
        });
    }

    // A closing connection whose peer does not read (it is a slow consumer,
    // or gone) could keep a write pending for a long time: bound it.
    void arm_close_deadline() {
        if (close_timer_) return;
        close_timer_.emplace(ws_.get_executor());
        close_timer_->expires_after(st_->cfg.timeouts.handshake + close_grace_extra);
        close_timer_->async_wait([self = shared_from_this()](const error_code& ec) {
            if (ec) return;  // cancelled
            log::debug("closing connection forcibly", {{"conn", self->id_}});
            self->close_socket();
        });
    }

    void cancel_close_deadline() {
        if (close_timer_) close_timer_->cancel();
    }

    void on_transport_error(const error_code& ec, std::string_view op) {
        const bool was_closed = state_ == phase::closed;
        state_ = phase::closed;
        conn_.close();
        drop_queue();
        if (!writing_) {
            queue_.clear();
            queued_bytes_ = 0;
        }
        cancel_close_deadline();
        if (was_closed) return;
        if (ec == websocket::error::closed) {
            log::debug("connection closed by peer",
                       {{"conn", id_}, {"code", static_cast<std::uint64_t>(ws_.reason().code)}});
        } else if (ec == websocket::error::message_too_big) {
            log::warn("message above the hard cap, connection closed", {{"conn", id_}, {"remote", remote_}});
        } else if (ec == beast::error::timeout) {
            log::info("connection timed out", {{"conn", id_}, {"remote", remote_}});
        } else if (ec != asio::error::operation_aborted) {
            log::debug("connection failed", {{"conn", id_}, {"op", op}, {"error", ec.message()}});
        }
        // Make a pending operation of the other direction fail too.
        close_socket();
    }

    std::shared_ptr<server::state> st_;
    const std::uint64_t id_;
    const std::string remote_;
    websocket::stream<beast::tcp_stream> ws_;

    // Outbound queue. Declared before conn_: the connection may still send
    // while it is being destroyed.
    frame_fifo<queued> queue_;
    std::size_t queued_bytes_ = 0;
    bool writing_ = false;
    bool close_sent_ = false;
    websocket::close_reason close_reason_;
    std::optional<asio::steady_timer> close_timer_;

    // Inbound message assembly.
    beast::flat_buffer rbuf_;
    bool reading_ = false;
    bool discarding_ = false;
    std::uint64_t discarded_bytes_ = 0;

    phase state_ = phase::created;
    std::size_t in_flight_ = 0;

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
    http_session(std::shared_ptr<server::state> st, std::uint64_t id, tcp::socket&& socket)
        : st_(std::move(st)), id_(id), remote_(endpoint_string(socket)), stream_(std::move(socket)) {}

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
        if (ec) {
            if (ec != beast::error::timeout && ec != asio::error::operation_aborted) {
                log::debug("http read failed", {{"conn", id_}, {"error", ec.message()}});
            }
            return;
        }

        auto& req = parser_->get();
        if (websocket::is_upgrade(req)) {
            if (st_->shutting_down) {
                respond(http::status::service_unavailable, "shutting down\n", false);
                return;
            }
            if (st_->m.connections() >= st_->cfg.limits.max_connections) {
                st_->m.connection_refused();
                log::warn("connection limit reached, upgrade refused",
                          {{"remote", remote_}, {"max_connections", st_->cfg.limits.max_connections}});
                respond(http::status::service_unavailable, "too many connections\n", false);
                return;
            }
            // The socket moves to the WebSocket session; this session ends.
            auto ws = std::make_shared<ws_session>(st_, id_, stream_.release_socket(), remote_);
            ws->run(parser_->release());
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
            return;
        }
        do_read();
    }

    std::shared_ptr<server::state> st_;
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
    error_code ignored;
    socket.set_option(tcp::no_delay(true), ignored);
    const std::uint64_t id = next_id++;
    std::make_shared<http_session>(shared_from_this(), id, std::move(socket))->run();
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

    st.do_accept();
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
