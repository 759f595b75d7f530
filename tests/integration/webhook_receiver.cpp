#include "webhook_receiver.hpp"

#include "harness.hpp"

#include <openssl/ssl.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cctype>
#include <csignal>
#include <cerrno>
#include <cstring>
#include <sys/time.h>

namespace it {

webhook_receiver::webhook_receiver() { start(); }

webhook_receiver::webhook_receiver(const std::filesystem::path& cert, const std::filesystem::path& key) {
    SSL_CTX* ctx = SSL_CTX_new(TLS_server_method());
    SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION);
    if (SSL_CTX_use_certificate_chain_file(ctx, cert.c_str()) != 1 ||
        SSL_CTX_use_PrivateKey_file(ctx, key.c_str(), SSL_FILETYPE_PEM) != 1) {
        SSL_CTX_free(ctx);
        throw failure("receiver: cannot load " + cert.string());
    }
    tls_ = ctx;
    start();
}

webhook_receiver::~webhook_receiver() {
    stop();
    if (tls_) SSL_CTX_free(static_cast<SSL_CTX*>(tls_));
}

std::string webhook_receiver::url(const std::string& path) const {
    return (tls_ ? "https://localhost:" : "http://127.0.0.1:") + std::to_string(port_) + path;
}

void webhook_receiver::listen() {
    listener_ = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (listener_ < 0) throw failure("receiver: socket failed");
    const int one = 1;
    ::setsockopt(listener_, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    a.sin_port = htons(port_);
    if (::bind(listener_, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0 || ::listen(listener_, 16) != 0) {
        ::close(listener_);
        listener_ = -1;
        throw failure("receiver: cannot listen on 127.0.0.1:" + std::to_string(port_) + ": " + std::strerror(errno));
    }
    socklen_t len = sizeof a;
    ::getsockname(listener_, reinterpret_cast<sockaddr*>(&a), &len);
    port_ = ntohs(a.sin_port);
}

void webhook_receiver::start() {
    if (thread_.joinable()) return;
    // SSL_write to a client that went away: an error, not the end of the test process.
    std::signal(SIGPIPE, SIG_IGN);
    listen();
    stopping_ = false;
    thread_ = std::thread([this] { serve(); });
}

void webhook_receiver::stop() {
    if (!thread_.joinable()) return;
    stopping_ = true;
    thread_.join();
    ::close(listener_);
    listener_ = -1;
}

void webhook_receiver::serve() {
    while (!stopping_) {
        pollfd p{listener_, POLLIN, 0};
        if (::poll(&p, 1, 50) <= 0) continue;
        const int fd = ::accept4(listener_, nullptr, nullptr, SOCK_CLOEXEC);
        if (fd < 0) continue;
        handle(fd);
        ::close(fd);
    }
}

// One request per connection (registryd sends Connection: close).
void webhook_receiver::handle(int fd) {
    timeval tv{0, 200'000};  // reads wait at most this long, so that stop() is seen
    ::setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    SSL* ssl = nullptr;
    struct ssl_free {
        SSL*& s;
        ~ssl_free() {
            if (s) SSL_free(s);
        }
    } free_ssl{ssl};
    const auto deadline = steady::now() + 5s;
    if (tls_) {
        ssl = SSL_new(static_cast<SSL_CTX*>(tls_));
        SSL_set_fd(ssl, fd);
        while (SSL_accept(ssl) != 1) {
            const int e = SSL_get_error(ssl, -1);
            if ((e != SSL_ERROR_WANT_READ && e != SSL_ERROR_WANT_WRITE) || steady::now() > deadline || stopping_)
                return;  // the client refused our certificate, or went away
        }
    }
    std::string in;
    char buf[4096];
    auto read_more = [&] {
        while (!stopping_ && steady::now() < deadline) {
            const long n = ssl ? SSL_read(ssl, buf, sizeof buf) : static_cast<long>(::recv(fd, buf, sizeof buf, 0));
            if (n > 0) {
                in.append(buf, static_cast<std::size_t>(n));
                return true;
            }
            const bool again = ssl ? SSL_get_error(ssl, static_cast<int>(n)) == SSL_ERROR_WANT_READ
                                   : (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR));
            if (!again) return false;
        }
        return false;
    };
    std::size_t end;
    while ((end = in.find("\r\n\r\n")) == std::string::npos) {
        if (!read_more()) return;
    }
    received_post post;
    std::size_t line_end = in.find("\r\n");
    const std::string request_line = in.substr(0, line_end);
    const auto sp1 = request_line.find(' '), sp2 = request_line.rfind(' ');
    post.method = request_line.substr(0, sp1);
    post.target = request_line.substr(sp1 + 1, sp2 - sp1 - 1);
    for (std::size_t at = line_end + 2; at < end;) {
        const std::size_t next = in.find("\r\n", at);
        const std::string line = in.substr(at, next - at);
        const auto colon = line.find(':');
        std::string name = line.substr(0, colon);
        std::transform(name.begin(), name.end(), name.begin(), [](unsigned char c) { return std::tolower(c); });
        std::string value = line.substr(colon + 1);
        while (!value.empty() && value.front() == ' ') value.erase(0, 1);
        post.headers[name] = value;
        at = next + 2;
    }
    const std::size_t length = std::stoul(post.header("content-length").empty() ? "0" : post.header("content-length"));
    while (in.size() < end + 4 + length) {
        if (!read_more()) return;
    }
    post.body = in.substr(end + 4, length);
    {
        std::lock_guard lock(mutex_);
        posts_.push_back(std::move(post));
    }
    changed_.notify_all();
    const auto delay = std::chrono::milliseconds(delay_ms_.load());
    const auto until = steady::now() + delay;
    while (steady::now() < until && !stopping_) std::this_thread::sleep_for(10ms);
    const int status = status_;
    const std::string reply = "HTTP/1.1 " + std::to_string(status) + (status < 300 ? " OK" : " Error") +
                              "\r\nContent-Length: 0\r\nConnection: close\r\n\r\n";
    if (ssl) {
        SSL_write(ssl, reply.data(), static_cast<int>(reply.size()));
        SSL_shutdown(ssl);
    } else {
        ::send(fd, reply.data(), reply.size(), MSG_NOSIGNAL);
    }
}

std::vector<received_post> webhook_receiver::posts() const {
    std::lock_guard lock(mutex_);
    return posts_;
}

}  // namespace it
