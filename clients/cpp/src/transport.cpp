#include "transport.hpp"

#include "websocket/accept_key.hpp"

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/connect.hpp>
#include <boost/asio/read_until.hpp>
#include <boost/asio/ssl/host_name_verification.hpp>
#include <boost/asio/streambuf.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/asio/write.hpp>

#include <openssl/rand.h>
#include <openssl/ssl.h>

#include <algorithm>
#include <array>
#include <cctype>

namespace registry::client::detail {

namespace {

constexpr auto use_tuple = asio::as_tuple(asio::use_awaitable);
// The upgrade's response: a status line and a few headers.
constexpr std::size_t max_handshake_bytes = 16 * 1024;

error fail(errc code, std::string message) { return error{make_error_code(code), std::move(message)}; }

std::string lower(std::string_view s) {
    std::string out(s);
    std::transform(out.begin(), out.end(), out.begin(), [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
    return out;
}

std::string trim(std::string_view s) {
    while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) s.remove_prefix(1);
    while (!s.empty() && (s.back() == ' ' || s.back() == '\t' || s.back() == '\r')) s.remove_suffix(1);
    return std::string(s);
}

// 16 random bytes in base64 (§4.1): what the server's accept key answers.
std::string make_key() {
    std::array<unsigned char, 16> raw{};
    RAND_bytes(raw.data(), static_cast<int>(raw.size()));
    static constexpr char alphabet[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    std::string out;
    for (std::size_t i = 0; i < raw.size(); i += 3) {
        const std::uint32_t n = (std::uint32_t{raw[i]} << 16) | (i + 1 < raw.size() ? std::uint32_t{raw[i + 1]} << 8 : 0) |
                                (i + 2 < raw.size() ? std::uint32_t{raw[i + 2]} : 0);
        out += alphabet[(n >> 18) & 63];
        out += alphabet[(n >> 12) & 63];
        out += i + 1 < raw.size() ? alphabet[(n >> 6) & 63] : '=';
        out += i + 2 < raw.size() ? alphabet[n & 63] : '=';
    }
    return out;
}

template <typename Stream>
asio::awaitable<result<done>> upgrade(Stream& s, const url& where, const options& opts, std::string& leftover) {
    const std::string key = make_key();
    std::string req = "GET " + where.target + " HTTP/1.1\r\nHost: " +
                      (where.host.find(':') != std::string::npos ? "[" + where.host + "]" : where.host) + ":" +
                      where.port + "\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: " + key +
                      "\r\nSec-WebSocket-Version: 13\r\n";
    if (!opts.bearer_token.empty()) req += "Authorization: Bearer " + opts.bearer_token + "\r\n";
    req += "\r\n";
    auto [werr, wn] = co_await asio::async_write(s, asio::buffer(req), use_tuple);
    if (werr) co_return fail(errc::handshake_failed, "sending the upgrade: " + werr.message());

    asio::streambuf buf(max_handshake_bytes);
    auto [rerr, head_bytes] = co_await asio::async_read_until(s, buf, "\r\n\r\n", use_tuple);
    if (rerr) {
        co_return fail(errc::handshake_failed, rerr == asio::error::not_found
                                                   ? "the upgrade's response is larger than 16 KiB"
                                                   : "reading the upgrade's response: " + rerr.message());
    }
    const auto data = buf.data();
    const std::string all(asio::buffers_begin(data), asio::buffers_end(data));
    const std::string_view head = std::string_view(all).substr(0, head_bytes);
    leftover = all.substr(head_bytes);

    const std::size_t line_end = head.find("\r\n");
    const std::string_view status_line = head.substr(0, line_end);
    int status = 0;
    if (status_line.size() >= 12 && status_line.substr(0, 5) == "HTTP/") {
        const std::size_t sp = status_line.find(' ');
        if (sp != std::string_view::npos) status = std::atoi(std::string(status_line.substr(sp + 1, 3)).c_str());
    }
    if (status == 401) {
        co_return fail(errc::unauthorized, "registryd refused the connection: " + trim(status_line) +
                                               (opts.bearer_token.empty() ? " (no bearer token was given)" : " (the bearer token was refused)"));
    }
    if (status != 101) co_return fail(errc::handshake_failed, "the upgrade was answered with: " + trim(status_line));

    std::string accept;
    std::size_t pos = line_end + 2;
    while (pos < head.size()) {
        const std::size_t end = head.find("\r\n", pos);
        const std::string_view line = head.substr(pos, end - pos);
        pos = end == std::string_view::npos ? head.size() : end + 2;
        const std::size_t colon = line.find(':');
        if (colon == std::string_view::npos) continue;
        if (lower(line.substr(0, colon)) == "sec-websocket-accept") accept = trim(line.substr(colon + 1));
    }
    if (accept != registryd::websocket::accept_key(key)) {
        co_return fail(errc::handshake_failed, "the upgrade's Sec-WebSocket-Accept does not answer the key");
    }
    co_return done{};
}

}  // namespace

result<url> parse_url(std::string_view text) {
    url out;
    std::string_view rest;
    if (text.starts_with("ws://")) {
        rest = text.substr(5);
    } else if (text.starts_with("wss://")) {
        out.tls = true;
        rest = text.substr(6);
    } else {
        return fail(errc::connection_failed, "the url must start with ws:// or wss://: '" + std::string(text) + "'");
    }
    const std::size_t slash = rest.find('/');
    std::string_view authority = rest.substr(0, slash);
    out.target = slash == std::string_view::npos ? "/" : std::string(rest.substr(slash));
    if (authority.starts_with("[")) {
        const std::size_t close = authority.find(']');
        if (close == std::string_view::npos) return fail(errc::connection_failed, "an unclosed [ in the url's host");
        out.host = std::string(authority.substr(1, close - 1));
        authority.remove_prefix(close + 1);
        if (authority.starts_with(":")) out.port = std::string(authority.substr(1));
    } else {
        const std::size_t colon = authority.rfind(':');
        out.host = std::string(authority.substr(0, colon));
        if (colon != std::string_view::npos) out.port = std::string(authority.substr(colon + 1));
    }
    if (out.host.empty()) return fail(errc::connection_failed, "the url has no host: '" + std::string(text) + "'");
    if (out.port.empty()) out.port = out.tls ? "443" : "80";
    return out;
}

asio::awaitable<result<std::unique_ptr<transport>>> transport::open(asio::any_io_executor ex, const url& where,
                                                                    const options& opts,
                                                                    asio::ssl::context* tls_context,
                                                                    std::string& leftover) {
    tcp::resolver resolver(ex);
    auto [rerr, endpoints] = co_await resolver.async_resolve(where.host, where.port, use_tuple);
    if (rerr) co_return fail(errc::connection_failed, "resolving " + where.host + ": " + rerr.message());
    tcp::socket socket(ex);
    auto [cerr, ep] = co_await asio::async_connect(socket, endpoints, use_tuple);
    if (cerr) {
        co_return fail(errc::connection_failed, "connecting to " + where.host + ":" + where.port + ": " + cerr.message());
    }
    socket.set_option(tcp::no_delay(true));

    if (!where.tls) {
        auto up = co_await upgrade(socket, where, opts, leftover);
        if (!up) co_return up.err();
        co_return std::make_unique<transport>(std::move(socket));
    }
    tls_stream tls(std::move(socket), *tls_context);
    // SNI, and the certificate must name the host.
    if (!SSL_set_tlsext_host_name(tls.native_handle(), where.host.c_str())) {
        co_return fail(errc::connection_failed, "TLS: cannot set the server name " + where.host);
    }
    tls.set_verify_callback(asio::ssl::host_name_verification(where.host));
    auto [herr] = co_await tls.async_handshake(asio::ssl::stream_base::client, use_tuple);
    if (herr) co_return fail(errc::connection_failed, "TLS handshake with " + where.host + ": " + herr.message());
    auto up = co_await upgrade(tls, where, opts, leftover);
    if (!up) co_return up.err();
    co_return std::make_unique<transport>(std::move(tls));
}

asio::awaitable<std::pair<boost::system::error_code, std::size_t>> transport::read_some(asio::mutable_buffer buf) {
    auto [err, n] = co_await std::visit([&](auto& s) { return s.async_read_some(buf, use_tuple); }, stream_);
    co_return std::pair{err, n};
}

asio::awaitable<boost::system::error_code> transport::write(asio::const_buffer buf) {
    auto [err, n] = co_await std::visit([&](auto& s) { return asio::async_write(s, buf, use_tuple); }, stream_);
    co_return err;
}

void transport::close() noexcept {
    boost::system::error_code ignored;
    std::visit(
        [&](auto& s) {
            if constexpr (std::is_same_v<std::decay_t<decltype(s)>, tcp::socket>) {
                s.shutdown(tcp::socket::shutdown_both, ignored);
                s.close(ignored);
            } else {
                s.lowest_layer().close(ignored);
            }
        },
        stream_);
}

}  // namespace registry::client::detail
