// The TLS side of the harness: Asio's SSL stream under Beast.
#include "harness_tls.hpp"

#include <boost/asio/connect.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/ssl/context.hpp>
#include <boost/asio/ssl/host_name_verification.hpp>
#include <boost/asio/ssl/stream.hpp>
#include <boost/beast/core/buffers_to_string.hpp>
#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/http/empty_body.hpp>
#include <boost/beast/http/read.hpp>
#include <boost/beast/http/string_body.hpp>
#include <boost/beast/http/write.hpp>
#include <boost/beast/websocket/ssl.hpp>
#include <boost/beast/websocket/stream.hpp>

#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/sha.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>

#include <cstdio>
#include <cstdlib>
#include <fstream>

namespace it {

namespace asio = boost::asio;
namespace ssl = asio::ssl;
namespace beast = boost::beast;
namespace http = beast::http;
namespace websocket = beast::websocket;
using tcp = asio::ip::tcp;
namespace fs = std::filesystem;

namespace {

std::string quoted(const std::string& s) { return "'" + s + "'"; }

void openssl(const std::string& args) {
    const std::string cmd = "openssl " + args + " >/dev/null 2>&1";
    if (std::system(cmd.c_str()) != 0) throw failure("openssl failed: " + cmd);
}

std::string fingerprint_of(const X509* cert) {
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned int n = 0;
    if (!cert || X509_digest(cert, EVP_sha256(), md, &n) != 1) throw failure("cannot take a certificate's SHA-256");
    std::string hex;
    char b[3];
    for (unsigned int i = 0; i < n; ++i) {
        std::snprintf(b, sizeof b, "%02x", md[i]);
        hex += b;
    }
    return hex;
}

// Runs the io_context until `done` or the deadline; throws failure(what).
void run_until(asio::io_context& ioc, const bool& done, steady::time_point deadline, const std::string& what) {
    while (!done && steady::now() < deadline) {
        if (ioc.stopped()) ioc.restart();
        ioc.run_one_for(deadline - steady::now());
    }
    if (!done) throw failure(what + ": timed out");
}

// Before any stream is made with it: an SSL object copies the context's
// certificate when it is created.
ssl::context& configure(ssl::context& ctx, const tls_options& o) {
    ctx.set_verify_mode(ssl::verify_peer);
    ctx.load_verify_file(o.ca_file.string());
    if (!o.cert_file.empty()) {
        ctx.use_certificate_chain_file(o.cert_file.string());
        ctx.use_private_key_file(o.key_file.string(), ssl::context::pem);
    }
    return ctx;
}

// TCP connect, then the TLS handshake (the server's name checked).
void connect_tls(asio::io_context& ioc, ssl::stream<tcp::socket>& s, const std::string& host, std::uint16_t port,
                 steady::time_point deadline, const std::string& what) {
    s.set_verify_callback(ssl::host_name_verification(host));
    bool done = false;
    boost::system::error_code ec;
    s.next_layer().async_connect(tcp::endpoint(asio::ip::make_address(host), port), [&](boost::system::error_code e) {
        done = true;
        ec = e;
    });
    run_until(ioc, done, deadline, what + ": connect");
    if (ec) throw failure(what + ": connect failed: " + ec.message());
    done = false;
    s.async_handshake(ssl::stream_base::client, [&](boost::system::error_code e) {
        done = true;
        ec = e;
    });
    run_until(ioc, done, deadline, what + ": TLS handshake");
    if (ec) throw failure(what + ": TLS handshake failed: " + ec.message());
}

}  // namespace

//------------------------------------------------------------------------------
// test_pki

test_pki::test_pki(std::string ca_name) : dir_("registryd-pki") {
    ca_cert_ = dir_.path() / "ca.pem";
    ca_key_ = dir_.path() / "ca.key";
    openssl("req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 2 -keyout " +
            quoted(ca_key_.string()) + " -out " + quoted(ca_cert_.string()) + " -subj " + quoted("/CN=" + ca_name));
}

test_pki::issued test_pki::sign(std::string_view subject, std::string_view file, std::string_view extensions) const {
    const fs::path base = dir_.path() / std::string(file);
    issued out{base.string() + ".pem", base.string() + ".key"};
    const std::string csr = base.string() + ".csr";
    const std::string ext = base.string() + ".ext";
    {
        std::ofstream e(ext, std::ios::trunc);
        e << extensions;
    }
    openssl("req -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout " + quoted(out.key.string()) + " -out " +
            quoted(csr) + " -subj " + quoted(std::string(subject)));
    openssl("x509 -req -days 2 -in " + quoted(csr) + " -CA " + quoted(ca_cert_.string()) + " -CAkey " +
            quoted(ca_key_.string()) + " -CAcreateserial -CAserial " + quoted((dir_.path() / "ca.srl").string()) +
            " -out " + quoted(out.cert.string()) + " -extfile " + quoted(ext));
    return out;
}

test_pki::issued test_pki::server(std::string_view file) const {
    return sign("/CN=localhost", file, "subjectAltName=IP:127.0.0.1,DNS:localhost\nextendedKeyUsage=serverAuth\n");
}

test_pki::issued test_pki::server_and_client(std::string_view file) const {
    return sign("/CN=localhost", file,
                "subjectAltName=IP:127.0.0.1,DNS:localhost\nextendedKeyUsage=serverAuth,clientAuth\n");
}

test_pki::issued test_pki::client(std::string_view subject, std::string_view file) const {
    return sign(subject, file, "extendedKeyUsage=clientAuth\n");
}

std::string sha256_hex(std::string_view s) {
    unsigned char d[SHA256_DIGEST_LENGTH];
    ::SHA256(reinterpret_cast<const unsigned char*>(s.data()), s.size(), d);
    static constexpr char digits[] = "0123456789abcdef";
    std::string out;
    for (unsigned char b : d) {
        out += digits[b >> 4];
        out += digits[b & 15];
    }
    return out;
}

std::string certificate_fingerprint(const fs::path& pem) {
    FILE* f = std::fopen(pem.c_str(), "r");
    if (!f) throw failure("cannot open " + pem.string());
    X509* cert = PEM_read_X509(f, nullptr, nullptr, nullptr);
    std::fclose(f);
    if (!cert) throw failure("no certificate in " + pem.string());
    std::string out = fingerprint_of(cert);
    X509_free(cert);
    return out;
}

//------------------------------------------------------------------------------
// wss_client

struct wss_client::impl {
    explicit impl(const tls_options& o) : ws(ioc, configure(ctx, o)) {}
    asio::io_context ioc;
    ssl::context ctx{ssl::context::tls_client};
    websocket::stream<ssl::stream<tcp::socket>> ws;
    beast::flat_buffer buf;
    std::string peer;
    std::string fingerprint;
    std::uint64_t next_id = 1;
};

wss_client::wss_client(const std::string& host, std::uint16_t port, const tls_options& opts)
    : impl_(std::make_unique<impl>(opts)) {
    impl& m = *impl_;
    m.peer = "wss://" + host + ":" + std::to_string(port) + "/";
    const auto deadline = steady::now() + scaled(opts.timeout);
    connect_tls(m.ioc, m.ws.next_layer(), host, port, deadline, "wss_client " + m.peer);
    m.fingerprint = fingerprint_of(SSL_get0_peer_certificate(m.ws.next_layer().native_handle()));
    bool done = false;
    boost::system::error_code ec;
    m.ws.async_handshake(host + ":" + std::to_string(port), "/", [&](boost::system::error_code e) {
        done = true;
        ec = e;
    });
    run_until(m.ioc, done, deadline, "wss_client " + m.peer + ": WebSocket upgrade");
    if (ec) throw failure("wss_client " + m.peer + ": WebSocket upgrade failed: " + ec.message());
}

wss_client::~wss_client() {
    boost::system::error_code ec;
    impl_->ws.next_layer().next_layer().close(ec);
}

json::value wss_client::request(std::string_view action, json::object params, ms timeout) {
    impl& m = *impl_;
    const auto deadline = steady::now() + scaled(timeout);
    const std::string id = "t" + std::to_string(m.next_id++);
    json::object req;
    req["id"] = id;
    req["type"] = "request";
    req["action"] = json::string_view(action.data(), action.size());
    req["params"] = std::move(params);
    const std::string text = json::serialize(req);
    bool done = false;
    boost::system::error_code ec;
    m.ws.text(true);
    m.ws.async_write(asio::buffer(text), [&](boost::system::error_code e, std::size_t) {
        done = true;
        ec = e;
    });
    run_until(m.ioc, done, deadline, "wss_client " + m.peer + ": write");
    if (ec) throw failure("wss_client " + m.peer + ": write failed: " + ec.message());
    for (;;) {
        done = false;
        m.ws.async_read(m.buf, [&](boost::system::error_code e, std::size_t) {
            done = true;
            ec = e;
        });
        run_until(m.ioc, done, deadline, "wss_client " + m.peer + ": the response to " + id);
        if (ec) throw failure("wss_client " + m.peer + ": read failed: " + ec.message());
        json::value v = parse(beast::buffers_to_string(m.buf.data()));
        m.buf.consume(m.buf.size());
        if (has(v, "/id") && at(v, "/id").is_string() && str(v, "/id") == id) return v;
    }
}

json::value wss_client::call(std::string_view action, json::object params, ms timeout) {
    json::value r = request(action, std::move(params), timeout);
    if (!has(r, "/data")) throw failure(std::string(action) + " failed: " + dump(r));
    return at(r, "/data");
}

const std::string& wss_client::peer_fingerprint() const { return impl_->fingerprint; }

//------------------------------------------------------------------------------
// https_get

http_response https_get(const std::string& host, std::uint16_t port, std::string_view target, const tls_options& opts) {
    asio::io_context ioc;
    ssl::context ctx{ssl::context::tls_client};
    configure(ctx, opts);
    ssl::stream<tcp::socket> s(ioc, ctx);
    const std::string what = "GET https://" + host + ":" + std::to_string(port) + std::string(target);
    const auto deadline = steady::now() + scaled(opts.timeout);
    connect_tls(ioc, s, host, port, deadline, what);

    http::request<http::empty_body> req(http::verb::get, target, 11);
    req.set(http::field::host, host + ":" + std::to_string(port));
    req.set(http::field::connection, "close");
    bool done = false;
    boost::system::error_code ec;
    http::async_write(s, req, [&](boost::system::error_code e, std::size_t) {
        done = true;
        ec = e;
    });
    run_until(ioc, done, deadline, what + ": write");
    if (ec) throw failure(what + ": write failed: " + ec.message());
    beast::flat_buffer buf;
    http::response<http::string_body> res;
    done = false;
    http::async_read(s, buf, res, [&](boost::system::error_code e, std::size_t) {
        done = true;
        ec = e;
    });
    run_until(ioc, done, deadline, what + ": read");
    if (ec) throw failure(what + ": read failed: " + ec.message());
    http_response out;
    out.status = static_cast<int>(res.result_int());
    out.content_type = std::string(res[http::field::content_type]);
    out.body = std::move(res.body());
    return out;
}

}  // namespace it
