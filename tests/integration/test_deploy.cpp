// Package deployment on the local target, against the real registryd: the
// example package (packages/static-site, python3 -m http.server) packed by
// registry-pack and installed under a temp prefix.
#include "deploy_support.hpp"

#include <doctest/doctest.h>

#include <sys/stat.h>

#include <algorithm>
#include <cstdlib>
#include <filesystem>
#include <string>
#include <fstream>
#include <vector>

using it::arr;
using it::dump;
using it::num;
using it::str;
using namespace std::chrono_literals;
namespace fs = std::filesystem;
namespace json = it::json;
namespace dep = it::deploy;

namespace {

// A registryd whose local target installs under work/opt.
struct deploy_fixture {
    explicit deploy_fixture(const std::string& more_deploy_config = {})
        : d{"deploy:\n" + dep::run_as_yaml(work.path()) +
            "  prefix: " + (work.path() / "opt").string() + "\n  package_dirs: [" + work.path().string() +
            "]\n  script_timeout_seconds: 20\n" + more_deploy_config} {}

    it::temp_dir work{"registryd-deploy"};
    fs::path prefix = work.path() / "opt";
    it::registryd d;
    it::ws_client client{d};

    ~deploy_fixture() { dep::kill_package_servers(prefix); }

    json::value deploy(const fs::path& archive, std::string& id, json::object extra = {}) {
        json::object params{{"path", archive.string()}, {"target", "local"}};
        for (auto& [k, v] : extra) params[k] = v;
        id = client.send_request("deploy_package", std::move(params));
        return client.wait_response(id, it::scaled(60s));
    }
};

dep::package_options options(std::string version, std::uint16_t port) {
    dep::package_options o;
    o.version = std::move(version);
    o.port = port;
    return o;
}

std::string joined(const std::vector<std::string>& v) {
    std::string s;
    for (const auto& x : v) s += (s.empty() ? "" : ",") + x;
    return s;
}

bool contains(const std::vector<std::string>& v, std::string_view s) { return std::find(v.begin(), v.end(), s) != v.end(); }

}  // namespace

TEST_CASE("deploy: a local deploy is registered, healthy and reachable, a redeploy switches, then stop, start and undeploy") {
    deploy_fixture f;
    IT_DIAGNOSE(f.d);
    const std::uint16_t port = dep::free_port();
    it::ws_client watcher(f.d);
    watcher.call("subscribe", it::parse_object(R"({"services": ["static-site"], "events": ["health_check_result"], "snapshot": false})"));

    // --- version 1.0.0
    const fs::path v1 = dep::build_package(f.work.path(), options("1.0.0", port));
    std::string id;
    const json::value r1 = f.deploy(v1, id);
    INFO(dump(r1));
    REQUIRE(it::error_code(r1).empty());
    CHECK(str(r1, "/data/instance_id") == "static-site.local");
    CHECK(str(r1, "/data/version") == "1.0.0");
    CHECK(str(r1, "/data/install_dir") == (f.prefix / "static-site-1.0.0").string());
    CHECK(it::at(r1, "/data/previous_version").is_null());
    const auto events1 = dep::progress_events(f.client, id);
    const auto stages1 = dep::stages(events1);
    INFO(joined(stages1));
    CHECK(stages1 == std::vector<std::string>{"validating", "checking_requirements", "installing", "starting",
                                              "health_gating", "done"});
    const bool start_output_captured = std::any_of(events1.begin(), events1.end(), [](const json::value& e) {
        return str(e, "/data/message") == "start.sh" && it::has(e, "/data/output") &&
               str(e, "/data/output").find("http.server on 127.0.0.1") != std::string::npos;
    });
    CHECK(start_output_captured);

    CHECK(fs::read_symlink(f.prefix / "static-site" / "current") == f.prefix / "static-site-1.0.0");
    CHECK(dep::fetch_index(port) == "static-site 1.0.0\n");
    // The service inherited none of registryd's descriptors: it shares no
    // socket with registryd (its listener and its clients' connections).
    CHECK(dep::shared_sockets(f.prefix / "static-site-1.0.0", f.d.pid()) == 0);
    {
        const json::value got = f.client.call("get_service", it::parse_object(R"({"instance_id": "static-site.local"})"));
        INFO(dump(got));
        CHECK(str(got, "/service/state") == "running");
        CHECK(str(got, "/service/version") == "1.0.0");
        CHECK(str(got, "/service/health/status") == "healthy");
        CHECK(str(got, "/service/execution/kind") == "managed_process");
        CHECK(str(got, "/service/location/kind") == "local");
        CHECK(num(got, "/service/endpoints/0/port") == port);
        CHECK(str(got, "/service/endpoints/0/address") == "127.0.0.1");
        CHECK(str(got, "/service/endpoints/0/protocol") == "http");
    }
    // The health script is the instance's check of kind script; the gate's
    // verdict its first result.
    {
        const json::value ev = watcher.expect_event("health_check_result", it::scaled(5s));
        INFO(dump(ev));
        CHECK(str(ev, "/data/check/name") == "health.sh");
        CHECK(str(ev, "/data/check/kind") == "script");
        CHECK(str(ev, "/data/check/status") == "healthy");
        CHECK(str(ev, "/data/health/status") == "healthy");
        CHECK(str(ev, "/data/health/output") == "health.sh: ok");
    }

    // --- version 1.1.0 replaces it
    const fs::path v2 = dep::build_package(f.work.path(), options("1.1.0", port));
    const json::value r2 = f.deploy(v2, id);
    INFO(dump(r2));
    REQUIRE(it::error_code(r2).empty());
    CHECK(str(r2, "/data/previous_version") == "1.0.0");
    CHECK(fs::read_symlink(f.prefix / "static-site" / "current") == f.prefix / "static-site-1.1.0");
    CHECK(fs::is_directory(f.prefix / "static-site-1.0.0"));  // kept
    CHECK(dep::fetch_index(port) == "static-site 1.1.0\n");
    CHECK(str(f.client.call("get_service", it::parse_object(R"({"instance_id": "static-site.local"})")),
              "/service/version") == "1.1.0");

    // --- service_action stop / start
    {
        const json::value stopped = f.client.call("service_action",
                                                  it::parse_object(R"({"instance_id": "static-site.local", "action": "stop"})"),
                                                  it::scaled(30s));
        CHECK(str(stopped, "/service/state") == "stopped");
        CHECK(dep::fetch_index(port).empty());
        const json::value started = f.client.call(
            "service_action", it::parse_object(R"({"instance_id": "static-site.local", "action": "start"})"), it::scaled(30s));
        CHECK(str(started, "/service/state") == "running");
        CHECK(dep::fetch_index(port) == "static-site 1.1.0\n");
    }

    // --- undeploy
    {
        const json::value gone = f.client.call("undeploy", it::parse_object(R"({"instance_id": "static-site.local"})"),
                                               it::scaled(30s));
        CHECK(str(gone, "/instance_id") == "static-site.local");
        CHECK(it::error_code(f.client.request("get_service", it::parse_object(R"({"instance_id": "static-site.local"})"))) ==
              "not_found");
        CHECK(dep::fetch_index(port).empty());
        CHECK_FALSE(fs::exists(f.prefix / "static-site-1.0.0"));
        CHECK_FALSE(fs::exists(f.prefix / "static-site-1.1.0"));
        CHECK_FALSE(fs::exists(f.prefix / "static-site"));
    }
}

TEST_CASE("deploy: a version whose health check fails is rolled back to the previous one") {
    deploy_fixture f;
    IT_DIAGNOSE(f.d);
    const std::uint16_t port = dep::free_port();
    std::string id;
    REQUIRE(it::error_code(f.deploy(dep::build_package(f.work.path(), options("1.0.0", port)), id)).empty());

    dep::package_options sick_options = options("2.0.0", port);
    sick_options.healthy = false;
    sick_options.deadline = "1500ms";
    const fs::path sick = dep::build_package(f.work.path(), sick_options);
    const json::value r = f.deploy(sick, id);
    INFO(dump(r));
    CHECK(it::error_code(r) == "deployment_failed");
    CHECK(it::error_message(r).find("health check did not pass within 1.5s: database unreachable") != std::string::npos);
    CHECK(it::error_message(r).find("rolled back to " + (f.prefix / "static-site-1.0.0").string()) != std::string::npos);
    const auto events = dep::progress_events(f.client, id);
    const auto st = dep::stages(events);
    INFO(joined(st));
    CHECK(st.back() == "rolled_back");
    CHECK(contains(st, "health_gating"));
    CHECK_FALSE(contains(st, "done"));
    const bool health_output_reported = std::any_of(events.begin(), events.end(), [](const json::value& e) {
        return str(e, "/data/stage") == "health_gating" && it::has(e, "/data/output") &&
               str(e, "/data/output") == "database unreachable";
    });
    CHECK(health_output_reported);

    CHECK(fs::read_symlink(f.prefix / "static-site" / "current") == f.prefix / "static-site-1.0.0");
    CHECK(dep::fetch_index(port) == "static-site 1.0.0\n");
    // The service inherited none of registryd's descriptors: it shares no
    // socket with registryd (its listener and its clients' connections).
    CHECK(dep::shared_sockets(f.prefix / "static-site-1.0.0", f.d.pid()) == 0);
    const json::value got = f.client.call("get_service", it::parse_object(R"({"instance_id": "static-site.local"})"));
    CHECK(str(got, "/service/version") == "1.0.0");
    CHECK(str(got, "/service/state") == "running");
}

TEST_CASE("deploy: missing requirements are refused before anything is installed") {
    deploy_fixture f;
    IT_DIAGNOSE(f.d);
    const std::uint16_t port = dep::free_port();
    std::string id;
    dep::package_options o = options("1.0.0", port);
    o.commands = {"python3", "registry-no-such-command"};
    o.libraries = {"libc.so.6", "libregistry-missing.so.9"};
    o.depends_on = {"postgres"};
    const fs::path archive = dep::build_package(f.work.path(), o);
    const json::value r = f.deploy(archive, id);
    INFO(dump(r));
    CHECK(it::error_code(r) == "requirement_not_met");
    const std::string message = it::error_message(r);
    CHECK(message.find("depends_on: service 'postgres' is not registered") != std::string::npos);
    CHECK(message.find("requires.commands: 'registry-no-such-command' not found") != std::string::npos);
    CHECK(message.find("requires.libraries: 'libregistry-missing.so.9' not found") != std::string::npos);
    CHECK(message.find("python3") == std::string::npos);
    CHECK(message.find("libc.so.6") == std::string::npos);
    const auto st = dep::stages(dep::progress_events(f.client, id));
    CHECK(st == std::vector<std::string>{"validating", "checking_requirements", "failed"});
    CHECK_FALSE(fs::exists(f.prefix));  // nothing installed, not even the prefix
    CHECK(it::error_code(f.client.request("get_service", it::parse_object(R"({"name": "static-site"})"))) == "not_found");
}

TEST_CASE("deploy: a hostile archive and bad requests get specific errors") {
    deploy_fixture f;
    IT_DIAGNOSE(f.d);
    std::string id;
    // A package whose manifest disagrees with the request.
    const fs::path archive = dep::build_package(f.work.path(), options("1.0.0", dep::free_port()));
    json::value r = f.deploy(archive, id, json::object{{"version", "9.9.9"}});
    CHECK(it::error_code(r) == "invalid_package");
    CHECK(it::error_message(r) == "the manifest has version '1.0.0', not '9.9.9'");
    // Not an archive at all.
    const fs::path junk = f.work.path() / "junk.tar.gz";
    { std::ofstream(junk) << "junk"; }
    r = f.deploy(junk, id);
    CHECK(it::error_code(r) == "invalid_package");
    CHECK(it::error_message(r).find("not a readable tar.gz archive") == 0);
    CHECK_FALSE(fs::exists(f.prefix));
    // Unknown target, relative path, bad action.
    r = f.deploy(archive, id, json::object{{"target", "nowhere"}});
    CHECK(it::error_code(r) == "not_found");
    CHECK(it::error_message(r) == "no deploy target 'nowhere'");
    r = f.client.request("deploy_package", it::parse_object(R"({"path": "relative.tar.gz"})"));
    CHECK(it::error_code(r) == "invalid_request");
    CHECK(it::error_message(r) == "params.path: must be an absolute path");
    r = f.client.request("service_action", it::parse_object(R"({"instance_id": "x", "action": "reload"})"));
    CHECK(it::error_message(r) == "params.action: must be one of start, stop, restart");
    r = f.client.request("undeploy", it::parse_object(R"({"instance_id": "nothing.local"})"));
    CHECK(it::error_code(r) == "not_found");
}

// Issue 16 #1: a GNU sparse member (a few hundred bytes in the archive) is
// not let through to be written out in full under the install root.
TEST_CASE("deploy: a package with sparse files is refused, nothing is installed") {
    deploy_fixture f{"  max_package_bytes: 1MiB\n"};
    IT_DIAGNOSE(f.d);
    dep::build_package(f.work.path(), options("1.0.0", dep::free_port()));
    const fs::path src = f.work.path() / "src-static-site-1.0.0";
    fs::create_directories(src / "data");
    // Three files of 900 KiB, all hole: each under the cap, 2.7 MiB together.
    for (int i = 0; i < 3; ++i) {
        const fs::path hole = src / "data" / ("hole" + std::to_string(i));
        { std::ofstream out(hole); }
        fs::resize_file(hole, 900 << 10);
    }
    const fs::path archive = f.work.path() / "static-site-1.0.0.tar.gz";
    const std::string tar = "tar --sparse --format=gnu -czf '" + archive.string() + "' -C '" + src.string() + "' . 2>&1";
    REQUIRE(std::system(tar.c_str()) == 0);
    REQUIRE(fs::file_size(archive) < 64 * 1024);
    std::string id;
    const json::value r = f.deploy(archive, id);
    INFO(dump(r));
    CHECK(it::error_code(r) == "invalid_package");
    CHECK(it::error_message(r).find("sparse files are not allowed") != std::string::npos);
    CHECK_FALSE(fs::exists(f.prefix / "static-site-1.0.0"));
    CHECK(it::error_code(f.client.request("get_service", it::parse_object(R"({"instance_id": "static-site.local"})"))) ==
          "not_found");
}

// Issue 16 #11: a FIFO in a package directory does not hang the deploy.
TEST_CASE("deploy: a FIFO named as the package is refused at once, and registryd still stops promptly") {
    deploy_fixture f;
    IT_DIAGNOSE(f.d);
    const fs::path fifo = f.work.path() / "static-site-1.0.0.tar.gz";
    REQUIRE(::mkfifo(fifo.c_str(), 0644) == 0);
    const std::string id = f.client.send_request("deploy_package", json::object{{"path", fifo.string()}});
    const json::value r = f.client.wait_response(id, it::scaled(10s));
    INFO(dump(r));
    CHECK(it::error_code(r) == "invalid_package");
    CHECK(it::error_message(r) == fifo.string() + " is not a regular file (a FIFO)");
    const it::exit_status exit = f.d.terminate(it::scaled(10s));
    CHECK_MESSAGE(exit.clean(), exit.describe());
}

// Issue 16 #4: a stop.sh that fails is the caller's error, and the files and
// the registration stay until the service is stopped, or killed by force.
TEST_CASE("deploy: undeploy with a failing stop.sh keeps everything until forced, then kills the server") {
    deploy_fixture f;
    IT_DIAGNOSE(f.d);
    const std::uint16_t port = dep::free_port();
    dep::package_options o = options("1.0.0", port);
    o.stop_fails = true;
    std::string id;
    REQUIRE(it::error_code(f.deploy(dep::build_package(f.work.path(), o), id)).empty());
    REQUIRE(dep::fetch_index(port) == "static-site 1.0.0\n");

    const json::value refused = f.client.request("undeploy", it::parse_object(R"({"instance_id": "static-site.local"})"),
                                                 it::scaled(30s));
    INFO(dump(refused));
    CHECK(it::error_code(refused) == "deployment_failed");
    CHECK(it::error_message(refused) ==
          "stop.sh exited 3: cannot stop: busy; nothing was removed and 'static-site.local' stays registered (undeploy "
          "with force kills its processes)");
    CHECK(dep::fetch_index(port) == "static-site 1.0.0\n");
    CHECK(fs::is_directory(f.prefix / "static-site-1.0.0"));
    CHECK(fs::read_symlink(f.prefix / "static-site" / "current") == f.prefix / "static-site-1.0.0");
    // Still registered, and the health checks that go on bring it back to running.
    bool running = false;
    for (auto until = std::chrono::steady_clock::now() + it::scaled(10s); !running && std::chrono::steady_clock::now() < until;) {
        const json::value got = f.client.call("get_service", it::parse_object(R"({"instance_id": "static-site.local"})"));
        running = str(got, "/service/state") == "running";
        if (!running) f.client.pump(100ms);
    }
    CHECK(running);

    const json::value forced = f.client.request(
        "undeploy", it::parse_object(R"({"instance_id": "static-site.local", "force": true})"), it::scaled(30s));
    INFO(dump(forced));
    CHECK(it::error_code(forced).empty());
    CHECK(dep::fetch_index(port).empty());
    CHECK_FALSE(fs::exists(f.prefix / "static-site-1.0.0"));
    CHECK_FALSE(fs::exists(f.prefix / "static-site"));
    CHECK(it::error_code(f.client.request("get_service", it::parse_object(R"({"instance_id": "static-site.local"})"))) ==
          "not_found");
}

// Issue 16 #9: a first deploy that fails leaves nothing that undeploy (which
// answers not_found: there is no deployment) could not reach.
TEST_CASE("deploy: a failed first deploy is removed completely") {
    deploy_fixture f;
    IT_DIAGNOSE(f.d);
    const std::uint16_t port = dep::free_port();
    dep::package_options sick = options("1.0.0", port);
    sick.healthy = false;
    sick.deadline = "1s";
    std::string id;
    const json::value r = f.deploy(dep::build_package(f.work.path(), sick), id);
    INFO(dump(r));
    CHECK(it::error_code(r) == "deployment_failed");
    CHECK(it::error_message(r).find("no previous version to roll back to") != std::string::npos);
    CHECK(dep::fetch_index(port).empty());
    CHECK_FALSE(fs::exists(fs::symlink_status(f.prefix / "static-site-1.0.0")));
    CHECK_FALSE(fs::exists(fs::symlink_status(f.prefix / "static-site")));
    std::vector<std::string> left;
    for (const auto& e : fs::recursive_directory_iterator(f.prefix)) {
        if (!e.is_directory()) left.push_back(e.path().string());
    }
    CHECK(left.empty());
    CHECK(it::error_code(f.client.request("undeploy", it::parse_object(R"({"instance_id": "static-site.local"})"))) ==
          "not_found");
    // A good version installs after it as a first deploy.
    const json::value ok = f.deploy(dep::build_package(f.work.path(), options("1.0.0", port)), id);
    INFO(dump(ok));
    CHECK(it::error_code(ok).empty());
    CHECK(dep::fetch_index(port) == "static-site 1.0.0\n");
}

// Issue 16 #3: no two (name, version) pairs share a path or an instance id.
// "app" 1 installs into {prefix}/app-1, the home of a package "app-1"; "a.b"
// and "a_b" share the instance id a_b.local and the home {prefix}/a_b.
TEST_CASE("deploy: a package cannot take another package's directory or instance id, in either order") {
    deploy_fixture f;
    IT_DIAGNOSE(f.d);
    auto package = [&](const std::string& name, const std::string& version, std::uint16_t port) {
        dep::package_options o = options(version, port);
        o.name = name;
        return dep::build_package(f.work.path(), o);
    };
    auto instance = [&](const std::string& id) {
        return f.client.request("get_service", json::object{{"instance_id", id}});
    };
    std::string id;
    const std::uint16_t app_port = dep::free_port();
    REQUIRE(it::error_code(f.deploy(package("app", "1", app_port), id)).empty());
    REQUIRE(dep::fetch_index(app_port) == "static-site 1\n");

    // app-1's home would be app 1's install directory.
    json::value r = f.deploy(package("app-1", "1.0.0", dep::free_port()), id);
    INFO(dump(r));
    CHECK(it::error_code(r) == "conflict");
    CHECK(it::error_message(r) == "'app-1' 1.0.0 cannot be installed on 'local': " + (f.prefix / "app-1").string() +
                                      " belongs to package 'app'");
    CHECK(it::error_code(instance("app-1.local")) == "not_found");
    CHECK(fs::is_directory(f.prefix / "app-1" / "www"));  // app's version, untouched
    CHECK_FALSE(fs::exists(f.prefix / "app-1" / "current"));
    CHECK(dep::fetch_index(app_port) == "static-site 1\n");

    // a.b, then a_b: one instance id and one home.
    const std::uint16_t ab_port = dep::free_port();
    REQUIRE(it::error_code(f.deploy(package("a.b", "1.0.0", ab_port), id)).empty());
    r = f.deploy(package("a_b", "1.0.0", dep::free_port()), id);
    INFO(dump(r));
    CHECK(it::error_code(r) == "conflict");
    CHECK(it::error_message(r) == "'a_b' cannot be deployed on 'local': its instance id 'a_b.local' is package 'a.b''s");
    CHECK(str(instance("a_b.local"), "/data/service/name") == "a.b");
    CHECK(dep::fetch_index(ab_port) == "static-site 1.0.0\n");

    // The other order: app-1 first, then app 1 would install into its home.
    REQUIRE(it::error_code(f.client.request("undeploy", it::parse_object(R"({"instance_id": "app.local"})"), it::scaled(30s)))
                .empty());
    const std::uint16_t app1_port = dep::free_port();
    REQUIRE(it::error_code(f.deploy(package("app-1", "1.0.0", app1_port), id)).empty());
    r = f.deploy(package("app", "1", dep::free_port()), id);
    INFO(dump(r));
    CHECK(it::error_code(r) == "conflict");
    CHECK(it::error_message(r) ==
          "'app' 1 cannot be installed on 'local': " + (f.prefix / "app-1").string() + " belongs to package 'app-1'");
    CHECK(fs::read_symlink(f.prefix / "app-1" / "current") == f.prefix / "app-1-1.0.0");
    CHECK(dep::fetch_index(app1_port) == "static-site 1.0.0\n");
    CHECK(str(instance("app-1.local"), "/data/service/state") == "running");

    // Each undeploy removes its own package only.
    REQUIRE(it::error_code(f.client.request("undeploy", it::parse_object(R"({"instance_id": "app-1.local"})"), it::scaled(30s)))
                .empty());
    CHECK_FALSE(fs::exists(f.prefix / "app-1"));
    CHECK_FALSE(fs::exists(f.prefix / "app-1-1.0.0"));
    CHECK(dep::fetch_index(ab_port) == "static-site 1.0.0\n");
    CHECK(fs::is_directory(f.prefix / "a_b-1.0.0"));
}
