// registryd on the etcd store (store.kind: etcd), against a real etcd: what
// etcd trouble looks like to clients, and registries kept apart by prefix.
// Durability under kill -9 and clean restarts on etcd are in
// test_durability.cpp, with the same checks as on the file store.
#include "etcd_server.hpp"
#include "harness.hpp"

#include <doctest/doctest.h>

#include <string>
#include <thread>

using it::num;
using it::str;
using namespace std::chrono_literals;
namespace json = it::json;

namespace {

std::string etcd_config(const it::etcd_server& etcd, const std::string& prefix, int request_timeout_ms = 2000) {
    return "store:\n  kind: etcd\n  etcd:\n    endpoints: [\"" + etcd.client_url() + "\"]\n    prefix: " + prefix +
           "\n    dial_timeout_ms: 500\n    request_timeout_ms: " + std::to_string(request_timeout_ms) +
           "\n    writer_lease_ttl_seconds: 2\n";  // a successor of a registryd that could not resign waits for it
}

}  // namespace

TEST_CASE("etcd store: registryd on etcd with a prefix each: two registries on one etcd do not mix") {
    it::etcd_server etcd;
    it::registryd a(etcd_config(etcd, "/team-a/"));
    it::registryd b(etcd_config(etcd, "/team-b/"));
    IT_DIAGNOSE(a);
    IT_DIAGNOSE(b);
    it::ws_client ca(a), cb(b);
    ca.call("register", it::registration(it::service("web", "web-a"), 300));
    cb.call("register", it::registration(it::service("web", "web-b"), 300));
    const json::value la = ca.call("list_services");
    REQUIRE(it::arr(la, "/services").size() == 1);
    CHECK(str(la, "/services/0/instance_id") == "web-a");
    ca.close();
    cb.close();
    // A registryd that starts on team-b's prefix (another data directory) has team-b's registry.
    CHECK(b.terminate().clean());
    it::registryd b2(etcd_config(etcd, "/team-b/"));
    it::ws_client c2(b2);
    const json::value lb = c2.call("list_services");
    REQUIRE(it::arr(lb, "/services").size() == 1);
    CHECK(str(lb, "/services/0/instance_id") == "web-b");
}

TEST_CASE("etcd store: etcd gone: changes fail with unavailable within the timeout, /healthz says so, reads go on") {
    it::etcd_server etcd;
    it::registryd d(etcd_config(etcd, "/registry/", 1500));
    IT_DIAGNOSE(d);
    it::ws_client c(d);
    c.call("register", it::registration(it::service("api", "api-1"), 300));
    CHECK(it::http_get(d.host(), d.port(), "/healthz").status == 200);

    etcd.stop();
    const auto t0 = it::steady::now();
    const json::value refused = c.request("register", it::registration(it::service("api", "api-2"), 300));
    const auto took = it::steady::now() - t0;
    INFO(it::dump(refused));
    CHECK(it::error_code(refused) == "unavailable");
    CHECK(took < it::scaled(10s));
    CHECK(it::http_get(d.host(), d.port(), "/healthz").status == 503);
    // What registryd holds is still served.
    CHECK(str(c.call("get_service", json::object{{"instance_id", "api-1"}}), "/service/name") == "api");
    c.close();
    d.terminate();

    // etcd back: a registryd started on it has every acknowledged change, and nothing that was refused.
    etcd.start();
    it::registryd again(etcd_config(etcd, "/registry/"));
    again.wait_writer(30s);  // d could not resign with etcd gone: its writer lease runs out first
    it::ws_client c2(again);
    const json::value listed = c2.call("list_services");
    REQUIRE(it::arr(listed, "/services").size() == 1);
    CHECK(str(listed, "/services/0/instance_id") == "api-1");
    c2.call("register", it::registration(it::service("api", "api-2"), 300));
}

TEST_CASE("etcd store: etcd gone and back: registryd resumes without a restart, the change in flight written in order") {
    it::etcd_server etcd;
    it::registryd d(etcd_config(etcd, "/registry/", 1500));
    IT_DIAGNOSE(d);
    it::ws_client c(d);
    it::ws_client watcher(d);
    const json::value first = c.call("register", it::registration(it::service("api", "api-1"), 300));
    watcher.call("subscribe", json::object{{"from_revision", num(first, "/revision")}});

    etcd.stop();
    // The write in flight is not acknowledged, but kept: registryd writes it once etcd is back.
    const json::value in_flight = c.request("register", it::registration(it::service("api", "api-2"), 300));
    INFO(it::dump(in_flight));
    CHECK(it::error_code(in_flight) == "unavailable");
    CHECK(str(in_flight, "/error/message").find("not acknowledged") != std::string::npos);
    const auto down = it::http_get(d.host(), d.port(), "/healthz");
    CHECK(down.status == 503);
    CHECK(down.body.find("store unreachable") != std::string::npos);
    // Meanwhile writes change nothing.
    const json::value refused = c.request("register", it::registration(it::service("web", "web-1"), 300));
    CHECK(it::error_code(refused) == "unavailable");
    CHECK(str(refused, "/error/message").find("accepts no writes until it is back") != std::string::npos);
    CHECK(it::error_code(c.request("get_service", json::object{{"instance_id", "web-1"}})) == "not_found");
    // Reads are served from memory and say since when they may be behind.
    const json::value stale = c.call("get_service", json::object{{"instance_id", "api-1"}});
    CHECK(num(stale, "/stale_since_ms") > 0);
    CHECK(num(c.call("list_services"), "/stale_since_ms") == num(stale, "/stale_since_ms"));

    etcd.start();
    const auto deadline = it::steady::now() + it::scaled(30s);
    while (it::http_get(d.host(), d.port(), "/healthz").status != 200 && it::steady::now() < deadline) {
        std::this_thread::sleep_for(100ms);
    }
    REQUIRE(it::http_get(d.host(), d.port(), "/healthz").status == 200);
    const json::value web = c.call("register", it::registration(it::service("web", "web-1"), 300));
    CHECK_FALSE(it::has(c.call("list_services"), "/stale_since_ms"));

    // The subscriber saw api-2 then web-1, one revision after the other: nothing lost, nothing twice.
    const json::value e1 = watcher.expect_event("service_registered");
    const json::value e2 = watcher.expect_event("service_registered");
    CHECK(str(e1, "/data/service/instance_id") == "api-2");
    CHECK(num(e1, "/revision") == num(first, "/revision") + 1);
    CHECK(str(e2, "/data/service/instance_id") == "web-1");
    CHECK(num(e2, "/revision") == num(web, "/revision"));
    CHECK(num(e2, "/revision") == num(e1, "/revision") + 1);
    c.close();
    watcher.close();
    CHECK(d.terminate().clean());

    // And it is all in etcd.
    it::registryd again(etcd_config(etcd, "/registry/"));
    it::ws_client c2(again);
    const json::value listed = c2.call("list_services");
    REQUIRE(it::arr(listed, "/services").size() == 3);
}

TEST_CASE("etcd store: with store.stale_reads: refuse, reads during an outage get unavailable, and are served once etcd is back") {
    it::etcd_server etcd;
    it::registryd d(etcd_config(etcd, "/registry/", 1500) + "  stale_reads: refuse\n");
    IT_DIAGNOSE(d);
    it::ws_client c(d);
    c.call("register", it::registration(it::service("api", "api-1"), 300));
    etcd.stop();
    CHECK(it::error_code(c.request("keepalive", json::object{{"lease_id", 1}})) == "unavailable");
    for (const char* action : {"get_service", "list_services", "list_endpoints"}) {
        json::object params;
        if (std::string_view(action) == "get_service") params = json::object{{"instance_id", "api-1"}};
        const json::value refused = c.request(action, params);
        INFO(action << ": " << it::dump(refused));
        CHECK(it::error_code(refused) == "unavailable");
        CHECK(str(refused, "/error/message").find("reads are refused until it is back (store.stale_reads: refuse)") !=
              std::string::npos);
    }
    etcd.start();
    const auto deadline = it::steady::now() + it::scaled(30s);
    while (it::http_get(d.host(), d.port(), "/healthz").status != 200 && it::steady::now() < deadline) {
        std::this_thread::sleep_for(100ms);
    }
    CHECK(str(c.call("get_service", json::object{{"instance_id", "api-1"}}), "/service/name") == "api");
}

TEST_CASE("etcd store: a registryd whose etcd is unreachable at start exits with an error naming it") {
    it::etcd_server etcd;
    const std::string config = etcd_config(etcd, "/registry/", 1000);
    etcd.stop();
    it::registryd d(config, false);
    CHECK_THROWS(d.start(it::scaled(15s)));
    CHECK(d.diagnostics().find("etcd unreachable") != std::string::npos);
}

TEST_CASE("etcd store: a bad store section stops registryd with exit 2 and names the key") {
    it::registryd d("store:\n  kind: etcd\n  etcd:\n    endpoints: [\"unix:///run/etcd.sock\"]\n", false);
    CHECK_THROWS(d.start(it::scaled(10s)));
    REQUIRE(d.last_exit());
    CHECK(d.last_exit()->code == 2);
    CHECK(d.diagnostics().find("store.etcd.endpoints") != std::string::npos);
}

TEST_CASE("etcd store: a member name that is not 1-64 of [A-Za-z0-9_.-] stops registryd with exit 2 and names the key") {
    it::registryd d("store:\n  kind: etcd\n  etcd:\n    member: \"web 2\"\n", false);
    CHECK_THROWS(d.start(it::scaled(10s)));
    REQUIRE(d.last_exit());
    CHECK(d.last_exit()->code == 2);
    CHECK(d.diagnostics().find("store.etcd.member: must be 1-64 characters of [A-Za-z0-9_.-]") != std::string::npos);
}
