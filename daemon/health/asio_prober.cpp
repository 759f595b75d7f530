#include "health/asio_prober.hpp"

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

#include <coroutine>
#include <memory>
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
struct probe_op : std::enable_shared_from_this<probe_op> {
    probe_op(asio::io_context& ioc, registry::probe_request r)
        : socket(ioc), resolver(ioc), timer(ioc), request(std::move(r)) {}

    tcp::socket socket;
    tcp::resolver resolver;
    asio::steady_timer timer;
    registry::probe_request request;
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
        socket.close(ignored);
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
        out = request.method + " " + request.target + " HTTP/1.1\r\nHost: " + request.host + ":" +
              std::to_string(request.port) + "\r\nUser-Agent: registryd-health-check\r\nAccept: */*\r\nConnection: close\r\n\r\n";
        auto self = shared_from_this();
        asio::async_write(socket, asio::buffer(out), [self](const boost::system::error_code& e, std::size_t) {
            if (self->done) return;
            if (e) return self->fail("cannot send the request to", e);
            self->parser.header_limit(max_response_header);
            self->parser.skip(self->request.method == "HEAD");
            http::async_read_header(self->socket, self->buffer, self->parser,
                                    [self](const boost::system::error_code& r, std::size_t) { self->answered(r); });
        });
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

}  // namespace

registry::task<registry::probe_result> asio_prober::probe(registry::probe_request request, std::stop_token stop) {
    if (request.tls) {
        co_return registry::probe_result{health_status::critical,
                                         "https checks are not supported yet (registryd has no TLS client)"};
    }
    if (stop.stop_requested()) co_return registry::probe_result{health_status::critical, "stopped"};
    auto op = std::make_shared<probe_op>(ioc_, std::move(request));
    std::stop_callback<stopper> on_stop(stop, stopper{op, &ioc_});
    probe_awaiter wait(op);
    auto r = co_await wait;
    co_return r;
}

}  // namespace registryd
