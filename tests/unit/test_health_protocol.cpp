// Health checks through the protocol: a registration's checks and their
// field errors under params., report_health, the health filter's params.
#include "protocol_test_support.hpp"
#include "registry_test_support.hpp"

#include <registry/protocol/connection.hpp>

#include <doctest/doctest.h>

#include <deque>
#include <memory>
#include <string>

using namespace registry;
using namespace registry::test;
using namespace std::chrono_literals;

namespace {

struct fixture {
    testing::fake_clock clk;
    testing::memory_store st;
    registry::registry reg{clk, st};
    protocol::server srv{reg, protocol::limits{1 << 16, 3}};
    std::stop_source stop;
    async_scope runner;
    std::deque<std::unique_ptr<client>> clients;

    fixture() {
        REQUIRE(run_now(reg.open()).ok());
        runner.spawn(reg.run(stop.get_token()));
    }
    ~fixture() {
        clients.clear();
        stop.request_stop();
        CHECK(runner.active() == 0);
    }
    client& connect() {
        clients.push_back(std::make_unique<client>(srv, clients.size() + 1));
        return *clients.back();
    }
};

bool contains(const std::string& text, std::string_view part) { return text.find(part) != std::string::npos; }

const std::string with_checks =
    R"({"service":{"name":"api","instance_id":"api-1","endpoints":[{"name":"http","address":"127.0.0.1","port":8080,"protocol":"http"}],)"
    R"("checks":[{"name":"web","kind":"http","endpoint":"http","path":"/healthz","interval_ms":1000,"timeout_ms":500},)"
    R"({"name":"alive","kind":"ttl","interval_ms":5000}]}})";

}  // namespace

TEST_CASE("protocol: checks in a registration, in the service object, and their errors under params.") {
    fixture f;
    auto& a = f.connect();
    a.ask(req("1", "register", with_checks));
    const std::string got = a.ask(req("2", "get_service", R"({"instance_id":"api-1"})"));
    CHECK(contains(got, R"("checks":[{"name":"web","kind":"http","method":"GET","endpoint":"http","path":"/healthz")"));
    CHECK(contains(got, R"("result":{"status":"unknown")"));
    CHECK(contains(got, R"("health":{"status":"unknown","output":"web: ")"));

    const std::string bad = a.ask(
        req("3", "register",
            R"({"service":{"name":"b","checks":[{"name":"x","kind":"tcp","address":"nope","interval_ms":50}]}})"),
        "invalid_request");
    CHECK(contains(bad, "params.service.checks[0].address: must be host:port"));
    CHECK(contains(bad, "params.service.checks[0].interval_ms: must be 100-86400000"));
    const std::string unknown = a.ask(
        req("4", "register", R"({"service":{"name":"b","checks":[{"name":"x","kind":"ttl","path":"/"}]}})"),
        "invalid_request");
    CHECK(contains(unknown, "params.service.checks[0].path: not allowed when kind is 'ttl'"));
    const std::string result = a.ask(
        req("5", "register",
            R"({"service":{"name":"b","checks":[{"name":"x","kind":"ttl","result":{"status":"healthy"}}]}})"),
        "invalid_request");
    CHECK(contains(result, "params.service.checks[0].result: unknown field"));
}

TEST_CASE("protocol: report_health and the health filter's params") {
    fixture f;
    auto& a = f.connect();
    a.ask(req("1", "register", with_checks));
    const std::string ok =
        a.ask(req("2", "report_health", R"({"lease_id":1,"instance_id":"api-1","status":"passing","output":"fine"})"));
    CHECK(contains(ok, R"("health":{"status":"unknown","output":"web: ")"));  // the http check is still unknown
    CHECK(contains(a.ask(req("3", "report_health", R"({"lease_id":1,"instance_id":"api-1","check":"web","status":"passing"})"),
                         "invalid_request"),
                   "check 'web' is of kind http: only ttl checks take reports"));
    CHECK(contains(a.ask(req("4", "report_health", R"({"lease_id":1,"instance_id":"api-1","status":"ok"})"), "invalid_request"),
                   "params.status: must be one of passing, warning, critical"));
    CHECK(contains(a.ask(req("5", "report_health", R"({"instance_id":"api-1","status":"passing"})"), "invalid_request"),
                   "params.lease_id: is required"));
    CHECK(contains(a.ask(req("6", "get_service", R"({"instance_id":"api-1","health":"passing"})"), "invalid_request"),
                   "params.health: only with name"));
    CHECK(contains(a.ask(req("7", "get_service", R"({"name":"api","health":"passing"})"), "not_found"),
                   "no instance of service 'api' is passing"));
    CHECK(contains(a.ask(req("8", "list_services", R"({"health":"passing"})")), R"("services":[])"));
    CHECK(contains(a.ask(req("9", "list_services", R"({"health":"healthy"})"), "invalid_request"),
                   "params.health: must be one of passing, passing_or_warning"));
}
