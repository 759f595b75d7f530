// The container engine's HTTP transport: the one translation unit of this
// client that includes Boost.Beast.
//
// Each request gets its own connection (an http_connection, shared by the
// coroutine driving it and by the completion handler of whatever operation
// is pending on it). The request message, the read buffer and the parser
// live in the connection, never in a coroutine frame, so that a frame
// destroyed while an operation is pending (a stream dropped by its consumer)
// leaves nothing dangling: the pending operation's awaiter closes the socket
// as it goes, and the handler, which owns a reference to the connection,
// completes without resuming anyone.

#include "engine/engine_http.hpp"

#include <registry/cancellation.hpp>

#include <boost/asio/generic/stream_protocol.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/local/stream_protocol.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/write.hpp>
#include <boost/asio/ssl/context.hpp>
#include <boost/asio/ssl/stream.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>

#include <openssl/ssl.h>
#include <openssl/x509.h>
#include <openssl/x509_vfy.h>

#include <fcntl.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <coroutine>
#include <cstring>
#include <limits>
#include <optional>
#include <tuple>
#include <utility>
#include <vector>

namespace registryd {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
using error_code = boost::system::error_code;
using registry::errc;
using registry::fail;

namespace {

constexpr std::size_t read_chunk_bytes = 64 * 1024;
constexpr std::uint32_t header_limit = 64 * 1024;

}  // namespace

class http_connection {
public:
    using stream_type = beast::basic_stream<asio::generic::stream_protocol>;
    using tls_stream_type = asio::ssl::stream<stream_type&>;

    http_connection(asio::io_context& io, std::string engine, const http_client_options& opts)
        : ioc(io), stream(io), resolver(io), peer(std::move(engine)), options(opts), chunk(read_chunk_bytes) {}
    http_connection(const http_connection&) = delete;
    http_connection& operator=(const http_connection&) = delete;
    ~http_connection() { close_body_file(); }

    void close_body_file() noexcept {
        if (body_fd >= 0) ::close(std::exchange(body_fd, -1));
    }

    // Closes the socket: pending operations complete with an error.
    void close() noexcept {
        if (closed) return;
        closed = true;
        resolver.cancel();
        error_code ec;
        stream.socket().shutdown(asio::socket_base::shutdown_both, ec);
        stream.close();
    }

    // Runs f on the stream the HTTP messages go through: the TLS stream over
    // the socket, or the socket's.
    template <typename F>
    void on_stream(F&& f) {
        if (tls) {
            f(*tls);
        } else {
            f(stream);
        }
    }

    // "container engine unix:///run/podman.sock: POST /v1.41/...: <what>"
    std::string describe(std::string_view what) const {
        std::string out = options.peer_kind + " " + peer;
        if (!request_line.empty()) out += ": " + request_line;
        out += ": ";
        out += what;
        return out;
    }

    std::string describe(std::string_view stage, const error_code& ec) const {
        if (ec == beast::error::timeout) return describe(std::string(stage) + ": timed out");
        return describe(std::string(stage) + ": " + ec.message());
    }

    asio::io_context& ioc;
    stream_type stream;
    asio::ip::tcp::resolver resolver;
    std::string peer;          // the engine's address, for messages
    std::string request_line;  // "GET /v1.41/_ping", for messages
    http_client_options options;
    http::request<http::string_body> req;
    // A body sent from a file (http_request::body_file): the head goes
    // through this serializer, then the file through `chunk`.
    std::optional<http::request_serializer<http::string_body>> head;
    int body_fd = -1;
    beast::flat_buffer buffer;
    std::optional<http::response_parser<http::buffer_body>> parser;
    std::optional<http::response_parser<http::string_body>> tunnel_answer;  // http_client_options::tunnel
    std::vector<char> chunk;
    std::optional<tls_stream_type> tls;  // over `stream`: declared after it, destroyed before it
    bool upgraded = false;
    bool closed = false;
};

namespace {

// Closes the connection when a stop is requested; the pending operation then
// fails, and the coroutine that awaited it sees the stop and throws
// operation_cancelled. The connection may only be touched on the io thread.
struct closer {
    std::shared_ptr<http_connection> conn;
    void operator()() const noexcept {
        if (conn->ioc.get_executor().running_in_this_thread()) {
            conn->close();
        } else {
            asio::post(conn->ioc, [c = conn] { c->close(); });
        }
    }
};

template <typename... Args>
struct op_state {
    std::coroutine_handle<> waiter;
    std::optional<std::tuple<Args...>> result;
};

// Awaits one Asio/Beast operation, started by `initiate(handler)`; yields the
// handler's arguments. Always use it as a named local (GCC 12 destroys a
// non-trivial awaiter temporary twice).
template <typename Initiate, typename... Args>
class async_op {
public:
    async_op(std::shared_ptr<http_connection> conn, Initiate initiate)
        : conn_(std::move(conn)), initiate_(std::move(initiate)) {}
    async_op(const async_op&) = delete;
    async_op& operator=(const async_op&) = delete;

    // The awaiting frame is being destroyed while the operation is pending:
    // make sure nobody resumes it, and abort the operation.
    ~async_op() {
        if (state_ && state_->waiter) {
            state_->waiter = {};
            conn_->close();
        }
    }

    bool await_ready() const noexcept { return false; }

    void await_suspend(std::coroutine_handle<> h) {
        state_ = std::make_shared<op_state<Args...>>();
        state_->waiter = h;
        initiate_(handler{state_, conn_});
    }

    std::tuple<Args...> await_resume() { return std::move(*state_->result); }

private:
    struct handler {
        std::shared_ptr<op_state<Args...>> state;
        std::shared_ptr<http_connection> conn;  // what the operation works on outlives it

        void operator()(Args... args) {
            state->result.emplace(std::move(args)...);
            if (auto w = std::exchange(state->waiter, {})) w.resume();
        }
    };

    std::shared_ptr<http_connection> conn_;
    Initiate initiate_;
    std::shared_ptr<op_state<Args...>> state_;
};

template <typename... Args, typename Initiate>
async_op<Initiate, Args...> make_op(const std::shared_ptr<http_connection>& conn, Initiate initiate) {
    return async_op<Initiate, Args...>(conn, std::move(initiate));
}

void throw_if_stopped(const std::stop_token& stop) {
    if (stop.stop_requested()) throw registry::operation_cancelled();
}

}  // namespace

// ---------------------------------------------------------------- stream

http_stream::http_stream(std::shared_ptr<http_connection> conn) noexcept : conn_(std::move(conn)) {}
http_stream::http_stream(http_stream&&) noexcept = default;
http_stream& http_stream::operator=(http_stream&& other) noexcept {
    if (this != &other) {
        if (conn_) conn_->close();
        conn_ = std::move(other.conn_);
    }
    return *this;
}
http_stream::~http_stream() {
    if (conn_) conn_->close();
}

unsigned http_stream::status() const noexcept { return conn_ ? conn_->parser->get().result_int() : 0; }

std::string http_stream::content_type() const {
    if (!conn_) return {};
    return std::string(conn_->parser->get()[http::field::content_type]);
}

bool http_stream::upgraded() const noexcept { return conn_ && conn_->upgraded; }

registry::task<registry::result<std::optional<std::string>>> http_stream::next(std::stop_token stop) {
    using piece = std::optional<std::string>;
    std::shared_ptr<http_connection> conn = conn_;
    if (!conn || conn->closed) co_return fail(errc::unavailable, conn ? conn->describe("connection closed") : "no connection");
    std::stop_callback<closer> on_stop(stop, closer{conn});
    throw_if_stopped(stop);

    if (conn->upgraded) {
        // Bytes that came in with the 101 response's head come first.
        if (conn->buffer.size() > 0) {
            std::string s = beast::buffers_to_string(conn->buffer.data());
            conn->buffer.consume(conn->buffer.size());
            co_return piece(std::move(s));
        }
        auto op = make_op<error_code, std::size_t>(conn, [&](auto handler) {
            conn->on_stream([&](auto& s) { s.async_read_some(asio::buffer(conn->chunk), std::move(handler)); });
        });
        auto [ec, n] = co_await op;
        throw_if_stopped(stop);
        if (ec == asio::error::eof) co_return piece();
        if (ec) co_return fail(errc::unavailable, conn->describe("reading the stream", ec));
        co_return piece(std::string(conn->chunk.data(), n));
    }

    auto& parser = *conn->parser;
    for (;;) {
        if (parser.is_done()) co_return piece();
        parser.get().body().data = conn->chunk.data();
        parser.get().body().size = conn->chunk.size();
        auto op = make_op<error_code, std::size_t>(conn, [&](auto handler) {
            conn->on_stream([&](auto& s) { http::async_read_some(s, conn->buffer, parser, std::move(handler)); });
        });
        auto [ec, n] = co_await op;
        throw_if_stopped(stop);
        if (ec == http::error::need_buffer) ec = {};
        if (ec) co_return fail(errc::unavailable, conn->describe("reading the response body", ec));
        const std::size_t got = conn->chunk.size() - parser.get().body().size;
        if (got > 0) co_return piece(std::string(conn->chunk.data(), got));
    }
}

registry::task<registry::result<std::string>> http_stream::read_all(std::chrono::milliseconds timeout,
                                                                     std::stop_token stop) {
    std::shared_ptr<http_connection> conn = conn_;
    if (!conn) co_return fail(errc::unavailable, "no connection");
    if (timeout.count() > 0) conn->stream.expires_after(timeout);
    std::string body;
    for (;;) {
        auto r = co_await next(stop);
        if (!r) co_return registry::unexpected{r.err()};
        if (!*r) break;
        if (body.size() + (*r)->size() > conn->options.max_body_bytes) {
            co_return fail(errc::internal, conn->describe("response larger than " +
                                                          std::to_string(conn->options.max_body_bytes) + " bytes"));
        }
        body += **r;
    }
    co_return body;
}

// ---------------------------------------------------------------- client

namespace {

bool is_ip_address(const std::string& host) {
    error_code ec;
    asio::ip::make_address(host, ec);
    return !ec;
}

}  // namespace

registry::task<std::optional<registry::error>> engine_http_client::handshake(std::shared_ptr<http_connection> conn,
                                                                             std::stop_token stop) {
    auto& tls = conn->tls.emplace(conn->stream, *options_.tls);
    SSL* ssl = tls.native_handle();
    const std::string& name = options_.tls_server_name.empty() ? endpoint_.host : options_.tls_server_name;
    // The certificate must name the server: its IP address, or its DNS name
    // (also sent as SNI).
    bool named = false;
    if (is_ip_address(name)) {
        named = X509_VERIFY_PARAM_set1_ip_asc(SSL_get0_param(ssl), name.c_str()) == 1;
    } else {
        named = SSL_set1_host(ssl, name.c_str()) == 1 && SSL_set_tlsext_host_name(ssl, name.c_str()) == 1;
    }
    if (!named) co_return registry::error{errc::internal, conn->describe("TLS: cannot check the server's name " + name)};
    conn->stream.expires_after(options_.connect_timeout);
    auto op = make_op<error_code>(conn, [&](auto handler) {
        tls.async_handshake(asio::ssl::stream_base::client, std::move(handler));
    });
    auto [ec] = co_await op;
    throw_if_stopped(stop);
    if (!ec) co_return std::nullopt;
    std::string why = "TLS handshake: ";
    why += ec == beast::error::timeout ? std::string("timed out") : ec.message();
    // OpenSSL's "certificate verify failed" says nothing of why: the
    // verification's own reason does ("unable to get local issuer
    // certificate", "hostname mismatch").
    const long verified = SSL_get_verify_result(ssl);
    if (verified != X509_V_OK) why += std::string(": ") + X509_verify_cert_error_string(verified);
    co_return registry::error{errc::unavailable, conn->describe(why)};
}

registry::task<std::optional<registry::error>> engine_http_client::open_tunnel(std::shared_ptr<http_connection> conn,
                                                                               std::stop_token stop) {
    const auto& t = *options_.tunnel;
    conn->request_line = "GET " + t.target;
    conn->req = {};
    conn->req.method(http::verb::get);
    conn->req.target(t.target);
    conn->req.version(11);
    conn->req.set(http::field::host, endpoint_.host + ":" + std::to_string(endpoint_.port));
    conn->req.set(http::field::user_agent, "registryd");
    conn->req.set(http::field::connection, "Upgrade");
    conn->req.set(http::field::upgrade, t.protocol);
    conn->req.set(http::field::authorization, t.authorization);
    conn->stream.expires_after(options_.connect_timeout);
    {
        auto op = make_op<error_code, std::size_t>(conn, [&](auto handler) {
            conn->on_stream([&](auto& s) { http::async_write(s, conn->req, std::move(handler)); });
        });
        auto [ec, n] = co_await op;
        throw_if_stopped(stop);
        if (ec) co_return registry::error{errc::unavailable, conn->describe("sending the upgrade", ec)};
    }
    conn->req = {};
    // A refusal's text is short; a 101 has no body. What follows the 101
    // stays in the buffer for the engine's response.
    auto& answer = conn->tunnel_answer.emplace();
    answer.header_limit(header_limit);
    answer.body_limit(4096);
    {
        auto op = make_op<error_code, std::size_t>(conn, [&](auto handler) {
            conn->on_stream([&](auto& s) { http::async_read(s, conn->buffer, answer, std::move(handler)); });
        });
        auto [ec, n] = co_await op;
        throw_if_stopped(stop);
        if (ec) co_return registry::error{errc::unavailable, conn->describe("reading the upgrade's answer", ec)};
    }
    const auto res = answer.release();
    conn->tunnel_answer.reset();
    if (res.result() != http::status::switching_protocols) {
        std::string why = "upgrade refused: " + std::to_string(res.result_int());
        std::string_view text = res.body();
        while (!text.empty() && (text.back() == '\n' || text.back() == '\r')) text.remove_suffix(1);
        if (!text.empty()) why += ": " + std::string(text);
        co_return registry::error{errc::unavailable, conn->describe(why)};
    }
    co_return std::nullopt;
}

engine_http_client::engine_http_client(asio::io_context& ioc, engine_endpoint endpoint, http_client_options options)
    : ioc_(ioc), endpoint_(std::move(endpoint)), options_(options) {}

registry::task<registry::result<std::shared_ptr<http_connection>>> engine_http_client::send(
    http_request r, std::stop_token stop, std::chrono::milliseconds timeout) {
    auto conn = std::make_shared<http_connection>(ioc_, endpoint_.uri(), options_);
    conn->request_line = r.method + " " + r.target;
    std::stop_callback<closer> on_stop(stop, closer{conn});
    throw_if_stopped(stop);

    const auto verb = http::string_to_verb(r.method);
    if (verb == http::verb::unknown) co_return fail(errc::invalid_request, conn->describe("unknown HTTP method"));

    // A body from a file: opened before connecting, its size is the Content-Length.
    std::uint64_t body_file_size = 0;
    const bool from_file = !r.body_file.empty();
    if (from_file) {
        if (!r.body.empty()) co_return fail(errc::invalid_request, conn->describe("both a body and a body file"));
        // Not blocking on open: a FIFO there is refused, not waited on.
        conn->body_fd = ::open(r.body_file.c_str(), O_RDONLY | O_NONBLOCK | O_CLOEXEC);
        struct stat st {};
        std::string problem;
        if (conn->body_fd < 0 || ::fstat(conn->body_fd, &st) != 0) {
            problem = std::strerror(errno);
        } else if (!S_ISREG(st.st_mode)) {
            problem = "not a regular file";
        }
        if (!problem.empty()) {
            co_return fail(errc::internal, conn->describe("the body file " + r.body_file.string() + ": " + problem));
        }
        body_file_size = static_cast<std::uint64_t>(st.st_size);
    }

    // Where to connect.
    std::vector<asio::generic::stream_protocol::endpoint> targets;
    if (endpoint_.type == engine_endpoint::kind::unix_socket) {
        if (endpoint_.path.empty() || endpoint_.path.size() >= sizeof(sockaddr_un{}.sun_path)) {
            co_return fail(errc::invalid_request, conn->describe("bad unix socket path"));
        }
        targets.emplace_back(asio::local::stream_protocol::endpoint(endpoint_.path));
    } else {
        error_code ec;
        const auto address = asio::ip::make_address(endpoint_.host, ec);
        if (!ec) {
            targets.emplace_back(asio::ip::tcp::endpoint(address, endpoint_.port));
        } else {
            auto op = make_op<error_code, asio::ip::tcp::resolver::results_type>(conn, [&](auto handler) {
                conn->resolver.async_resolve(endpoint_.host, std::to_string(endpoint_.port), std::move(handler));
            });
            auto [rec, results] = co_await op;
            throw_if_stopped(stop);
            if (rec) co_return fail(errc::unavailable, conn->describe("resolving " + endpoint_.host, rec));
            for (const auto& entry : results) targets.emplace_back(entry.endpoint());
        }
    }

    // Connect: the first address that accepts.
    error_code connect_error = asio::error::host_not_found;
    for (const auto& target : targets) {
        conn->stream.expires_after(options_.connect_timeout);
        auto op = make_op<error_code>(conn, [&](auto handler) { conn->stream.async_connect(target, std::move(handler)); });
        auto [ec] = co_await op;
        throw_if_stopped(stop);
        connect_error = ec;
        if (!ec) break;
        error_code ignored;
        conn->stream.socket().close(ignored);
    }
    if (connect_error) co_return fail(errc::unavailable, conn->describe("connect", connect_error));
    if (endpoint_.type == engine_endpoint::kind::tcp) {
        error_code ignored;
        conn->stream.socket().set_option(asio::ip::tcp::no_delay(true), ignored);
    }
    if (options_.tls && endpoint_.type == engine_endpoint::kind::tcp) {
        // Not `if (co_await ...)`: GCC 12 miscompiles a co_await in a condition.
        std::optional<registry::error> failed = co_await handshake(conn, stop);
        if (failed) co_return registry::unexpected{std::move(*failed)};
    }
    if (options_.tunnel) {
        std::optional<registry::error> failed = co_await open_tunnel(conn, stop);
        if (failed) co_return registry::unexpected{std::move(*failed)};
        conn->request_line = r.method + " " + r.target;
    }

    // The request.
    auto& req = conn->req;
    req.method(verb);
    req.target(r.target);
    req.version(11);
    req.set(http::field::host,
            endpoint_.type == engine_endpoint::kind::tcp ? endpoint_.host + ":" + std::to_string(endpoint_.port)
                                                         : std::string("localhost"));
    req.set(http::field::user_agent, "registryd");
    if (!r.authorization.empty()) req.set(http::field::authorization, r.authorization);
    if (r.upgrade) {
        req.set(http::field::connection, "Upgrade");
        req.set(http::field::upgrade, "tcp");
    } else {
        req.set(http::field::connection, "close");
    }
    if (!r.content_type.empty()) req.set(http::field::content_type, r.content_type);
    if (from_file) {
        req.content_length(body_file_size);
    } else {
        req.body() = std::move(r.body);
        req.prepare_payload();
    }

    if (timeout == std::chrono::milliseconds::max()) {
        conn->stream.expires_never();
    } else {
        conn->stream.expires_after(timeout.count() > 0 ? timeout : options_.request_timeout);
    }
    if (!from_file) {
        auto op = make_op<error_code, std::size_t>(conn, [&](auto handler) {
            conn->on_stream([&](auto& s) { http::async_write(s, conn->req, std::move(handler)); });
        });
        auto [ec, n] = co_await op;
        throw_if_stopped(stop);
        if (ec) co_return fail(errc::unavailable, conn->describe("sending the request", ec));
    } else {
        // The head, then the file a piece at a time, all within the expiry
        // set above (as one write of a string body is).
        auto& head = conn->head.emplace(conn->req);
        {
            auto op = make_op<error_code, std::size_t>(conn, [&](auto handler) {
                conn->on_stream([&](auto& s) { http::async_write_header(s, head, std::move(handler)); });
            });
            auto [ec, n] = co_await op;
            throw_if_stopped(stop);
            if (ec) co_return fail(errc::unavailable, conn->describe("sending the request", ec));
        }
        conn->head.reset();
        std::uint64_t left = body_file_size;
        while (left > 0) {
            const std::size_t want = static_cast<std::size_t>(std::min<std::uint64_t>(left, conn->chunk.size()));
            const ssize_t got = ::read(conn->body_fd, conn->chunk.data(), want);
            if (got < 0 && errno == EINTR) continue;
            if (got <= 0) {
                const std::string why = got < 0 ? std::string(std::strerror(errno)) : "it shrank while it was sent";
                co_return fail(errc::internal, conn->describe("the body file " + r.body_file.string() + ": " + why));
            }
            auto op = make_op<error_code, std::size_t>(conn, [&](auto handler) {
                conn->on_stream([&](auto& s) {
                    asio::async_write(s, asio::buffer(conn->chunk.data(), static_cast<std::size_t>(got)),
                                      std::move(handler));
                });
            });
            auto [ec, n] = co_await op;
            throw_if_stopped(stop);
            if (ec) co_return fail(errc::unavailable, conn->describe("sending the request's body", ec));
            left -= static_cast<std::uint64_t>(got);
        }
        conn->close_body_file();
    }
    conn->req = {};  // the body may be large

    // The response's head.
    conn->parser.emplace();
    conn->parser->header_limit(header_limit);
    conn->parser->body_limit(std::numeric_limits<std::uint64_t>::max());
    if (verb == http::verb::head) conn->parser->skip(true);
    {
        auto op = make_op<error_code, std::size_t>(conn, [&](auto handler) {
            conn->on_stream([&](auto& s) { http::async_read_header(s, conn->buffer, *conn->parser, std::move(handler)); });
        });
        auto [ec, n] = co_await op;
        throw_if_stopped(stop);
        if (ec) co_return fail(errc::unavailable, conn->describe("reading the response", ec));
    }
    conn->upgraded = conn->parser->get().result() == http::status::switching_protocols;
    co_return conn;
}

registry::task<registry::result<http_response>> engine_http_client::request(http_request req, std::stop_token stop,
                                                                            std::chrono::milliseconds timeout) {
    auto sent = co_await send(std::move(req), stop, timeout);
    if (!sent) co_return registry::unexpected{sent.err()};
    http_stream body_stream(std::move(*sent));
    http_response out;
    out.status = body_stream.status();
    out.content_type = body_stream.content_type();
    if (body_stream.upgraded()) co_return out;  // nothing to read: the caller did not want a stream
    // Zero keeps the deadline set for the whole request.
    auto body = co_await body_stream.read_all(std::chrono::milliseconds::zero(), stop);
    if (!body) co_return registry::unexpected{body.err()};
    out.body = std::move(*body);
    co_return out;
}

registry::task<registry::result<http_stream>> engine_http_client::open(http_request req, std::stop_token stop,
                                                                       bool head_may_wait) {
    auto sent = co_await send(std::move(req), stop,
                              head_may_wait ? std::chrono::milliseconds::max() : std::chrono::milliseconds::zero());
    if (!sent) co_return registry::unexpected{sent.err()};
    (*sent)->stream.expires_never();
    co_return http_stream(std::move(*sent));
}

}  // namespace registryd
