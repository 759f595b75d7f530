// Package deployment to a remote target over SSH: a real sshd on loopback
// (test-owned config, host key, authorized key, internal-sftp), registryd
// connecting to it with libssh2.
#include "deploy_support.hpp"

#include <doctest/doctest.h>

#include <filesystem>
#include <string>

using it::dump;
using it::num;
using it::str;
using namespace std::chrono_literals;
namespace fs = std::filesystem;
namespace json = it::json;
namespace dep = it::deploy;

using dep::remote_host_yaml;

TEST_CASE("deploy over ssh: installed on a real sshd, registered, healthy and reachable, and wrong host keys are refused") {
    dep::sshd ssh;
    INFO(ssh.log());
    it::temp_dir work{"registryd-deploy-ssh"};
    const fs::path remote = work.path() / "remote-opt";
    const fs::path wrong = work.path() / "wrong-opt";
    const fs::path unknown = work.path() / "unknown-opt";
    it::registryd d{"deploy:\n" + dep::run_as_yaml(work.path()) +
                    "  prefix: " + (work.path() / "local-opt").string() +
                    "\n  package_dirs: [" + work.path().string() + "]" +
                    "\n  script_timeout_seconds: 20\n  remote_hosts:\n" +
                    remote_host_yaml("box", ssh, ssh.known_hosts(), remote) +
                    remote_host_yaml("box-wrong-key", ssh, ssh.wrong_known_hosts(), wrong) +
                    remote_host_yaml("box-unknown", ssh, ssh.empty_known_hosts(), unknown)};
    IT_DIAGNOSE(d);
    struct cleanup {
        fs::path prefix;
        ~cleanup() { dep::kill_package_servers(prefix); }
    } servers{remote};
    it::ws_client client(d);
    const std::uint16_t port = dep::free_port();
    dep::package_options o;
    o.port = port;
    const fs::path v1 = dep::build_package(work.path(), o);

    // --- the right key: deployed over SFTP + exec
    json::value r = client.request("deploy_package", json::object{{"path", v1.string()}, {"target", "box"}}, it::scaled(60s));
    INFO(dump(r));
    REQUIRE(it::error_code(r).empty());
    CHECK(str(r, "/data/instance_id") == "static-site.box");
    CHECK(str(r, "/data/install_dir") == (remote / "static-site-1.0.0").string());
    CHECK(fs::read_symlink(remote / "static-site" / "current") == remote / "static-site-1.0.0");
    CHECK(fs::is_regular_file(remote / "static-site-1.0.0" / "scripts" / "start.sh"));
    CHECK(dep::fetch_index(port) == "static-site 1.0.0\n");
    {
        const json::value got = client.call("get_service", it::parse_object(R"({"instance_id": "static-site.box"})"));
        INFO(dump(got));
        CHECK(str(got, "/service/state") == "running");
        CHECK(str(got, "/service/health/status") == "healthy");
        CHECK(str(got, "/service/location/kind") == "remote");
        CHECK(str(got, "/service/location/host") == "127.0.0.1");
        CHECK(str(got, "/service/location/ssh_user") == ssh.user());
        CHECK(num(got, "/service/location/ssh_port") == ssh.port());
        CHECK(num(got, "/service/endpoints/0/port") == port);
    }

    // --- a new version switches over SSH too
    o.version = "1.1.0";
    const fs::path v2 = dep::build_package(work.path(), o);
    r = client.request("deploy_package", json::object{{"path", v2.string()}, {"target", "box"}}, it::scaled(60s));
    REQUIRE(it::error_code(r).empty());
    CHECK(str(r, "/data/previous_version") == "1.0.0");
    CHECK(fs::read_symlink(remote / "static-site" / "current") == remote / "static-site-1.1.0");
    CHECK(dep::fetch_index(port) == "static-site 1.1.0\n");

    // --- a host key that does not match known_hosts, and a host that is not in it
    r = client.request("deploy_package", json::object{{"path", v1.string()}, {"target", "box-wrong-key"}}, it::scaled(30s));
    CHECK(it::error_code(r) == "host_key_rejected");
    CHECK(it::error_message(r).find("the host key does not match " + ssh.wrong_known_hosts().string()) != std::string::npos);
    CHECK_FALSE(fs::exists(wrong));
    r = client.request("deploy_package", json::object{{"path", v1.string()}, {"target", "box-unknown"}}, it::scaled(30s));
    CHECK(it::error_code(r) == "host_key_rejected");
    CHECK(it::error_message(r).find("the host is not in " + ssh.empty_known_hosts().string()) != std::string::npos);
    CHECK_FALSE(fs::exists(unknown));

    // --- undeploy removes it from the remote host
    const json::value gone =
        client.call("undeploy", it::parse_object(R"({"instance_id": "static-site.box"})"), it::scaled(30s));
    CHECK(str(gone, "/instance_id") == "static-site.box");
    CHECK(dep::fetch_index(port).empty());
    CHECK_FALSE(fs::exists(remote / "static-site-1.0.0"));
    CHECK_FALSE(fs::exists(remote / "static-site"));
}
