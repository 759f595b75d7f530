// The connection of a writer_link is driven by Asio completion handlers, each
// holding a reference to it, so that it outlives whatever is pending on it
// (the link may be closed or destroyed meanwhile). forward() awaits its
// frame's write through a shared state the write handler completes; the
// resumption is posted, never inline (a handler may be deep in the read loop).
#include "cluster/writer_link.hpp"

#include "observability/log.hpp"
#include "websocket/client_upgrade.hpp"
#include "websocket/frame_parser.hpp"
#include "websocket/frame_writer.hpp"
#include "websocket/opcode.hpp"

#include "codec/json_writer.hpp"

#include <boost/asio/connect.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/ssl/context.hpp>
#include <boost/asio/ssl/host_name_verification.hpp>
#include <boost/asio/ssl/stream.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/write.hpp>

#include <openssl/rand.h>
#include <openssl/ssl.h>

#include <algorithm>
#include <array>
#include <cctype>
#include <coroutine>
#include <deque>
#include <optional>
#include <span>
#include <stdexcept>
#include <string_view>
#include <unordered_map>
#include <utility>

namespace registryd {

namespace asio = boost::asio;
using tcp = asio::ip::tcp;
using error_code = boost::system::error_code;
using registry::errc;
using registry::fail;

namespace {

constexpr std::size_t read_chunk_bytes = 16 * 1024;
// How long a close frame we send may take before the socket is closed anyway.
constexpr std::chrono::milliseconds farewell_timeout{1000};

std::string_view trim(std::string_view s) {
    while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) s.remove_prefix(1);
    while (!s.empty() && (s.back() == ' ' || s.back() == '\t' || s.back() == '\r' || s.back() == '\n')) s.remove_suffix(1);
    return s;
}

template <std::size_t N>
std::array<std::uint8_t, N> random_bytes() {
    std::array<std::uint8_t, N> out{};
    if (RAND_bytes(out.data(), static_cast<int>(N)) != 1) {
        // OpenSSL's generator is seeded from the kernel's; failing that, a
        // predictable mask or key is still a valid one (they guard proxies'
        // caches, not secrets).
        log::warn("writer link: RAND_bytes failed");
    }
    return out;
}

std::string masked(std::uint8_t op, std::string_view payload) {
    return websocket::masked_frame(op, payload, random_bytes<4>());
}

// `id` as our encoder writes it in a response: a JSON string, quotes included.
std::string json_quoted(std::string_view id) {
    std::string out;
    registry::detail::json_writer(out).string(id);
    return out;
}

// A message of the writer's: a response (with the id as written, quoted; none
// for a null id) or an event. Our encoder starts every response with its id
// and type (lib/protocol/response.cpp), every event with its type.
struct message_kind {
    bool response = false;
    std::string_view quoted_id;
};

message_kind classify(std::string_view text) {
    constexpr std::string_view id_prefix = R"({"id":)";
    constexpr std::string_view response_type = R"(,"type":"response")";
    if (!text.starts_with(id_prefix)) return {};
    std::string_view rest = text.substr(id_prefix.size());
    if (rest.starts_with("null")) return {rest.substr(4).starts_with(response_type), {}};
    if (!rest.starts_with('"')) return {};
    std::size_t i = 1;
    while (i < rest.size() && rest[i] != '"') i += rest[i] == '\\' ? 2 : 1;
    if (i >= rest.size()) return {};
    if (!rest.substr(i + 1).starts_with(response_type)) return {};
    return {true, rest.substr(0, i + 1)};
}

std::string lost_response(std::string_view quoted_id, std::string_view url, std::string_view cause) {
    std::string text = R"({"id":)";
    text += quoted_id;
    registry::detail::json_writer w(text);
    w.key("type").string("response");
    w.key("error").begin_object().key("code").string("unavailable");
    w.key("message").string("the connection to the writer " + std::string(url) + " was lost: " + std::string(cause) +
                            "; the request may or may not have been carried out");
    w.end_object().end_object();
    return text;
}

// What forward() waits for: its frame written, or the reason it was not.
struct write_state {
    std::coroutine_handle<> waiter;
    std::optional<registry::result<void>> outcome;
};

// Awaits a write_state. Always a named local (GCC 12 destroys a non-trivial
// awaiter temporary twice). A frame destroyed while it waits is not resumed.
class write_awaiter {
public:
    explicit write_awaiter(std::shared_ptr<write_state> st) noexcept : st_(std::move(st)) {}
    write_awaiter(const write_awaiter&) = delete;
    write_awaiter& operator=(const write_awaiter&) = delete;
    ~write_awaiter() { st_->waiter = {}; }

    bool await_ready() const noexcept { return st_->outcome.has_value(); }
    void await_suspend(std::coroutine_handle<> h) noexcept { st_->waiter = h; }
    registry::result<void> await_resume() { return std::move(*st_->outcome); }

private:
    std::shared_ptr<write_state> st_;
};

}  // namespace

class writer_link::connection : public std::enable_shared_from_this<connection> {
public:
    connection(asio::io_context& io, std::weak_ptr<writer_link> link, const writer_link_options& o, std::string u,
               websocket::ws_url w)
        : ioc(io), owner(std::move(link)), opts(o), url(std::move(u)), where(std::move(w)), resolver(io), socket(io),
          timer(io) {}

    enum class phase : std::uint8_t { opening, open, ended };

    void start_open() {
        timer.expires_after(opts.open_timeout);
        timer.async_wait([self = shared_from_this()](const error_code& ec) {
            if (ec || self->state != phase::opening) return;
            self->end("timed out after " + std::to_string(self->opts.open_timeout.count()) + " ms");
        });
        resolver.async_resolve(where.host, where.port,
                               [self = shared_from_this()](const error_code& ec, tcp::resolver::results_type r) {
                                   if (self->state != phase::opening) return;
                                   if (ec) return self->end("resolving " + self->where.host + ": " + ec.message());
                                   self->connect(std::move(r));
                               });
    }

    // Queues a frame; `quoted_id` (a request's) is counted in flight once it is being written.
    void enqueue(std::string frame, std::string quoted_id, std::shared_ptr<write_state> waiter) {
        queue.push_back({std::move(frame), std::move(quoted_id), std::move(waiter)});
        pump();
    }

    // Ends the connection (once): fails the frames not yet written, closes
    // the socket after `farewell` (a close frame) when there is one, and
    // tells the link, which answers the requests in flight.
    void end(std::string cause, std::string farewell = {}) {
        if (state == phase::ended) return;
        const bool was_open = state == phase::open;
        state = phase::ended;
        timer.cancel();
        resolver.cancel();
        const std::string failure = was_open ? "the connection to the writer " + url + " was lost: " + cause
                                             : "the writer " + url + " cannot be reached: " + cause;
        if (writing && !queue.empty()) {
            // Perhaps written in part: the client is told it may have been carried out.
            auto& f = queue.front();
            if (!f.quoted_id.empty()) settle(f.quoted_id);
            complete(f.waiter, fail(errc::unavailable, failure + "; the request may or may not have been carried out"));
            queue.pop_front();
        }
        for (auto& f : queue) complete(f.waiter, fail(errc::unavailable, failure));
        queue.clear();
        parser_message.clear();
        parser_message.shrink_to_fit();

        if (was_open && !farewell.empty()) {
            farewell_frame = std::move(farewell);
            // Bounded: a writer that reads nothing more does not keep the socket.
            timer.expires_after(farewell_timeout);
            timer.async_wait([self = shared_from_this()](const error_code& ec) {
                if (!ec) self->close_socket();
            });
            // The write handler of a frame being written sends it after.
            if (!writing) send_farewell();
        } else {
            close_socket();
        }
        if (auto link = owner.lock()) link->lost(*this, was_open, cause);
    }

    void close_socket() noexcept {
        error_code ignored;
        timer.cancel();
        socket.shutdown(tcp::socket::shutdown_both, ignored);
        socket.close(ignored);
    }

    asio::io_context& ioc;
    std::weak_ptr<writer_link> owner;
    const writer_link_options opts;
    const std::string url;
    const websocket::ws_url where;
    phase state = phase::opening;
    // Requests written and not answered: their ids as our encoder quotes them, counted.
    std::unordered_map<std::string, std::size_t> in_flight;

private:
    struct outgoing {
        std::string frame;
        std::string quoted_id;  // empty: not a request
        std::shared_ptr<write_state> waiter;  // null: nobody waits
    };

    template <typename F>
    void on_stream(F&& f) {
        if (tls) {
            f(*tls);
        } else {
            f(socket);
        }
    }

    void complete(const std::shared_ptr<write_state>& st, registry::result<void> r) {
        if (!st) return;
        st->outcome.emplace(std::move(r));
        if (!st->waiter) return;
        asio::post(ioc, [st] {
            if (auto h = std::exchange(st->waiter, {})) h.resume();
        });
    }

    void settle(const std::string& quoted_id) {
        const auto it = in_flight.find(quoted_id);
        if (it == in_flight.end()) return;
        if (--it->second == 0) in_flight.erase(it);
    }

    void connect(tcp::resolver::results_type endpoints) {
        asio::async_connect(socket, endpoints, [self = shared_from_this()](const error_code& ec, const tcp::endpoint&) {
            if (self->state != phase::opening) return;
            if (ec) return self->end("connecting to " + self->where.host + ":" + self->where.port + ": " + ec.message());
            error_code ignored;
            self->socket.set_option(tcp::no_delay(true), ignored);
            if (!self->where.tls) return self->send_upgrade();
            self->handshake();
        });
    }

    void handshake() {
        if (!opts.tls) return end("a wss:// url needs a TLS context");
        tls.emplace(socket, *opts.tls);
        // SNI, and the certificate must name the host (an IP address or a DNS name).
        if (!SSL_set_tlsext_host_name(tls->native_handle(), where.host.c_str())) {
            return end("TLS: cannot set the server name " + where.host);
        }
        tls->set_verify_mode(asio::ssl::verify_peer);
        tls->set_verify_callback(asio::ssl::host_name_verification(where.host));
        tls->async_handshake(asio::ssl::stream_base::client, [self = shared_from_this()](const error_code& ec) {
            if (self->state != phase::opening) return;
            if (ec) return self->end("TLS handshake with " + self->where.host + ": " + ec.message());
            self->send_upgrade();
        });
    }

    void send_upgrade() {
        key = websocket::new_upgrade_key();
        std::string& req = upgrade_request;
        {
            auto link = owner.lock();
            req = websocket::upgrade_request(where, key, link ? std::string_view(link->token_) : std::string_view());
        }
        on_stream([&](auto& s) {
            asio::async_write(s, asio::buffer(req), [self = shared_from_this()](const error_code& ec, std::size_t) {
                if (self->state != phase::opening) return;
                self->upgrade_request = {};  // it held the token
                if (ec) return self->end("sending the upgrade: " + ec.message());
                self->inbuf.resize(websocket::max_upgrade_response_bytes);
                self->read_upgrade();
            });
        });
    }

    void read_upgrade() {
        on_stream([&](auto& s) {
            s.async_read_some(asio::buffer(inbuf.data() + have, inbuf.size() - have),
                              [self = shared_from_this()](const error_code& ec, std::size_t n) {
                                  if (self->state != phase::opening) return;
                                  self->have += n;
                                  self->on_upgrade_bytes(ec);
                              });
        });
    }

    void on_upgrade_bytes(const error_code& ec) {
        const std::string_view got(inbuf.data(), have);
        const std::size_t head_end = got.find("\r\n\r\n");
        if (head_end == std::string_view::npos) {
            if (ec) return end("reading the upgrade's response: " + ec.message());
            if (have == inbuf.size()) return end("the upgrade's response is larger than 16 KiB");
            return read_upgrade();
        }
        const websocket::upgrade_response r = websocket::read_upgrade_response(got.substr(0, head_end + 2), key);
        const std::size_t body_at = head_end + 4;
        if (r.status != 101) {
            // A refusal (401, 403, 429, 503): its body says why. Read it
            // whole, within the bound, unless the writer ends it first.
            const std::size_t want = std::min(body_at + r.content_length, inbuf.size());
            if (have < want && !ec) return read_upgrade();
            std::string why = "the upgrade was answered " + r.status_line;
            const std::string_view body = trim(got.substr(std::min(body_at, have)));
            if (!body.empty()) why += ": " + std::string(log::clip(body, 512));
            return end(why);
        }
        if (!r.accepted) return end("the upgrade's Sec-WebSocket-Accept does not answer the key");

        state = phase::open;
        key = {};
        log::debug("writer link open", {{"url", url}});
        last_heard = std::chrono::steady_clock::now();
        watch_silence(opts.silence_timeout);
        // Frames that came with the head. Then a TLS link reads into a chunk
        // of its own (OpenSSL keeps records across reads); a plain one waits
        // for readability and reads into the thread's buffer, so that an idle
        // link holds none (a standby has one per client that wrote).
        std::string early(got.substr(body_at));
        if (tls) {
            inbuf.assign(read_chunk_bytes, '\0');
        } else {
            inbuf.clear();
            error_code ignored;
            socket.non_blocking(true, ignored);
        }
        inbuf.shrink_to_fit();
        have = 0;
        pump();
        if (!early.empty()) {
            std::span<char> in(early.data(), early.size());
            if (!consume(in)) return;
        }
        read_frames();
    }

    // The silence check: wakes `after` from now, and ends the connection if
    // nothing came since the writer was last heard from for silence_timeout.
    void watch_silence(std::chrono::steady_clock::duration after) {
        timer.expires_after(after);
        timer.async_wait([self = shared_from_this()](const error_code& ec) {
            if (ec || self->state != phase::open) return;
            const auto quiet = std::chrono::steady_clock::now() - self->last_heard;
            if (quiet < self->opts.silence_timeout) return self->watch_silence(self->opts.silence_timeout - quiet);
            self->end("nothing from the writer for " + std::to_string(self->opts.silence_timeout.count()) + " ms");
        });
    }

    void read_frames() {
        if (!tls) {
            socket.async_wait(tcp::socket::wait_read, [self = shared_from_this()](const error_code& ec) {
                if (self->state != phase::open) return;
                if (ec) return self->end("reading: " + ec.message());
                self->read_ready();
            });
            return;
        }
        tls->async_read_some(asio::buffer(inbuf), [self = shared_from_this()](const error_code& ec, std::size_t n) {
            if (self->state != phase::open) return;
            if (ec) return self->read_failed(ec);
            self->last_heard = std::chrono::steady_clock::now();
            std::span<char> in(self->inbuf.data(), n);
            if (self->consume(in)) self->read_frames();
        });
    }

    // A plain link's socket is readable: what it holds, through the thread's
    // buffer (the frames' bytes are copied out by consume()).
    void read_ready() {
        thread_local std::vector<char> shared(read_chunk_bytes * 4);
        for (;;) {
            error_code ec;
            const std::size_t n = socket.read_some(asio::buffer(shared), ec);
            if (ec == asio::error::would_block || ec == asio::error::try_again) break;
            if (ec) return read_failed(ec);
            last_heard = std::chrono::steady_clock::now();
            std::span<char> in(shared.data(), n);
            if (!consume(in)) return;
            if (n < shared.size()) break;  // drained; a wait sees the next bytes (epoll is edge-triggered)
        }
        read_frames();
    }

    void read_failed(const error_code& ec) {
        end(ec == asio::error::eof ? "the writer closed the connection" : "reading: " + ec.message());
    }

    // Handles the frames in `in`; false once the connection ended.
    bool consume(std::span<char>& in) {
        for (;;) {
            const websocket::parse_event ev = parser.next(in);
            using kind = websocket::parse_event::kind;
            switch (ev.what) {
                case kind::need_more:
                    return true;
                case kind::data:
                    if (ev.binary) {
                        end("the writer sent a binary message",
                            websocket::close_payload(websocket::close_code::protocol_error, "binary message"));
                        return false;
                    }
                    if (ev.bytes.size() > opts.max_frame_bytes - std::min(opts.max_frame_bytes, parser_message.size())) {
                        end("the writer sent a message larger than " + std::to_string(opts.max_frame_bytes) + " bytes",
                            websocket::close_payload(websocket::close_code::too_big, "message too big"));
                        return false;
                    }
                    parser_message.append(ev.bytes);
                    if (ev.last && !dispatch(std::exchange(parser_message, {}))) return false;
                    break;
                case kind::ping:
                    enqueue(masked(websocket::opcode::pong, ev.bytes), {}, nullptr);
                    break;
                case kind::pong:
                    break;
                case kind::close:
                    end("the writer closed the connection (close code " +
                            std::to_string(static_cast<unsigned>(ev.code)) +
                            (ev.bytes.empty() ? std::string(")") : ": " + std::string(ev.bytes) + ")"),
                        websocket::close_payload(ev.code == websocket::close_code::none ? websocket::close_code::normal
                                                                                        : ev.code,
                                                 {}));
                    return false;
                case kind::error:
                    end("the writer broke the protocol: " + std::string(ev.bytes),
                        websocket::close_payload(ev.code, ev.bytes));
                    return false;
            }
        }
    }

    // One whole message for the client; false once the connection ended.
    bool dispatch(std::string text) {
        const message_kind k = classify(text);
        if (k.response && !k.quoted_id.empty()) settle(std::string(k.quoted_id));
        auto link = owner.lock();
        if (!link || link->closed_) return false;
        if (!link->deliver_(std::move(text), k.response)) {
            log::debug("writer link: the client cannot take a message", {{"url", url}});
            link->close();
            return false;
        }
        return state != phase::ended;
    }

    void pump() {
        if (state != phase::open || writing || queue.empty()) return;
        writing = true;
        outgoing& f = queue.front();
        if (!f.quoted_id.empty()) ++in_flight[f.quoted_id];
        on_stream([&](auto& s) {
            asio::async_write(s, asio::buffer(f.frame), [self = shared_from_this()](const error_code& ec, std::size_t) {
                self->writing = false;
                self->written(ec);
            });
        });
    }

    void written(const error_code& ec) {
        if (state == phase::ended) {
            // end() failed the frame; a close frame may be due.
            if (!farewell_frame.empty() && !ec) return send_farewell();
            return close_socket();
        }
        outgoing f = std::move(queue.front());
        queue.pop_front();
        if (ec) {
            if (!f.quoted_id.empty()) settle(f.quoted_id);
            const std::string cause = "writing: " + ec.message();
            complete(f.waiter, fail(errc::unavailable, "the connection to the writer " + url + " was lost: " + cause +
                                                           "; the request may or may not have been carried out"));
            return end(cause);
        }
        complete(f.waiter, {});
        pump();
    }

    void send_farewell() {
        farewell_frame = masked(websocket::opcode::close, farewell_frame);
        writing = true;
        on_stream([&](auto& s) {
            asio::async_write(s, asio::buffer(farewell_frame), [self = shared_from_this()](const error_code&, std::size_t) {
                self->writing = false;
                self->farewell_frame = {};
                self->close_socket();
            });
        });
    }

    tcp::resolver resolver;
    tcp::socket socket;
    std::optional<asio::ssl::stream<tcp::socket&>> tls;  // over `socket`: declared after it, destroyed before it
    asio::steady_timer timer;  // the open deadline, then the silence check, then the farewell's
    std::string key;
    std::string upgrade_request;
    std::string inbuf;
    std::size_t have = 0;  // bytes of the upgrade's response in inbuf
    std::chrono::steady_clock::time_point last_heard;
    websocket::frame_parser parser{websocket::frame_parser::peer::server};
    std::string parser_message;  // the data message being received
    std::deque<outgoing> queue;  // the front one is being written while `writing`
    bool writing = false;
    std::string farewell_frame;  // the close payload to send once the write in progress ends
};

std::shared_ptr<asio::ssl::context> make_writer_tls_context(const std::filesystem::path& extra_ca) {
    auto ctx = std::make_shared<asio::ssl::context>(asio::ssl::context::tls_client);
    SSL_CTX_set_min_proto_version(ctx->native_handle(), TLS1_2_VERSION);
    error_code ec;
    ctx->set_default_verify_paths(ec);
    if (ec) throw std::runtime_error("the system's CA certificates: " + ec.message());
    if (!extra_ca.empty()) {
        ctx->load_verify_file(extra_ca.string(), ec);
        if (ec) throw std::runtime_error("store.etcd.relay_ca_file " + extra_ca.string() + ": " + ec.message());
    }
    ctx->set_verify_mode(asio::ssl::verify_peer);
    return ctx;
}

writer_link::writer_link(asio::io_context& ioc, std::string url, std::string bearer_token, writer_link_options opts,
                         deliver_function deliver)
    : ioc_(ioc), url_(std::move(url)), token_(std::move(bearer_token)), opts_(opts), deliver_(std::move(deliver)) {}

writer_link::~writer_link() {
    closed_ = true;
    if (conn_) conn_->end("the link was destroyed", websocket::close_payload(websocket::close_code::going_away, {}));
}

bool writer_link::open() const noexcept { return conn_ && conn_->state == connection::phase::open; }

registry::task<registry::result<void>> writer_link::forward(std::string id, std::string text) {
    auto self = shared_from_this();  // the connection is made with a weak reference to it
    if (closed_) co_return fail(errc::unavailable, "the link to the writer " + url_ + " is closed");
    if (!conn_ || conn_->state == connection::phase::ended) {
        std::string why;
        auto where = websocket::parse_ws_url(url_, why);
        if (!where) co_return fail(errc::unavailable, "the writer's url '" + url_ + "' " + why);
        if (where->tls && !opts_.tls) {
            co_return fail(errc::unavailable,
                           "the writer " + url_ + " cannot be reached: a wss:// url needs a TLS context (none given)");
        }
        conn_ = std::make_shared<connection>(ioc_, weak_from_this(), opts_, url_, std::move(*where));
        conn_->start_open();
    }
    auto st = std::make_shared<write_state>();
    conn_->enqueue(masked(websocket::opcode::text, text), json_quoted(id), st);
    write_awaiter w(std::move(st));
    auto r = co_await w;
    co_return r;
}

void writer_link::close() {
    if (closed_) return;
    closed_ = true;
    if (auto c = std::move(conn_)) {
        log::debug("writer link closed", {{"url", url_}});
        c->end("the client's connection ended", websocket::close_payload(websocket::close_code::normal, {}));
    }
}

void writer_link::retire(const std::string& cause) {
    if (closed_) return;
    // Ended as if lost (lost() answers what is in flight), then closed.
    if (auto c = conn_) c->end(cause, websocket::close_payload(websocket::close_code::going_away, {}));
    closed_ = true;
}

void writer_link::lost(connection& c, bool was_open, const std::string& cause) {
    auto in_flight = std::exchange(c.in_flight, {});
    if (conn_.get() == &c) conn_.reset();
    if (closed_) return;
    if (was_open) {
        log::warn("writer link lost", {{"url", url_}, {"cause", cause}, {"in_flight", in_flight.size()}});
    } else {
        log::warn("writer link cannot open", {{"url", url_}, {"cause", cause}});
    }
    for (const auto& [id, count] : in_flight) {
        for (std::size_t i = 0; i < count; ++i) {
            if (closed_) return;
            if (!deliver_(lost_response(id, url_, cause), true)) return close();
        }
    }
}

}  // namespace registryd
