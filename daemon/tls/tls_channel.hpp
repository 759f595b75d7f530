// One TLS connection's OpenSSL state over a non-blocking socket descriptor
// (SSL_set_fd: no BIO pair, no buffers of its own). It never waits: each call
// says what it needs (want_read, want_write) and the caller waits for that
// readiness the way the plain path does. The HTTP session uses it through
// tls/tls_stream.hpp, the WebSocket session directly.
#pragma once

#include <openssl/ssl.h>

#include <cstddef>
#include <memory>
#include <optional>
#include <string>

namespace registryd {

class tls_channel {
public:
    enum class status { done, want_read, want_write, closed, failed };
    struct result {
        status what = status::done;
        std::size_t bytes = 0;
    };

    // An invalid channel (valid() false) when OpenSSL cannot make one.
    tls_channel(SSL_CTX* ctx, int fd);

    bool valid() const noexcept { return ssl_ != nullptr; }

    // Makes this the client's side (the health prober's https checks): SNI
    // `host` unless it is an IP literal and, when `verify_host`, `host`
    // checked against the peer's certificate. False when OpenSSL refuses.
    bool connect_to(const std::string& host, bool verify_host);

    result handshake();
    // done with bytes > 0; closed when the peer sent close_notify or hung up.
    result read(void* data, std::size_t size);
    // done with 0 < bytes <= size (one record at a time). After want_write
    // the next call must pass at least the same bytes again.
    result write(const void* data, std::size_t size);
    // Sends close_notify if the socket takes it now (best effort).
    void close_notify() noexcept;

    // After a successful handshake with mutual TLS: the verified client
    // certificate's subject, RFC 2253 one-line form ("CN=alice,O=Example").
    std::optional<std::string> peer_subject() const;
    // After a handshake that failed on the peer's certificate: why
    // ("self-signed certificate", "hostname mismatch"); empty otherwise.
    std::string verify_failure() const;
    // What the last failed call failed with (OpenSSL's reason).
    const std::string& error() const noexcept { return error_; }
    // The handshake failed because the peer spoke plain HTTP.
    bool peer_sent_plain_http() const noexcept { return plain_http_; }

private:
    struct ssl_free {
        void operator()(SSL* s) const noexcept { SSL_free(s); }
    };
    result outcome(int ret, bool reading);

    std::unique_ptr<SSL, ssl_free> ssl_;
    std::string error_;
    bool plain_http_ = false;
};

}  // namespace registryd
