// The member's side of an engine tunnel (cluster/engine_offer.hpp): once the
// HTTP session has checked the upgrade (path, secret, engine), this connects
// to the engine, answers "101 Switching Protocols" (or 502 naming why the
// engine cannot be reached) and then copies bytes both ways until either
// side closes. It reads nothing of what it carries: the writer speaks the
// engine's API through it, an attach's hijacked stream included. Each
// direction holds one buffer of buffer_bytes and reads again only once the
// other side took what it read, so a slow reader slows its writer (TCP's
// own flow control) and a tunnel's memory is fixed. No timeout: a log
// follow may be silent for hours; the writer closes the tunnel when it is
// done with it, and the server's shutdown closes the session.
//
// Included by http_session.cpp only (Beast's translation unit).
#pragma once

#include "cluster/engine_offer.hpp"
#include "engine/engine_http.hpp"
#include "observability/log.hpp"

#include <boost/asio/generic/stream_protocol.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/local/stream_protocol.hpp>
#include <boost/asio/write.hpp>
#include <boost/beast/core/basic_stream.hpp>

#include <array>
#include <chrono>
#include <functional>
#include <memory>
#include <string>
#include <utility>

namespace registryd {

template <typename ClientStream>
class engine_tunnel : public std::enable_shared_from_this<engine_tunnel<ClientStream>> {
public:
    static constexpr std::size_t buffer_bytes = 16 * 1024;

    // `owner` keeps `client` alive; `close_client` closes it. `early`: what
    // the client sent past the upgrade request, for the engine.
    engine_tunnel(std::shared_ptr<void> owner, ClientStream& client, std::function<void()> close_client,
                  std::string engine_name, engine_endpoint engine, std::string early, std::uint64_t conn)
        : owner_(std::move(owner)),
          client_(client),
          close_client_(std::move(close_client)),
          name_(std::move(engine_name)),
          endpoint_(std::move(engine)),
          early_(std::move(early)),
          conn_(conn),
          engine_(client.get_executor()),
          resolver_(client.get_executor()) {}

    void start(std::chrono::milliseconds connect_timeout) {
        engine_.expires_after(connect_timeout);
        if (endpoint_.type == engine_endpoint::kind::unix_socket) {
            connect(boost::asio::local::stream_protocol::endpoint(endpoint_.path));
            return;
        }
        resolver_.async_resolve(endpoint_.host, std::to_string(endpoint_.port),
                                [self = this->shared_from_this()](const boost::system::error_code& ec,
                                                                   boost::asio::ip::tcp::resolver::results_type r) {
                                    if (ec || r.empty()) {
                                        self->refuse("resolving " + self->endpoint_.host + ": " +
                                                     (ec ? ec.message() : std::string("no address")));
                                        return;
                                    }
                                    self->connect(r.begin()->endpoint());
                                });
    }

private:
    using engine_stream = boost::beast::basic_stream<boost::asio::generic::stream_protocol>;

    template <typename Endpoint>
    void connect(const Endpoint& where) {
        engine_.async_connect(boost::asio::generic::stream_protocol::endpoint(where),
                              [self = this->shared_from_this()](const boost::system::error_code& ec) {
                                  if (ec) {
                                      self->refuse("connect: " + ec.message());
                                      return;
                                  }
                                  self->engine_.expires_never();
                                  self->accept();
                              });
    }

    // 502, naming the engine and why; then the connection closes.
    void refuse(const std::string& why) {
        log::warn("engine tunnel: the engine cannot be reached",
                  {{"conn", conn_}, {"engine", name_}, {"address", endpoint_.uri()}, {"error", why}});
        const std::string body = "container engine " + name_ + " (" + endpoint_.uri() + "): " + why + "\n";
        answer_ = "HTTP/1.1 502 Bad Gateway\r\nServer: registryd\r\nContent-Type: text/plain; charset=utf-8\r\n"
                  "Content-Length: " + std::to_string(body.size()) + "\r\nConnection: close\r\n\r\n" + body;
        boost::asio::async_write(client_, boost::asio::buffer(answer_),
                                 [self = this->shared_from_this()](const boost::system::error_code&, std::size_t) {
                                     self->close();
                                 });
    }

    void accept() {
        answer_ = "HTTP/1.1 101 Switching Protocols\r\nServer: registryd\r\nConnection: Upgrade\r\nUpgrade: " +
                  std::string(engine_tunnel_protocol) + "\r\n\r\n";
        boost::asio::async_write(client_, boost::asio::buffer(answer_),
                                 [self = this->shared_from_this()](const boost::system::error_code& ec, std::size_t) {
                                     if (ec) {
                                         self->close();
                                         return;
                                     }
                                     self->answer_.clear();
                                     self->answer_.shrink_to_fit();
                                     if (self->early_.empty()) {
                                         self->read_client();
                                     } else {
                                         self->forward_early();
                                     }
                                     self->read_engine();
                                 });
    }

    void forward_early() {
        boost::asio::async_write(engine_, boost::asio::buffer(early_),
                                 [self = this->shared_from_this()](const boost::system::error_code& ec, std::size_t) {
                                     if (ec) {
                                         self->close();
                                         return;
                                     }
                                     self->early_.clear();
                                     self->early_.shrink_to_fit();
                                     self->read_client();
                                 });
    }

    // Client to engine. The client's end of stream is passed on as a
    // half-close: the engine may still answer.
    void read_client() {
        client_.async_read_some(boost::asio::buffer(up_),
                                [self = this->shared_from_this()](const boost::system::error_code& ec, std::size_t n) {
                                    if (ec) {
                                        if (ec == boost::asio::error::eof && !self->closed_) {
                                            boost::system::error_code ignored;
                                            self->engine_.socket().shutdown(
                                                boost::asio::socket_base::shutdown_send, ignored);
                                            return;
                                        }
                                        self->close();
                                        return;
                                    }
                                    boost::asio::async_write(
                                        self->engine_, boost::asio::buffer(self->up_.data(), n),
                                        [self](const boost::system::error_code& wec, std::size_t) {
                                            if (wec) {
                                                self->close();
                                                return;
                                            }
                                            self->read_client();
                                        });
                                });
    }

    // Engine to client. The engine's end of stream ends the tunnel.
    void read_engine() {
        engine_.async_read_some(boost::asio::buffer(down_),
                                [self = this->shared_from_this()](const boost::system::error_code& ec, std::size_t n) {
                                    if (ec) {
                                        self->close();
                                        return;
                                    }
                                    boost::asio::async_write(
                                        self->client_, boost::asio::buffer(self->down_.data(), n),
                                        [self](const boost::system::error_code& wec, std::size_t) {
                                            if (wec) {
                                                self->close();
                                                return;
                                            }
                                            self->read_engine();
                                        });
                                });
    }

    void close() {
        if (closed_) return;
        closed_ = true;
        resolver_.cancel();
        boost::system::error_code ignored;
        engine_.socket().shutdown(boost::asio::socket_base::shutdown_both, ignored);
        engine_.close();
        close_client_();
    }

    std::shared_ptr<void> owner_;
    ClientStream& client_;
    std::function<void()> close_client_;
    std::string name_;
    engine_endpoint endpoint_;
    std::string early_;
    std::uint64_t conn_;
    engine_stream engine_;
    boost::asio::ip::tcp::resolver resolver_;
    std::string answer_;  // the 101 or 502 being written
    std::array<char, buffer_bytes> up_{};
    std::array<char, buffer_bytes> down_{};
    bool closed_ = false;
};

}  // namespace registryd
