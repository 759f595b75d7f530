// What an operator sees during a rollout, on the real registryd with the local
// target: the health gate's first checks come soon after start.sh,
// subscribers get deployment_* events and the instance's state follows the
// new version through its gate and a rollback, and deploys, rollbacks and
// undeploys are logged at info level.
#include "deploy_support.hpp"

#include <doctest/doctest.h>

#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

using it::dump;
using it::num;
using it::str;
using namespace std::chrono_literals;
namespace fs = std::filesystem;
namespace json = it::json;
namespace dep = it::deploy;

namespace {

struct rollout_fixture {
    it::temp_dir work{"registryd-rollout"};
    fs::path prefix = work.path() / "opt";
    it::registryd d{"deploy:\n" + dep::run_as_yaml(work.path()) +
                    "  prefix: " + (work.path() / "opt").string() + "\n  package_dirs: [" + work.path().string() +
                    "]\n  script_timeout_seconds: 20\n"};
    it::ws_client client{d};

    ~rollout_fixture() { dep::kill_package_servers(prefix); }

    json::value deploy(const fs::path& archive, std::string& id) {
        id = client.send_request("deploy_package", json::object{{"path", archive.string()}, {"target", "local"}});
        return client.wait_response(id, it::scaled(120s));
    }
};

// Every non-bookmark event buffered on `c` (waiting up to `wait` for the first).
std::vector<json::value> drain(it::ws_client& c, it::ms wait = it::ms(0)) {
    std::vector<json::value> out;
    for (auto ev = c.next_event(wait); ev; ev = c.next_event(it::ms(0))) out.push_back(*ev);
    return out;
}

// "deployment_stage:installing", "service_state_changed:starting", ... in order.
std::vector<std::string> course_of(const std::vector<json::value>& events) {
    std::vector<std::string> out;
    for (const auto& e : events) {
        const std::string type = str(e, "/event");
        if (type == "deployment_stage") {
            out.push_back(type + ":" + str(e, "/data/stage"));
        } else if (type == "service_state_changed") {
            out.push_back(type + ":" + str(e, "/data/state"));
        } else if (type.rfind("deployment_", 0) == 0) {
            out.push_back(type);
        }
    }
    return out;
}

std::string joined(const std::vector<std::string>& v) {
    std::string s;
    for (const auto& x : v) s += (s.empty() ? "" : ",") + x;
    return s;
}

const json::value* find_event(const std::vector<json::value>& events, std::string_view type) {
    for (const auto& e : events) {
        if (str(e, "/event") == type) return &e;
    }
    return nullptr;
}

// registryd's log lines (JSON) whose "msg" is `msg`.
std::vector<json::value> log_lines(const it::registryd& d, std::string_view msg) {
    std::ifstream in(d.dir() / "registryd.stderr");
    std::vector<json::value> out;
    for (std::string line; std::getline(in, line);) {
        if (line.empty() || line.front() != '{') continue;
        json::value v = it::parse(line);
        if (it::has(v, "/msg") && str(v, "/msg") == msg) out.push_back(std::move(v));
    }
    return out;
}

}  // namespace

TEST_CASE("deploy: the health gate checks again soon after start.sh, not a whole interval later") {
    rollout_fixture f;
    IT_DIAGNOSE(f.d);
    dep::package_options o;
    o.port = dep::free_port();
    o.interval = "20s";  // a gate that waited an interval between checks would take 40 s
    o.deadline = "60s";
    o.failing_checks = 2;
    const fs::path v1 = dep::build_package(f.work.path(), o);
    std::string id;
    const auto began = it::steady::now();
    const json::value r = f.deploy(v1, id);
    const auto took = std::chrono::duration_cast<it::ms>(it::steady::now() - began);
    INFO(dump(r));
    REQUIRE(it::error_code(r).empty());
    std::vector<std::int64_t> gate;
    for (const auto& e : dep::progress_events(f.client, id)) {
        if (str(e, "/data/stage") == "health_gating" && it::has(e, "/data/exit_code")) gate.push_back(num(e, "/data/exit_code"));
    }
    CHECK(gate == std::vector<std::int64_t>{2, 2, 0});
    // Backoff 100 ms, then 200 ms: far below one interval even on a loaded machine.
    CHECK(took < it::ms(15000));
    const json::value got = f.client.call("get_service", it::parse_object(R"({"instance_id": "static-site.local"})"));
    CHECK(str(got, "/service/state") == "running");
    CHECK(str(got, "/service/health/status") == "healthy");
}

TEST_CASE("deploy: subscribers see deployment events, the instance is starting during the gate, failed when it fails, then rolled back") {
    rollout_fixture f;
    IT_DIAGNOSE(f.d);
    const std::uint16_t port = dep::free_port();
    it::ws_client watcher(f.d);
    watcher.call("subscribe", it::parse_object(R"({"services": ["static-site"], "snapshot": false})"));
    it::ws_client deploy_only(f.d);
    deploy_only.call("subscribe", it::parse_object(
        R"({"events": ["deployment_started", "deployment_succeeded", "deployment_failed", "deployment_rolled_back"], "snapshot": false})"));
    it::ws_client other_service(f.d);
    other_service.call("subscribe", it::parse_object(R"({"services": ["not-static-site"], "snapshot": false})"));

    // --- a first deploy: started, the stages, succeeded
    dep::package_options o;
    o.port = port;
    const fs::path v1 = dep::build_package(f.work.path(), o);
    std::string id1;
    json::value r = f.deploy(v1, id1);
    INFO(dump(r));
    REQUIRE(it::error_code(r).empty());
    watcher.pump(it::ms(300));
    auto events = drain(watcher);
    std::string course = joined(course_of(events));
    INFO(course);
    CHECK(course.rfind("deployment_started,deployment_stage:checking_requirements,deployment_stage:installing,"
                       "deployment_stage:starting,deployment_stage:health_gating,", 0) == 0);
    CHECK(course.find("deployment_succeeded") != std::string::npos);
    const json::value* started = find_event(events, "deployment_started");
    REQUIRE(started);
    CHECK(str(*started, "/data/instance_id") == "static-site.local");
    CHECK(str(*started, "/data/package") == "static-site");
    CHECK(str(*started, "/data/target") == "local");
    CHECK(it::at(*started, "/data/from_version").is_null());
    CHECK(str(*started, "/data/to_version") == "1.0.0");
    CHECK(str(*started, "/data/requested_by/request_id") == id1);
    CHECK(num(*started, "/revision") > 0);
    const json::value* succeeded = find_event(events, "deployment_succeeded");
    REQUIRE(succeeded);
    CHECK(str(*succeeded, "/data/to_version") == "1.0.0");
    CHECK(str(*succeeded, "/data/message") == "version 1.0.0 is running");

    // --- an upgrade that never gets healthy: the state goes through the gate
    // to failed, then back to running on the old version; rolled_back says so.
    o.version = "2.0.0";
    o.healthy = false;
    o.deadline = "1500ms";
    const fs::path v2 = dep::build_package(f.work.path(), o);
    std::string id2;
    r = f.deploy(v2, id2);
    CHECK(it::error_code(r) == "deployment_failed");
    watcher.pump(it::ms(300));
    events = drain(watcher);
    course = joined(course_of(events));
    INFO(course);
    CHECK(course.rfind("deployment_started,deployment_stage:checking_requirements,deployment_stage:installing,"
                       "deployment_stage:starting,service_state_changed:stopping,service_state_changed:stopped,"
                       "service_state_changed:starting,deployment_stage:health_gating,service_state_changed:failed,"
                       "service_state_changed:starting,service_state_changed:running,deployment_rolled_back", 0) == 0);
    started = find_event(events, "deployment_started");
    REQUIRE(started);
    CHECK(str(*started, "/data/from_version") == "1.0.0");
    CHECK(str(*started, "/data/to_version") == "2.0.0");
    CHECK(str(*started, "/data/requested_by/request_id") == id2);
    for (const auto& e : events) {
        if (str(e, "/event") == "service_state_changed" && str(e, "/data/state") == "failed") {
            CHECK(str(e, "/data/reason").rfind("health check did not pass within 1.5s: database unreachable", 0) == 0);
        }
    }
    const json::value* rolled = find_event(events, "deployment_rolled_back");
    REQUIRE(rolled);
    CHECK(str(*rolled, "/data/from_version") == "1.0.0");
    CHECK(str(*rolled, "/data/to_version") == "2.0.0");
    CHECK(it::boolean(*rolled, "/data/healthy"));
    CHECK(str(*rolled, "/data/error/code") == "deployment_failed");
    CHECK(str(*rolled, "/data/error/message") == it::error_message(r));
    const json::value got = f.client.call("get_service", it::parse_object(R"({"instance_id": "static-site.local"})"));
    CHECK(str(got, "/service/state") == "running");
    CHECK(str(got, "/service/version") == "1.0.0");

    // --- the type filter and the service filter apply to deployment events
    deploy_only.pump(it::ms(100));
    CHECK(joined(course_of(drain(deploy_only))) ==
          "deployment_started,deployment_succeeded,deployment_started,deployment_rolled_back");
    other_service.pump(it::ms(100));
    CHECK(drain(other_service).empty());

    // --- a deploy that fails with nothing to roll back to: deployment_failed
    // with the stage it failed in.
    f.client.call("undeploy", it::parse_object(R"({"instance_id": "static-site.local"})"), it::scaled(30s));
    watcher.pump(it::ms(100));
    (void)drain(watcher);
    o.version = "3.0.0";
    o.deadline = "500ms";
    const fs::path v3 = dep::build_package(f.work.path(), o);
    std::string id3;
    r = f.deploy(v3, id3);
    CHECK(it::error_code(r) == "deployment_failed");
    watcher.pump(it::ms(300));
    events = drain(watcher);
    const json::value* failed = find_event(events, "deployment_failed");
    REQUIRE(failed);
    CHECK(str(*failed, "/data/stage") == "health_gating");
    CHECK(it::at(*failed, "/data/from_version").is_null());
    CHECK(str(*failed, "/data/to_version") == "3.0.0");
    CHECK(str(*failed, "/data/error/code") == "deployment_failed");
    CHECK(str(*failed, "/data/requested_by/request_id") == id3);
}

TEST_CASE("deploy: deploys, rollbacks and undeploys are logged at info level with package, version, target and outcome") {
    rollout_fixture f;
    IT_DIAGNOSE(f.d);
    dep::package_options o;
    o.port = dep::free_port();
    const fs::path v1 = dep::build_package(f.work.path(), o);
    std::string id;
    REQUIRE(it::error_code(f.deploy(v1, id)).empty());
    o.version = "2.0.0";
    o.healthy = false;
    o.deadline = "500ms";
    const fs::path v2 = dep::build_package(f.work.path(), o);
    CHECK(it::error_code(f.deploy(v2, id)) == "deployment_failed");
    f.client.call("undeploy", it::parse_object(R"({"instance_id": "static-site.local"})"), it::scaled(30s));

    const auto deploys = log_lines(f.d, "deploy");
    REQUIRE(deploys.size() == 2);
    CHECK(str(deploys[0], "/level") == "info");
    CHECK(str(deploys[0], "/outcome") == "succeeded");
    CHECK(str(deploys[0], "/package") == "static-site");
    CHECK(str(deploys[0], "/version") == "1.0.0");
    CHECK(str(deploys[0], "/target") == "local");
    CHECK(str(deploys[0], "/instance_id") == "static-site.local");
    CHECK(str(deploys[1], "/level") == "info");
    CHECK(str(deploys[1], "/outcome") == "rolled_back");
    CHECK(str(deploys[1], "/version") == "2.0.0");
    CHECK(str(deploys[1], "/from_version") == "1.0.0");
    CHECK(str(deploys[1], "/code") == "deployment_failed");
    CHECK(str(deploys[1], "/message").find("rolled back to") != std::string::npos);
    const auto undeploys = log_lines(f.d, "undeploy");
    REQUIRE(undeploys.size() == 1);
    CHECK(str(undeploys[0], "/level") == "info");
    CHECK(str(undeploys[0], "/outcome") == "succeeded");
    CHECK(str(undeploys[0], "/package") == "static-site");
    CHECK(str(undeploys[0], "/version") == "1.0.0");
    CHECK(str(undeploys[0], "/target") == "local");
}
