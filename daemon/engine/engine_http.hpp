// HTTP/1.1 client for a container engine's API, over a unix socket or TCP.
//
// The only translation unit behind this header (engine_http.cpp) includes
// Beast; this header includes neither Asio nor Beast. One connection per
// request (the engine's API is local and cheap to connect to); responses are
// read into memory (request) or piece by piece as they arrive (open: chunked
// bodies, bodies that last as long as a log follow, and the raw stream after a
// hijacking "Connection: Upgrade" request).
//
// Everything runs on the io_context's thread: coroutines are resumed from
// Asio completion handlers. A stop may be requested from any thread; the
// pending operation then throws registry::operation_cancelled. Timeouts
// close the connection and fail with errc::unavailable, as does every
// transport failure; the message names the engine's address.
//
// Over TCP the connection may be TLS (http_client_options::tls: etcd's
// https:// endpoints). Asio's ssl::stream is right here, unlike in the
// server's sessions (daemon/tls): a client connection lives for one request,
// so its record buffers are never held by an idle connection.
#pragma once

#include <registry/result.hpp>
#include <registry/task.hpp>

#include <chrono>
#include <cstdint>
#include <filesystem>
#include <memory>
#include <optional>
#include <stop_token>
#include <string>
#include <string_view>

namespace boost::asio {
class io_context;
namespace ssl {
class context;
}
}  // namespace boost::asio

namespace registryd {

// Where the engine listens: "unix:///run/podman/podman.sock" (or just an
// absolute path) or "tcp://host:port".
struct engine_endpoint {
    enum class kind { unix_socket, tcp };
    kind type = kind::unix_socket;
    std::string path;  // unix_socket
    std::string host;  // tcp
    std::uint16_t port = 0;

    static registry::result<engine_endpoint> parse(std::string_view uri);
    std::string uri() const;
};

struct http_request {
    std::string method = "GET";  // GET, POST, PUT, DELETE, HEAD
    std::string target;          // origin-form, with the query: "/v1.41/containers/json?all=1"
    std::string body;
    std::string content_type;    // sent only with a body, or when set
    bool upgrade = false;        // "Connection: Upgrade" + "Upgrade: tcp" (Docker's attach hijack)
    // Last, so that the positional initialisations of the fields above stay
    // valid. When set (and body empty): the request's body is this file, sent in
    // pieces as it is read (Content-Length: its size); memory does not grow
    // with it. Read with blocking reads on the io thread: a local file. It
    // must be a regular file (errc::internal naming it if it cannot be
    // opened); both a body and a body file is invalid_request.
    std::filesystem::path body_file{};
    // Sent as the Authorization header when not empty (a member's deploy
    // target: "Cluster <secret>", cluster/member_target.hpp).
    std::string authorization{};
};

struct http_response {
    unsigned status = 0;
    std::string content_type;
    std::string body;
};

struct http_client_options {
    std::chrono::milliseconds connect_timeout{5'000};
    std::chrono::milliseconds request_timeout{30'000};  // default for request()
    std::size_t max_body_bytes = 16 * 1024 * 1024;      // request() and http_stream::read_all()
    // What the peer is, for messages: "container engine tcp://...: connect: ...".
    std::string peer_kind = "container engine";
    // TLS over TCP when set: a client context that verifies the server
    // (store/etcd_tls.hpp makes etcd's). The handshake is bounded by
    // connect_timeout; the server's certificate must name tls_server_name
    // (empty: the endpoint's host), an IP address or a DNS name.
    std::shared_ptr<boost::asio::ssl::context> tls;
    std::string tls_server_name;
    // Through an HTTP upgrade first (a container engine another registryd
    // offers, cluster/engine_offer.hpp): once connected, `GET target` with
    // `Upgrade: protocol` and `Authorization: authorization`; after its
    // "101 Switching Protocols" the connection is the engine's, and the
    // request goes on as if connected to it. Any other answer fails the
    // request with unavailable, naming the status and the answer's text.
    struct tunnel_options {
        std::string target;
        std::string protocol;
        std::string authorization;
    };
    std::optional<tunnel_options> tunnel;
};

class http_connection;  // engine_http.cpp

// A response whose body has not been read yet. Move-only; destroying it
// closes the connection.
class http_stream {
public:
    explicit http_stream(std::shared_ptr<http_connection> conn) noexcept;
    http_stream(http_stream&&) noexcept;
    http_stream& operator=(http_stream&&) noexcept;
    ~http_stream();

    unsigned status() const noexcept;
    std::string content_type() const;
    // True after "101 Switching Protocols": the body is the raw stream.
    bool upgraded() const noexcept;

    // The next piece of the body as it arrives (never empty), or nullopt once
    // the body is complete (for an upgraded stream: the engine closed it).
    // No timeout: the body may legitimately pause for ever (log follow).
    registry::task<registry::result<std::optional<std::string>>> next(std::stop_token stop = {});

    // The rest of the body, at most max_body_bytes, within `timeout` (zero:
    // keep the current deadline, which after open() is none).
    registry::task<registry::result<std::string>> read_all(std::chrono::milliseconds timeout,
                                                           std::stop_token stop = {});

private:
    std::shared_ptr<http_connection> conn_;
};

class engine_http_client {
public:
    engine_http_client(boost::asio::io_context& ioc, engine_endpoint endpoint, http_client_options options = {});

    const engine_endpoint& endpoint() const noexcept { return endpoint_; }
    const http_client_options& options() const noexcept { return options_; }

    // Sends `req` and reads the whole response, all within `timeout` (zero:
    // options().request_timeout). Any HTTP status is a successful result.
    registry::task<registry::result<http_response>> request(http_request req, std::stop_token stop = {},
                                                            std::chrono::milliseconds timeout = {});

    // Sends `req` and reads the response's head, within the request timeout
    // unless `head_may_wait` (an engine may send no head before it has
    // something to say: Podman's log follow, wait, image pull); the body is
    // left to the returned stream.
    registry::task<registry::result<http_stream>> open(http_request req, std::stop_token stop = {},
                                                       bool head_may_wait = false);

private:
    // Connects, sends, reads the head. `timeout`: for sending and reading the
    // head (zero: the request timeout; max(): none).
    registry::task<registry::result<std::shared_ptr<http_connection>>> send(http_request req, std::stop_token stop,
                                                                             std::chrono::milliseconds timeout);

    // The TLS handshake on a connected socket (options_.tls); the failure, if any.
    registry::task<std::optional<registry::error>> handshake(std::shared_ptr<http_connection> conn,
                                                             std::stop_token stop);
    // The upgrade to options_.tunnel on a connected socket; the failure, if any.
    registry::task<std::optional<registry::error>> open_tunnel(std::shared_ptr<http_connection> conn,
                                                               std::stop_token stop);

    boost::asio::io_context& ioc_;
    engine_endpoint endpoint_;
    http_client_options options_;
};

}  // namespace registryd
