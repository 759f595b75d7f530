#include "notify/beast_poster.hpp"

#include "notify/webhook_url.hpp"

#include <boost/asio/connect.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/ssl/host_name_verification.hpp>
#include <boost/asio/ssl/stream.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/write.hpp>
#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/http/empty_body.hpp>
#include <boost/beast/http/parser.hpp>
#include <boost/beast/http/read.hpp>

#include <array>
#include <coroutine>
#include <optional>
#include <stdexcept>
#include <string>

namespace registryd {

namespace {

namespace asio = boost::asio;
namespace ssl = asio::ssl;
namespace http = boost::beast::http;
using tcp = asio::ip::tcp;

constexpr std::size_t max_response_header = 16 * 1024;

// One POST: shared by the awaiting coroutine and every pending handler;
// finish() resumes the coroutine once, the last handler frees it.
struct post_op : std::enable_shared_from_this<post_op> {
    post_op(asio::io_context& ioc, registry::http_post r, webhook_url u, std::shared_ptr<ssl::context> ctx)
        : socket(ioc), resolver(ioc), timer(ioc), request(std::move(r)), url(std::move(u)), tls_context(std::move(ctx)) {
        if (url.tls) tls.emplace(socket, *tls_context);
    }

    tcp::socket socket;
    std::optional<ssl::stream<tcp::socket&>> tls;
    tcp::resolver resolver;
    asio::steady_timer timer;
    registry::http_post request;
    webhook_url url;
    std::shared_ptr<ssl::context> tls_context;
    std::string head;  // the request line and headers
    boost::beast::flat_buffer buffer{max_response_header};
    http::response_parser<http::empty_body> parser;
    std::coroutine_handle<> waiter;
    registry::http_post_result result;
    bool done = false;

    std::string where() const { return url.host_header(); }

    void finish(std::optional<unsigned> status, std::string error) {
        if (done) return;
        done = true;
        result = {status, std::move(error)};
        boost::system::error_code ignored;
        timer.cancel();
        resolver.cancel();
        socket.close(ignored);
        waiter.resume();
    }

    void fail(std::string_view what, const boost::system::error_code& ec) {
        finish(std::nullopt, std::string(what) + " " + where() + ": " + ec.message());
    }

    template <typename F>
    void with_stream(F&& f) {
        if (tls) {
            f(*tls);
        } else {
            f(socket);
        }
    }

    void start() {
        auto self = shared_from_this();
        timer.expires_after(request.timeout);
        timer.async_wait([self](const boost::system::error_code& ec) {
            if (ec) return;  // cancelled: finished
            self->finish(std::nullopt, "timed out after " + std::to_string(self->request.timeout.count()) + " ms (" +
                                           self->where() + ")");
        });
        boost::system::error_code ec;
        const auto ip = asio::ip::make_address(url.host, ec);
        if (!ec) {
            socket.async_connect(tcp::endpoint(ip, url.port), [self](const boost::system::error_code& c) {
                self->connected(c);
            });
            return;
        }
        resolver.async_resolve(url.host, std::to_string(url.port),
                               [self](const boost::system::error_code& e, const tcp::resolver::results_type& found) {
                                   if (self->done) return;
                                   if (e) return self->fail("cannot resolve", e);
                                   asio::async_connect(self->socket, found,
                                                       [self](const boost::system::error_code& c, const tcp::endpoint&) {
                                                           self->connected(c);
                                                       });
                               });
    }

    void connected(const boost::system::error_code& ec) {
        if (done) return;
        if (ec) return fail("cannot connect to", ec);
        if (!tls) return send();
        // SNI for a name (not for an address), and the certificate checked for it.
        boost::system::error_code not_an_address;
        asio::ip::make_address(url.host, not_an_address);
        if (not_an_address) SSL_set_tlsext_host_name(tls->native_handle(), url.host.c_str());
        tls->set_verify_mode(ssl::verify_peer);
        tls->set_verify_callback(ssl::host_name_verification(url.host));
        auto self = shared_from_this();
        tls->async_handshake(ssl::stream_base::client, [self](const boost::system::error_code& h) {
            if (self->done) return;
            if (h) return self->fail("TLS handshake failed with", h);
            self->send();
        });
    }

    void send() {
        head = "POST " + url.target + " HTTP/1.1\r\nHost: " + url.host_header() +
               "\r\nContent-Length: " + std::to_string(request.body ? request.body->size() : 0) +
               "\r\nConnection: close\r\n";
        for (const auto& [name, value] : request.headers) head += name + ": " + value + "\r\n";
        head += "\r\n";
        std::array<asio::const_buffer, 2> out{asio::buffer(head),
                                              request.body ? asio::buffer(*request.body) : asio::const_buffer{}};
        auto self = shared_from_this();
        with_stream([&](auto& s) {
            asio::async_write(s, out, [self](const boost::system::error_code& e, std::size_t) {
                if (self->done) return;
                if (e) return self->fail("cannot send the request to", e);
                self->parser.header_limit(max_response_header);
                self->with_stream([&](auto& st) {
                    http::async_read_header(st, self->buffer, self->parser,
                                            [self](const boost::system::error_code& r, std::size_t) { self->answered(r); });
                });
            });
        });
    }

    void answered(const boost::system::error_code& ec) {
        if (done) return;
        if (ec) return fail("no HTTP response from", ec);
        finish(parser.get().result_int(), {});
    }
};

struct post_awaiter {
    explicit post_awaiter(std::shared_ptr<post_op> o) noexcept : op(std::move(o)) {}
    std::shared_ptr<post_op> op;
    bool await_ready() const noexcept { return false; }
    void await_suspend(std::coroutine_handle<> h) {
        op->waiter = h;
        op->start();
    }
    registry::http_post_result await_resume() { return std::move(op->result); }
};

// Closes the POST from whichever thread requests the stop (posted to the io thread).
struct stopper {
    std::shared_ptr<post_op> op;
    asio::io_context* ioc;
    void operator()() const noexcept {
        asio::post(*ioc, [o = op] {
            if (o->waiter) o->finish(std::nullopt, "stopped");
        });
    }
};

}  // namespace

beast_poster::beast_poster(asio::io_context& ioc, const std::filesystem::path& ca_file)
    : ioc_(ioc), tls_(std::make_shared<ssl::context>(ssl::context::tls_client)) {
    tls_->set_options(ssl::context::default_workarounds | ssl::context::no_sslv2 | ssl::context::no_sslv3 |
                      ssl::context::no_tlsv1 | ssl::context::no_tlsv1_1);
    boost::system::error_code ec;
    if (ca_file.empty()) {
        tls_->set_default_verify_paths(ec);
    } else {
        tls_->load_verify_file(ca_file.string(), ec);
        if (ec) throw std::runtime_error("notifications.ca_file: cannot read " + ca_file.string() + ": " + ec.message());
    }
}

registry::task<registry::http_post_result> beast_poster::post(registry::http_post request, std::stop_token stop) {
    std::string why;
    auto url = parse_webhook_url(request.url, why);
    if (!url) co_return registry::http_post_result{std::nullopt, "the url " + why};
    if (stop.stop_requested()) co_return registry::http_post_result{std::nullopt, "stopped"};
    auto op = std::make_shared<post_op>(ioc_, std::move(request), std::move(*url), tls_);
    std::stop_callback<stopper> on_stop(stop, stopper{op, &ioc_});
    post_awaiter wait(op);
    auto r = co_await wait;
    co_return r;
}

}  // namespace registryd
