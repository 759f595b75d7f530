#include "transport.hpp"

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/connect.hpp>
#include <boost/asio/read_until.hpp>
#include <boost/asio/ssl/host_name_verification.hpp>
#include <boost/asio/streambuf.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/asio/write.hpp>

#include <openssl/ssl.h>


namespace registry::client::detail {

namespace {

constexpr auto use_tuple = asio::as_tuple(asio::use_awaitable);

error fail(errc code, std::string message) { return error{make_error_code(code), std::move(message)}; }

template <typename Stream>
asio::awaitable<result<done>> upgrade(Stream& s, const url& where, const options& opts, std::string& leftover) {
    const std::string key = registryd::websocket::new_upgrade_key();
    const std::string req = registryd::websocket::upgrade_request(where, key, opts.bearer_token);
    auto [werr, wn] = co_await asio::async_write(s, asio::buffer(req), use_tuple);
    if (werr) co_return fail(errc::handshake_failed, "sending the upgrade: " + werr.message());

    asio::streambuf buf(registryd::websocket::max_upgrade_response_bytes);
    auto [rerr, head_bytes] = co_await asio::async_read_until(s, buf, "\r\n\r\n", use_tuple);
    if (rerr) {
        co_return fail(errc::handshake_failed, rerr == asio::error::not_found
                                                   ? "the upgrade's response is larger than 16 KiB"
                                                   : "reading the upgrade's response: " + rerr.message());
    }
    const auto data = buf.data();
    const std::string all(asio::buffers_begin(data), asio::buffers_end(data));
    leftover = all.substr(head_bytes);
    const auto r = registryd::websocket::read_upgrade_response(std::string_view(all).substr(0, head_bytes), key);
    if (r.status == 401) {
        co_return fail(errc::unauthorized, "registryd refused the connection: " + r.status_line +
                                               (opts.bearer_token.empty() ? " (no bearer token was given)" : " (the bearer token was refused)"));
    }
    if (r.status != 101) co_return fail(errc::handshake_failed, "the upgrade was answered with: " + r.status_line);
    if (!r.accepted) co_return fail(errc::handshake_failed, "the upgrade's Sec-WebSocket-Accept does not answer the key");
    co_return done{};
}

}  // namespace

result<url> parse_url(std::string_view text) {
    std::string why;
    auto u = registryd::websocket::parse_ws_url(text, why);
    if (!u) return fail(errc::connection_failed, "the url '" + std::string(text) + "' " + why);
    return std::move(*u);
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
