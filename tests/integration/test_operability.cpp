// Operability against the real registryd: the process and build metrics, the
// deploy metrics, the info lines for registrations and lease expiries, and
// the read-only HTTP view of the registry (/v1/services).
#include "deploy_support.hpp"
#include "harness.hpp"

#include <doctest/doctest.h>

#include <ctime>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <optional>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

using it::arr;
using it::at;
using it::dump;
using it::num;
using it::str;
using namespace std::chrono_literals;
namespace fs = std::filesystem;
namespace json = it::json;
namespace dep = it::deploy;

namespace {

// The value of the one sample line `name` (with its labels, as written:
// `registryd_containers{state="running"}`); nullopt when there is none.
std::optional<double> metric(const std::string& body, std::string_view name) {
    std::istringstream in(body);
    std::string line;
    while (std::getline(in, line)) {
        if (line.size() > name.size() && line.compare(0, name.size(), name) == 0 && line[name.size()] == ' ')
            return std::stod(line.substr(name.size() + 1));
    }
    return std::nullopt;
}

bool has_family(const std::string& body, std::string_view name, std::string_view type) {
    return body.find("# TYPE " + std::string(name) + " " + std::string(type) + "\n") != std::string::npos;
}

std::string scrape(const it::registryd& d) {
    const it::http_response r = it::http_get(d.host(), d.port(), "/metrics");
    REQUIRE(r.status == 200);
    return r.body;
}

std::string stderr_of(const it::registryd& d) {
    std::ifstream in(d.dir() / "registryd.stderr", std::ios::binary);
    return {std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
}

// The daemon's log lines whose "msg" is `msg` and that contain `needle`.
std::vector<json::value> log_lines(const it::registryd& d, std::string_view msg, std::string_view needle = {}) {
    std::vector<json::value> out;
    std::istringstream in(stderr_of(d));
    std::string line;
    while (std::getline(in, line)) {
        if (line.find(needle) == std::string::npos) continue;
        if (line.find("\"msg\":\"" + std::string(msg) + "\"") == std::string::npos) continue;
        out.push_back(it::parse(line));
    }
    return out;
}

// Polls until `msg` has a line containing `needle`.
json::value wait_log_line(const it::registryd& d, std::string_view msg, std::string_view needle, it::ms timeout) {
    const auto deadline = it::steady::now() + it::scaled(timeout);
    for (;;) {
        auto lines = log_lines(d, msg, needle);
        if (!lines.empty()) return lines.front();
        if (it::steady::now() >= deadline)
            throw it::failure("no log line \"" + std::string(msg) + "\" with " + std::string(needle));
        std::this_thread::sleep_for(50ms);
    }
}

it::http_response view(const it::registryd& d, std::string_view target, std::string_view method = "GET") {
    return it::http_request(d.host(), d.port(), method, target);
}

}  // namespace

TEST_CASE("operability: /metrics has the process collector's families and registryd_build_info") {
    it::registryd d;
    IT_DIAGNOSE(d);
    const std::string before = scrape(d);
    INFO(before);
    for (const auto* counter : {"process_cpu_seconds_total"}) CHECK(has_family(before, counter, "counter"));
    for (const auto* gauge : {"process_resident_memory_bytes", "process_virtual_memory_bytes", "process_open_fds",
                              "process_max_fds", "process_start_time_seconds", "registryd_build_info"}) {
        CHECK(has_family(before, gauge, "gauge"));
    }
    CHECK(metric(before, "process_cpu_seconds_total").value_or(-1) >= 0);
    CHECK(metric(before, "process_resident_memory_bytes").value_or(0) > 1e6);
    CHECK(metric(before, "process_virtual_memory_bytes").value_or(0) >= metric(before, "process_resident_memory_bytes").value_or(0));
    CHECK(metric(before, "process_max_fds").value_or(0) >= 1024);
    const double started = metric(before, "process_start_time_seconds").value_or(0);
    const double now = static_cast<double>(std::time(nullptr));
    CHECK(started <= now + 1);
    CHECK(started >= now - 600);  // this test started it
    CHECK(before.find("\nregistryd_build_info{version=\"" REGISTRYD_VERSION "\",compiler=\"") != std::string::npos);
    CHECK(before.find("\"} 1\n", before.find("\nregistryd_build_info{")) != std::string::npos);

    // The open descriptors follow the connections.
    const double fds = metric(before, "process_open_fds").value_or(0);
    CHECK(fds >= 3);
    std::vector<it::ws_client> clients;
    for (int i = 0; i < 5; ++i) clients.emplace_back(d);
    for (auto& c : clients) c.call("list_services");  // each connection is up
    const std::string after = scrape(d);
    CHECK(metric(after, "process_open_fds").value_or(0) >= fds + 5);
    CHECK(metric(after, "process_cpu_seconds_total").value_or(-1) >= metric(before, "process_cpu_seconds_total").value_or(0));

    // Without containers and REPL, their families are left out.
    CHECK_FALSE(has_family(after, "registryd_containers", "gauge"));
    CHECK_FALSE(has_family(after, "registryd_repl_executions_total", "counter"));
}

TEST_CASE("operability: with a container manager, containers by state and reaps are on /metrics") {
    // accept_registered_engines makes a manager without any configured engine.
    it::registryd d("containers:\n  accept_registered_engines: true\n");
    IT_DIAGNOSE(d);
    const std::string body = scrape(d);
    INFO(body);
    CHECK(has_family(body, "registryd_containers", "gauge"));
    for (const auto* state : {"created", "running", "exited", "removed", "lost"}) {
        CHECK(metric(body, "registryd_containers{state=\"" + std::string(state) + "\"}") == 0);
    }
    CHECK(metric(body, "registryd_container_reaps_total") == 0);
    CHECK(metric(body, "registryd_container_reap_failures_total") == 0);
}

TEST_CASE("operability: registrations and lease expiries are logged at info, keepalives are not") {
    it::registryd d;
    IT_DIAGNOSE(d);
    it::ws_client c(d);
    const json::value granted = c.call("register", it::registration(it::service("api", "api-1"), 30));
    const std::int64_t lease = num(granted, "/lease_id");
    for (int i = 0; i < 3; ++i) c.call("keepalive", it::parse_object("{\"lease_id\": " + std::to_string(lease) + "}"));
    json::object again = it::registration(it::service("api", "api-1"), 30);
    again["lease_id"] = lease;
    CHECK_FALSE(it::boolean(c.call("register", std::move(again)), "/created"));  // a re-registration: no new instance

    const json::value registered = wait_log_line(d, "service registered", "\"instance_id\":\"api-1\"", 5s);
    CHECK(str(registered, "/level") == "info");
    CHECK(str(registered, "/service") == "api");
    CHECK(num(registered, "/revision") >= 1);

    // A lease that runs out.
    c.call("register", it::registration(it::service("short", "short-1"), 1));
    const json::value expired = wait_log_line(d, "lease expired", "\"instance_id\":\"short-1\"", 10s);
    CHECK(str(expired, "/level") == "info");
    CHECK(str(expired, "/service") == "short");

    CHECK(log_lines(d, "service registered", "\"instance_id\":\"api-1\"").size() == 1);
    CHECK(log_lines(d, "service registered", "\"instance_id\":\"short-1\"").size() == 1);
    CHECK(log_lines(d, "lease expired", "\"instance_id\":\"api-1\"").empty());

    // A long name is clipped: a line stays bounded whatever a client sends.
    const std::string long_name(1000, 'n');
    const json::value r = c.request("register", it::registration(it::service(long_name, "long-1"), 30));
    if (it::error_code(r).empty()) {
        const json::value line = wait_log_line(d, "service registered", "\"instance_id\":\"long-1\"", 5s);
        CHECK(str(line, "/service").size() <= 256);
    }
}

TEST_CASE("operability: GET /v1/services and /v1/services/NAME answer the protocol's service objects") {
    it::registryd d("listings:\n  max_page_items: 2\n");
    IT_DIAGNOSE(d);
    it::ws_client c(d);
    c.call("register", it::registration(it::service("api", "api-1"), 30));
    c.call("register", it::registration(it::service("api", "api-2"), 30));
    c.call("register", it::registration(it::service("db", "db-1"), 30));
    c.call("set_state", it::parse_object(R"({"instance_id": "api-2", "state": "running"})"));

    SUBCASE("a page is capped at listings.max_page_items and says how to go on") {
        const it::http_response first = view(d, "/v1/services");
        INFO(first.body);
        CHECK(first.status == 200);
        CHECK(first.content_type == "application/json");
        const json::value page = it::parse(first.body);
        CHECK(num(page, "/limit") == 2);
        REQUIRE(arr(page, "/services").size() == 2);
        CHECK(str(page, "/services/0/instance_id") == "api-1");
        CHECK(str(page, "/services/1/instance_id") == "api-2");
        CHECK(str(page, "/after") == "api-2");
        CHECK(num(page, "/remaining") == 1);

        // The same objects as the WebSocket's list_services.
        const json::value listed = c.call("list_services");
        CHECK(dump(at(page, "/services/0")) == dump(at(listed, "/services/0")));
        CHECK(dump(at(page, "/services/1")) == dump(at(listed, "/services/1")));
        CHECK(num(page, "/revision") == num(listed, "/revision"));

        const json::value second = it::parse(view(d, "/v1/services?after=api-2").body);
        REQUIRE(arr(second, "/services").size() == 1);
        CHECK(str(second, "/services/0/instance_id") == "db-1");
        CHECK_FALSE(it::has(second, "/after"));
        CHECK_FALSE(it::has(second, "/remaining"));

        // A larger limit than the cap is the cap.
        CHECK(num(it::parse(view(d, "/v1/services?limit=500").body), "/limit") == 2);
        const json::value one = it::parse(view(d, "/v1/services?limit=1").body);
        CHECK(arr(one, "/services").size() == 1);
        CHECK(num(one, "/remaining") == 2);
    }

    SUBCASE("filters by name and state") {
        const json::value apis = it::parse(view(d, "/v1/services?name=api").body);
        CHECK(arr(apis, "/services").size() == 2);
        const json::value running = it::parse(view(d, "/v1/services?state=running").body);
        REQUIRE(arr(running, "/services").size() == 1);
        CHECK(str(running, "/services/0/instance_id") == "api-2");
        const json::value none = it::parse(view(d, "/v1/services?name=db&state=running").body);
        CHECK(arr(none, "/services").empty());
    }

    SUBCASE("one name's instances, and 404 when it has none") {
        const it::http_response r = view(d, "/v1/services/api");
        INFO(r.body);
        CHECK(r.status == 200);
        const json::value page = it::parse(r.body);
        CHECK(str(page, "/name") == "api");
        CHECK(arr(page, "/services").size() == 2);
        const json::value got = c.call("get_service", it::parse_object(R"({"name": "api"})"));
        CHECK(dump(at(page, "/services")) == dump(at(got, "/services")));
        CHECK(arr(it::parse(view(d, "/v1/services/api?state=registered").body), "/services").size() == 1);

        const it::http_response missing = view(d, "/v1/services/nope");
        INFO(missing.body);
        CHECK(missing.status == 404);
        CHECK(missing.content_type == "application/json");
        const json::value err = it::parse(missing.body);
        CHECK(str(err, "/code") == "not_found");
        CHECK(str(err, "/message") == "no instance of service 'nope'");
    }

    SUBCASE("read-only: any other method gets 405 with Allow") {
        for (const auto* method : {"POST", "PUT", "DELETE", "PATCH"}) {
            for (const auto* target : {"/v1/services", "/v1/services/api"}) {
                const it::http_response r = view(d, target, method);
                INFO(method, " ", target, ": ", r.body);
                CHECK(r.status == 405);
                CHECK(r.allow == "GET");
                CHECK(str(it::parse(r.body), "/code") == "invalid_request");
            }
        }
        const json::value listed = c.call("list_services");  // nothing changed (a page of 2, then 1)
        CHECK(arr(listed, "/services").size() == 2);
        CHECK(num(listed, "/remaining") == 1);
    }

    SUBCASE("a bad query parameter gets 400 with a JSON error") {
        for (const auto& [target, message] : std::vector<std::pair<std::string, std::string>>{
                 {"/v1/services?state=bogus", "query parameter 'state': no state 'bogus'"},
                 {"/v1/services?colour=red", "unknown query parameter 'colour' (name, state, limit, after)"},
                 {"/v1/services?limit=0", "query parameter 'limit': a positive integer is required"},
                 {"/v1/services?limit=x", "query parameter 'limit': a positive integer is required"},
                 {"/v1/services?name=a&name=b", "query parameter 'name' given twice"},
                 {"/v1/services?name=%zz", "query parameter 'name': bad percent-encoding"},
                 {"/v1/services?name=", "query parameter 'name': empty value"},
                 {"/v1/services/api?name=api", "unknown query parameter 'name' (state, limit, after)"},
             }) {
            const it::http_response r = view(d, target);
            INFO(target, ": ", r.body);
            CHECK(r.status == 400);
            CHECK(r.content_type == "application/json");
            const json::value err = it::parse(r.body);
            CHECK(str(err, "/code") == "invalid_request");
            CHECK(str(err, "/message") == message);
        }
        // Percent-encoded names are decoded.
        CHECK(arr(it::parse(view(d, "/v1/services?name=%61pi").body), "/services").size() == 2);
    }
}

namespace {

struct deploy_fixture {
    deploy_fixture()
        : d{"deploy:\n" + dep::run_as_yaml(work.path()) +
            "  prefix: " + (work.path() / "opt").string() + "\n  package_dirs: [" + work.path().string() +
            "]\n  script_timeout_seconds: 20\n"} {}
    ~deploy_fixture() { dep::kill_package_servers(prefix); }

    it::temp_dir work{"registryd-ops"};
    fs::path prefix = work.path() / "opt";
    it::registryd d;
    it::ws_client client{d};

    json::value deploy(const dep::package_options& o) {
        const fs::path archive = dep::build_package(work.path(), o);
        const std::string id =
            client.send_request("deploy_package", json::object{{"path", archive.string()}, {"target", "local"}});
        return client.wait_response(id, it::scaled(60s));
    }
};

}  // namespace

TEST_CASE("operability: deploys are counted by outcome, rollbacks apart") {
    deploy_fixture f;
    IT_DIAGNOSE(f.d);
    const std::string start = scrape(f.d);
    CHECK(has_family(start, "registryd_deploys_total", "counter"));
    CHECK(metric(start, "registryd_deploy_rollbacks_total") == 0);

    const std::uint16_t port = dep::free_port();
    dep::package_options missing;
    missing.port = port;
    missing.commands = {"python3", "registry-no-such-command"};
    CHECK(it::error_code(f.deploy(missing)) == "requirement_not_met");

    dep::package_options good;
    good.port = port;
    REQUIRE(it::error_code(f.deploy(good)).empty());

    dep::package_options sick = good;
    sick.version = "2.0.0";
    sick.healthy = false;
    sick.deadline = "1500ms";
    CHECK(it::error_code(f.deploy(sick)) == "deployment_failed");

    const std::string body = scrape(f.d);
    INFO(body);
    CHECK(metric(body, "registryd_deploys_total{operation=\"deploy\",outcome=\"failed\"}") == 1);
    CHECK(metric(body, "registryd_deploys_total{operation=\"deploy\",outcome=\"succeeded\"}") == 1);
    CHECK(metric(body, "registryd_deploys_total{operation=\"deploy\",outcome=\"rolled_back\"}") == 1);
    CHECK(metric(body, "registryd_deploy_rollbacks_total") == 1);
}
