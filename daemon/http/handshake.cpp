#include "http/handshake.hpp"

#include "websocket/accept_key.hpp"

#include <boost/beast/http/rfc7230.hpp>
#include <boost/beast/http/write.hpp>

#include <sstream>

namespace registryd {

namespace http = boost::beast::http;

upgrade_answer answer_upgrade(const http::request<http::string_body>& req) {
    upgrade_answer out;
    http::response<http::string_body> res;
    res.version(req.version());
    auto refuse = [&](http::status status, std::string_view why) {
        res.result(status);
        res.set(http::field::server, server_name);
        res.body() = std::string(why);
        res.prepare_payload();
        out.error = std::string(why);
    };
    const auto connection = req.find(http::field::connection);
    const auto upgrade = req.find(http::field::upgrade);
    const auto key = req.find(http::field::sec_websocket_key);
    const auto version = req.find(http::field::sec_websocket_version);
    if (req.version() != 11) {
        refuse(http::status::bad_request, "The WebSocket handshake was not HTTP/1.1");
    } else if (req.method() != http::verb::get) {
        refuse(http::status::bad_request, "The WebSocket handshake method was not GET");
    } else if (req.count(http::field::host) == 0) {
        refuse(http::status::bad_request, "The WebSocket handshake Host field is missing");
    } else if (connection == req.end()) {
        refuse(http::status::bad_request, "The WebSocket handshake Connection field is missing");
    } else if (!http::token_list{connection->value()}.exists("upgrade")) {
        refuse(http::status::bad_request, "The WebSocket handshake Connection field is missing the upgrade token");
    } else if (upgrade == req.end()) {
        refuse(http::status::bad_request, "The WebSocket handshake Upgrade field is missing");
    } else if (!http::token_list{upgrade->value()}.exists("websocket")) {
        refuse(http::status::bad_request, "The WebSocket handshake Upgrade field is missing the websocket token");
    } else if (key == req.end()) {
        refuse(http::status::bad_request, "The WebSocket handshake Sec-WebSocket-Key field is missing");
    } else if (!websocket::is_valid_key(key->value())) {
        refuse(http::status::bad_request, "The WebSocket handshake Sec-WebSocket-Key field is invalid");
    } else if (version == req.end()) {
        refuse(http::status::bad_request, "The WebSocket handshake Sec-WebSocket-Version field is missing");
    } else if (version->value() != "13") {
        res.set(http::field::sec_websocket_version, "13");
        refuse(http::status::upgrade_required, "The WebSocket handshake Sec-WebSocket-Version field is invalid");
    } else {
        out.accepted = true;
        res.result(http::status::switching_protocols);
        res.set(http::field::upgrade, "websocket");
        res.set(http::field::connection, "upgrade");
        res.set(http::field::sec_websocket_accept, websocket::accept_key(key->value()));
        res.set(http::field::server, server_name);
    }
    std::ostringstream text;
    text << res;
    out.bytes = std::move(text).str();
    return out;
}

}  // namespace registryd
