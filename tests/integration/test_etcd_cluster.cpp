// Three registryd on one etcd and prefix, against a real etcd: the writer
// and two standbys that serve reads and subscriptions from the writer's
// transactions (standby_app.hpp). Read-your-writes across instances, one
// revision line, a client that moves from one registryd to another. The
// standbys' relay of writes: test_etcd_relay.cpp.
#include "harness.hpp"
#include "three_registryd.hpp"

#include <doctest/doctest.h>

#include <string>
#include <thread>

using it::num;
using it::str;
using namespace std::chrono_literals;
namespace json = it::json;

TEST_CASE("etcd cluster: a registration through the writer is answered at once by both standbys, whose subscribers get it under the writer's revision") {
    it::three_registryd r("/cluster/");
    IT_DIAGNOSE(r.a);
    IT_DIAGNOSE(r.b);
    IT_DIAGNOSE(r.c);
    it::ws_client sub_c(r.c);
    sub_c.call("subscribe", json::object{{"snapshot", false}});
    it::ws_client on_a(r.a), on_b(r.b), on_c(r.c);
    for (int i = 0; i < 40; ++i) {
        const std::string id = "api-" + std::to_string(i);
        const json::value grant = on_a.call("register", it::registration(it::service("api", id), 300));
        const double revision = num(grant, "/revision");
        // Sent after the writer's answer: both standbys answer with it.
        const std::string from_b = on_b.send_request("get_service", json::object{{"instance_id", id}});
        const std::string from_c = on_c.send_request("get_service", json::object{{"instance_id", id}});
        const json::value rb = on_b.wait_response(from_b);
        const json::value rc = on_c.wait_response(from_c);
        INFO(it::dump(rb), it::dump(rc));
        CHECK(str(rb, "/data/service/instance_id") == id);
        CHECK(str(rc, "/data/service/instance_id") == id);
        const json::value e = sub_c.expect_event("service_registered");
        CHECK(num(e, "/revision") == revision);
        CHECK(str(e, "/data/service/instance_id") == id);
    }
    CHECK(it::arr(on_c.call("list_services", json::object{{"name", "api"}}), "/services").size() == 40);

    // /healthz says which is which.
    CHECK(it::http_get(r.a.host(), r.a.port(), "/healthz").body.find("writer") != std::string::npos);
    const auto standby_health = it::http_get(r.b.host(), r.b.port(), "/healthz");
    CHECK(standby_health.status == 200);
    CHECK(standby_health.body.find("standby, relaying writes to ws://127.0.0.1:" + std::to_string(r.a.port()) + "/") !=
          std::string::npos);
    CHECK(it::http_get(r.b.host(), r.b.port(), "/metrics").body.find(R"(role="standby")") != std::string::npos);
    CHECK(it::http_get(r.a.host(), r.a.port(), "/metrics").body.find(R"(role="writer")") != std::string::npos);
}

TEST_CASE("etcd cluster: a subscriber moves from the writer to a standby with from_revision and gets exactly what it missed") {
    it::three_registryd r("/cluster/");
    IT_DIAGNOSE(r.a);
    IT_DIAGNOSE(r.b);
    std::uint64_t seen = 0;
    it::ws_client writes(r.a);
    {
        it::ws_client sub(r.a);
        sub.call("subscribe", json::object{{"snapshot", false}});
        for (int i = 0; i < 10; ++i) writes.call("register", it::registration(it::service("api", "api-" + std::to_string(i)), 300));
        for (int i = 0; i < 10; ++i) seen = static_cast<std::uint64_t>(num(sub.expect_event("service_registered"), "/revision"));
    }
    // While it moves: more changes on the writer.
    writes.call("deregister", json::object{{"instance_id", "api-0"}});
    for (int i = 10; i < 15; ++i) writes.call("register", it::registration(it::service("api", "api-" + std::to_string(i)), 300));

    it::ws_client moved(r.b);
    moved.call("subscribe", json::object{{"from_revision", seen}});
    const json::value gone = moved.expect_event("service_deregistered");
    CHECK(num(gone, "/revision") == static_cast<double>(seen + 1));
    CHECK(str(gone, "/data/service/instance_id") == "api-0");
    for (int i = 10; i < 15; ++i) {
        const json::value e = moved.expect_event("service_registered");
        CHECK(num(e, "/revision") == static_cast<double>(seen + 2 + (i - 10)));
        CHECK(str(e, "/data/service/instance_id") == "api-" + std::to_string(i));
    }
    // And then live, from the writer.
    writes.call("register", it::registration(it::service("api", "api-live"), 300));
    CHECK(num(moved.expect_event("service_registered"), "/revision") == static_cast<double>(seen + 7));
    CHECK_FALSE(moved.next_event(300ms).has_value());
}

TEST_CASE("etcd cluster: after a kill -9 of the writer a standby takes over on its own address, and its subscribers resume there with nothing lost") {
    it::three_registryd r("/cluster/");
    IT_DIAGNOSE(r.a);
    IT_DIAGNOSE(r.b);
    IT_DIAGNOSE(r.c);
    std::uint64_t seen = 0;
    it::ws_client sub(r.b);
    sub.call("subscribe", json::object{{"snapshot", false}});
    {
        it::ws_client writes(r.a);
        for (int i = 0; i < 5; ++i) writes.call("register", it::registration(it::service("api", "api-" + std::to_string(i)), 300));
    }
    for (int i = 0; i < 5; ++i) seen = static_cast<std::uint64_t>(num(sub.expect_event("service_registered"), "/revision"));
    r.a.kill9();

    // One of the standbys is elected; its standby connections are closed and
    // it serves as the writer on the address it had.
    it::registryd* writer = nullptr;
    const auto deadline = it::steady::now() + it::scaled(15s);
    while (!writer && it::steady::now() < deadline) {
        for (auto* d : {&r.b, &r.c}) {
            if (it::three_registryd::logged(*d, "elected the registry's writer") && it::three_registryd::logged(*d, "\"listening\"")) writer = d;
        }
        std::this_thread::sleep_for(50ms);
    }
    REQUIRE_MESSAGE(writer, "no standby took over");
    json::value grant;
    for (int attempt = 0;; ++attempt) {  // until the new writer's listener is up
        try {
            it::ws_client c(*writer);
            grant = c.call("register", it::registration(it::service("api", "api-after"), 300));
            break;
        } catch (const it::failure&) {
            REQUIRE(attempt < 100);
            std::this_thread::sleep_for(100ms);
        }
    }
    CHECK(num(grant, "/revision") == static_cast<double>(seen + 1));

    // The subscriber on b reconnects (to b, writer or standby) and resumes.
    it::ws_client resumed(r.b);
    resumed.call("subscribe", json::object{{"from_revision", seen}});
    const json::value e = resumed.expect_event("service_registered", 10s);
    CHECK(num(e, "/revision") == static_cast<double>(seen + 1));
    CHECK(str(e, "/data/service/instance_id") == "api-after");
}
