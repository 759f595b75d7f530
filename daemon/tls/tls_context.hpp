// The server's TLS configuration (config `tls`): an OpenSSL context made with
// Asio's ssl::context from the certificate chain, the key and, for mutual
// TLS, the client CA file. TLS 1.2 and later only, OpenSSL's default ciphers
// for them; no server-side session cache (stateless tickets only), buffers
// released while a connection is idle (SSL_MODE_RELEASE_BUFFERS): an idle TLS
// connection costs its SSL object and no record buffers.
//
// Reloading (SIGHUP) makes a new context; connections made before keep the
// old one (each SSL object holds a reference to its SSL_CTX).
#pragma once

#include "config/config.hpp"

#include <boost/asio/ssl/context.hpp>

#include <memory>
#include <string>

namespace registryd {

class tls_context {
public:
    // Throws std::runtime_error naming the config key and the file.
    explicit tls_context(const config::tls_section& cfg);

    // Reads the files again; on failure keeps the current context, sets `why`
    // and returns false.
    bool reload(std::string& why);

    // The context new connections are made with.
    SSL_CTX* native() const noexcept { return current_->native_handle(); }
    bool mutual() const noexcept { return !cfg_.client_ca_file.empty(); }

private:
    static std::unique_ptr<boost::asio::ssl::context> make(const config::tls_section& cfg);

    config::tls_section cfg_;
    std::unique_ptr<boost::asio::ssl::context> current_;
};

}  // namespace registryd
