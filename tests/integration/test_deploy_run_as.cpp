// Package scripts run as deploy.run_as, not as registryd: locally (registryd
// as root switches to the user for each script) and over a real sshd (the
// SSH user root wraps them in runuser). start.sh reports `id -u`, the server
// it starts runs as that user and the package's files are the user's, while
// the deployer's own bookkeeping stays registryd's. A user the host does not
// have (registry-run, the default, included) refuses the deploy with how to
// create it, before anything is installed; `run_as: root` runs them as root.
#include "deploy_support.hpp"
#include "harness.hpp"

#include <doctest/doctest.h>

#include <pwd.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <filesystem>
#include <string>

namespace {

using it::dump;
using it::str;
using namespace std::chrono_literals;
namespace fs = std::filesystem;
namespace json = it::json;
namespace dep = it::deploy;

long owner_of(const fs::path& p) {
    struct stat st {};
    return ::lstat(p.c_str(), &st) == 0 ? static_cast<long>(st.st_uid) : -1;
}

// The output of the start.sh progress event of request `id`.
std::string start_output(it::ws_client& client, const std::string& id) {
    for (const auto& e : dep::progress_events(client, id)) {
        if (str(e, "/data/message") == "start.sh" && it::has(e, "/data/output")) return str(e, "/data/output");
    }
    return "";
}

dep::package_options uid_printing(std::uint16_t port) {
    dep::package_options o;
    o.port = port;
    o.print_uid = true;
    return o;
}

}  // namespace

TEST_CASE("deploy run_as: local scripts run as the configured user, its files are the user's, a missing user is refused") {
    const dep::script_account& user = dep::script_user();
    const std::string expected = "start.sh ran as uid " + std::to_string(user.uid) + " gid " + std::to_string(user.gid);
    it::temp_dir work{"registryd-run-as"};
    const fs::path prefix = work.path() / "opt";
    it::registryd d{"deploy:\n" + dep::run_as_yaml(work.path()) + "  prefix: " + prefix.string() + "\n  package_dirs: [" +
                    work.path().string() + "]\n  script_timeout_seconds: 20\n"};
    IT_DIAGNOSE(d);
    struct cleanup {
        fs::path prefix;
        ~cleanup() { dep::kill_package_servers(prefix); }
    } servers{prefix};
    it::ws_client client(d);
    const std::uint16_t port = dep::free_port();
    const fs::path archive = dep::build_package(work.path(), uid_printing(port));

    const std::string id = client.send_request("deploy_package", json::object{{"path", archive.string()}, {"target", "local"}});
    const json::value r = client.wait_response(id, it::scaled(60s));
    INFO(dump(r));
    REQUIRE(it::error_code(r).empty());
    const std::string output = start_output(client, id);
    INFO(output);
    CHECK(output.find(expected) != std::string::npos);
    const fs::path dir = prefix / "static-site-1.0.0";
    CHECK(dep::server_uid(dir) == static_cast<long>(user.uid));
    CHECK(owner_of(dir) == static_cast<long>(user.uid));
    CHECK(owner_of(dir / "run" / "pid") == static_cast<long>(user.uid));
    CHECK(owner_of(dir / "scripts" / "start.sh") == static_cast<long>(user.uid));
    // The deployer's own files stay registryd's.
    CHECK(owner_of(prefix / ".owner") == static_cast<long>(::geteuid()));
    CHECK(owner_of(prefix / "static-site" / "current") == static_cast<long>(::geteuid()));
    CHECK(dep::fetch_index(port) == "static-site 1.0.0\n");
    client.call("undeploy", it::parse_object(R"({"instance_id": "static-site.local"})"), it::scaled(30s));
    CHECK(dep::fetch_index(port).empty());

    // A run_as the host does not have: refused, saying how to fix it, nothing installed.
    it::temp_dir other{"registryd-run-as-missing"};
    it::registryd missing{"deploy:\n  run_as: registry-it-absent\n  prefix: " + (other.path() / "opt").string() +
                          "\n  package_dirs: [" + work.path().string() + "]\n"};
    IT_DIAGNOSE(missing);
    it::ws_client c2(missing);
    const json::value refused =
        c2.request("deploy_package", json::object{{"path", archive.string()}, {"target", "local"}}, it::scaled(60s));
    INFO(dump(refused));
    CHECK(it::error_code(refused) == "requirement_not_met");
    CHECK(it::error_message(refused).find("package scripts run as the user 'registry-it-absent' (deploy.run_as), which "
                                          "does not exist on this host: create it (useradd --system --no-create-home "
                                          "--shell /usr/sbin/nologin registry-it-absent) or set deploy.run_as") !=
          std::string::npos);
    CHECK_FALSE(fs::exists(other.path() / "opt" / "static-site-1.0.0"));

    // root only when the configuration says so.
    if (::geteuid() == 0) {
        it::temp_dir as_root{"registryd-run-as-root"};
        const fs::path root_prefix = as_root.path() / "opt";
        it::registryd rooted{"deploy:\n  run_as: root\n  prefix: " + root_prefix.string() + "\n  package_dirs: [" +
                             work.path().string() + "]\n  script_timeout_seconds: 20\n"};
        IT_DIAGNOSE(rooted);
        cleanup root_servers{root_prefix};
        it::ws_client c4(rooted);
        const std::string root_id =
            c4.send_request("deploy_package", json::object{{"path", archive.string()}, {"target", "local"}});
        const json::value r4 = c4.wait_response(root_id, it::scaled(60s));
        INFO(dump(r4));
        REQUIRE(it::error_code(r4).empty());
        CHECK(start_output(c4, root_id).find("start.sh ran as uid 0 gid 0") != std::string::npos);
        CHECK(dep::server_uid(root_prefix / "static-site-1.0.0") == 0);
        c4.call("undeploy", it::parse_object(R"({"instance_id": "static-site.local"})"), it::scaled(30s));
    }

    // Without run_as: the dedicated registry-run, never registryd's own user.
    if (::getpwnam("registry-run") == nullptr) {
        it::temp_dir bare{"registryd-run-as-default"};
        it::registryd by_default{"deploy:\n  prefix: " + (bare.path() / "opt").string() + "\n  package_dirs: [" +
                                 work.path().string() + "]\n"};
        IT_DIAGNOSE(by_default);
        it::ws_client c3(by_default);
        const json::value r3 =
            c3.request("deploy_package", json::object{{"path", archive.string()}, {"target", "local"}}, it::scaled(60s));
        INFO(dump(r3));
        CHECK(it::error_code(r3) == "requirement_not_met");
        CHECK(it::error_message(r3).find("the user 'registry-run' (deploy.run_as), which does not exist") !=
              std::string::npos);
    }
}

TEST_CASE("deploy run_as: over ssh the scripts run as the host's run_as through runuser, a user the host lacks is refused") {
    const dep::script_account& user = dep::script_user();
    dep::sshd ssh;
    INFO(ssh.log());
    it::temp_dir work{"registryd-run-as-ssh"};
    const fs::path remote = work.path() / "remote-opt";
    it::registryd d{"deploy:\n" + dep::run_as_yaml(work.path()) + "  prefix: " + (work.path() / "local-opt").string() +
                    "\n  package_dirs: [" + work.path().string() + "]\n  script_timeout_seconds: 20\n  remote_hosts:\n" +
                    remote_host_yaml("box", ssh, ssh.known_hosts(), remote) +
                    remote_host_yaml("box-lacking", ssh, ssh.known_hosts(), work.path() / "lacking-opt") +
                    "      run_as: registry-it-absent\n"};
    IT_DIAGNOSE(d);
    struct cleanup {
        fs::path prefix;
        ~cleanup() { dep::kill_package_servers(prefix); }
    } servers{remote};
    it::ws_client client(d);
    const std::uint16_t port = dep::free_port();
    const fs::path archive = dep::build_package(work.path(), uid_printing(port));

    const std::string id = client.send_request("deploy_package", json::object{{"path", archive.string()}, {"target", "box"}});
    const json::value r = client.wait_response(id, it::scaled(60s));
    INFO(dump(r));
    REQUIRE(it::error_code(r).empty());
    const std::string output = start_output(client, id);
    INFO(output);
    CHECK(output.find("start.sh ran as uid " + std::to_string(user.uid) + " gid " + std::to_string(user.gid)) !=
          std::string::npos);
    const fs::path dir = remote / "static-site-1.0.0";
    CHECK(dep::server_uid(dir) == static_cast<long>(user.uid));
    CHECK(owner_of(dir) == static_cast<long>(user.uid));
    CHECK(owner_of(dir / "run" / "pid") == static_cast<long>(user.uid));
    CHECK(owner_of(remote / ".owner") == static_cast<long>(::geteuid()));
    CHECK(dep::fetch_index(port) == "static-site 1.0.0\n");
    client.call("undeploy", it::parse_object(R"({"instance_id": "static-site.box"})"), it::scaled(30s));

    const json::value refused = client.request(
        "deploy_package", json::object{{"path", archive.string()}, {"target", "box-lacking"}}, it::scaled(60s));
    INFO(dump(refused));
    CHECK(it::error_code(refused) == "requirement_not_met");
    CHECK(it::error_message(refused).find("the user 'registry-it-absent' (run_as of remote host box-lacking), which "
                                          "does not exist on this host: create it (useradd") != std::string::npos);
    CHECK_FALSE(fs::exists(work.path() / "lacking-opt" / "static-site-1.0.0"));
}
