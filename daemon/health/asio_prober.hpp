// registry::health_prober on Asio: http and tcp probes of the health
// monitor's checks (docs/protocol.md, "Health checks").
//
// Non-blocking: name resolution, connect, request and response header run
// as Asio operations on the io_context's thread, under one timer (the
// check's timeout) that closes the socket when it fires; a stop does the
// same. tcp: passing once connected. http: the request's status line and
// headers only (the body is not read); passing within expected_status, 429
// warning, anything else critical. https: the same over TLS 1.2 or later,
// with SNI, made the way the server's connections are (tls/tls_channel.hpp
// on the non-blocking socket, no Asio ssl::stream); with tls_verify the
// chain is verified against the system's CAs and health.ca_file and the
// host name against the certificate, a refused certificate is critical
// with OpenSSL's reason.
#pragma once

#include <registry/ports/health_prober.hpp>

#include <openssl/ssl.h>

#include <filesystem>
#include <memory>

namespace boost::asio {
class io_context;
}

namespace registryd {

class asio_prober final : public registry::health_prober {
public:
    // ca_file: PEM CAs trusted besides the system's (config health.ca_file;
    // empty: none). Throws std::runtime_error when it cannot be loaded.
    asio_prober(boost::asio::io_context& ioc, const std::filesystem::path& ca_file = {});
    registry::task<registry::probe_result> probe(registry::probe_request request, std::stop_token stop) override;

private:
    struct ctx_free {
        void operator()(SSL_CTX* c) const noexcept { SSL_CTX_free(c); }
    };
    using ctx_ptr = std::unique_ptr<SSL_CTX, ctx_free>;

    boost::asio::io_context& ioc_;
    ctx_ptr verifying_;  // tls_verify: true
    ctx_ptr trusting_;   // tls_verify: false
};

}  // namespace registryd
