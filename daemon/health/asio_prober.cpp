#include "health/asio_prober.hpp"

#include "tls/tls_channel.hpp"
#include "tls/tls_stream.hpp"

#include <boost/asio/connect.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/write.hpp>
#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/http/empty_body.hpp>
#include <boost/beast/http/parser.hpp>
#include <boost/beast/http/read.hpp>

#include <openssl/err.h>

#include <coroutine>
#include <memory>
#include <optional>
#include <stdexcept>
#include <string>

namespace registryd {

namespace {

namespace asio = boost::asio;
namespace http = boost::beast::http;
using tcp = asio::ip::tcp;
using registry::health_status;

constexpr std::size_t max_response_header = 16 * 1024;

// One probe: shared by the awaiting coroutine and every pending handler;
// finish() resumes the coroutine once, the last handler frees it.
// The socket is shut down and cancelled when the probe finishes, and closed
// only with the probe: a TLS read posted before still runs on its own
// descriptor (the channel holds the number), and ends at once.
struct probe_op : std::enable_shared_from_this<probe_op> {
    probe_op(asio::io_context& ioc, registry::probe_request r, SSL_CTX* c)
        : socket(ioc), resolver(ioc), timer(ioc), request(std::move(r)), ctx(c) {}

    tcp::socket socket;
    tcp::resolver resolver;
    asio::steady_timer timer;
    registry::probe_request request;
    SSL_CTX* ctx;  // https
    std::optional<tls_channel> channel;
    std::optional<tls_stream> stream;
    std::string out;  // the http request
    boost::beast::flat_buffer buffer{max_response_header};
    http::response_parser<http::empty_body> parser;
    std::coroutine_handle<> waiter;
    registry::probe_result result;
    bool done = false;

    std::string where() const { return request.host + ":" + std::to_string(request.port); }

    void finish(health_status s, std::string output) {
        if (done) return;
        done = true;
        result = {s, std::move(output)};
        boost::system::error_code ignored;
        timer.cancel();
        resolver.cancel();
        socket.shutdown(tcp::socket::shutdown_both, ignored);
        socket.cancel(ignored);
        waiter.resume();
    }

    void fail(std::string_view what, const boost::system::error_code& ec) {
        finish(health_status::critical, std::string(what) + " " + where() + ": " + ec.message());
    }

    void start() {
        auto self = shared_from_this();
        timer.expires_after(request.timeout);
        timer.async_wait([self](const boost::system::error_code& ec) {
            if (ec) return;  // cancelled: finished
            self->finish(health_status::critical,
                         "timed out after " + std::to_string(self->request.timeout.count()) + " ms (" + self->where() + ")");
        });
        boost::system::error_code ec;
        const auto ip = asio::ip::make_address(request.host, ec);
        if (!ec) {
            connect(tcp::endpoint(ip, request.port));
            return;
        }
        resolver.async_resolve(request.host, std::to_string(request.port),
                               [self](const boost::system::error_code& e, const tcp::resolver::results_type& found) {
                                   if (self->done) return;
                                   if (e) return self->fail("cannot resolve", e);
                                   asio::async_connect(self->socket, found,
                                                       [self](const boost::system::error_code& c, const tcp::endpoint&) {
                                                           self->connected(c);
                                                       });
                               });
    }

    void connect(const tcp::endpoint& to) {
        auto self = shared_from_this();
        socket.async_connect(to, [self](const boost::system::error_code& c) { self->connected(c); });
    }

    void connected(const boost::system::error_code& ec) {
        if (done) return;
        if (ec) return fail("cannot connect to", ec);
        if (request.kind == registry::check_kind::tcp) return finish(health_status::healthy, "connected to " + where());
        if (request.tls) return handshake();
        send();
    }

    void handshake() {
        channel.emplace(ctx, socket.native_handle());
        if (!channel->valid() || !channel->connect_to(request.host, request.tls_verify)) {
            return finish(health_status::critical, "cannot make a TLS connection to " + where());
        }
        stream.emplace(socket, *channel);
        auto self = shared_from_this();
        stream->async_handshake([self](const boost::system::error_code& e, std::size_t) {
            if (self->done) return;
            if (!e) return self->send();
            const std::string refused = self->request.tls_verify ? self->channel->verify_failure() : std::string();
            if (!refused.empty()) {
                return self->finish(health_status::critical, "certificate verify failed: " + refused + " (" + self->where() + ")");
            }
            const std::string why = self->channel->error().empty() ? e.message() : self->channel->error();
            self->finish(health_status::critical, "TLS handshake with " + self->where() + " failed: " + why);
        });
    }

    void send() {
        out = request.method + " " + request.target + " HTTP/1.1\r\nHost: " + request.host + ":" +
              std::to_string(request.port) + "\r\nUser-Agent: registryd-health-check\r\nAccept: */*\r\nConnection: close\r\n\r\n";
        auto self = shared_from_this();
        auto sent = [self](const boost::system::error_code& e, std::size_t) {
            if (self->done) return;
            if (e) return self->fail("cannot send the request to", e);
            self->parser.header_limit(max_response_header);
            self->parser.skip(self->request.method == "HEAD");
            auto read = [self](const boost::system::error_code& r, std::size_t) { self->answered(r); };
            if (self->stream) {
                http::async_read_header(*self->stream, self->buffer, self->parser, std::move(read));
            } else {
                http::async_read_header(self->socket, self->buffer, self->parser, std::move(read));
            }
        };
        if (stream) {
            asio::async_write(*stream, asio::buffer(out), std::move(sent));
        } else {
            asio::async_write(socket, asio::buffer(out), std::move(sent));
        }
    }

    void answered(const boost::system::error_code& ec) {
        if (done) return;
        if (ec) return fail("no HTTP response from", ec);
        const unsigned status = parser.get().result_int();
        std::string text = "HTTP " + std::to_string(status);
        if (!parser.get().reason().empty()) text += " " + std::string(parser.get().reason());
        if (status >= request.status_min && status <= request.status_max) return finish(health_status::healthy, text);
        if (status == 429) return finish(health_status::warning, text);
        finish(health_status::critical, text);
    }
};

struct probe_awaiter {
    explicit probe_awaiter(std::shared_ptr<probe_op> o) noexcept : op(std::move(o)) {}
    std::shared_ptr<probe_op> op;
    bool await_ready() const noexcept { return false; }
    void await_suspend(std::coroutine_handle<> h) {
        op->waiter = h;
        op->start();
    }
    registry::probe_result await_resume() { return std::move(op->result); }
};

// Closes the probe from whichever thread requests the stop (posted to the io thread).
struct stopper {
    std::shared_ptr<probe_op> op;
    asio::io_context* ioc;
    void operator()() const noexcept {
        asio::post(*ioc, [o = op] {
            if (o->waiter) o->finish(health_status::critical, "stopped");
        });
    }
};

std::string openssl_reason() {
    char text[256];
    ERR_error_string_n(ERR_get_error(), text, sizeof text);
    ERR_clear_error();
    return text;
}

// A client context: TLS 1.2 or later; verifying: the system's CAs and ca_file.
SSL_CTX* client_context(bool verify, const std::filesystem::path& ca_file) {
    SSL_CTX* c = SSL_CTX_new(TLS_client_method());
    if (!c) throw std::runtime_error("health checks: cannot make a TLS context: " + openssl_reason());
    SSL_CTX_set_min_proto_version(c, TLS1_2_VERSION);
    SSL_CTX_set_mode(c, SSL_MODE_RELEASE_BUFFERS);
    SSL_CTX_set_verify(c, verify ? SSL_VERIFY_PEER : SSL_VERIFY_NONE, nullptr);
    if (verify) {
        if (SSL_CTX_set_default_verify_paths(c) != 1) ERR_clear_error();  // no system store: ca_file only
        if (!ca_file.empty() && SSL_CTX_load_verify_locations(c, ca_file.c_str(), nullptr) != 1) {
            const std::string why = openssl_reason();
            SSL_CTX_free(c);
            throw std::runtime_error("health.ca_file: cannot load " + ca_file.string() + ": " + why);
        }
    }
    return c;
}

}  // namespace

asio_prober::asio_prober(boost::asio::io_context& ioc, const std::filesystem::path& ca_file)
    : ioc_(ioc), verifying_(client_context(true, ca_file)), trusting_(client_context(false, {})) {}

registry::task<registry::probe_result> asio_prober::probe(registry::probe_request request, std::stop_token stop) {
    if (stop.stop_requested()) co_return registry::probe_result{health_status::critical, "stopped"};
    SSL_CTX* ctx = request.tls_verify ? verifying_.get() : trusting_.get();
    auto op = std::make_shared<probe_op>(ioc_, std::move(request), ctx);
    std::stop_callback<stopper> on_stop(stop, stopper{op, &ioc_});
    probe_awaiter wait(op);
    auto r = co_await wait;
    co_return r;
}

}  // namespace registryd
