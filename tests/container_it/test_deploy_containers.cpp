// A container package (service.type container) deployed by a real registryd
// on a real Podman service: busybox httpd in the test image serves the
// version at /health. Deployed, registered with the container's address,
// and that endpoint answers; a version whose http check fails is removed
// and the running one kept; a good version replaces it (started first, the
// old container removed after); undeploy removes the container and the
// registration.
#include "harness.hpp"
#include "podman_harness.hpp"

#include <doctest/doctest.h>

#include <filesystem>
#include <fstream>
#include <functional>
#include <string>
#include <thread>

namespace {

namespace json = it::json;
namespace rt = registry_test;
namespace fs = std::filesystem;
using namespace std::chrono_literals;
using it::arr;
using it::num;
using it::str;

bool eventually(const std::function<bool()>& done, it::ms timeout) {
    const auto deadline = it::steady::now() + it::scaled(timeout);
    while (it::steady::now() < deadline) {
        if (done()) return true;
        std::this_thread::sleep_for(100ms);
    }
    return done();
}

bool exists(const rt::podman_service& p, const std::string& id) {
    return p.podman({"container", "exists", id}).exit_code == 0;
}

// {work}/web-{version}.tar.gz: a manifest, nothing else; its httpd serves
// "{version}" at /health, and its check GETs `check_path`.
fs::path package(const fs::path& work, const std::string& version, const std::string& check_path) {
    const fs::path src = work / ("src-" + version);
    fs::create_directories(src);
    std::ofstream(src / "manifest.yaml") << "name: web\n"
                                            "version: " << version << "\n"
                                            "service:\n"
                                            "  type: container\n"
                                            "  ports: [{name: http, port: 8080, protocol: http}]\n"
                                            "container:\n"
                                            "  image: " << rt::test_image << "\n"
                                            "  command: [sh, -c, 'mkdir -p /www && echo " << version
                                         << " > /www/health && exec httpd -f -p 8080 -h /www']\n"
                                            "  limits: {pids: 32}\n"
                                            "health:\n"
                                            "  check: http\n"
                                            "  path: " << check_path << "\n"
                                            "  interval: 1s\n"
                                            "  timeout: 1s\n"
                                            "  deadline: 5s\n";
    const fs::path archive = work / ("web-" + version + ".tar.gz");
    auto packed = rt::run_command({"tar", "-czf", archive.string(), "-C", src.string(), "manifest.yaml"});
    REQUIRE_MESSAGE(packed.exit_code == 0, packed.output);
    return archive;
}

std::string http_get(const std::string& address, int port, const std::string& path) {
    auto r = rt::run_command({"curl", "-s", "--max-time", "3", "http://" + address + ":" + std::to_string(port) + path});
    return r.exit_code == 0 ? r.output : "";
}

json::value service(it::ws_client& ws) {
    return ws.call("get_service", {{"instance_id", "web.containers"}});
}

}  // namespace

TEST_CASE("container package: deployed and reachable, a failing version removed, a good one replaces it, undeployed") {
    rt::podman_service p1;
    it::temp_dir work("deploy-ctr");
    it::registryd d("containers:\n"
                    "  instance_id: it-deploy-ctr\n"
                    "  heartbeat_interval_ms: 200\n"
                    "  heartbeat_timeout_ms: 2000\n"
                    "  stop_grace_seconds: 1\n"
                    "  engines:\n"
                    "    - {name: p1, endpoint: '" + p1.uri() + "', capacity: 4}\n"
                    "deploy:\n"
                    "  prefix: " + (work.path() / "opt").string() + "\n"
                    "  package_dirs: [" + work.path().string() + "]\n");
    IT_DIAGNOSE(d);
    it::ws_client ws(d);
    REQUIRE(eventually([&] {
        const auto nodes = ws.call("list_nodes");
        for (const auto& n : arr(nodes, "/nodes")) {
            if (str(n, "/name") == "p1" && str(n, "/status") == "online") return true;
        }
        return false;
    }, 15s));

    // 1.0.0: registered, running, its endpoint answers.
    auto v1 = ws.call("deploy_package", {{"path", package(work.path(), "1.0.0", "/health").string()}, {"target", "containers"}},
                      it::scaled(120s));
    CHECK(str(v1, "/instance_id") == "web.containers");
    CHECK(str(v1, "/node") == "p1");
    const std::string c1 = str(v1, "/container_id");
    CHECK(exists(p1, c1));
    auto s = service(ws);
    CHECK(str(s, "/service/state") == "running");
    CHECK(str(s, "/service/version") == "1.0.0");
    CHECK(str(s, "/service/execution/kind") == "container");
    CHECK(str(s, "/service/execution/container_id") == c1);
    const std::string address = str(s, "/service/endpoints/0/address");
    CHECK(num(s, "/service/endpoints/0/port") == 8080);
    CHECK(http_get(address, 8080, "/health") == "1.0.0\n");

    // 2.0.0's check asks for a page its httpd does not have: removed, 1.0.0 kept.
    auto v2 = ws.request("deploy_package",
                         {{"path", package(work.path(), "2.0.0", "/missing").string()}, {"target", "containers"}},
                         it::scaled(120s));
    REQUIRE(it::has(v2, "/error"));
    CHECK(str(v2, "/error/code") == "deployment_failed");
    CHECK(str(v2, "/error/message").find("kept running") != std::string::npos);
    CHECK(exists(p1, c1));
    s = service(ws);
    CHECK(str(s, "/service/version") == "1.0.0");
    CHECK(str(s, "/service/execution/container_id") == c1);
    CHECK(http_get(address, 8080, "/health") == "1.0.0\n");

    // 3.0.0 replaces it: a new container, the old one removed.
    auto v3 = ws.call("deploy_package", {{"path", package(work.path(), "3.0.0", "/health").string()}, {"target", "containers"}},
                      it::scaled(120s));
    CHECK(str(v3, "/previous_version") == "1.0.0");
    const std::string c3 = str(v3, "/container_id");
    CHECK(c3 != c1);
    CHECK(eventually([&] { return !exists(p1, c1); }, 15s));
    s = service(ws);
    CHECK(str(s, "/service/version") == "3.0.0");
    CHECK(str(s, "/service/state") == "running");
    CHECK(http_get(str(s, "/service/endpoints/0/address"), 8080, "/health") == "3.0.0\n");

    // undeploy: the container and the registration are gone.
    ws.call("undeploy", {{"instance_id", "web.containers"}}, it::scaled(60s));
    CHECK(eventually([&] { return !exists(p1, c3); }, 15s));
    auto gone = ws.request("get_service", {{"instance_id", "web.containers"}});
    CHECK(str(gone, "/error/code") == "not_found");
}

TEST_CASE("container package: service_action stop and start, and a registryd killed and restarted adopts its container") {
    rt::podman_service p1;
    it::temp_dir work("deploy-ctr");
    it::registryd d("containers:\n"
                    "  instance_id: it-deploy-ctr-2\n"
                    "  heartbeat_interval_ms: 200\n"
                    "  heartbeat_timeout_ms: 2000\n"
                    "  stop_grace_seconds: 1\n"
                    "  engines:\n"
                    "    - {name: p1, endpoint: '" + p1.uri() + "', capacity: 4}\n"
                    "deploy:\n"
                    "  prefix: " + (work.path() / "opt").string() + "\n"
                    "  package_dirs: [" + work.path().string() + "]\n");
    IT_DIAGNOSE(d);
    auto ours = [&] {
        auto r = p1.podman({"ps", "-a", "-q", "--no-trunc", "--filter", "label=registryd.deploy.instance=web.containers"});
        std::vector<std::string> ids;
        std::string line;
        for (char ch : r.output + "\n") {
            if (ch != '\n') {
                line += ch;
            } else if (!line.empty()) {
                ids.push_back(std::exchange(line, {}));
            }
        }
        return ids;
    };
    std::string c2;
    {
        it::ws_client ws(d);
        REQUIRE(eventually([&] {
            const auto nodes = ws.call("list_nodes");
            for (const auto& n : arr(nodes, "/nodes")) {
                if (str(n, "/name") == "p1" && str(n, "/status") == "online") return true;
            }
            return false;
        }, 15s));
        auto v1 = ws.call("deploy_package",
                          {{"path", package(work.path(), "1.0.0", "/health").string()}, {"target", "containers"}},
                          it::scaled(120s));
        const std::string c1 = str(v1, "/container_id");

        auto stopped = ws.call("service_action", {{"instance_id", "web.containers"}, {"action", "stop"}}, it::scaled(60s));
        CHECK(str(stopped, "/service/state") == "stopped");
        CHECK(eventually([&] { return !exists(p1, c1); }, 15s));
        auto started = ws.call("service_action", {{"instance_id", "web.containers"}, {"action", "start"}}, it::scaled(60s));
        CHECK(str(started, "/service/state") == "running");
        c2 = str(started, "/service/execution/container_id");
        CHECK(c2 != c1);
        CHECK(http_get(str(started, "/service/endpoints/0/address"), 8080, "/health") == "1.0.0\n");
        CHECK(ours() == std::vector<std::string>{c2});
    }

    // kill -9 and start again: the same container, not a second one.
    d.kill9();
    d.start();
    it::ws_client ws(d);
    REQUIRE(eventually([&] {
        auto s = ws.request("get_service", {{"instance_id", "web.containers"}});
        return !it::has(s, "/error") && str(s, "/data/service/state") == "running";
    }, 30s));
    std::this_thread::sleep_for(it::scaled(3s));  // a few health checks: none may start another container
    CHECK(ours() == std::vector<std::string>{c2});
    auto s = service(ws);
    CHECK(str(s, "/service/execution/container_id") == c2);
    CHECK(str(s, "/service/state") == "running");

    ws.call("undeploy", {{"instance_id", "web.containers"}}, it::scaled(60s));
    CHECK(eventually([&] { return ours().empty(); }, 15s));
}
