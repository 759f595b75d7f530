// echo_server: the ceiling baseline of the benchmarks (bench/run.sh).
//
// A minimal Beast WebSocket server with registryd's transport and nothing
// else: the same stream type (websocket::stream<beast::tcp_stream>), the same
// stream options, one io_context on one thread, a read loop that does not
// wait for writes (pipelined requests), and a per-connection FIFO of outgoing
// messages written one at a time. Each text message is answered with a
// message of exactly --reply-bytes bytes that carries the request's id
// ({"id":"<id>","type":"response","data":{"p":"xxx..."}}), so the load
// generator correlates it the same way it correlates registryd's responses.
//
//   echo_server --listen 127.0.0.1:0 --port-file FILE --reply-bytes 520
//
// SIGTERM/SIGINT: exit 0.

#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/signal_set.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/websocket.hpp>

#include <sys/resource.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <deque>
#include <fstream>
#include <memory>
#include <string>
#include <string_view>

namespace {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace websocket = beast::websocket;
using tcp = asio::ip::tcp;
using error_code = boost::system::error_code;

std::size_t g_reply_bytes = 512;

// The reply to a request whose id is `id`: exactly g_reply_bytes bytes when
// the id leaves room for it.
std::string make_reply(std::string_view id) {
    std::string r;
    r.reserve(g_reply_bytes + 64);
    r += "{\"id\":\"";
    r += id;
    r += "\",\"type\":\"response\",\"data\":{\"p\":\"";
    constexpr std::string_view tail = "\"}}";
    if (r.size() + tail.size() < g_reply_bytes) r.append(g_reply_bytes - r.size() - tail.size(), 'x');
    r += tail;
    return r;
}

// The value of the leading "id" field of a request, without parsing JSON:
// requests are {"id":"...",...} (the load generator's own frames).
std::string_view request_id(std::string_view msg) {
    constexpr std::string_view key = "\"id\":\"";
    const auto at = msg.find(key);
    if (at == std::string_view::npos) return {};
    const auto start = at + key.size();
    const auto end = msg.find('"', start);
    if (end == std::string_view::npos) return {};
    return msg.substr(start, end - start);
}

class session : public std::enable_shared_from_this<session> {
public:
    explicit session(tcp::socket&& s) : ws_(std::move(s)) {}

    void run() {
        websocket::stream_base::timeout opt{};
        opt.handshake_timeout = std::chrono::seconds(10);
        opt.idle_timeout = std::chrono::seconds(60);
        opt.keep_alive_pings = true;
        ws_.set_option(opt);
        ws_.auto_fragment(false);
        ws_.async_accept([self = shared_from_this()](const error_code& ec) {
            if (!ec) self->do_read();
        });
    }

private:
    void do_read() {
        ws_.async_read(rbuf_, [self = shared_from_this()](const error_code& ec, std::size_t) { self->on_read(ec); });
    }

    void on_read(const error_code& ec) {
        if (ec) return;  // closed or failed: the session ends with its last handler
        const auto data = rbuf_.cdata();
        const std::string_view msg(static_cast<const char*>(data.data()), data.size());
        queue_.push_back(make_reply(request_id(msg)));
        rbuf_.consume(rbuf_.size());
        if (!writing_) do_write();
        do_read();
    }

    void do_write() {
        writing_ = true;
        ws_.text(true);
        ws_.async_write(asio::buffer(queue_.front()), [self = shared_from_this()](const error_code& ec, std::size_t) {
            self->writing_ = false;
            if (ec) return;
            self->queue_.pop_front();
            if (!self->queue_.empty()) self->do_write();
        });
    }

    websocket::stream<beast::tcp_stream> ws_;
    beast::flat_buffer rbuf_;
    std::deque<std::string> queue_;
    bool writing_ = false;
};

void do_accept(tcp::acceptor& acceptor) {
    acceptor.async_accept([&acceptor](const error_code& ec, tcp::socket s) {
        if (!acceptor.is_open()) return;
        if (!ec) {
            error_code ignored;
            s.set_option(tcp::no_delay(true), ignored);
            std::make_shared<session>(std::move(s))->run();
        }
        do_accept(acceptor);
    });
}

void raise_fd_limit() {
    rlimit rl{};
    if (::getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
        rl.rlim_cur = rl.rlim_max;
        ::setrlimit(RLIMIT_NOFILE, &rl);
    }
}

[[noreturn]] void usage() {
    std::fprintf(stderr, "usage: echo_server [--listen HOST:PORT] [--port-file FILE] [--reply-bytes N]\n");
    std::exit(2);
}

}  // namespace

int main(int argc, char** argv) {
    std::string listen = "127.0.0.1:0";
    std::string port_file;
    for (int i = 1; i < argc; ++i) {
        const std::string_view a = argv[i];
        if (i + 1 >= argc) usage();
        if (a == "--listen") {
            listen = argv[++i];
        } else if (a == "--port-file") {
            port_file = argv[++i];
        } else if (a == "--reply-bytes") {
            g_reply_bytes = std::strtoull(argv[++i], nullptr, 10);
        } else {
            usage();
        }
    }
    const auto colon = listen.rfind(':');
    if (colon == std::string::npos) usage();

    raise_fd_limit();
    asio::io_context ioc{1};
    tcp::acceptor acceptor(ioc);
    const tcp::endpoint ep(asio::ip::make_address(listen.substr(0, colon)),
                           static_cast<unsigned short>(std::stoi(listen.substr(colon + 1))));
    acceptor.open(ep.protocol());
    acceptor.set_option(asio::socket_base::reuse_address(true));
    acceptor.bind(ep);
    acceptor.listen(asio::socket_base::max_listen_connections);
    const auto bound = acceptor.local_endpoint();
    if (!port_file.empty()) {
        const std::string tmp = port_file + ".tmp";
        {
            std::ofstream out(tmp);
            out << bound.address().to_string() << ':' << bound.port() << '\n';
        }
        std::rename(tmp.c_str(), port_file.c_str());
    }
    do_accept(acceptor);

    asio::signal_set signals(ioc, SIGINT, SIGTERM);
    signals.async_wait([&](const error_code&, int) {
        // Sessions are not drained: a benchmark baseline just goes away.
        std::_Exit(0);
    });
    ioc.run();
    return 0;
}
