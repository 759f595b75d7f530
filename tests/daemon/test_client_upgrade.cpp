// The client's side of the opening handshake (websocket/client_upgrade.hpp),
// shared by registry::client and the standbys' writer_link.
#include "websocket/accept_key.hpp"
#include "websocket/client_upgrade.hpp"

#include <doctest/doctest.h>

using namespace registryd::websocket;

TEST_CASE("client upgrade: ws:// and wss:// URLs, default ports, IPv6, refused ones saying why") {
    std::string why;
    auto a = parse_ws_url("ws://127.0.0.1:7001/", why);
    REQUIRE(a);
    CHECK(!a->tls);
    CHECK(a->host == "127.0.0.1");
    CHECK(a->port == "7001");
    CHECK(a->target == "/");
    auto b = parse_ws_url("wss://registry.example.com", why);
    REQUIRE(b);
    CHECK(b->tls);
    CHECK(b->port == "443");
    CHECK(b->target == "/");
    auto c = parse_ws_url("ws://[::1]:9000/ws?x=1", why);
    REQUIRE(c);
    CHECK(c->host == "::1");
    CHECK(c->target == "/ws?x=1");
    CHECK_FALSE(parse_ws_url("http://x/", why));
    CHECK(why == "must start with ws:// or wss://");
    CHECK_FALSE(parse_ws_url("ws:///", why));
    CHECK(why == "has no host");
    CHECK_FALSE(parse_ws_url("ws://[::1/", why));
    CHECK(why == "has an unclosed [ in its host");
}

TEST_CASE("client upgrade: the request carries the key, the host and the token only when there is one") {
    std::string why;
    const auto where = *parse_ws_url("ws://[::1]:9000/", why);
    const std::string key = new_upgrade_key();
    CHECK(key.size() == 24);
    CHECK(key != new_upgrade_key());
    const std::string plain = upgrade_request(where, key, "");
    CHECK(plain.starts_with("GET / HTTP/1.1\r\nHost: [::1]:9000\r\n"));
    CHECK(plain.find("Sec-WebSocket-Key: " + key + "\r\n") != std::string::npos);
    CHECK(plain.find("Authorization") == std::string::npos);
    CHECK(plain.ends_with("\r\n\r\n"));
    CHECK(upgrade_request(where, key, "t0k").find("Authorization: Bearer t0k\r\n") != std::string::npos);
}

TEST_CASE("client upgrade: the response's status, whether it accepts the key, and a refusal's body length") {
    const std::string key = new_upgrade_key();
    const auto ok = read_upgrade_response(
        "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nsec-websocket-accept: " + accept_key(key) + "\r\n", key);
    CHECK(ok.status == 101);
    CHECK(ok.accepted);
    const auto wrong = read_upgrade_response(
        "HTTP/1.1 101 Switching Protocols\r\nSec-WebSocket-Accept: " + accept_key(new_upgrade_key()) + "\r\n", key);
    CHECK_FALSE(wrong.accepted);
    const auto refused = read_upgrade_response("HTTP/1.1 401 Unauthorized\r\nContent-Length: 42\r\n", key);
    CHECK(refused.status == 401);
    CHECK(refused.status_line == "HTTP/1.1 401 Unauthorized");
    CHECK(refused.content_length == 42);
    CHECK_FALSE(refused.accepted);
    CHECK(read_upgrade_response("SSH-2.0-OpenSSH_9.2\r\n", key).status == 0);
}
