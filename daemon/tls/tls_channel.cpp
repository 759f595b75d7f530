#include "tls/tls_channel.hpp"

#include <openssl/err.h>
#include <openssl/x509v3.h>

#include <arpa/inet.h>
#include <openssl/x509.h>

#include <cerrno>
#include <climits>
#include <cstring>

namespace registryd {

tls_channel::tls_channel(SSL_CTX* ctx, int fd) : ssl_(SSL_new(ctx)) {
    if (ssl_ && SSL_set_fd(ssl_.get(), fd) != 1) ssl_.reset();
    if (ssl_) SSL_set_accept_state(ssl_.get());
    ERR_clear_error();
}

bool tls_channel::connect_to(const std::string& host, bool verify_host) {
    SSL_set_connect_state(ssl_.get());
    unsigned char ip[16];
    const bool literal = inet_pton(AF_INET, host.c_str(), ip) == 1 || inet_pton(AF_INET6, host.c_str(), ip) == 1;
    bool ok = literal || SSL_set_tlsext_host_name(ssl_.get(), host.c_str()) == 1;
    if (ok && verify_host) {
        X509_VERIFY_PARAM* param = SSL_get0_param(ssl_.get());
        ok = literal ? X509_VERIFY_PARAM_set1_ip_asc(param, host.c_str()) == 1 : SSL_set1_host(ssl_.get(), host.c_str()) == 1;
    }
    ERR_clear_error();
    return ok;
}

std::string tls_channel::verify_failure() const {
    const long v = SSL_get_verify_result(ssl_.get());
    if (v == X509_V_OK) return {};
    return X509_verify_cert_error_string(v);
}

tls_channel::result tls_channel::outcome(int ret, bool reading) {
    const int e = SSL_get_error(ssl_.get(), ret);
    switch (e) {
        case SSL_ERROR_WANT_READ:
            return {status::want_read};
        case SSL_ERROR_WANT_WRITE:
            return {status::want_write};
        case SSL_ERROR_ZERO_RETURN:
            return {status::closed};
        case SSL_ERROR_SYSCALL: {
            const int saved = errno;
            ERR_clear_error();
            if (saved == 0 && reading) return {status::closed};
            error_ = saved ? std::strerror(saved) : "connection closed";
            return {status::failed};
        }
        default: {
            const unsigned long code = ERR_peek_last_error();
            if (ERR_GET_LIB(code) == ERR_LIB_SSL && ERR_GET_REASON(code) == SSL_R_HTTP_REQUEST) plain_http_ = true;
            char text[256];
            ERR_error_string_n(code, text, sizeof text);
            error_ = code ? text : "TLS error";
            ERR_clear_error();
            return {status::failed};
        }
    }
}

tls_channel::result tls_channel::handshake() {
    ERR_clear_error();
    const int r = SSL_do_handshake(ssl_.get());
    if (r == 1) return {status::done};
    return outcome(r, true);
}

tls_channel::result tls_channel::read(void* data, std::size_t size) {
    ERR_clear_error();
    std::size_t n = 0;
    if (SSL_read_ex(ssl_.get(), data, size, &n) == 1) return {status::done, n};
    return outcome(0, true);
}

tls_channel::result tls_channel::write(const void* data, std::size_t size) {
    ERR_clear_error();
    std::size_t n = 0;
    if (SSL_write_ex(ssl_.get(), data, size, &n) == 1) return {status::done, n};
    return outcome(0, false);
}

void tls_channel::close_notify() noexcept {
    if (!ssl_ || !SSL_is_init_finished(ssl_.get())) return;
    ERR_clear_error();
    SSL_shutdown(ssl_.get());
    ERR_clear_error();
}

std::optional<std::string> tls_channel::peer_subject() const {
    const X509* cert = SSL_get0_peer_certificate(ssl_.get());
    if (!cert || SSL_get_verify_result(ssl_.get()) != X509_V_OK) return std::nullopt;
    BIO* bio = BIO_new(BIO_s_mem());
    if (!bio) return std::nullopt;
    std::optional<std::string> out;
    if (X509_NAME_print_ex(bio, X509_get_subject_name(cert), 0, XN_FLAG_RFC2253) >= 0) {
        char* p = nullptr;
        const long len = BIO_get_mem_data(bio, &p);
        if (len >= 0) out.emplace(p, static_cast<std::size_t>(len));
    }
    BIO_free(bio);
    ERR_clear_error();
    return out;
}

}  // namespace registryd
