// One HTTP connection (after Beast's advanced_server example), plain or TLS
// (config `tls`: the TLS handshake first, within timeouts.handshake): reads
// requests, serves GET /healthz, GET /metrics and the read-only registry view
// GET /v1/services[/NAME] (http/services_view; 404 otherwise), and on a
// WebSocket upgrade hands its socket, with the answer to the upgrade
// (http/handshake) and the bytes read past it, to a ws_session. On a
// member's engine tunnel (cluster/engine_offer.hpp) the connection becomes
// the tunnel's (cluster/engine_tunnel.hpp). A member's deploy-target calls
// (cluster/target_offer.hpp) are served here too: their bodies are read
// only once the header proved the cluster's secret.
#pragma once

#include "access/gate.hpp"
#include "http/console_files.hpp"
#include "http/source_slot.hpp"
#include "server.hpp"

#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/core/tcp_stream.hpp>
#include <boost/beast/http/file_body.hpp>
#include <boost/beast/http/parser.hpp>
#include <boost/beast/http/string_body.hpp>

#include <registry/task.hpp>

#include <chrono>
#include <cstdint>
#include <filesystem>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <variant>

namespace registry {
class deploy_target;
}

namespace registryd {

class target_offer;

class http_session final : public std::enable_shared_from_this<http_session> {
public:
    http_session(std::shared_ptr<server::state> st, std::uint64_t id, boost::asio::ip::tcp::socket&& socket,
                 source_slot slot);
    ~http_session();

    http_session(const http_session&) = delete;
    http_session& operator=(const http_session&) = delete;

    void run();

    // Server shutdown: an idle connection is closed now; one that is writing
    // a response is closed after it.
    void shutdown();

    void close();

    // With mutual TLS, after the TLS handshake: the verified client
    // certificate's subject in RFC 2253 form ("CN=alice,O=Example"); nullopt
    // on a plain connection or without tls.client_ca_file. The upgrade hands
    // it to the authenticator.
    const std::optional<std::string>& tls_peer_subject() const noexcept;

private:
    struct tls_state;

    void on_handshake(const boost::system::error_code& ec);
    void refuse_plain_http();
    void arm_tls_timer();
    void arm_tls_timer(std::chrono::milliseconds after);
    // Bounds what the connection does next (a plain one's expiry, a TLS
    // one's timer); never: no bound.
    void expect_within(std::chrono::milliseconds after);
    void expect_forever();
    // Calls f with the stream requests and responses go through: the TCP
    // stream, or the TLS stream over it.
    template <typename F>
    void with_stream(F&& f);
    void do_read();
    // The header first: a deploy-target call's body is read only once the
    // header is accepted, under that call's own bound.
    void on_header(const boost::system::error_code& ec);
    void on_read(const boost::system::error_code& ec);
    void upgrade();
    void open_engine_tunnel();
    // A member's deploy-target call (cluster/target_offer.hpp): checked,
    // its body read, then run.
    void open_target_call();
    void on_target_upload(const boost::system::error_code& ec, std::shared_ptr<target_offer> offer,
                          registry::deploy_target* target, std::filesystem::path file, std::string to);
    registry::task<void> answered(registry::task<void> work);
    registry::task<void> serve_target_call(std::shared_ptr<target_offer> offer, registry::deploy_target* target,
                                           std::string operation, std::string body);
    registry::task<void> serve_target_upload(std::shared_ptr<target_offer> offer, registry::deploy_target* target,
                                             std::filesystem::path file, std::string to);
    // The access gate's answer for the current request (access/gate.hpp).
    std::variant<access::gate::caller, access::refusal> admit();
    void refuse(const access::refusal& r, bool keep_alive);
    void respond(boost::beast::http::status status, std::string body, bool keep_alive,
                 std::string_view content_type = "text/plain; charset=utf-8", std::string_view allow = {});
    void respond_console(const console_answer& a, bool keep_alive);
    void start_response(boost::beast::http::status status, bool keep_alive, std::string_view content_type);
    void finish_response(std::string body);
    void on_write(const boost::system::error_code& ec);
    void linger();

    std::shared_ptr<server::state> st_;
    source_slot slot_;  // moves to the WebSocket session
    const std::uint64_t id_;
    const std::string remote_;
    const boost::asio::ip::address peer_;
    boost::beast::tcp_stream stream_;
    boost::beast::flat_buffer buffer_;
    std::optional<boost::beast::http::request_parser<boost::beast::http::string_body>> parser_;
    std::optional<boost::beast::http::request_parser<boost::beast::http::file_body>> upload_parser_;
    unsigned request_version_ = 11;  // of the request being answered
    std::optional<boost::beast::http::response<boost::beast::http::string_body>> res_;
    std::unique_ptr<tls_state> tls_;  // config `tls`
    bool writing_ = false;
};

}  // namespace registryd
