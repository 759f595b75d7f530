// One connection to registryd: TCP, or TLS over TCP for wss://, opened with
// the WebSocket upgrade (RFC 6455 §4.1) that carries the bearer token.
// Frames are the caller's business (framing.hpp of daemon/websocket).
#pragma once

#include <registry/client/error.hpp>
#include <registry/client/types.hpp>

#include "websocket/client_upgrade.hpp"

#include <boost/asio/awaitable.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/ssl/context.hpp>
#include <boost/asio/ssl/stream.hpp>

#include <cstdint>
#include <memory>
#include <string>
#include <variant>

namespace registry::client::detail {

namespace asio = boost::asio;
using tcp = asio::ip::tcp;

using url = registryd::websocket::ws_url;

// errc::connection_failed naming what is wrong with `text`.
result<url> parse_url(std::string_view text);

class transport {
public:
    using tls_stream = asio::ssl::stream<tcp::socket>;

    // Resolves, connects, (TLS handshake), upgrades. Bytes that came after
    // the upgrade's response (frames already) are left in `leftover`.
    static asio::awaitable<result<std::unique_ptr<transport>>> open(asio::any_io_executor ex, const url& where,
                                                                   const options& opts,
                                                                   asio::ssl::context* tls_context,
                                                                   std::string& leftover);

    asio::awaitable<std::pair<boost::system::error_code, std::size_t>> read_some(asio::mutable_buffer buf);
    asio::awaitable<boost::system::error_code> write(asio::const_buffer buf);
    // Closes the socket at once: pending reads and writes end with an error.
    void close() noexcept;

    explicit transport(std::variant<tcp::socket, tls_stream> s) : stream_(std::move(s)) {}

private:
    std::variant<tcp::socket, tls_stream> stream_;
};

}  // namespace registry::client::detail
