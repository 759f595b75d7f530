// What an operator sees during a rollout, on the real registryd with the local
// target: the health gate's first checks come soon after start.sh.
#include "deploy_support.hpp"

#include <doctest/doctest.h>

#include <filesystem>
#include <string>
#include <vector>

using it::dump;
using it::num;
using it::str;
using namespace std::chrono_literals;
namespace fs = std::filesystem;
namespace json = boost::json;
namespace dep = it::deploy;

namespace {

struct rollout_fixture {
    it::temp_dir work{"registryd-rollout"};
    fs::path prefix = work.path() / "opt";
    it::registryd d{"deploy:\n  prefix: " + (work.path() / "opt").string() + "\n  package_dirs: [" + work.path().string() +
                    "]\n  script_timeout_seconds: 20\n"};
    it::ws_client client{d};

    ~rollout_fixture() { dep::kill_package_servers(prefix); }

    json::value deploy(const fs::path& archive, std::string& id) {
        id = client.send_request("deploy_package", json::object{{"path", archive.string()}, {"target", "local"}});
        return client.wait_response(id, it::scaled(120s));
    }
};

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

