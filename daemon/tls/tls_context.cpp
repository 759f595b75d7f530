#include "tls/tls_context.hpp"

#include <openssl/err.h>
#include <openssl/ssl.h>

#include <stdexcept>

namespace registryd {

namespace ssl = boost::asio::ssl;

namespace {

[[noreturn]] void fail(std::string_view key, const std::filesystem::path& file, const boost::system::error_code& ec) {
    throw std::runtime_error("tls." + std::string(key) + " " + file.string() + ": " + ec.message());
}

}  // namespace

tls_context::tls_context(const config::tls_section& cfg) : cfg_(cfg), current_(make(cfg)) {}

bool tls_context::reload(std::string& why) {
    try {
        current_ = make(cfg_);
        return true;
    } catch (const std::exception& e) {
        why = e.what();
        return false;
    }
}

std::unique_ptr<ssl::context> tls_context::make(const config::tls_section& cfg) {
    auto ctx = std::make_unique<ssl::context>(ssl::context::tls_server);
    SSL_CTX* h = ctx->native_handle();
    SSL_CTX_set_min_proto_version(h, TLS1_2_VERSION);
    // No renegotiation (the sessions' writes never need to read); a peer
    // hanging up without close_notify is an ordinary end, not an error.
    SSL_CTX_set_options(h, SSL_OP_NO_RENEGOTIATION | SSL_OP_IGNORE_UNEXPECTED_EOF | SSL_OP_CIPHER_SERVER_PREFERENCE |
                               SSL_OP_NO_COMPRESSION);
    // Writes of a partly written frame queue are retried from wherever the
    // queue's bytes are then (websocket/session.cpp).
    SSL_CTX_set_mode(h, SSL_MODE_RELEASE_BUFFERS | SSL_MODE_ENABLE_PARTIAL_WRITE |
                            SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER);
    SSL_CTX_set_session_cache_mode(h, SSL_SESS_CACHE_OFF);

    boost::system::error_code ec;
    ctx->use_certificate_chain_file(cfg.cert_file.string(), ec);
    if (ec) fail("cert_file", cfg.cert_file, ec);
    ctx->use_private_key_file(cfg.key_file.string(), ssl::context::pem, ec);
    if (ec) fail("key_file", cfg.key_file, ec);
    if (SSL_CTX_check_private_key(h) != 1) {
        ERR_clear_error();
        throw std::runtime_error("tls.key_file " + cfg.key_file.string() + ": does not match the certificate in " +
                                 cfg.cert_file.string());
    }
    if (!cfg.client_ca_file.empty()) {
        ctx->load_verify_file(cfg.client_ca_file.string(), ec);
        if (ec) fail("client_ca_file", cfg.client_ca_file, ec);
        // The CA names sent in the CertificateRequest (clients pick a
        // certificate by them).
        STACK_OF(X509_NAME)* names = SSL_load_client_CA_file(cfg.client_ca_file.c_str());
        if (!names) {
            ERR_clear_error();
            throw std::runtime_error("tls.client_ca_file " + cfg.client_ca_file.string() + ": no CA certificate in it");
        }
        SSL_CTX_set_client_CA_list(h, names);
        ctx->set_verify_mode(ssl::verify_peer | ssl::verify_fail_if_no_peer_cert);
    }
    ERR_clear_error();
    return ctx;
}

}  // namespace registryd
