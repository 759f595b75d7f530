// Rate limits (docs/protocol.md, "Rate limits"): a token bucket per caller
// (identity; address when anonymous) and tighter ones per family, checked
// where the dispatch table dispatches, on the fake clock.
#include "protocol_test_support.hpp"
#include "registry_test_support.hpp"

#include "protocol/rate_limiter.hpp"

#include <registry/protocol/connection.hpp>

#include <doctest/doctest.h>

#include <memory>
#include <string>

using namespace registry;
using namespace registry::test;
using namespace std::chrono_literals;
using protocol::permission_family;

namespace {

struct rated {
    testing::fake_clock clk;
    testing::memory_store st;
    registry::registry reg{clk, st};
    protocol::server srv;

    explicit rated(protocol::rate_limits r) : srv(reg, with(r)) { REQUIRE(run_now(reg.open()).ok()); }
    static protocol::limits with(protocol::rate_limits r) {
        protocol::limits l;
        l.rates = r;
        return l;
    }
};

protocol::rate_limits global(double per_second, double burst) {
    protocol::rate_limits r;
    r.requests = {per_second, burst};
    return r;
}

std::shared_ptr<const protocol::principal> who(std::string name) {
    return std::make_shared<const protocol::principal>(
        protocol::principal{identity{std::move(name), false, {}}, protocol::permission_set::all()});
}

std::string web_params(std::string_view instance) {
    return R"({"service":{"name":"web","instance_id":")" + std::string(instance) +
           R"(","endpoints":[{"name":"http","address":"127.0.0.1","port":80,"protocol":"http"}]}})";
}

}  // namespace

TEST_CASE("rate limits: a burst is admitted, the next request refused with retry_after_ms, the connection goes on") {
    rated r(global(4, 3));  // 4 a second: one token every 250 ms
    client c(r.srv, 1, "10.0.0.1", who("ci"));
    for (int i = 0; i < 3; ++i) c.ask(req(std::to_string(i), "get_service", R"({"name":"web"})"), "not_found");
    const std::string refused = c.ask(req("x", "get_service", R"({"name":"web"})"), "rate_limited");
    CHECK(refused ==
          R"({"id":"x","type":"response","error":{"code":"rate_limited","message":"rate limit of identity 'ci' (discover) exceeded: retry after 250 ms","retry_after_ms":250}})");

    // Part of the wait: still refused, for the rest of it.
    r.clk.advance(100ms);
    CHECK(c.ask(req("y", "get_service", R"({"name":"web"})"), "rate_limited").find(R"("retry_after_ms":150)") !=
          std::string::npos);
    // The whole wait: one request admitted, and one only.
    r.clk.advance(150ms);
    c.ask(req("z", "get_service", R"({"name":"web"})"), "not_found");
    c.ask(req("z2", "get_service", R"({"name":"web"})"), "rate_limited");
}

TEST_CASE("rate limits: a bucket refills up to its burst and no further") {
    rated r(global(10, 5));
    client c(r.srv, 1, "10.0.0.1", who("ci"));
    for (int i = 0; i < 5; ++i) c.ask(req(std::to_string(i), "get_service", R"({"name":"web"})"), "not_found");
    c.ask(req("a", "get_service", R"({"name":"web"})"), "rate_limited");
    r.clk.advance(1h);  // would be 36000 tokens without the cap
    for (int i = 0; i < 5; ++i) c.ask(req("b" + std::to_string(i), "get_service", R"({"name":"web"})"), "not_found");
    c.ask(req("c", "get_service", R"({"name":"web"})"), "rate_limited");
}

TEST_CASE("rate limits: a family's limit is tighter than the global one, and other families are unaffected") {
    protocol::rate_limits limits = global(100, 100);
    limits.family(permission_family::register_) = {1, 2};
    rated r(limits);
    client c(r.srv, 1, "10.0.0.1", who("ci"));
    c.ask(req("1", "register", web_params("web-1")));
    c.ask(req("2", "register", web_params("web-2")));
    const std::string refused = c.ask(req("3", "register", web_params("web-3")), "rate_limited");
    CHECK(refused.find(R"("retry_after_ms":1000)") != std::string::npos);
    CHECK(refused.find("(register)") != std::string::npos);
    // Reads go on under the global limit.
    c.ask(req("4", "get_service", R"({"name":"web"})"));
    CHECK(r.reg.find("web-3") == nullptr);  // a refused request did nothing
    r.clk.advance(1s);
    c.ask(req("5", "register", web_params("web-3")));
    CHECK(r.reg.find("web-3") != nullptr);
}

TEST_CASE("rate limits: the global bucket counts requests of every family") {
    protocol::rate_limits limits = global(1, 2);
    limits.family(permission_family::register_) = {100, 100};  // looser than the global one: the global still holds
    rated r(limits);
    client c(r.srv, 1, "10.0.0.1", who("ci"));
    c.ask(req("1", "register", web_params("web-1")));
    c.ask(req("2", "get_service", R"({"name":"web"})"));
    c.ask(req("3", "register", web_params("web-2")), "rate_limited");
}

TEST_CASE("rate limits: one identity's flood does not refuse another's request") {
    rated r(global(1, 2));
    client a(r.srv, 1, "10.0.0.1", who("flooder"));
    client b(r.srv, 2, "10.0.0.1", who("quiet"));  // the same address: identities are what counts
    client a2(r.srv, 3, "10.0.0.9", who("flooder"));  // the same identity from elsewhere: the same bucket
    a.ask(req("1", "get_service", R"({"name":"web"})"), "not_found");
    a.ask(req("2", "get_service", R"({"name":"web"})"), "not_found");
    for (int i = 0; i < 10; ++i) a.ask(req("f" + std::to_string(i), "get_service", R"({"name":"web"})"), "rate_limited");
    a2.ask(req("3", "get_service", R"({"name":"web"})"), "rate_limited");
    b.ask(req("4", "get_service", R"({"name":"web"})"), "not_found");
    b.ask(req("5", "get_service", R"({"name":"web"})"), "not_found");
}

TEST_CASE("rate limits: anonymous callers (access control off) are told apart by source address") {
    rated r(global(1, 1));
    client a(r.srv, 1, "10.0.0.1");
    client a_again(r.srv, 2, "10.0.0.1");  // another connection from the same address
    client b(r.srv, 3, "10.0.0.2");
    a.ask(req("1", "get_service", R"({"name":"web"})"), "not_found");
    const std::string refused = a_again.ask(req("2", "get_service", R"({"name":"web"})"), "rate_limited");
    CHECK(refused.find("rate limit of address 10.0.0.1") != std::string::npos);
    b.ask(req("3", "get_service", R"({"name":"web"})"), "not_found");
}

TEST_CASE("rate limits: off by default in the library, and refusals are reported in the outcome") {
    testing::fake_clock clk;
    testing::memory_store st;
    registry::registry reg{clk, st};
    REQUIRE(run_now(reg.open()).ok());
    protocol::server srv{reg};
    client c(srv, 1, "10.0.0.1");
    for (int i = 0; i < 1000; ++i) c.ask(req(std::to_string(i), "get_service", R"({"name":"web"})"), "not_found");

    rated r(global(1, 1));
    client d(r.srv, 1, "10.0.0.1", who("ci"));
    run_now(d.conn.handle(req("1", "get_service", R"({"name":"web"})")));
    const protocol::outcome o = run_now(d.conn.handle(req("2", "get_service", R"({"name":"web"})")));
    CHECK(o.code == "rate_limited");
    CHECK(o.action == "get_service");
    CHECK(o.identity == "ci");
    CHECK(o.request_id == "2");
}

TEST_CASE("rate limits: the outcome names the caller, the request and its target") {
    rated r(protocol::rate_limits{});
    client c(r.srv, 1, "10.0.0.1", who("ci"));
    protocol::outcome o = run_now(c.conn.handle(req("r1", "register", web_params("web-1"))));
    CHECK(o.code == "ok");
    CHECK(o.identity == "ci");
    CHECK(o.request_id == "r1");
    CHECK(o.target == "web-1");
    o = run_now(c.conn.handle(req("r2", "deregister", R"({"instance_id":"nope"})")));
    CHECK(o.code == "not_found");
    CHECK(o.target == "nope");
    o = run_now(c.conn.handle(req("r3", "get_service", R"({"name":"web"})")));
    CHECK(o.target.empty());
    CHECK(r.srv.family_of("deregister") == permission_family::register_);
    CHECK(r.srv.family_of("get_service") == permission_family::discover);
    CHECK_FALSE(r.srv.family_of("no_such_action").has_value());
}

TEST_CASE("rate limiter: buckets are bounded, full ones and then the least recently used go") {
    protocol::rate_limits limits = global(1, 2);
    limits.max_callers = 3;
    protocol::rate_limiter rl(limits);
    const time_point t0{milliseconds{1'000'000}};
    for (const char* k : {"a", "b", "c"}) {
        CHECK_FALSE(rl.admit(k, permission_family::discover, t0));
        CHECK_FALSE(rl.admit(k, permission_family::discover, t0));
        CHECK(rl.admit(k, permission_family::discover, t0) == 1000ms);
    }
    CHECK(rl.callers() == 3);
    // A fourth caller: the least recently used ("a") goes, though still empty.
    CHECK_FALSE(rl.admit("d", permission_family::discover, t0));
    CHECK(rl.callers() == 3);
    CHECK(rl.admit("c", permission_family::discover, t0) == 1000ms);  // kept
    // Once buckets have filled up again they are dropped as new callers come.
    const time_point later = t0 + 10s;
    for (int i = 0; i < 3; ++i) CHECK_FALSE(rl.admit("n" + std::to_string(i), permission_family::discover, later));
    CHECK(rl.callers() == 3);
    CHECK_FALSE(rl.admit("c", permission_family::discover, later));  // a new, full bucket
}
