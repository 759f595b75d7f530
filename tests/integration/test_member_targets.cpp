// Deploy targets of the cluster (cluster/target_offer.hpp): a standby offers
// the writer its own host ("local.<member>"), and the writer deploys there,
// health-checks and controls what it installed, through the standby; after
// a failover the new writer controls what the old one installed on its own
// host, once that registryd is back as a member. Against a real etcd and
// two registryd on loopback, each installing under a prefix of its own.
#include "cluster_secret.hpp"
#include "deploy_support.hpp"
#include "etcd_server.hpp"

#include <doctest/doctest.h>

#include <filesystem>
#include <string>
#include <thread>

using it::dump;
using it::num;
using it::str;
using namespace std::chrono_literals;
namespace fs = std::filesystem;
namespace json = it::json;
namespace dep = it::deploy;

namespace {

constexpr const char* prefix_in_etcd = "/targets/";

struct cluster_fixture {
    it::etcd_server etcd;
    it::temp_dir work{"registryd-member-targets"};

    fs::path prefix(const std::string& member) const { return work.path() / ("opt-" + member); }

    // `remote_hosts`: that part of its deploy section (deploy_support.hpp's remote_host_yaml).
    std::string config(const std::string& member, const std::string& remote_hosts = {}) const {
        return "deploy:\n" + dep::run_as_yaml(work.path()) + "  prefix: " + prefix(member).string() +
               "\n  package_dirs: [" + work.path().string() + "]\n  script_timeout_seconds: 20\n" +
               (remote_hosts.empty() ? std::string() : "  remote_hosts:\n" + remote_hosts) +
               "store:\n  kind: etcd\n  etcd:\n    endpoints: [\"" + etcd.client_url() + "\"]\n    prefix: " +
               prefix_in_etcd + "\n    request_timeout_ms: 2000\n    writer_lease_ttl_seconds: 2\n    member: " + member +
               "\n";
    }

    // After the writer: b stands by, serves, and publishes its record.
    static void start_standby(it::registryd& b) {
        b.spawn();
        b.wait_ready(15s);
    }

    ~cluster_fixture() {
        dep::kill_package_servers(prefix("a"));
        dep::kill_package_servers(prefix("b"));
    }
};

dep::package_options package(std::string version, std::uint16_t port) {
    dep::package_options o;
    o.version = std::move(version);
    o.port = port;
    o.count_checks = true;
    return o;
}

// deploy_package of `archive` to `target` through `client`; a target the
// writer does not know yet (a member's, before the writer read its record)
// is asked again for a while.
json::value deploy(it::ws_client& client, const fs::path& archive, const std::string& target) {
    const auto deadline = it::steady::now() + it::scaled(15s);
    for (;;) {
        const json::value r = client.request("deploy_package",
                                             json::object{{"path", archive.string()}, {"target", target}},
                                             it::scaled(60s));
        if (it::error_code(r) != "not_found" || it::steady::now() > deadline) return r;
        std::this_thread::sleep_for(200ms);
    }
}

json::value action(it::ws_client& client, const std::string& id, const std::string& what) {
    return client.request("service_action", json::object{{"instance_id", id}, {"action", what}}, it::scaled(30s));
}

template <typename Pred>
bool eventually(Pred ok, it::ms timeout) {
    const auto deadline = it::steady::now() + it::scaled(timeout);
    while (it::steady::now() < deadline) {
        if (ok()) return true;
        std::this_thread::sleep_for(50ms);
    }
    return ok();
}

// A deploy-target call on `member`'s listener, as the writer makes it.
registry::result<registryd::http_response> call(const it::registryd& member, const std::string& authorization,
                                                std::string method, std::string target, std::string body) {
    it::io_loop l;
    registryd::engine_endpoint where;
    where.type = registryd::engine_endpoint::kind::tcp;
    where.host = member.host();
    where.port = member.port();
    registryd::engine_http_client client(l.io, where);
    registryd::http_request req{std::move(method), std::move(target), std::move(body), "application/json", false};
    req.authorization = authorization;
    return l.await(client.request(std::move(req)), 20s);
}

}  // namespace

TEST_CASE("deploy targets of the cluster: the writer deploys to a standby's host through it, checks, controls and undeploys what it installed there") {
    cluster_fixture f;
    it::registryd a(f.config("a"));
    IT_DIAGNOSE(a);
    it::registryd b(f.config("b"), false);
    IT_DIAGNOSE(b);
    f.start_standby(b);
    it::ws_client on_a(a);
    const std::uint16_t port = dep::free_port();
    const fs::path v1 = dep::build_package(f.work.path(), package("1.0.0", port));

    const json::value r = deploy(on_a, v1, "local.b");
    INFO(dump(r));
    REQUIRE(it::error_code(r).empty());
    const std::string id = "static-site.local.b";
    CHECK(str(r, "/data/instance_id") == id);
    // Installed on b's host, under b's prefix, by b; nothing under a's.
    CHECK(str(r, "/data/install_dir") == (f.prefix("b") / "static-site-1.0.0").string());
    CHECK(fs::read_symlink(f.prefix("b") / "static-site" / "current") == f.prefix("b") / "static-site-1.0.0");
    CHECK_FALSE(fs::exists(f.prefix("a") / "static-site-1.0.0"));
    CHECK(dep::fetch_index(port) == "static-site 1.0.0\n");
    {
        const json::value got = on_a.call("get_service", json::object{{"instance_id", id}});
        INFO(dump(got));
        CHECK(str(got, "/service/state") == "running");
        CHECK(str(got, "/service/health/status") == "healthy");
        CHECK(str(got, "/service/location/kind") == "remote");
        CHECK(str(got, "/service/location/host") == "127.0.0.1");
        CHECK(str(got, "/service/endpoints/0/address") == "127.0.0.1");
    }
    // The writer's periodic health checks run its health script there, through b.
    const int runs = dep::health_runs(f.prefix("b") / "static-site-1.0.0");
    CHECK(eventually([&] { return dep::health_runs(f.prefix("b") / "static-site-1.0.0") >= runs + 3; }, 10s));

    // A second version goes through b's upload too.
    const fs::path v2 = dep::build_package(f.work.path(), package("1.1.0", port));
    const json::value r2 = deploy(on_a, v2, "local.b");
    INFO(dump(r2));
    REQUIRE(it::error_code(r2).empty());
    CHECK(str(r2, "/data/previous_version") == "1.0.0");
    CHECK(dep::fetch_index(port) == "static-site 1.1.0\n");

    // Service actions and the undeploy run on b's host.
    {
        const json::value stopped = action(on_a, id, "stop");
        INFO(dump(stopped));
        CHECK(str(stopped, "/data/service/state") == "stopped");
        CHECK(dep::fetch_index(port).empty());
        const json::value started = action(on_a, id, "start");
        CHECK(str(started, "/data/service/state") == "running");
        CHECK(dep::fetch_index(port) == "static-site 1.1.0\n");
    }
    // b dies and comes back on another port: the writer follows its new address.
    const std::uint16_t b_port = b.port();
    b.kill9();
    f.start_standby(b);
    REQUIRE(b.port() != b_port);
    CHECK(eventually([&] { return it::error_code(action(on_a, id, "restart")).empty(); }, 20s));
    CHECK(dep::fetch_index(port) == "static-site 1.1.0\n");

    const json::value gone = on_a.request("undeploy", json::object{{"instance_id", id}}, it::scaled(30s));
    INFO(dump(gone));
    CHECK(it::error_code(gone).empty());
    CHECK(dep::fetch_index(port).empty());
    CHECK_FALSE(fs::exists(f.prefix("b") / "static-site-1.1.0"));
    CHECK_FALSE(fs::exists(f.prefix("b") / "static-site"));
}

TEST_CASE("deploy targets of the cluster: a call needs the cluster's secret, a target the member offers and a well-formed request") {
    cluster_fixture f;
    it::registryd a(f.config("a"));
    IT_DIAGNOSE(a);
    it::registryd b(f.config("b"), false);
    IT_DIAGNOSE(b);
    f.start_standby(b);
    const std::string proof = "Cluster " + it::cluster_secret(f.etcd, prefix_in_etcd);
    const std::string run = R"({"script":"echo hello from b; echo err >&2; exit 3","env":{"PATH":"/usr/bin:/bin"},"timeout_ms":5000,"package_script":false})";

    // As the writer asks: the command runs on b's host.
    auto ran = call(b, proof, "POST", "/v1/cluster/targets/local.b/run", run);
    REQUIRE_MESSAGE(ran.ok(), ran.err().message);
    INFO(ran->body);
    CHECK(ran->status == 200);
    const json::value result = it::parse(ran->body);
    CHECK(num(result, "/exit_code") == 3);
    CHECK(str(result, "/stdout") == "hello from b\n");
    CHECK(str(result, "/stderr") == "err\n");

    // A sequence stops after the first command that fails.
    const std::string sequence =
        R"({"commands":[{"script":"echo one","env":{},"timeout_ms":5000,"package_script":false,"then_only_if_silent":false},)"
        R"({"script":"exit 4","env":{},"timeout_ms":5000,"package_script":false,"then_only_if_silent":false},)"
        R"({"script":"echo never","env":{},"timeout_ms":5000,"package_script":false,"then_only_if_silent":false}]})";
    auto sequenced = call(b, proof, "POST", "/v1/cluster/targets/local.b/run_sequence", sequence);
    REQUIRE_MESSAGE(sequenced.ok(), sequenced.err().message);
    INFO(sequenced->body);
    CHECK(sequenced->status == 200);
    const json::value results = it::parse(sequenced->body);
    REQUIRE(it::arr(results, "/results").size() == 2);
    CHECK(str(results, "/results/0/stdout") == "one\n");
    CHECK(num(results, "/results/1/exit_code") == 4);

    // Refused: no secret, a wrong one, a bearer token, a target b does not
    // offer (a's host), an unknown operation, a malformed command.
    auto none = call(b, "", "POST", "/v1/cluster/targets/local.b/run", run);
    REQUIRE(none.ok());
    CHECK(none->status == 401);
    auto wrong = call(b, "Cluster " + std::string(64, 'a'), "POST", "/v1/cluster/targets/local.b/run", run);
    REQUIRE(wrong.ok());
    CHECK(wrong->status == 401);
    auto bearer = call(b, "Bearer " + proof.substr(8), "POST", "/v1/cluster/targets/local.b/run", run);
    REQUIRE(bearer.ok());
    CHECK(bearer->status == 401);
    auto elsewhere = call(b, proof, "POST", "/v1/cluster/targets/local.a/run", run);
    REQUIRE(elsewhere.ok());
    CHECK(elsewhere->status == 404);
    CHECK(elsewhere->body.find("local.a") != std::string::npos);
    auto unknown = call(b, proof, "POST", "/v1/cluster/targets/local.b/remove_everything", run);
    REQUIRE(unknown.ok());
    CHECK(unknown->status == 400);
    auto malformed = call(b, proof, "POST", "/v1/cluster/targets/local.b/run", R"({"script": 7})");
    REQUIRE(malformed.ok());
    CHECK(malformed->status == 400);
    CHECK(str(it::parse(malformed->body), "/code") == "invalid_request");
    CHECK(str(it::parse(malformed->body), "/message").find("script") != std::string::npos);
    auto huge = call(b, proof, "POST", "/v1/cluster/targets/local.b/run", std::string(2u << 20, ' '));
    if (huge.ok()) CHECK(huge->status == 413);  // or the connection is cut before the whole body is sent
    // The writer offers nothing: it is no member's target server.
    auto writer = call(a, proof, "POST", "/v1/cluster/targets/local.a/run", run);
    REQUIRE(writer.ok());
    CHECK(writer->status == 404);
}

TEST_CASE("deploy targets of the cluster: after a kill -9 of the writer, the new writer controls what the old one installed on its own host once it is back as a member") {
    cluster_fixture f;
    it::registryd a(f.config("a"));
    IT_DIAGNOSE(a);
    it::registryd b(f.config("b"), false);
    IT_DIAGNOSE(b);
    f.start_standby(b);
    const std::uint16_t port = dep::free_port();
    const fs::path v1 = dep::build_package(f.work.path(), package("1.0.0", port));
    {
        it::ws_client on_a(a);
        // "local" is a's own host, recorded as local.a.
        const json::value r = deploy(on_a, v1, "local");
        INFO(dump(r));
        REQUIRE(it::error_code(r).empty());
        CHECK(str(r, "/data/instance_id") == "static-site.local.a");
    }
    CHECK(dep::fetch_index(port) == "static-site 1.0.0\n");

    // a dies (its package keeps running); b takes over, and does not take
    // a's deployment for its own host's.
    a.kill9();
    b.wait_writer(20s);
    it::ws_client on_b(b);
    CHECK(it::error_code(action(on_b, "static-site.local.a", "stop")) != "");
    CHECK(dep::fetch_index(port) == "static-site 1.0.0\n");

    // a is back, as a member: b adopts the deployment on a's host and
    // controls it through a.
    a.start(15s);
    CHECK(eventually([&] { return it::error_code(action(on_b, "static-site.local.a", "stop")).empty(); }, 20s));
    CHECK(dep::fetch_index(port).empty());
    const json::value started = action(on_b, "static-site.local.a", "start");
    INFO(dump(started));
    CHECK(str(started, "/data/service/state") == "running");
    CHECK(dep::fetch_index(port) == "static-site 1.0.0\n");
    const json::value gone = on_b.request("undeploy", json::object{{"instance_id", "static-site.local.a"}}, it::scaled(30s));
    INFO(dump(gone));
    CHECK(it::error_code(gone).empty());
    CHECK(dep::fetch_index(port).empty());
    CHECK_FALSE(fs::exists(f.prefix("a") / "static-site-1.0.0"));
}

TEST_CASE("deploy targets of the cluster: the writer deploys over SSH to a host only a standby reaches, with the standby's key, and a host key it refuses is refused to the writer") {
    dep::sshd ssh;
    INFO(ssh.log());
    cluster_fixture f;
    const fs::path remote = f.work.path() / "remote-opt";
    const fs::path wrong = f.work.path() / "wrong-opt";
    struct cleanup {
        fs::path prefix;
        ~cleanup() { dep::kill_package_servers(prefix); }
    } servers{remote};
    // Only b has the host in its configuration, and the key to it.
    it::registryd a(f.config("a"));
    IT_DIAGNOSE(a);
    it::registryd b(f.config("b", dep::remote_host_yaml("box", ssh, ssh.known_hosts(), remote) +
                                      dep::remote_host_yaml("box-wrong-key", ssh, ssh.wrong_known_hosts(), wrong)),
                    false);
    IT_DIAGNOSE(b);
    f.start_standby(b);
    it::ws_client on_a(a);
    const std::uint16_t port = dep::free_port();
    const fs::path v1 = dep::build_package(f.work.path(), package("1.0.0", port));

    const json::value r = deploy(on_a, v1, "box");
    INFO(dump(r));
    REQUIRE(it::error_code(r).empty());
    CHECK(str(r, "/data/instance_id") == "static-site.box");
    CHECK(fs::read_symlink(remote / "static-site" / "current") == remote / "static-site-1.0.0");
    CHECK(dep::fetch_index(port) == "static-site 1.0.0\n");
    {
        const json::value got = on_a.call("get_service", json::object{{"instance_id", "static-site.box"}});
        INFO(dump(got));
        CHECK(str(got, "/service/state") == "running");
        CHECK(str(got, "/service/location/host") == "127.0.0.1");
        CHECK(str(got, "/service/location/ssh_user") == ssh.user());
        CHECK(num(got, "/service/location/ssh_port") == ssh.port());
    }
    // The SSH host's own refusal, as the writer's deploy reports it.
    const json::value refused = deploy(on_a, v1, "box-wrong-key");
    INFO(dump(refused));
    CHECK(it::error_code(refused) == "host_key_rejected");
    CHECK_FALSE(fs::exists(wrong));

    const json::value gone = on_a.request("undeploy", json::object{{"instance_id", "static-site.box"}}, it::scaled(30s));
    INFO(dump(gone));
    CHECK(it::error_code(gone).empty());
    CHECK(dep::fetch_index(port).empty());
    CHECK_FALSE(fs::exists(remote / "static-site-1.0.0"));
}

TEST_CASE("deploy targets of the cluster: a standby with share_deploy_targets: false offers none, and the writer has none of its") {
    cluster_fixture f;
    it::registryd a(f.config("a"));
    IT_DIAGNOSE(a);
    it::registryd b(f.config("b") + "    share_deploy_targets: false\n", false);
    IT_DIAGNOSE(b);
    f.start_standby(b);
    const std::string proof = "Cluster " + it::cluster_secret(f.etcd, prefix_in_etcd);
    auto refused = call(b, proof, "POST", "/v1/cluster/targets/local.b/run",
                        R"({"script":"true","env":{},"timeout_ms":5000,"package_script":false})");
    REQUIRE(refused.ok());
    CHECK(refused->status == 404);
    CHECK(refused->body.find("offers no deploy targets") != std::string::npos);
    // The writer reads the records every second: after a few, still no such target.
    std::this_thread::sleep_for(it::scaled(2500ms));
    it::ws_client on_a(a);
    const json::value r = on_a.request("deploy_package",
                                       json::object{{"path", dep::build_package(f.work.path(), package("1.0.0", dep::free_port())).string()},
                                                    {"target", "local.b"}},
                                       it::scaled(30s));
    INFO(dump(r));
    CHECK(it::error_code(r) == "not_found");
    CHECK(it::error_message(r) == "no deploy target 'local.b'");
}
