// Remote deployment over a real loopback sshd, as an operator meets it:
// packages with symlinks, a host that goes away and comes back, big packages
// and the number of SSH connections a deployment costs.
#include "deploy_support.hpp"

#include <doctest/doctest.h>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <string>
#include <thread>
#include <vector>

using it::dump;
using it::num;
using it::str;
using namespace std::chrono_literals;
namespace fs = std::filesystem;
namespace json = it::json;
namespace dep = it::deploy;

using dep::remote_host_yaml;

namespace {

// A registryd with the remote host "box" (prefix work/remote-opt) and
// "box-wrong-key" (a known_hosts entry with another key).
struct ssh_fixture {
    dep::sshd ssh;
    it::temp_dir work{"registryd-ssh-rollout"};
    fs::path remote = work.path() / "remote-opt";
    it::registryd d{"deploy:\n" + dep::run_as_yaml(work.path()) +
                    "  prefix: " + (work.path() / "local-opt").string() + "\n  package_dirs: [" +
                    work.path().string() + "]\n  script_timeout_seconds: 20\n  remote_hosts:\n" +
                    remote_host_yaml("box", ssh, ssh.known_hosts(), work.path() / "remote-opt") +
                    remote_host_yaml("box-wrong-key", ssh, ssh.wrong_known_hosts(), work.path() / "wrong-opt")};
    std::unique_ptr<it::ws_client> client = std::make_unique<it::ws_client>(d);

    ~ssh_fixture() { dep::kill_package_servers(remote); }

    json::value deploy(const fs::path& archive, it::ms timeout = it::scaled(120s)) {
        return client->request("deploy_package", json::object{{"path", archive.string()}, {"target", "box"}}, timeout);
    }
    json::value service() {
        return client->call("get_service", it::parse_object(R"({"instance_id": "static-site.box"})"));
    }
    std::vector<std::string> stagings() const {
        std::vector<std::string> out;
        std::error_code ec;
        for (const auto& e : fs::directory_iterator(remote, ec)) {
            if (e.path().filename().string().rfind(".staging-", 0) == 0) out.push_back(e.path().filename().string());
        }
        return out;
    }
};

// registryd's peak resident memory (VmHWM) in KiB.
std::int64_t peak_rss_kib(pid_t pid) {
    std::ifstream in("/proc/" + std::to_string(pid) + "/status");
    for (std::string line; std::getline(in, line);) {
        if (line.rfind("VmHWM:", 0) == 0) return std::stoll(line.substr(6));
    }
    return -1;
}

// Polls `done` until it holds or `timeout` passes.
template <typename F>
bool eventually(F done, it::ms timeout) {
    const auto deadline = it::steady::now() + timeout;
    for (;;) {
        if (done()) return true;
        if (it::steady::now() > deadline) return false;
        std::this_thread::sleep_for(50ms);
    }
}

}  // namespace

TEST_CASE("deploy over ssh: links in a package arrive as links, and no staging directory is left on the host") {
    ssh_fixture f;
    INFO(f.ssh.log());
    IT_DIAGNOSE(f.d);
    dep::package_options o;
    o.port = dep::free_port();
    o.symlinks = true;
    const fs::path v1 = dep::build_package(f.work.path(), o);
    const json::value r = f.deploy(v1);
    INFO(dump(r));
    REQUIRE(it::error_code(r).empty());
    const fs::path dir = f.remote / "static-site-1.0.0";
    CHECK(fs::is_symlink(dir / "www" / "latest.html"));
    CHECK(fs::read_symlink(dir / "www" / "latest.html") == "index.html");
    CHECK(fs::is_symlink(dir / "www" / "site.conf"));
    CHECK(fs::read_symlink(dir / "www" / "site.conf") == "../config/site.conf");
    CHECK(fs::is_regular_file(dir / "config" / "site.conf"));
    CHECK(fs::is_regular_file(dir / "www" / "index.html"));
    const auto latest = it::http_get("127.0.0.1", o.port, "/latest.html", it::scaled(5s));
    CHECK(latest.body == "static-site 1.0.0\n");
    CHECK(f.stagings().empty());

    // A remote deploy that fails in the middle of its upload (the host's
    // sessions die) removes what it had uploaded.
    o.version = "1.1.0";
    o.padding_bytes = 48u << 20;
    const fs::path v2 = dep::build_package(f.work.path(), o);
    const std::string id =
        f.client->send_request("deploy_package", json::object{{"path", v2.string()}, {"target", "box"}});
    REQUIRE(eventually([&] { return !f.stagings().empty(); }, it::scaled(60s)));
    f.ssh.stop();
    f.ssh.start();
    const json::value failed = f.client->wait_response(id, it::scaled(120s));
    INFO(dump(failed));
    CHECK(it::error_code(failed) == "unavailable");
    CHECK(eventually([&] { return f.stagings().empty(); }, it::ms(100)));
    INFO("left: " << (f.stagings().empty() ? "" : f.stagings().front()));
    CHECK_FALSE(fs::exists(f.remote / "static-site-1.1.0"));
    CHECK(fs::read_symlink(f.remote / "static-site" / "current") == dir);
}

TEST_CASE("deploy over ssh: host key rejections are logged at info level") {
    ssh_fixture f;
    IT_DIAGNOSE(f.d);
    dep::package_options o;
    o.port = dep::free_port();
    const fs::path v1 = dep::build_package(f.work.path(), o);
    const json::value r =
        f.client->request("deploy_package", json::object{{"path", v1.string()}, {"target", "box-wrong-key"}}, it::scaled(30s));
    CHECK(it::error_code(r) == "host_key_rejected");
    std::ifstream in(f.d.dir() / "registryd.stderr");
    int rejections = 0;
    int deploys = 0;
    for (std::string line; std::getline(in, line);) {
        if (line.empty() || line.front() != '{') continue;
        const json::value v = it::parse(line);
        if (str(v, "/msg") == "ssh host key rejected") {
            ++rejections;
            CHECK(str(v, "/level") == "info");
            CHECK(str(v, "/target") == "box-wrong-key");
            CHECK(str(v, "/outcome") == "refused");
            CHECK(str(v, "/message").find("does not match") != std::string::npos);
        } else if (str(v, "/msg") == "deploy") {
            ++deploys;
            CHECK(str(v, "/outcome") == "failed");
            CHECK(str(v, "/target") == "box-wrong-key");
            CHECK(str(v, "/package") == "static-site");
            CHECK(str(v, "/version") == "1.0.0");
            CHECK(str(v, "/code") == "host_key_rejected");
        }
    }
    CHECK(rejections >= 1);
    CHECK(deploys == 1);
}

TEST_CASE("deploy over ssh: an unreachable host leaves state, lease and health checks as they were, it is retried") {
    ssh_fixture f;
    INFO(f.ssh.log());
    IT_DIAGNOSE(f.d);
    dep::package_options o;
    o.port = dep::free_port();
    const fs::path v1 = dep::build_package(f.work.path(), o);
    REQUIRE(it::error_code(f.deploy(v1)).empty());

    f.ssh.stop();
    json::value r = f.client->request("undeploy", it::parse_object(R"({"instance_id": "static-site.box"})"), it::scaled(60s));
    CHECK(it::error_code(r) == "unavailable");
    r = f.client->request("service_action", it::parse_object(R"({"instance_id": "static-site.box", "action": "stop"})"),
                          it::scaled(60s));
    CHECK(it::error_code(r) == "unavailable");
    CHECK(str(f.service(), "/service/state") == "running");
    CHECK(dep::fetch_index(o.port) == "static-site 1.0.0\n");  // it does run
    // The lease is still renewed by the health loop.
    std::int64_t expires = num(f.service(), "/service/lease/expires_at_ms");
    CHECK(eventually([&] { return num(f.service(), "/service/lease/expires_at_ms") > expires; }, it::scaled(20s)));

    // A restart of registryd while the host is away: the same.
    f.client.reset();
    REQUIRE(f.d.terminate().clean());
    f.d.start();
    f.client = std::make_unique<it::ws_client>(f.d);
    CHECK(str(f.service(), "/service/state") == "running");
    expires = num(f.service(), "/service/lease/expires_at_ms");
    CHECK(eventually([&] { return num(f.service(), "/service/lease/expires_at_ms") > expires; }, it::scaled(20s)));

    // The host comes back while an undeploy is retrying its connection: it succeeds.
    std::thread back([&] {
        std::this_thread::sleep_for(100ms);
        f.ssh.start();
    });
    r = f.client->request("undeploy", it::parse_object(R"({"instance_id": "static-site.box"})"), it::scaled(60s));
    back.join();
    INFO(dump(r));
    CHECK(it::error_code(r).empty());
    CHECK(dep::fetch_index(o.port).empty());
    CHECK_FALSE(fs::exists(f.remote / "static-site"));
}

TEST_CASE("deploy over ssh: one SSH connection per deployment, reused by the health checks, a big package is streamed") {
    ssh_fixture f;
    INFO(f.ssh.log());
    IT_DIAGNOSE(f.d);
    dep::package_options o;
    o.port = dep::free_port();
    o.padding_bytes = 96u << 20;
    o.count_checks = true;
    const fs::path v1 = dep::build_package(f.work.path(), o);
    const std::int64_t before = peak_rss_kib(f.d.pid());
    const json::value r = f.deploy(v1);
    INFO(dump(r));
    REQUIRE(it::error_code(r).empty());
    CHECK(fs::file_size(f.remote / "static-site-1.0.0" / "www" / "padding.bin") == (96u << 20));
    // The package was not held in memory: far below its 96 MiB. (Not in a
    // sanitizer build, whose shadow memory and quarantine are most of RSS.)
    const std::int64_t peak = peak_rss_kib(f.d.pid());
    INFO("peak RSS before " << before << " KiB, after " << peak << " KiB");
#ifndef __SANITIZE_ADDRESS__
    CHECK(peak < 64 * 1024);
#endif
    CHECK(f.ssh.accepted_connections() == 1);
    // Five health checks later (every 300 ms), still the one connection. A
    // loaded machine (the sanitizer build beside the tests) stretches each
    // check over SSH to seconds: the wait allows for it.
    const fs::path installed = f.remote / "static-site-1.0.0";
    const int runs = dep::health_runs(installed);
    const auto deadline = it::steady::now() + it::scaled(30s);
    while (dep::health_runs(installed) < runs + 5 && it::steady::now() < deadline) std::this_thread::sleep_for(50ms);
    CHECK(dep::health_runs(installed) >= runs + 5);
    CHECK(f.ssh.accepted_connections() == 1);
}
