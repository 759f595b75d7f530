// registry::http_poster on Asio and Beast: the webhooks' POSTs
// (docs/protocol.md, "Notifications").
//
// Non-blocking, one connection per POST (Connection: close): name
// resolution, connect, for https the TLS handshake (the receiver's
// certificate verified against notifications.ca_file or the system's trust
// store, and its name against the URL's host), the request, and the
// response's status line and headers (the body is not read), all under one
// timer (the webhook's timeout) that closes the socket when it fires; a stop
// does the same.
#pragma once

#include <registry/ports/http_poster.hpp>

#include <boost/asio/ssl/context.hpp>

#include <filesystem>
#include <memory>

namespace boost::asio {
class io_context;
}

namespace registryd {

class beast_poster final : public registry::http_poster {
public:
    // Throws std::runtime_error if `ca_file` cannot be read.
    beast_poster(boost::asio::io_context& ioc, const std::filesystem::path& ca_file);
    registry::task<registry::http_post_result> post(registry::http_post request, std::stop_token stop) override;

private:
    boost::asio::io_context& ioc_;
    std::shared_ptr<boost::asio::ssl::context> tls_;
};

}  // namespace registryd
