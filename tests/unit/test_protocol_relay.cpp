// A replica's server relays what only the writer serves (protocol/relay.hpp):
// every action outside the discover family goes, verbatim, through the
// connection's relay; reads and subscriptions stay local; what the caller may
// not do is refused before anything is sent.
#include "protocol_test_support.hpp"
#include "registry_test_support.hpp"

#include <registry/protocol/connection.hpp>
#include <registry/protocol/relay.hpp>

#include <doctest/doctest.h>

#include <string>
#include <utility>
#include <vector>

using namespace registry;
using namespace registry::test;
using namespace std::chrono_literals;

namespace {

// Records what it is given; fails with `failure` when set.
class recording_relay final : public protocol::relay {
public:
    task<result<void>> forward(std::string id, std::string text) override {
        if (failure) co_return unexpected{*failure};
        sent.emplace_back(std::move(id), std::move(text));
        co_return result<void>{};
    }
    std::vector<std::pair<std::string, std::string>> sent;
    std::optional<error> failure;
};

struct replica_fixture {
    testing::fake_clock clk;
    testing::memory_store st;
    registry_options opt = [] {
        registry_options o;
        o.bookmark_interval = 3600s;
        o.event_log = true;
        return o;
    }();
    ::registry::registry reg{clk, st, opt};
    protocol::server srv{reg};
    std::stop_source stop;
    async_scope runner;

    explicit replica_fixture(bool replica = true) {
        REQUIRE(run_now(reg.open()).ok());
        if (replica) {
            reg.become_replica("registryd A");
            srv.serve_replica();
        }
        runner.spawn(reg.run(stop.get_token()));
    }
    ~replica_fixture() {
        stop.request_stop();
        CHECK(runner.active() == 0);
    }
};

const std::string a_service =
    R"({"service":{"name":"api","instance_id":"api-1","endpoints":[{"name":"http","address":"10.0.0.1","port":80,"protocol":"http"}]},"ttl_seconds":30})";

}  // namespace

TEST_CASE("relay: on a replica, writes go to the relay verbatim with their id, and reads stay local") {
    replica_fixture f;
    recording_relay relay;
    client c(f.srv, 1);
    c.conn.relay_through(relay);

    const std::string frame = req("r1", "register", a_service);
    CHECK(c.send(frame, "relayed").empty());  // the writer answers, by the embedder's path
    REQUIRE(relay.sent.size() == 1);
    CHECK(relay.sent[0].first == "r1");
    CHECK(relay.sent[0].second == frame);

    // Every other family's action too, the subsystems a standby does not run included.
    for (const auto& [id, action, params] : std::vector<std::tuple<std::string, std::string, std::string>>{
             {"k", "keepalive", R"({"lease_id":"1"})"},
             {"d", "deregister", R"({"instance_id":"api-1"})"},
             {"c", "container_list", "{}"},
             {"x", "repl_execute", R"({"language":"python","code":"1"})"},
             {"p", "deploy_package", "{}"}}) {
        CHECK(c.send(req(id, action, params), "relayed").empty());
        REQUIRE(!relay.sent.empty());
        CHECK(relay.sent.back().first == id);
    }
    CHECK(relay.sent.size() == 6);

    // Reads and subscriptions are the replica's own.
    const auto local = c.ask(req("g", "get_service", R"({"instance_id":"api-1"})"), "not_found");
    CHECK(local.find(R"("code":"not_found")") != std::string::npos);
    c.ask(req("l", "list_services", "{}"));
    auto subscribed = c.send(req("s", "subscribe", R"({"snapshot":false})"));
    REQUIRE(!subscribed.empty());
    CHECK(subscribed.front().find(R"("subscription":"s1")") != std::string::npos);
    CHECK(relay.sent.size() == 6);
}

TEST_CASE("relay: what the caller may not do, or cannot ask, is answered by the replica and never sent") {
    replica_fixture f;
    recording_relay relay;
    auto reader = std::make_shared<const protocol::principal>(
        protocol::principal{identity{"dashboard", false, {}}, {protocol::permission_family::discover}});
    client c(f.srv, 1, {}, reader);
    c.conn.relay_through(relay);

    const auto forbidden = c.ask(req("r1", "register", a_service), "forbidden");
    CHECK(forbidden.find("lacks the permission 'register'") != std::string::npos);
    CHECK(c.ask(R"({"type":"request","action":"register"})", "invalid_request").find(R"("id":null)") !=
          std::string::npos);
    CHECK(c.ask(req("u", "no_such_action", "{}"), "unknown_action").find("no_such_action") != std::string::npos);
    CHECK(relay.sent.empty());
}

TEST_CASE("relay: a writer that cannot be reached is answered to the request with the relay's error") {
    replica_fixture f;
    recording_relay relay;
    relay.failure = error{errc::unavailable, "the writer ws://127.0.0.1:1/ cannot be reached: connection refused"};
    client c(f.srv, 1);
    c.conn.relay_through(relay);

    const auto answer = c.ask(req("r1", "register", a_service), "unavailable");
    CHECK(answer.starts_with(R"({"id":"r1","type":"response")"));
    CHECK(answer.find("cannot be reached: connection refused") != std::string::npos);
}

TEST_CASE("relay: without a relay a replica answers writes not_writer, and a writer's server relays nothing") {
    SUBCASE("replica, no relay") {
        replica_fixture f;
        client c(f.srv, 1);
        CHECK(c.ask(req("r1", "register", a_service), "not_writer").find("registryd A") != std::string::npos);
        CHECK(c.ask(req("c", "container_list", "{}"), "not_writer").find("standby") != std::string::npos);
    }
    SUBCASE("writer with a relay set") {
        replica_fixture f(false);
        recording_relay relay;
        client c(f.srv, 1);
        c.conn.relay_through(relay);
        CHECK(c.ask(req("r1", "register", a_service)).find(R"("lease_id")") != std::string::npos);
        CHECK(relay.sent.empty());
    }
}
