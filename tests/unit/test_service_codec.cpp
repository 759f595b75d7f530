// The stored service record: the protocol's service object, round trip and
// strict decoding.
#include "codec/service_record.hpp"

#include <doctest/doctest.h>

#include <chrono>
#include <cstdint>
#include <string>

using namespace registry;
using namespace std::chrono_literals;
using detail::decode_service_record;
using detail::encode_service_record;

namespace {

service_instance sample() {
    service_instance s;
    s.name = "api";
    s.instance_id = "api-1";
    s.version = "1.2.3";
    s.execution.pid = 4242;
    s.execution.command = "/opt/api-1.2.3/bin/api";
    s.endpoints.push_back(endpoint{"http", "127.0.0.1", 8080, "http"});
    s.depends_on = {"db"};
    s.metadata = {{"team", "core"}};
    s.state = service_state::running;
    s.health = health_result{health_status::healthy, "ok", time_point{1763892000000ms}};
    s.lease = lease{7, 30s, time_point{1763892030000ms}, false};
    s.registered_at = time_point{1763891990000ms};
    s.created_revision = 7;
    s.modified_revision = 9;
    return s;
}

std::string decode_error(const std::string& json) {
    auto r = decode_service_record(json);
    REQUIRE_FALSE(r.ok());
    CHECK(r.err().code == errc::invalid_request);
    return r.err().message;
}

}  // namespace

TEST_CASE("service codec: the record is the documented service object") {
    CHECK(encode_service_record(sample()) ==
          R"({"name":"api","instance_id":"api-1","version":"1.2.3",)"
          R"("execution":{"kind":"managed_process","pid":4242,"command":"/opt/api-1.2.3/bin/api"},)"
          R"("location":{"kind":"local"},)"
          R"("endpoints":[{"name":"http","address":"127.0.0.1","port":8080,"protocol":"http"}],)"
          R"("depends_on":["db"],"metadata":{"team":"core"},"state":"running",)"
          R"("health":{"status":"healthy","output":"ok","checked_at_ms":1763892000000},)"
          R"("lease":{"id":7,"ttl_seconds":30,"expires_at_ms":1763892030000,"session_bound":false},)"
          R"("registered_at_ms":1763891990000,"created_revision":7,"modified_revision":9})");
}

TEST_CASE("service codec: round trip") {
    SUBCASE("the sample") {
        auto s = sample();
        auto back = decode_service_record(encode_service_record(s));
        REQUIRE(back.ok());
        CHECK(*back == s);
    }
    SUBCASE("unicode, escapes and control characters") {
        auto s = sample();
        s.version = "";
        s.metadata = {{"owner", "J\xc3\xbcrgen \"JJ\" M\xc3\xbcller \xf0\x9f\x9a\x80"},
                      {"note", std::string("tab\there\nnew\\line\x01\x1f")},
                      {"", "empty key"}};
        s.health = health_result{health_status::critical, "exit 2:\r\n\"boom\"", time_point{1ms}};
        auto back = decode_service_record(encode_service_record(s));
        REQUIRE(back.ok());
        CHECK(*back == s);
    }
    SUBCASE("container, remote, failed, no health, session-bound") {
        auto s = sample();
        s.execution = execution_info{};
        s.execution.kind = execution_kind::container;
        s.execution.container_id = "c0ffee";
        s.execution.image = "registry.example/api:1.2.3";
        s.where = location{true, "db.example", "deploy", 2222};
        s.state = service_state::failed;
        s.failure_reason = "oom";
        s.health.reset();
        s.lease.session_bound = true;
        s.endpoints.push_back(endpoint{"grpc", "::1", 65535, "h2"});
        const std::string json = encode_service_record(s);
        CHECK(json.find(R"("failure_reason":"oom")") != std::string::npos);
        CHECK(json.find(R"("health":null)") != std::string::npos);
        auto back = decode_service_record(json);
        REQUIRE(back.ok());
        CHECK(*back == s);
    }
    SUBCASE("systemd unit, empty lists") {
        auto s = sample();
        s.execution = execution_info{};
        s.execution.kind = execution_kind::systemd_unit;
        s.execution.unit_name = "api.service";
        s.endpoints.clear();
        s.depends_on.clear();
        s.metadata.clear();
        auto back = decode_service_record(encode_service_record(s));
        REQUIRE(back.ok());
        CHECK(*back == s);
    }
}

TEST_CASE("service codec: decoding is strict and names the field") {
    const std::string good = encode_service_record(sample());
    auto replace = [&](std::string_view from, std::string_view to) {
        std::string json = good;
        const auto at = json.find(from);
        REQUIRE(at != std::string::npos);
        json.replace(at, from.size(), to);
        return json;
    };
    CHECK(decode_error("{") == "not valid JSON");
    CHECK(decode_error("[]") == "must be an object");
    CHECK(decode_error(replace(R"("name":"api",)", R"("name":"api","extra":1,)")) == "extra: unknown field");
    CHECK(decode_error(replace(R"("name":"api",)", R"("name":"api","name":"x",)")) == "name: duplicate field");
    CHECK(decode_error(replace(R"("port":8080)", R"("port":0)")) == "endpoints[0].port: must be 1-65535");
    CHECK(decode_error(replace(R"("port":8080)", R"("port":"8080")")) == "endpoints[0].port: must be 1-65535");
    CHECK(decode_error(replace(R"("id":7,)", "")) == "lease.id: is required");
    CHECK(decode_error(replace(R"("state":"running")", R"("state":"sleeping")")) ==
          "state: must be one of registered, starting, running, stopping, stopped, failed");
    CHECK(decode_error(replace(R"("pid":4242)", R"("container_id":"c")")) ==
          "execution.container_id: not allowed when kind is 'managed_process'");
    CHECK(decode_error(replace(R"("depends_on":["db"])", R"("depends_on":["db",1])")) ==
          "depends_on[1]: must be a string");
    CHECK(decode_error(replace(R"("team":"core")", R"("team":null)")) == "metadata.team: must be a string");
    CHECK(decode_error(replace(R"("session_bound":false)", R"("session_bound":0)")) ==
          "lease.session_bound: must be a boolean");
    CHECK(decode_error(replace(R"("created_revision":7)", R"("created_revision":-7)")) ==
          "created_revision: must be a non-negative integer");
    CHECK(decode_error(replace(R"({"kind":"local"})", R"({"kind":"local","host":"h"})")) ==
          "location.host: not allowed when kind is 'local'");
}

TEST_CASE("service codec: the capacity reserved for a service's text covers it, at its widest") {
    // Every optional member present, every number at its widest, for each
    // execution kind; then the sample with its strings, endpoints, metadata.
    service_instance widest;
    widest.where = location{true, "h", "u", 65535};
    widest.state = service_state::failed;
    widest.failure_reason = "f";
    widest.health = health_result{health_status::critical, "o", time_point{std::chrono::milliseconds::min()}};
    widest.lease = lease{~std::uint64_t{0}, seconds::min(), time_point{std::chrono::milliseconds::min()}, false};
    widest.registered_at = time_point{std::chrono::milliseconds::min()};
    widest.created_revision = ~std::uint64_t{0};
    widest.modified_revision = ~std::uint64_t{0};
    for (auto kind : {execution_kind::managed_process, execution_kind::container, execution_kind::systemd_unit}) {
        widest.execution = execution_info{};
        widest.execution.kind = kind;
        widest.execution.pid = ~std::uint32_t{0};
        widest.execution.command = "c";
        widest.execution.container_id = "c";
        widest.execution.image = "i";
        widest.execution.unit_name = "u";
        const std::string text = encode_service_record(widest);
        INFO(text);
        CHECK(text.size() <= detail::service_json_capacity(widest));
        // The fixed part is the widest variant's: the others get a few dozen bytes more.
        CHECK(detail::service_json_capacity(widest) - text.size() < 96);
    }
    const service_instance s = sample();
    const std::string text = encode_service_record(s);
    CHECK(text.size() <= detail::service_json_capacity(s));
    CHECK(detail::service_json_capacity(s) < 2 * text.size());
}
