#include "store/etcd_tls.hpp"

#include <boost/asio/ssl/context.hpp>

#include <openssl/err.h>
#include <openssl/ssl.h>

#include <stdexcept>

namespace registryd {

namespace ssl = boost::asio::ssl;

namespace {

[[noreturn]] void fail(std::string_view key, const std::string& file, std::string_view why) {
    throw std::runtime_error("store.etcd.tls." + std::string(key) + " " + file + ": " + std::string(why));
}

}  // namespace

std::shared_ptr<ssl::context> make_etcd_tls_context(const etcd_tls_options& opts) {
    auto ctx = std::make_shared<ssl::context>(ssl::context::tls_client);
    SSL_CTX* h = ctx->native_handle();
    SSL_CTX_set_min_proto_version(h, TLS1_2_VERSION);
    SSL_CTX_set_options(h, SSL_OP_NO_RENEGOTIATION | SSL_OP_NO_COMPRESSION);
    boost::system::error_code ec;
    if (opts.ca_file.empty()) {
        ctx->set_default_verify_paths(ec);
        if (ec) throw std::runtime_error("store.etcd.tls: the system's CA certificates: " + ec.message());
    } else {
        ctx->load_verify_file(opts.ca_file, ec);
        if (ec) fail("ca_file", opts.ca_file, ec.message());
    }
    ctx->set_verify_mode(ssl::verify_peer);
    if (!opts.cert_file.empty()) {
        ctx->use_certificate_chain_file(opts.cert_file, ec);
        if (ec) fail("cert_file", opts.cert_file, ec.message());
        ctx->use_private_key_file(opts.key_file, ssl::context::pem, ec);
        if (ec) fail("key_file", opts.key_file, ec.message());
        if (SSL_CTX_check_private_key(h) != 1) {
            ERR_clear_error();
            fail("key_file", opts.key_file, "does not match the certificate in " + opts.cert_file);
        }
    }
    ERR_clear_error();
    return ctx;
}

}  // namespace registryd
