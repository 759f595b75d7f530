// The WebSocket protocol without a transport: frames in through
// connection::handle(), frames out through a capturing outbox, over a real
// registry on a fake clock and an in-memory store.
#include "protocol_test_support.hpp"
#include "registry_test_support.hpp"

#include <registry/protocol/connection.hpp>

#include <doctest/doctest.h>
#include <simdjson.h>

#include <algorithm>
#include <deque>
#include <memory>
#include <stdexcept>
#include <string>
#include <vector>

using namespace registry;
using namespace registry::test;
using namespace std::chrono_literals;
using protocol::outcome;
using testing::fake_clock;
using testing::memory_store;

namespace {

struct fixture {
    fake_clock clk;
    memory_store st;
    registry_options opt = [] {
        registry_options o;
        o.bookmark_interval = 3600s;
        o.history_limit = 4;
        return o;
    }();
    registry::registry reg{clk, st, opt};
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

std::string service(std::string_view name, std::string_view instance_id, int port = 8080) {
    return R"({"name":")" + std::string(name) + R"(","instance_id":")" + std::string(instance_id) +
           R"(","version":"1.2.3","endpoints":[{"name":"http","address":"127.0.0.1","port":)" +
           std::to_string(port) + R"(,"protocol":"http"}]})";
}

std::string register_params(std::string_view name, std::string_view instance_id, std::string_view extra = {}) {
    return R"({"service":)" + service(name, instance_id) + std::string(extra) + "}";
}

std::string error_response(std::string_view id, std::string_view code, std::string_view message) {
    const std::string id_json = id == "null" ? "null" : '"' + std::string(id) + '"';
    return R"({"id":)" + id_json + R"(,"type":"response","error":{"code":")" + std::string(code) +
           R"(","message":")" + std::string(message) + R"("}})";
}

// Reads one value of a JSON text by JSON pointer ("/data/lease_id").
simdjson::dom::element at(const std::string& json, std::string_view pointer) {
    static simdjson::dom::parser parser;  // the element is valid until the next call
    simdjson::dom::element root;
    REQUIRE_MESSAGE(parser.parse(json).get(root) == simdjson::SUCCESS, json);
    simdjson::dom::element value;
    REQUIRE_MESSAGE(root.at_pointer(pointer).get(value) == simdjson::SUCCESS, pointer, " in ", json);
    return value;
}
std::string str(const std::string& json, std::string_view pointer) {
    return std::string(at(json, pointer).get_string().value());
}
std::uint64_t num(const std::string& json, std::string_view pointer) { return at(json, pointer).get_uint64().value(); }
bool flag(const std::string& json, std::string_view pointer) { return at(json, pointer).get_bool().value(); }
std::size_t count(const std::string& json, std::string_view pointer) {
    return at(json, pointer).get_array().value().size();
}

std::vector<std::string> event_types(const std::vector<std::string>& frames) {
    std::vector<std::string> out;
    for (const auto& f : frames) out.push_back(str(f, "/event"));
    return out;
}

using strings = std::vector<std::string>;

// Subscriptions are served in no particular order; each one's events are.
strings by_subscription(strings frames) {
    std::stable_sort(frames.begin(), frames.end(), [](const std::string& x, const std::string& y) {
        return str(x, "/subscription") < str(y, "/subscription");
    });
    return frames;
}

}  // namespace

TEST_CASE("protocol: register, keepalive, deregister") {
    fixture f;
    auto& a = f.connect();
    CHECK(a.ask(req("1", "register", register_params("api", "api-1", R"(,"ttl_seconds":30)"))) ==
          R"({"id":"1","type":"response","data":{"lease_id":1,"instance_id":"api-1","ttl_seconds":30,)"
          R"("expires_at_ms":1700000030000,"revision":1,"created":true}})");

    f.clk.advance(11s);
    CHECK(a.ask(req("2", "keepalive", R"({"lease_id":1})")) ==
          R"({"id":"2","type":"response","data":{"lease_id":1,"instance_id":"api-1","ttl_seconds":30,)"
          R"("expires_at_ms":1700000041000}})");

    // Re-registration under its lease: an update, not a conflict.
    auto again = a.ask(req("3", "register", register_params("api", "api-1", R"(,"lease_id":1,"ttl_seconds":60)")));
    CHECK_FALSE(flag(again, "/data/created"));
    CHECK(num(again, "/data/ttl_seconds") == 60);

    CHECK(a.ask(req("4", "deregister", R"({"instance_id":"api-1"})")) ==
          R"({"id":"4","type":"response","data":{"instance_id":"api-1","revision":2}})");
    CHECK(f.reg.size() == 0);

    // Generated instance id, default TTL.
    auto generated = a.ask(req("5", "register", R"({"service":{"name":"db"}})"));
    CHECK(str(generated, "/data/instance_id") == "db-3");
    CHECK(num(generated, "/data/ttl_seconds") == 30);
}

TEST_CASE("protocol: register errors name the field") {
    fixture f;
    auto& a = f.connect();
    a.ask(req("0", "register", register_params("api", "api-1")));

    auto check = [&](const std::string& params, std::string_view code, std::string_view message) {
        CHECK(a.ask(req("r", "register", params), code) == error_response("r", code, message));
    };
    check(register_params("api", "api-1"), "conflict", "instance 'api-1' is registered under another lease");
    check(register_params("api", "api-1", R"(,"lease_id":99)"), "lease_not_found",
          "instance 'api-1' is not held by lease 99");
    check(register_params("api", "api-9", R"(,"lease_id":99)"), "lease_not_found",
          "lease 99 does not exist (it may have expired)");
    check(register_params("bad name!", "x-1"), "invalid_request",
          "params.service.name: must be 1-128 characters of [A-Za-z0-9._-]");
    check(register_params("api", "api-2", R"(,"ttl_seconds":0)"), "invalid_request",
          "params.ttl_seconds: must be 1-86400");
    check(register_params("api", "api-2", R"(,"ttl_seconds":18446744073709551615)"), "invalid_request",
          "params.ttl_seconds: must be 1-86400");
    check(register_params("api", "api-2", R"(,"ttl_seconds":"30")"), "invalid_request",
          "params.ttl_seconds: must be an integer");
    check(register_params("api", "api-2", R"(,"ttl_seconds":1.5)"), "invalid_request",
          "params.ttl_seconds: must be an integer");
    check(register_params("api", "api-2", R"(,"lease_id":-1)"), "invalid_request",
          "params.lease_id: must be a non-negative integer");
    check(register_params("api", "api-2", R"(,"session_bound":"yes")"), "invalid_request",
          "params.session_bound: must be a boolean");
    check(register_params("api", "api-2", R"(,"colour":"red")"), "invalid_request", "params.colour: unknown field");
    check(R"({"ttl_seconds":30})", "invalid_request", "params.service: is required");
    check(R"({"service":{"instance_id":"x"}})", "invalid_request", "params.service.name: is required");
    check(R"({"service":{"name":"api","state":"running"}})", "invalid_request",
          "params.service.state: unknown field");
    check(R"({"service":{"name":"api","endpoints":[)"
          R"({"name":"http","address":"::1","port":80,"protocol":"http"},)"
          R"({"name":"admin","address":"::1","port":70000,"protocol":"http"}]}})",
          "invalid_request", "params.service.endpoints[1].port: must be 1-65535");
    check(R"({"service":{"name":"api","endpoints":[{"name":"http","address":"::1","port":80}]}})", "invalid_request",
          "params.service.endpoints[0].protocol: is required");
    check(R"({"service":{"name":"api","endpoints":{}}})", "invalid_request",
          "params.service.endpoints: must be an array");
    check(R"({"service":{"name":"api","execution":{"kind":"container"}}})", "invalid_request",
          "params.service.execution.container_id: is required");
    check(R"({"service":{"name":"api","execution":{"kind":"vm"}}})", "invalid_request",
          "params.service.execution.kind: must be one of managed_process, container, systemd_unit");
    check(R"({"service":{"name":"api","execution":{"kind":"managed_process","pid":-1}}})", "invalid_request",
          "params.service.execution.pid: must be 0-4294967295");
    check(R"({"service":{"name":"api","location":{"kind":"remote"}}})", "invalid_request",
          "params.service.location.host: is required");
    check(R"({"service":{"name":"api","location":{"kind":"remote","host":"h","ssh_port":0}}})", "invalid_request",
          "params.service.location.ssh_port: must be 1-65535");
    check(R"({"service":{"name":"api","metadata":{"team":7}}})", "invalid_request",
          "params.service.metadata.team: must be a string");
    check(R"({"service":{"name":"api","depends_on":["db",null]}})", "invalid_request",
          "params.service.depends_on[1]: must be a string");
    check(R"({"service":{"name":"api","version":"1","version":"2"}})", "invalid_request",
          "params.service.version: duplicate field");

    f.st.fail();
    check(register_params("api", "api-3"), "unavailable", "the store failed to persist the registration");
}

TEST_CASE("protocol: keepalive and deregister errors") {
    fixture f;
    auto& a = f.connect();
    CHECK(a.ask(req("1", "keepalive", R"({"lease_id":5})"), "lease_not_found") ==
          error_response("1", "lease_not_found", "lease 5 does not exist (it may have expired)"));
    CHECK(a.ask(req("2", "keepalive", "{}"), "invalid_request") ==
          error_response("2", "invalid_request", "params.lease_id: is required"));
    CHECK(a.ask(req("3", "keepalive"), "invalid_request") ==
          error_response("3", "invalid_request", "params.lease_id: is required"));
    CHECK(a.ask(req("4", "deregister", R"({"instance_id":"nope"})"), "not_found") ==
          error_response("4", "not_found", "no instance 'nope'"));
    CHECK(a.ask(req("5", "deregister", R"({"instance_id":1})"), "invalid_request") ==
          error_response("5", "invalid_request", "params.instance_id: must be a string"));
}

TEST_CASE("protocol: get_service") {
    fixture f;
    auto& a = f.connect();
    a.ask(req("0", "register", register_params("api", "api-1")));
    a.ask(req("0", "register", register_params("api", "api-2")));

    auto one = a.ask(req("1", "get_service", R"({"instance_id":"api-1"})"));
    CHECK(str(one, "/data/service/instance_id") == "api-1");
    CHECK(str(one, "/data/service/state") == "registered");
    CHECK(num(one, "/data/service/lease/id") == 1);
    CHECK(at(one, "/data/service/health").is_null());

    auto all = a.ask(req("2", "get_service", R"({"name":"api"})"));
    CHECK(count(all, "/data/services") == 2);
    CHECK(str(all, "/data/services/1/instance_id") == "api-2");

    CHECK(a.ask(req("3", "get_service", R"({"instance_id":"x"})"), "not_found") ==
          error_response("3", "not_found", "no instance 'x'"));
    CHECK(a.ask(req("4", "get_service", R"({"name":"x"})"), "not_found") ==
          error_response("4", "not_found", "no instance of service 'x'"));
    CHECK(a.ask(req("5", "get_service", R"({"name":"api","instance_id":"api-1"})"), "invalid_request") ==
          error_response("5", "invalid_request", "params: exactly one of instance_id and name is required"));
    CHECK(a.ask(req("6", "get_service"), "invalid_request") ==
          error_response("6", "invalid_request", "params: exactly one of instance_id and name is required"));
}

TEST_CASE("protocol: list_services and list_endpoints filter") {
    fixture f;
    auto& a = f.connect();
    a.ask(req("0", "register", register_params("api", "api-1")));
    a.ask(req("0", "register",
              R"({"service":{"name":"api","instance_id":"api-2","version":"2.0.0",)"
              R"("location":{"kind":"remote","host":"web-2","ssh_user":"deploy","ssh_port":2222},)"
              R"("endpoints":[{"name":"grpc","address":"10.0.0.2","port":9090,"protocol":"grpc"}]}})"));
    a.ask(req("0", "register", R"({"service":{"name":"db","instance_id":"db-1","metadata":{"team":"data"}}})"));
    a.ask(req("0", "set_state", R"({"instance_id":"api-1","state":"running"})"));

    auto ids = [&](const std::string& params) {
        auto r = a.ask(req("l", "list_services", params));
        CHECK(num(r, "/data/revision") == 4);
        strings out;
        for (std::size_t i = 0; i < count(r, "/data/services"); ++i) {
            out.push_back(str(r, "/data/services/" + std::to_string(i) + "/instance_id"));
        }
        return out;
    };
    CHECK(ids("{}") == strings{"api-1", "api-2", "db-1"});
    CHECK(a.ask(req("l", "list_services")).find("db-1") != std::string::npos);  // params may be absent
    CHECK(ids(R"({"name":"api"})") == strings{"api-1", "api-2"});
    CHECK(ids(R"({"state":"running"})") == strings{"api-1"});
    CHECK(ids(R"({"host":"local"})") == strings{"api-1", "db-1"});
    CHECK(ids(R"({"host":"web-2"})") == strings{"api-2"});
    CHECK(ids(R"({"version":"2.0.0"})") == strings{"api-2"});
    CHECK(ids(R"({"metadata":{"team":"data"}})") == strings{"db-1"});
    CHECK(ids(R"({"name":"api","state":"stopped"})").empty());

    CHECK(a.ask(req("e", "list_services", R"({"state":"asleep"})"), "invalid_request") ==
          error_response("e", "invalid_request",
                         "params.state: must be one of registered, starting, running, stopping, stopped, failed"));
    CHECK(a.ask(req("e", "list_services", R"({"metadata":{"team":1}})"), "invalid_request") ==
          error_response("e", "invalid_request", "params.metadata.team: must be a string"));
    CHECK(a.ask(req("e", "list_services", "[]"), "invalid_request") ==
          error_response("e", "invalid_request", "params: must be an object"));

    CHECK(a.ask(req("7", "list_endpoints", R"({"service":"api"})")) ==
          R"({"id":"7","type":"response","data":{"revision":4,"endpoints":[)"
          R"({"service":"api","instance_id":"api-1","state":"running",)"
          R"("name":"http","address":"127.0.0.1","port":8080,"protocol":"http"},)"
          R"({"service":"api","instance_id":"api-2","state":"registered",)"
          R"("name":"grpc","address":"10.0.0.2","port":9090,"protocol":"grpc"}]}})");
    auto grpc = a.ask(req("8", "list_endpoints", R"({"protocol":"grpc"})"));
    CHECK(count(grpc, "/data/endpoints") == 1);
    auto http = a.ask(req("9", "list_endpoints", R"({"endpoint":"http"})"));
    CHECK(count(http, "/data/endpoints") == 1);
    CHECK(a.ask(req("e", "list_endpoints", R"({"port":80})"), "invalid_request") ==
          error_response("e", "invalid_request", "params.port: unknown field"));
}

TEST_CASE("protocol: set_state") {
    fixture f;
    auto& a = f.connect();
    a.ask(req("0", "register", register_params("api", "api-1")));

    auto moved = a.ask(req("1", "set_state", R"({"instance_id":"api-1","state":"running"})"));
    CHECK(flag(moved, "/data/changed"));
    CHECK(num(moved, "/data/revision") == 2);
    CHECK(str(moved, "/data/service/state") == "running");
    CHECK(num(moved, "/data/service/modified_revision") == 2);

    auto same = a.ask(req("2", "set_state", R"({"instance_id":"api-1","state":"running"})"));
    CHECK_FALSE(flag(same, "/data/changed"));
    CHECK(num(same, "/data/revision") == 2);

    CHECK(a.ask(req("3", "set_state", R"({"instance_id":"api-1","state":"starting"})"), "invalid_transition") ==
          error_response("3", "invalid_transition", "instance 'api-1' cannot go from running to starting"));
    CHECK(a.ask(req("4", "set_state", R"({"instance_id":"x","state":"running"})"), "not_found") ==
          error_response("4", "not_found", "no instance 'x'"));
    CHECK(a.ask(req("5", "set_state", R"({"instance_id":"api-1"})"), "invalid_request") ==
          error_response("5", "invalid_request", "params.state: is required"));

    auto failed = a.ask(req("6", "set_state", R"({"instance_id":"api-1","state":"failed","reason":"oom"})"));
    CHECK(str(failed, "/data/service/failure_reason") == "oom");
}

TEST_CASE("protocol: envelope validation") {
    fixture f;
    auto& a = f.connect();
    auto check = [&](const std::string& frame, std::string_view id, std::string_view code, std::string_view message) {
        CHECK(a.ask(frame, code) == error_response(id, code, message));
    };
    check("not json", "null", "invalid_request", "frame is not valid JSON");
    check("", "null", "invalid_request", "frame is not valid JSON");
    check(R"({"id":"1",)", "null", "invalid_request", "frame is not valid JSON");
    check("\"\xff\"", "null", "invalid_request", "frame is not valid JSON");
    check("[1,2]", "null", "invalid_request", "frame is not a JSON object");
    check("42", "null", "invalid_request", "frame is not a JSON object");
    check(R"({"type":"request","action":"list_services"})", "null", "invalid_request", "id: is required");
    check(R"({"id":7,"type":"request","action":"list_services"})", "null", "invalid_request",
          "id: must be a string of 1-128 characters");
    check(R"({"id":"","type":"request","action":"list_services"})", "null", "invalid_request",
          "id: must be a string of 1-128 characters");
    check(req(std::string(129, 'x'), "list_services"), "null", "invalid_request",
          "id: must be a string of 1-128 characters");
    a.ask(req(std::string(128, 'x'), "list_services"));
    // 128 characters, 256 bytes.
    std::string wide;
    for (int i = 0; i < 128; ++i) wide += "\xc3\xa9";
    a.ask(req(wide, "list_services"));

    check(R"({"id":"1","type":"request","action":"list_services","extra":true})", "1", "invalid_request",
          "extra: unknown field");
    check(R"({"id":"1","type":"request","action":"list_services","action":"x"})", "1", "invalid_request",
          "action: duplicate field");
    check(R"({"id":"1","action":"list_services"})", "1", "invalid_request", "type: is required");
    check(R"({"id":"1","type":"response","action":"list_services"})", "1", "invalid_request",
          "type: must be \\\"request\\\"");
    check(R"({"id":"1","type":"request"})", "1", "invalid_request", "action: is required");
    check(R"({"id":"1","type":"request","action":5})", "1", "invalid_request", "action: must be a string");
    check(req("11", "regsiter"), "11", "unknown_action", "unknown action 'regsiter'");
    check(R"({"id":"1","type":"request","action":"list_services","params":null})", "1", "invalid_request",
          "params: must be an object");
    // The id is echoed with escaping.
    check(R"({"id":"a\"b\n","type":"request","action":"nope"})", R"(a\"b\n)", "unknown_action",
          "unknown action 'nope'");
    // An integer beyond 64 bits (simdjson refuses the whole document) is
    // answered with the request's id and the field's path.
    check(R"({"id":"big","type":"request","action":"keepalive","params":{"lease_id":18446744073709551616}})", "big",
          "invalid_request", "params.lease_id: must be an integer of at most 64 bits");
    check(R"({"id":"big","type":"request","action":"list_services","params":{"x":[1,"99999999999999999999999",-9223372036854775809]}})",
          "big", "invalid_request", "params.x[2]: must be an integer of at most 64 bits");
    check(R"({"id":"big","type":"request","action":"nope","z":1.5,"extra":123456789012345678901234567890})", "big",
          "invalid_request", "extra: must be an integer of at most 64 bits");
    check(R"({"id":123456789012345678901234567890,"type":"request","action":"list_services"})", "null", "invalid_request",
          "id: must be a string of 1-128 characters");
    check(R"({"id":"1","type":"request","action":"list_services","params":{"n":18446744073709551616)", "null",
          "invalid_request", "frame is not valid JSON");
    // The largest 64-bit values are ordinary numbers.
    check(R"({"id":"1","type":"request","action":"keepalive","params":{"lease_id":18446744073709551615}})", "1",
          "lease_not_found", "lease 18446744073709551615 does not exist (it may have expired)");

    // Every outcome names the action once it is known.
    CHECK(run_now(a.conn.handle(req("1", "keepalive"))).action == "keepalive");
    CHECK(run_now(a.conn.handle(req("1", "nope"))).action.empty());
    CHECK(run_now(a.conn.handle(req("1", "list_services"))).action == "list_services");
}

TEST_CASE("protocol: the actions of a subsystem the embedder did not register answer unavailable") {
    fixture f;
    auto& a = f.connect();
    auto check = [&](std::string_view action, std::string_view params, std::string_view message) {
        const outcome o = run_now(a.conn.handle(req("u", action, params)));
        CHECK(o.action == action);
        CHECK(o.code == "unavailable");
        CHECK(a.out.take() == strings{error_response("u", "unavailable", message)});
    };
    const std::string_view no_engine = "no container engine is configured on this server";
    check("container_get", R"({"container_id":"x"})", no_engine);
    check("container_stop", R"({"container_id":"x"})", no_engine);
    check("list_nodes", "", no_engine);
    check("deploy_package", R"({"path":"/tmp/p.tar.gz"})", "deployment is not enabled on this server");
    check("service_action", R"({"instance_id":"i","action":"stop"})", "deployment is not enabled on this server");
    check("undeploy", R"({"instance_id":"i"})", "deployment is not enabled on this server");
    check("package_upload_status", R"({"upload_id":"u1"})", "package uploads are not enabled on this server");
    const std::string_view no_repl = "REPL execution is not enabled on this server (repl.enabled)";
    check("repl_languages", "", no_repl);
    check("repl_execute", R"({"language":"sh","code":"echo"})", no_repl);
    check("repl_cancel", R"({"execution_id":"e"})", no_repl);
    check("repl_result", R"({"execution_id":"e"})", no_repl);
    check("repl_history", "", no_repl);
    a.ask(req("2", "list_services"));  // the services module answers
}

TEST_CASE("protocol: oversized and refused frames get an id:null response") {
    fixture f;
    auto& a = f.connect();
    const std::string big = req("1", "list_services", R"({"name":")" + std::string(1 << 16, 'a') + R"("})");
    CHECK(a.ask(big, "payload_too_large") ==
          error_response("null", "payload_too_large", "frame exceeds 65536 bytes"));

    const outcome o = a.conn.reject(errc::invalid_request, "binary frames are not supported");
    CHECK(o.code == "invalid_request");
    CHECK(o.action.empty());
    CHECK(a.out.take() ==
          strings{error_response("null", "invalid_request", "binary frames are not supported")});
    a.ask(req("2", "list_services"));  // still usable
}

TEST_CASE("protocol: pipelined requests while the store is held") {
    fixture f;
    auto& a = f.connect();
    f.st.hold();
    started<outcome> r1(a.conn.handle(req("1", "register", register_params("api", "api-1"))));
    started<outcome> r2(a.conn.handle(req("2", "register", register_params("api", "api-2"))));
    started<outcome> r3(a.conn.handle(req("3", "set_state", R"({"instance_id":"api-1","state":"running"})")));
    CHECK_FALSE(r1.done());
    CHECK_FALSE(r2.done());
    CHECK_FALSE(r3.done());
    // Reads do not wait for the store.
    started<outcome> r4(a.conn.handle(req("4", "keepalive", R"({"lease_id":77})")));
    CHECK(r4.done());
    REQUIRE(a.out.frames.size() == 1);
    CHECK(str(a.out.frames[0].text(), "/id") == "4");
    a.out.frames.clear();

    f.st.release();
    REQUIRE(r1.done());
    REQUIRE(r2.done());
    REQUIRE(r3.done());
    CHECK(r1.get().code == "ok");
    CHECK(r3.get().code == "ok");
    auto frames = a.out.take();
    REQUIRE(frames.size() == 3);
    CHECK(str(frames[0], "/id") == "1");
    CHECK(str(frames[1], "/id") == "2");
    CHECK(str(frames[2], "/id") == "3");
    CHECK(flag(frames[2], "/data/changed"));
    CHECK(num(frames[2], "/data/revision") == 3);
}

TEST_CASE("protocol: subscribe answers first, then streams to every subscriber") {
    fixture f;
    auto& a = f.connect();
    auto& b = f.connect();
    a.ask(req("0", "register", register_params("api", "api-1")));

    auto frames = b.send(req("9", "subscribe"));
    REQUIRE(frames.size() == 2);
    CHECK(frames[0] == R"({"id":"9","type":"response","data":{"subscription":"s1","revision":1}})");
    CHECK(str(frames[1], "/type") == "event");
    CHECK(str(frames[1], "/subscription") == "s1");
    CHECK(str(frames[1], "/event") == "registry_loaded");
    CHECK(num(frames[1], "/revision") == 1);
    CHECK(str(frames[1], "/data/services/0/instance_id") == "api-1");
    CHECK(b.conn.subscription_count() == 1);

    a.ask(req("1", "register", register_params("db", "db-1")));
    auto events = b.out.take();
    REQUIRE(events.size() == 1);
    CHECK(events[0].starts_with(R"({"type":"event","subscription":"s1","event":"service_registered","revision":2,)"
                                R"("data":{"service":{"name":"db","instance_id":"db-1",)"));

    a.ask(req("2", "set_state", R"({"instance_id":"db-1","state":"starting","reason":"boot"})"));
    events = b.out.take();
    REQUIRE(events.size() == 1);
    CHECK(str(events[0], "/event") == "service_state_changed");
    CHECK(str(events[0], "/data/previous_state") == "registered");
    CHECK(str(events[0], "/data/state") == "starting");
    CHECK(str(events[0], "/data/reason") == "boot");

    a.ask(req("3", "register", R"({"lease_id":2,"service":)" + service("db", "db-1", 5432) + "}"));
    events = b.out.take();
    REQUIRE(events.size() == 1);
    CHECK(str(events[0], "/event") == "endpoint_updated");
    CHECK(num(events[0], "/data/endpoints/0/port") == 5432);

    REQUIRE(run_now(f.reg.record_health("db-1", health_result{health_status::warning, "slow", f.clk.now()})).ok());
    events = b.out.take();
    REQUIRE(events.size() == 1);
    CHECK(str(events[0], "/event") == "health_check_result");
    CHECK(str(events[0], "/data/health/status") == "warning");
    CHECK(num(events[0], "/data/health/checked_at_ms") == 1700000000000);

    CHECK(num(a.ask(req("4", "deregister", R"({"instance_id":"db-1"})")), "/data/revision") == 6);
    events = b.out.take();
    REQUIRE(events.size() == 1);
    CHECK(str(events[0], "/event") == "service_deregistered");
    CHECK(num(events[0], "/revision") == 6);
    CHECK(str(events[0], "/data/reason") == "deregistered");
    CHECK(str(events[0], "/data/service/instance_id") == "db-1");
}

TEST_CASE("protocol: subscribe filters") {
    fixture f;
    auto& a = f.connect();
    auto& b = f.connect();
    CHECK(b.send(req("1", "subscribe", R"({"services":["db"],"snapshot":false})")).size() == 1);
    CHECK(b.send(req("2", "subscribe", R"({"events":["service_state_changed"],"snapshot":false})")).size() == 1);
    CHECK(b.conn.subscription_count() == 2);

    a.ask(req("0", "register", register_params("api", "api-1", R"(,"ttl_seconds":86400)")));
    a.ask(req("0", "register", register_params("db", "db-1", R"(,"ttl_seconds":86400)")));
    a.ask(req("0", "set_state", R"({"instance_id":"api-1","state":"running"})"));
    auto frames = by_subscription(b.out.take());
    REQUIRE(frames.size() == 2);
    CHECK(str(frames[0], "/subscription") == "s1");
    CHECK(str(frames[0], "/data/service/instance_id") == "db-1");
    CHECK(str(frames[1], "/subscription") == "s2");
    CHECK(str(frames[1], "/event") == "service_state_changed");

    // Always-delivered events pass any type filter.
    f.clk.advance(3600s);
    auto bookmarks = b.out.take();
    REQUIRE(bookmarks.size() == 2);
    CHECK(bookmarks[0].ends_with(R"("event":"bookmark","revision":3,"data":{}})"));
    CHECK(event_types(bookmarks) == strings{"bookmark", "bookmark"});

    CHECK(b.ask(req("3", "subscribe", R"({"events":["service_registered","nope"]})"), "invalid_request") ==
          error_response("3", "invalid_request",
                         "params.events[1]: must be one of service_registered, service_deregistered, "
                         "service_state_changed, endpoint_updated, health_check_result, lease_expired, "
                         "registry_loaded, bookmark, resync_required, container_state_changed, "
                         "container_reap_failed, container_log, image_pull_progress, deployment_started, "
                         "deployment_stage, deployment_succeeded, deployment_failed, deployment_rolled_back"));
    CHECK(b.ask(req("4", "subscribe", R"({"services":"db"})"), "invalid_request") ==
          error_response("4", "invalid_request", "params.services: must be an array"));
    CHECK(b.ask(req("5", "subscribe", R"({"from_revision":-1})"), "invalid_request") ==
          error_response("5", "invalid_request", "params.from_revision: must be a non-negative integer"));
    CHECK(b.conn.subscription_count() == 2);
}

TEST_CASE("protocol: from_revision replays, or asks for a resync") {
    fixture f;  // history_limit = 4
    auto& a = f.connect();
    auto& b = f.connect();
    a.ask(req("0", "register", register_params("api", "api-1")));               // 1
    a.ask(req("0", "register", register_params("db", "db-1")));                 // 2
    a.ask(req("0", "set_state", R"({"instance_id":"api-1","state":"running"})"));  // 3

    auto replay = b.send(req("1", "subscribe", R"({"from_revision":1})"));
    REQUIRE(replay.size() == 3);
    CHECK(replay[0] == R"({"id":"1","type":"response","data":{"subscription":"s1","revision":3}})");
    CHECK(event_types({replay[1], replay[2]}) == strings{"service_registered", "service_state_changed"});
    CHECK(num(replay[1], "/revision") == 2);

    auto filtered = b.send(req("2", "subscribe", R"({"from_revision":0,"services":["api"]})"));
    CHECK(event_types({filtered.begin() + 1, filtered.end()}) ==
          strings{"service_registered", "service_state_changed"});

    // Nothing to replay: only live events follow.
    CHECK(b.send(req("3", "subscribe", R"({"from_revision":3})")).size() == 1);
    b.ask(req("x", "unsubscribe", R"({"subscription":"s1"})"));
    b.ask(req("x", "unsubscribe", R"({"subscription":"s2"})"));
    b.ask(req("x", "unsubscribe", R"({"subscription":"s3"})"));

    for (int i = 0; i < 5; ++i) a.ask(req("0", "keepalive", R"({"lease_id":1})"));
    for (int port = 1; port <= 4; ++port) {
        a.ask(req("0", "register", R"({"lease_id":2,"service":)" + service("db", "db-1", port) + "}"));  // 4..7
    }
    auto resync = b.send(req("4", "subscribe", R"({"from_revision":1})"));
    REQUIRE(resync.size() == 3);
    CHECK(resync[1] == R"({"type":"event","subscription":"s4","event":"resync_required","revision":7,)"
                       R"("data":{"from_revision":1,"oldest_revision":4}})");
    CHECK(str(resync[2], "/event") == "registry_loaded");
    CHECK(num(resync[2], "/revision") == 7);
    CHECK(count(resync[2], "/data/services") == 2);

    // A revision from the future (e.g. before a data wipe) cannot be trusted either.
    auto future = b.send(req("5", "subscribe", R"({"from_revision":100})"));
    CHECK(event_types({future.begin() + 1, future.end()}) == strings{"resync_required", "registry_loaded"});
}

TEST_CASE("protocol: unsubscribe ends the stream before it answers") {
    fixture f;
    auto& a = f.connect();
    auto& b = f.connect();
    b.send(req("1", "subscribe", R"({"snapshot":false})"));
    b.send(req("2", "subscribe", R"({"snapshot":false})"));
    CHECK(b.ask(req("3", "unsubscribe", R"({"subscription":"s1"})")) ==
          R"({"id":"3","type":"response","data":{"subscription":"s1"}})");
    CHECK(b.conn.subscription_count() == 1);

    a.ask(req("0", "register", register_params("api", "api-1")));
    auto frames = b.out.take();
    REQUIRE(frames.size() == 1);
    CHECK(str(frames[0], "/subscription") == "s2");

    CHECK(b.ask(req("4", "unsubscribe", R"({"subscription":"s1"})"), "not_found") ==
          error_response("4", "not_found", "no subscription 's1'"));
    CHECK(b.ask(req("5", "unsubscribe"), "invalid_request") ==
          error_response("5", "invalid_request", "params.subscription: is required"));
    // Subscription ids are not reused.
    CHECK(str(b.send(req("6", "subscribe", R"({"snapshot":false})"))[0], "/data/subscription") == "s3");
}

TEST_CASE("protocol: subscriptions per connection are limited") {
    fixture f;  // limit 3
    auto& a = f.connect();
    for (int i = 0; i < 3; ++i) a.send(req("s", "subscribe"));
    CHECK(a.ask(req("4", "subscribe"), "limit_exceeded") ==
          error_response("4", "limit_exceeded", "at most 3 subscriptions per connection"));
    a.ask(req("5", "unsubscribe", R"({"subscription":"s2"})"));
    CHECK(a.send(req("6", "subscribe")).size() == 2);
}

TEST_CASE("protocol: close() ends subscriptions at once and is final") {
    fixture f;
    auto& a = f.connect();
    auto& b = f.connect();
    b.send(req("1", "subscribe"));
    b.send(req("2", "subscribe", R"({"services":["api"]})"));
    REQUIRE(b.conn.subscription_count() == 2);

    // A write in flight when the connection closes completes, unanswered.
    f.st.hold();
    started<outcome> pending(b.conn.handle(req("3", "register", register_params("api", "api-1"))));
    b.conn.close();
    CHECK(b.conn.subscription_count() == 0);
    f.st.release();
    REQUIRE(pending.done());
    CHECK(pending.get().code == "ok");
    CHECK(b.out.frames.empty());
    CHECK(f.reg.find("api-1"));

    // Later requests are not processed.
    const outcome late = run_now(b.conn.handle(req("4", "deregister", R"({"instance_id":"api-1"})")));
    CHECK(late.action == "deregister");
    CHECK(late.code == "unavailable");
    CHECK(b.out.frames.empty());
    CHECK(f.reg.find("api-1"));
    b.conn.close();  // idempotent

    a.ask(req("5", "set_state", R"({"instance_id":"api-1","state":"running"})"));
    CHECK(b.out.frames.empty());
}

TEST_CASE("protocol: a connection destroyed with a request in flight") {
    fixture f;
    auto& a = f.connect();
    a.send(req("1", "subscribe"));
    f.st.hold();
    std::optional<started<outcome>> pending;
    pending.emplace(a.conn.handle(req("2", "register", register_params("api", "api-1"))));
    f.clients.clear();  // the connection and its outbox are gone
    f.st.release();
    REQUIRE(pending->done());
    CHECK(pending->get().code == "ok");
}

TEST_CASE("protocol: session-bound leases outlive a closed connection by the grace period") {
    fixture f;
    auto& a = f.connect();
    auto& b = f.connect();
    b.send(req("1", "subscribe", R"({"events":["lease_expired","service_deregistered"],"snapshot":false})"));
    a.ask(req("2", "register", register_params("api", "api-1", R"(,"session_bound":true,"ttl_seconds":300)")));
    a.conn.close();
    f.clk.advance(9s);
    CHECK(b.out.frames.empty());
    f.clk.advance(1s);
    auto frames = b.out.take();
    REQUIRE(frames.size() == 2);
    CHECK(frames[0] == R"({"type":"event","subscription":"s1","event":"lease_expired","revision":2,)"
                       R"("data":{"lease_id":1,"instance_id":"api-1","name":"api","reason":"session_closed"}})");
    CHECK(str(frames[1], "/event") == "service_deregistered");
    CHECK(num(frames[1], "/revision") == 2);
    CHECK(str(frames[1], "/data/reason") == "lease_expired");
}

TEST_CASE("protocol: a refused frame stops the connection's subscriptions") {
    fixture f;
    auto& a = f.connect();
    auto& b = f.connect();
    b.send(req("1", "subscribe", R"({"snapshot":false})"));
    b.send(req("2", "subscribe", R"({"snapshot":false})"));

    b.out.refuse = true;
    a.ask(req("3", "register", register_params("api", "api-1")));
    CHECK(b.out.refused == 1);  // the first event; the second subscription stopped with it
    CHECK(b.conn.subscription_count() == 0);

    a.ask(req("4", "register", register_params("api", "api-2")));
    CHECK(b.out.refused == 1);

    // The embedder closes the connection; until then requests still work.
    b.out.refuse = false;
    CHECK(str(b.ask(req("5", "list_services")), "/id") == "5");

    // A refused response too.
    b.send(req("6", "subscribe", R"({"snapshot":false})"));
    b.out.refuse = true;
    const outcome o = run_now(b.conn.handle(req("7", "list_services")));
    CHECK(o.code == "ok");
    CHECK(b.conn.subscription_count() == 0);
    // A subscription whose response is refused does not start.
    CHECK(run_now(b.conn.handle(req("8", "subscribe"))).code == "ok");
    CHECK(b.conn.subscription_count() == 0);
}

TEST_CASE("protocol: an event is encoded once for every subscriber") {
    fixture f;
    auto& a = f.connect();
    auto& b = f.connect();
    a.send(req("1", "subscribe", R"({"snapshot":false})"));
    a.send(req("2", "subscribe", R"({"snapshot":false})"));
    b.send(req("3", "subscribe", R"({"snapshot":false})"));
    auto& c = f.connect();
    c.ask(req("4", "register", register_params("api", "api-1")));

    REQUIRE(a.out.frames.size() == 2);
    REQUIRE(b.out.frames.size() == 1);
    const auto& body = b.out.frames[0].body;
    REQUIRE(body);
    CHECK(a.out.frames[0].body == body);
    CHECK(a.out.frames[1].body == body);
    strings heads{a.out.frames[0].head, a.out.frames[1].head};
    std::sort(heads.begin(), heads.end());  // subscribers are served in no particular order
    CHECK(heads == strings{R"({"type":"event","subscription":"s1",)", R"({"type":"event","subscription":"s2",)"});
    CHECK(body->starts_with(R"("event":"service_registered","revision":1,"data":{"service":{)"));
    CHECK(a.out.frames[1].size() == a.out.frames[1].text().size());
    CHECK(str(a.out.frames[1].text(), "/data/service/name") == "api");
}

TEST_CASE("protocol: handle() never throws") {
    struct throwing_outbox final : protocol::outbox {
        int calls = 0;
        bool send(protocol::frame) override {
            ++calls;
            throw std::runtime_error("socket on fire");
        }
    };
    fixture f;
    throwing_outbox out;
    protocol::loop_context loop;
    protocol::connection c(f.srv, loop, out, 99);
    outcome o;
    CHECK_NOTHROW(o = run_now(c.handle(req("1", "list_services"))));
    CHECK(o.code == "internal");
    CHECK_NOTHROW(o = run_now(c.handle("garbage")));
    CHECK(o.code == "invalid_request");
    CHECK(out.calls == 2);
}
