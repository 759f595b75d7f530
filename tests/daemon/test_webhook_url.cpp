// Webhook URLs (config `notifications`): what registryd POSTs to, and the
// clear refusal of what it does not.
#include "notify/webhook_url.hpp"

#include <doctest/doctest.h>

using registryd::parse_webhook_url;

TEST_CASE("webhook url: http and https, default and given ports, the target with its query") {
    std::string why;
    auto a = parse_webhook_url("http://hooks.example.com/a/b?x=1", why);
    REQUIRE(a);
    CHECK(!a->tls);
    CHECK(a->host == "hooks.example.com");
    CHECK(a->port == 80);
    CHECK(a->target == "/a/b?x=1");
    CHECK(a->host_header() == "hooks.example.com:80");
    auto b = parse_webhook_url("https://127.0.0.1:8443", why);
    REQUIRE(b);
    CHECK(b->tls);
    CHECK(b->port == 8443);
    CHECK(b->target == "/");
    auto c = parse_webhook_url("http://[::1]:9000?q", why);
    REQUIRE(c);
    CHECK(c->host == "::1");
    CHECK(c->target == "/?q");
    CHECK(c->host_header() == "[::1]:9000");
}

TEST_CASE("webhook url: refused, saying why") {
    auto refused = [](std::string_view url) {
        std::string why;
        CHECK_MESSAGE(!parse_webhook_url(url, why), url);
        return why;
    };
    CHECK(refused("ftp://x/") == "must start with http:// or https://");
    CHECK(refused("http://user:pw@x/").find("user info") != std::string::npos);
    CHECK(refused("http://x/#frag").find("fragment") != std::string::npos);
    CHECK(refused("http://x/a b").find("spaces") != std::string::npos);
    CHECK(refused("http://x/\r\nX-Injected: 1").find("control") != std::string::npos);
    CHECK(refused("http:///path") == "has no host");
    CHECK(refused("http://x:0/") == "has a port that is not 1-65535");
    CHECK(refused("http://x:65536/") == "has a port that is not 1-65535");
    CHECK(refused("http://x:/") == "has a port that is not 1-65535");
    CHECK(refused("http://[::1/") == "has an unclosed [ in its host");
}
