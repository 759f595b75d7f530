// Registration, discovery, events; strict protocol errors; HTTP endpoints.
#include "harness.hpp"

#include <doctest/doctest.h>

#include <algorithm>
#include <sstream>
#include <string>
#include <vector>

using it::arr;
using it::boolean;
using it::dump;
using it::has;
using it::num;
using it::parse_object;
using it::str;
using namespace std::chrono_literals;
namespace json = it::json;

namespace {

std::vector<std::string> instance_ids(const json::array& services) {
    std::vector<std::string> ids;
    for (const auto& s : services) ids.push_back(it::str(s, "/instance_id"));
    std::sort(ids.begin(), ids.end());
    return ids;
}

using ids = std::vector<std::string>;

}  // namespace

TEST_CASE("integration: register, discover, change state and deregister, with events") {
    it::registryd d;
    IT_DIAGNOSE(d);
    it::ws_client writer(d);
    it::ws_client sub(d);

    const json::value subscribed = sub.call("subscribe");
    const std::string subscription = str(subscribed, "/subscription");
    const auto rev0 = num(subscribed, "/revision");
    {
        const json::value loaded = sub.expect_event("registry_loaded");
        INFO(dump(loaded));
        CHECK(str(loaded, "/subscription") == subscription);
        CHECK(num(loaded, "/revision") == rev0);
        CHECK(arr(loaded, "/data/services").empty());
    }

    // --- register api-1 and watch the subscriber see it
    const auto before_ms = it::now_ms();
    const json::value reg1 = writer.call("register", parse_object(R"({
        "service": {"name": "api", "instance_id": "api-1", "version": "1.0.0",
                    "endpoints": [{"name": "http", "address": "127.0.0.1", "port": 8080, "protocol": "http"}],
                    "depends_on": ["db"], "metadata": {"team": "core"}},
        "ttl_seconds": 30})"));
    const auto after_ms = it::now_ms();
    INFO("register api-1 -> ", dump(reg1));
    const auto lease1 = num(reg1, "/lease_id");
    const auto rev1 = num(reg1, "/revision");
    const auto expires1 = num(reg1, "/expires_at_ms");
    CHECK(str(reg1, "/instance_id") == "api-1");
    CHECK(boolean(reg1, "/created"));
    CHECK(num(reg1, "/ttl_seconds") == 30);
    CHECK(lease1 > 0);
    CHECK(lease1 < (std::int64_t{1} << 53));
    CHECK(rev1 > rev0);
    CHECK(expires1 >= before_ms + 30000 - 50);
    CHECK(expires1 <= after_ms + 30000 + 50);
    {
        const json::value ev = sub.expect_event("service_registered");
        INFO(dump(ev));
        CHECK(str(ev, "/subscription") == subscription);
        CHECK(num(ev, "/revision") == rev1);
        CHECK(str(ev, "/data/service/instance_id") == "api-1");
        CHECK(str(ev, "/data/service/name") == "api");
        CHECK(str(ev, "/data/service/state") == "registered");
        CHECK(num(ev, "/data/service/lease/id") == lease1);
        CHECK(num(ev, "/data/service/created_revision") == rev1);
        CHECK(num(ev, "/data/service/modified_revision") == rev1);
    }

    // --- two more instances for the filters
    const json::value reg2 = writer.call("register", parse_object(R"({
        "service": {"name": "api", "instance_id": "api-2", "version": "2.0.0",
                    "location": {"kind": "remote", "host": "h1", "ssh_user": "ops"},
                    "execution": {"kind": "container", "container_id": "c0ffee", "image": "api:2"},
                    "endpoints": [{"name": "http", "address": "10.0.0.2", "port": 8081, "protocol": "http"},
                                  {"name": "grpc", "address": "10.0.0.2", "port": 9090, "protocol": "grpc"}],
                    "metadata": {"team": "edge"}},
        "ttl_seconds": 60})"));
    const json::value reg3 = writer.call("register", parse_object(R"({
        "service": {"name": "db", "instance_id": "db-1", "version": "15.2",
                    "execution": {"kind": "systemd_unit", "unit_name": "postgresql.service"},
                    "endpoints": [{"name": "pg", "address": "127.0.0.1", "port": 5432, "protocol": "tcp"}]},
        "ttl_seconds": 60})"));
    const auto lease2 = num(reg2, "/lease_id");
    const auto rev3 = num(reg3, "/revision");
    CHECK(num(reg2, "/revision") > rev1);
    CHECK(rev3 > num(reg2, "/revision"));
    CHECK(lease2 != lease1);
    CHECK(num(sub.expect_event("service_registered"), "/revision") == num(reg2, "/revision"));
    CHECK(num(sub.expect_event("service_registered"), "/revision") == rev3);

    // --- get_service by instance id
    {
        const json::value got = writer.call("get_service", parse_object(R"({"instance_id": "api-1"})"));
        INFO(dump(got));
        CHECK(str(got, "/service/name") == "api");
        CHECK(str(got, "/service/instance_id") == "api-1");
        CHECK(str(got, "/service/version") == "1.0.0");
        CHECK(str(got, "/service/state") == "registered");
        CHECK(str(got, "/service/execution/kind") == "managed_process");
        CHECK(str(got, "/service/location/kind") == "local");
        CHECK(arr(got, "/service/endpoints").size() == 1);
        CHECK(str(got, "/service/endpoints/0/name") == "http");
        CHECK(str(got, "/service/endpoints/0/address") == "127.0.0.1");
        CHECK(num(got, "/service/endpoints/0/port") == 8080);
        CHECK(str(got, "/service/endpoints/0/protocol") == "http");
        CHECK(str(got, "/service/depends_on/0") == "db");
        CHECK(str(got, "/service/metadata/team") == "core");
        CHECK(it::at(got, "/service/health").is_null());
        CHECK(num(got, "/service/lease/id") == lease1);
        CHECK(num(got, "/service/lease/ttl_seconds") == 30);
        CHECK(num(got, "/service/lease/expires_at_ms") == expires1);
        CHECK(boolean(got, "/service/lease/session_bound") == false);
        CHECK(num(got, "/service/registered_at_ms") >= before_ms - 50);
        CHECK(num(got, "/service/registered_at_ms") <= after_ms + 50);
        CHECK(num(got, "/service/created_revision") == rev1);
    }
    {
        const json::value got = writer.call("get_service", parse_object(R"({"instance_id": "api-2"})"));
        INFO(dump(got));
        CHECK(str(got, "/service/location/kind") == "remote");
        CHECK(str(got, "/service/location/host") == "h1");
        CHECK(str(got, "/service/execution/kind") == "container");
        CHECK(str(got, "/service/execution/container_id") == "c0ffee");
    }
    // --- get_service by name
    {
        const json::value got = writer.call("get_service", parse_object(R"({"name": "api"})"));
        INFO(dump(got));
        CHECK(instance_ids(arr(got, "/services")) == ids{"api-1", "api-2"});
    }
    CHECK(it::error_code(writer.request("get_service", parse_object(R"({"instance_id": "nope"})"))) == "not_found");
    CHECK(it::error_code(writer.request("get_service", parse_object(R"({"name": "nope"})"))) == "not_found");
    CHECK(it::error_code(writer.request("get_service", parse_object(R"({"name": "api", "instance_id": "api-1"})"))) ==
          "invalid_request");
    CHECK(it::error_code(writer.request("get_service")) == "invalid_request");

    // --- list_services with filters
    auto listed = [&](const char* params) {
        const json::value r = writer.call("list_services", parse_object(params));
        return instance_ids(arr(r, "/services"));
    };
    CHECK(listed("{}") == ids{"api-1", "api-2", "db-1"});
    CHECK(listed(R"({"name": "api"})") == ids{"api-1", "api-2"});
    CHECK(listed(R"({"version": "1.0.0"})") == ids{"api-1"});
    CHECK(listed(R"({"metadata": {"team": "core"}})") == ids{"api-1"});
    CHECK(listed(R"({"name": "api", "metadata": {"team": "edge"}})") == ids{"api-2"});
    CHECK(listed(R"({"name": "db", "metadata": {"team": "edge"}})") == ids{});
    CHECK(listed(R"({"host": "h1"})") == ids{"api-2"});
    CHECK(listed(R"({"host": "local"})") == ids{"api-1", "db-1"});
    CHECK(listed(R"({"state": "registered"})") == ids{"api-1", "api-2", "db-1"});
    CHECK(listed(R"({"state": "running"})") == ids{});
    CHECK(num(writer.call("list_services"), "/revision") == rev3);

    // --- list_endpoints
    {
        const json::value r = writer.call("list_endpoints", parse_object(R"({"service": "api"})"));
        INFO(dump(r));
        CHECK(num(r, "/revision") == rev3);
        CHECK(arr(r, "/endpoints").size() == 3);
    }
    {
        const json::value r = writer.call("list_endpoints", parse_object(R"({"endpoint": "http"})"));
        INFO(dump(r));
        CHECK(arr(r, "/endpoints").size() == 2);
    }
    {
        const json::value r = writer.call("list_endpoints", parse_object(R"({"protocol": "tcp"})"));
        INFO(dump(r));
        REQUIRE(arr(r, "/endpoints").size() == 1);
        CHECK(str(r, "/endpoints/0/service") == "db");
        CHECK(str(r, "/endpoints/0/instance_id") == "db-1");
        CHECK(str(r, "/endpoints/0/state") == "registered");
        CHECK(str(r, "/endpoints/0/name") == "pg");
        CHECK(str(r, "/endpoints/0/address") == "127.0.0.1");
        CHECK(num(r, "/endpoints/0/port") == 5432);
        CHECK(str(r, "/endpoints/0/protocol") == "tcp");
    }

    // --- set_state
    const json::value st = writer.call("set_state", parse_object(R"({"instance_id": "api-1", "state": "running"})"));
    INFO("set_state -> ", dump(st));
    const auto rev_state = num(st, "/revision");
    CHECK(boolean(st, "/changed"));
    CHECK(rev_state > rev3);
    CHECK(str(st, "/service/state") == "running");
    CHECK(num(st, "/service/modified_revision") == rev_state);
    {
        const json::value ev = sub.expect_event("service_state_changed");
        INFO(dump(ev));
        CHECK(num(ev, "/revision") == rev_state);
        CHECK(str(ev, "/data/service/instance_id") == "api-1");
        CHECK(str(ev, "/data/service/state") == "running");
        CHECK(str(ev, "/data/previous_state") == "registered");
        CHECK(str(ev, "/data/state") == "running");
    }
    {
        // Same state: not a transition, no event (checked below: the next
        // event the subscriber sees is the re-registration's).
        const json::value same = writer.call("set_state", parse_object(R"({"instance_id": "api-1", "state": "running"})"));
        INFO(dump(same));
        CHECK(boolean(same, "/changed") == false);
    }
    {
        const json::value bad = writer.request("set_state", parse_object(R"({"instance_id": "api-1", "state": "registered"})"));
        INFO(dump(bad));
        CHECK(it::error_code(bad) == "invalid_transition");
        CHECK(it::error_message(bad).find("running") != std::string::npos);
        CHECK(it::error_message(bad).find("registered") != std::string::npos);
    }
    CHECK(it::error_code(writer.request("set_state", parse_object(R"({"instance_id": "nope", "state": "running"})"))) ==
          "not_found");
    CHECK(listed(R"({"state": "running"})") == ids{"api-1"});
    {
        const json::value r = writer.call("list_endpoints", parse_object(R"({"service": "api", "endpoint": "http"})"));
        INFO(dump(r));
        for (const auto& ep : arr(r, "/endpoints"))
            CHECK(str(ep, "/state") == (str(ep, "/instance_id") == "api-1" ? "running" : "registered"));
    }

    // --- re-register api-2 under its lease with new endpoints: endpoint_updated
    {
        json::object params = parse_object(R"({
            "service": {"name": "api", "instance_id": "api-2", "version": "2.0.0",
                        "location": {"kind": "remote", "host": "h1", "ssh_user": "ops"},
                        "execution": {"kind": "container", "container_id": "c0ffee", "image": "api:2"},
                        "endpoints": [{"name": "http", "address": "10.0.0.2", "port": 8082, "protocol": "http"}],
                        "metadata": {"team": "edge"}},
            "ttl_seconds": 60})");
        json::object without_lease = params;
        CHECK(it::error_code(writer.request("register", std::move(without_lease))) == "conflict");
        json::object wrong_lease = params;
        wrong_lease["lease_id"] = lease1;
        CHECK(it::error_code(writer.request("register", std::move(wrong_lease))) == "lease_not_found");
        params["lease_id"] = lease2;
        const json::value rr = writer.call("register", std::move(params));
        INFO("re-register -> ", dump(rr));
        CHECK(boolean(rr, "/created") == false);
        CHECK(num(rr, "/lease_id") == lease2);
        const json::value ev = sub.expect_event("endpoint_updated");
        INFO(dump(ev));
        CHECK(num(ev, "/revision") == num(rr, "/revision"));
        CHECK(str(ev, "/data/service/instance_id") == "api-2");
        REQUIRE(arr(ev, "/data/endpoints").size() == 1);
        CHECK(num(ev, "/data/endpoints/0/port") == 8082);
    }

    // --- deregister
    const json::value dr = writer.call("deregister", parse_object(R"({"instance_id": "api-1"})"));
    INFO("deregister -> ", dump(dr));
    CHECK(str(dr, "/instance_id") == "api-1");
    {
        const json::value ev = sub.expect_event("service_deregistered");
        INFO(dump(ev));
        CHECK(num(ev, "/revision") == num(dr, "/revision"));
        CHECK(str(ev, "/data/service/instance_id") == "api-1");
        CHECK(str(ev, "/data/service/state") == "running");
        CHECK(str(ev, "/data/reason") == "deregistered");
    }
    CHECK(it::error_code(writer.request("get_service", parse_object(R"({"instance_id": "api-1"})"))) == "not_found");
    CHECK(it::error_code(writer.request("deregister", parse_object(R"({"instance_id": "api-1"})"))) == "not_found");
    CHECK(listed("{}") == ids{"api-2", "db-1"});
    {
        const auto extra = sub.next_event(200ms);
        CHECK_MESSAGE(!extra, "unexpected event: ", extra ? dump(*extra) : std::string());
    }
}

TEST_CASE("integration: strict protocol errors leave the connection usable") {
    it::registryd d{"limits:\n  max_message_bytes: 4096\n"};
    IT_DIAGNOSE(d);
    it::ws_client c(d);

    int usable_checks = 0;
    auto still_usable = [&] {
        ++usable_checks;
        const json::value r = c.call("list_services");
        CHECK(has(r, "/services"));
        CHECK_FALSE(c.is_closed());
    };
    // A frame the server cannot attribute to a request: response with id null.
    auto null_error = [&](const std::string& what, auto send, const char* code) {
        INFO("case: ", what);
        send();
        const json::value r = c.wait_null_response();
        INFO("response: ", dump(r));
        CHECK(it::at(r, "/id").is_null());
        CHECK(str(r, "/type") == "response");
        CHECK(it::error_code(r) == code);
        CHECK_FALSE(has(r, "/data"));
        still_usable();
    };
    // A request with a usable id: the error comes back under that id.
    auto id_error = [&](const std::string& what, const std::string& frame, const std::string& id, const char* code,
                        const std::string& message_part) {
        INFO("case: ", what, ": ", frame);
        c.send_text(frame);
        const json::value r = c.wait_response(id);
        INFO("response: ", dump(r));
        CHECK(it::error_code(r) == code);
        CHECK(it::error_message(r).find(message_part) != std::string::npos);
        CHECK_FALSE(has(r, "/data"));
        still_usable();
    };
    auto register_error = [&](const std::string& what, const char* params, const std::string& path) {
        INFO("case: ", what, ": ", params);
        const json::value r = c.request("register", parse_object(params));
        INFO("response: ", dump(r));
        CHECK(it::error_code(r) == "invalid_request");
        CHECK_MESSAGE(it::error_message(r).find(path) != std::string::npos, "message should name ", path);
        still_usable();
    };

    still_usable();
    null_error("not JSON", [&] { c.send_text("this is {not json"); }, "invalid_request");
    null_error("JSON array", [&] { c.send_text(R"([{"id": "a", "type": "request", "action": "list_services"}])"); },
               "invalid_request");
    null_error("JSON number", [&] { c.send_text("42"); }, "invalid_request");
    null_error("binary frame", [&] { c.send_binary(R"({"id": "b", "type": "request", "action": "list_services"})"); },
               "invalid_request");
    {
        std::string big = R"({"id": "big", "type": "request", "action": "list_services", "params": {"name": ")";
        big += std::string(8000, 'x');
        big += "\"}}";
        null_error("oversize frame (" + std::to_string(big.size()) + " bytes > 4096)", [&] { c.send_text(big); },
                   "payload_too_large");
    }
    id_error("missing action", R"({"id": "m1", "type": "request", "params": {}})", "m1", "invalid_request", "action");
    id_error("unknown action", R"({"id": "m2", "type": "request", "action": "regsiter", "params": {}})", "m2",
             "unknown_action", "regsiter");
    id_error("wrong type", R"({"id": "m3", "type": "reqest", "action": "list_services"})", "m3", "invalid_request",
             "type");
    id_error("params not an object", R"({"id": "m4", "type": "request", "action": "list_services", "params": [1]})",
             "m4", "invalid_request", "params");
    id_error("unknown param field", R"({"id": "m6", "type": "request", "action": "list_services", "params": {"nmae": "x"}})",
             "m6", "invalid_request", "params.nmae");
    // A number above 2^64: the answer still carries the id and names the field.
    id_error("integer beyond 64 bits",
             R"({"id": "m8", "type": "request", "action": "package_upload_begin", "params": {"size": 18446744073709551616, "sha256": "x"}})",
             "m8", "invalid_request", "params.size: must be an integer of at most 64 bits");
    {
        // Absent params means {}.
        c.send_text(R"({"id": "m7", "type": "request", "action": "list_services"})");
        const json::value r = c.wait_response("m7");
        INFO(dump(r));
        CHECK(has(r, "/data/services"));
    }
    register_error("unknown top-level param", R"({"service": {"name": "a"}, "frobnicate": 1})", "params.frobnicate");
    register_error("unknown nested field",
                   R"({"service": {"name": "a", "endpoints": [{"name": "h", "address": "x", "port": 1, "protocol": "http", "colour": "red"}]}})",
                   "params.service.endpoints[0].colour");
    register_error("wrong type (string for integer)", R"({"service": {"name": "a"}, "ttl_seconds": "30"})",
                   "params.ttl_seconds");
    register_error("wrong type (number for string)", R"({"service": {"name": 42}})", "params.service.name");
    register_error("out of range port",
                   R"({"service": {"name": "a", "endpoints": [{"name": "h", "address": "x", "port": 1, "protocol": "http"},
                                                             {"name": "g", "address": "x", "port": 70000, "protocol": "http"}]}})",
                   "params.service.endpoints[1].port");
    register_error("bad name characters", R"({"service": {"name": "a b"}})", "params.service.name");
    register_error("missing service", R"({"ttl_seconds": 30})", "params.service");
    register_error("ttl out of range", R"({"service": {"name": "a"}, "ttl_seconds": 0})", "params.ttl_seconds");
    register_error("unknown execution kind", R"({"service": {"name": "a", "execution": {"kind": "vm"}}})",
                   "params.service.execution");

    // After all that, a normal request still works on the same connection.
    const json::value reg = c.call("register", it::registration(it::service("ok", "ok-1"), 30));
    CHECK(str(reg, "/instance_id") == "ok-1");
    const json::value got = c.call("get_service", parse_object(R"({"instance_id": "ok-1"})"));
    CHECK(str(got, "/service/name") == "ok");
    CHECK_FALSE(c.is_closed());
    CHECK(usable_checks >= 20);
}

namespace {

// The sum of the sample lines of `metric` whose labels contain every `label`
// (e.g. action="register"); nullopt when there is none.
std::optional<double> sample(const std::string& body, const std::string& metric,
                             const std::vector<std::string>& labels = {}) {
    std::istringstream in(body);
    std::string line;
    std::optional<double> sum;
    while (std::getline(in, line)) {
        if (line.empty() || line[0] == '#') continue;
        if (line.compare(0, metric.size(), metric) != 0) continue;
        if (line.size() <= metric.size() || (line[metric.size()] != '{' && line[metric.size()] != ' ')) continue;
        bool all = true;
        for (const auto& l : labels) all = all && line.find(l) != std::string::npos;
        if (!all) continue;
        const auto sp = line.rfind(' ');
        try {
            sum = sum.value_or(0) + std::stod(line.substr(sp + 1));
        } catch (...) {
            return std::nullopt;
        }
    }
    return sum;
}

}  // namespace

TEST_CASE("integration: /healthz and /metrics over plain HTTP") {
    it::registryd d;
    IT_DIAGNOSE(d);

    const it::http_response health = it::http_get(d.host(), d.port(), "/healthz");
    INFO("healthz: ", health.status, " ", health.body);
    CHECK(health.status == 200);
    CHECK(health.body.find("ok") != std::string::npos);

    it::ws_client c(d);
    c.call("register", it::registration(it::service("m", "m-1"), 30));
    c.call("register", it::registration(it::service("m", "m-2"), 30));
    CHECK(it::error_code(c.request("register", parse_object(R"({"service": {}})"))) == "invalid_request");

    const it::http_response metrics = it::http_get(d.host(), d.port(), "/metrics");
    INFO("metrics: ", metrics.status, "\n", metrics.body);
    CHECK(metrics.status == 200);
    CHECK(metrics.content_type.rfind("text/plain", 0) == 0);
    const auto registers = sample(metrics.body, "registryd_requests_total", {"action=\"register\""});
    REQUIRE(registers.has_value());
    CHECK(*registers >= 3);  // two ok, one invalid_request
    CHECK(metrics.body.find("# TYPE registryd_requests_total counter") != std::string::npos);
    // One line per (action, code), sorted; one histogram per action.
    const auto register_lines = metrics.body.find("\nregistryd_requests_total{action=\"register\",code=\"invalid_request\"} 1\n"
                                           "registryd_requests_total{action=\"register\",code=\"ok\"} 2\n");
    CHECK(register_lines != std::string::npos);
    CHECK(metrics.body.find("\nregistryd_request_duration_seconds_bucket{action=\"register\",le=\"+Inf\"} 3\n") !=
          std::string::npos);
    CHECK(metrics.body.find("\nregistryd_request_duration_seconds_count{action=\"register\"} 3\n") !=
          std::string::npos);
    const auto connections = sample(metrics.body, "registryd_connections");
    REQUIRE(connections.has_value());
    CHECK(*connections >= 1);
    CHECK(metrics.body.find("# TYPE registryd_connections gauge") != std::string::npos);

    const it::http_response missing = it::http_get(d.host(), d.port(), "/no-such-page");
    CHECK(missing.status == 404);
}
