// A deployed package's health script as a check of kind script, against the
// real registryd: the package (packages/static-site, packed by
// registry-pack, installed under a temp prefix) fails its health script on
// demand after the gate, and the check follows the manifest's thresholds.
#include "deploy_support.hpp"

#include <doctest/doctest.h>

#include <sys/stat.h>

#include <filesystem>
#include <fstream>
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

// health.sh fails (exit 2, "failing (k left)") while run/failing holds a
// positive k, counting it down; the test writes it.
constexpr std::string_view fail_on_demand =
    "k=$(cat \"$PACKAGE_DIR/run/failing\" 2>/dev/null || echo 0)\n"
    "if [ \"$k\" -gt 0 ]; then\n"
    "  echo $((k - 1)) >\"$PACKAGE_DIR/run/failing.next\" && mv \"$PACKAGE_DIR/run/failing.next\" "
    "\"$PACKAGE_DIR/run/failing\"\n"
    "  echo \"failing ($k left)\"; exit 2\n"
    "fi\n";

}  // namespace

TEST_CASE("integration: a deployed package's health.sh is a script check: failed after failures_before_critical, running after successes_before_passing") {
    it::temp_dir work{"registryd-health-script"};
    const fs::path prefix = work.path() / "opt";
    it::registryd d{"deploy:\n" + dep::run_as_yaml(work.path()) + "  prefix: " + prefix.string() +
                    "\n  package_dirs: [" + work.path().string() + "]\n  script_timeout_seconds: 20\n"};
    IT_DIAGNOSE(d);
    struct servers_killed {
        fs::path prefix;
        ~servers_killed() { dep::kill_package_servers(prefix); }
    } cleanup{prefix};
    it::ws_client client(d);
    it::ws_client watcher(d);
    watcher.call("subscribe", it::parse_object(R"({"services": ["static-site"], "events": ["health_check_result",
                 "service_state_changed"], "snapshot": false})"));

    dep::package_options o;
    o.port = dep::free_port();
    o.interval = "300ms";
    o.health_yaml = "  failures_before_critical: 3\n  successes_before_passing: 2\n";
    o.health_prelude = std::string(fail_on_demand);
    const fs::path archive = dep::build_package(work.path(), o);
    const json::value r = client.call("deploy_package", json::object{{"path", archive.string()}, {"target", "local"}},
                                      it::scaled(60s));
    INFO(dump(r));

    json::value s = client.call("get_service", json::object{{"instance_id", "static-site.local"}});
    INFO(dump(s));
    CHECK(str(s, "/service/state") == "running");
    CHECK(str(s, "/service/checks/0/name") == "health.sh");
    CHECK(str(s, "/service/checks/0/kind") == "script");
    CHECK(num(s, "/service/checks/0/interval_ms") == 300);
    CHECK(num(s, "/service/checks/0/timeout_ms") == 3000);
    CHECK(num(s, "/service/checks/0/failures_before_critical") == 3);
    CHECK(num(s, "/service/checks/0/successes_before_passing") == 2);
    CHECK(str(s, "/service/checks/0/result/status") == "healthy");

    // The next event of `type` (others skipped), bounded.
    auto next_of = [&](std::string_view type) {
        const auto deadline = it::steady::now() + it::scaled(15s);
        while (it::steady::now() < deadline) {
            auto e = watcher.next_event(std::chrono::duration_cast<it::ms>(deadline - it::steady::now()));
            if (e && str(*e, "/event") == type) return *e;
        }
        throw it::failure("no " + std::string(type) + " event within 15 s");
    };
    const json::value gated = next_of("health_check_result");  // the gate's verdict
    CHECK(str(gated, "/data/check/status") == "healthy");
    CHECK(num(gated, "/data/check/count") == 1);

    // Three failing runs: critical on the third, not before.
    const fs::path installed = prefix / "static-site-1.0.0";
    const int before = dep::health_runs(installed);
    {
        std::ofstream(installed / "run" / "failing.tmp") << "3\n";
        fs::rename(installed / "run" / "failing.tmp", installed / "run" / "failing");
        ::chmod((installed / "run" / "failing").c_str(), 0666);
    }
    const json::value critical = next_of("health_check_result");
    INFO("event: ", dump(critical));
    CHECK(str(critical, "/data/check/name") == "health.sh");
    CHECK(str(critical, "/data/check/kind") == "script");
    CHECK(str(critical, "/data/check/status") == "critical");
    CHECK(str(critical, "/data/check/previous_status") == "healthy");
    CHECK(num(critical, "/data/check/count") == 3);
    CHECK(str(critical, "/data/check/output") == "failing (1 left)");
    CHECK(dep::health_runs(installed) >= before + 3);
    const json::value failed = next_of("service_state_changed");
    CHECK(str(failed, "/data/service/state") == "failed");
    CHECK(str(failed, "/data/reason") == "health check 'health.sh' critical: failing (1 left)");

    // Two passing runs: running again on the second.
    const json::value passing = next_of("health_check_result");
    INFO("event: ", dump(passing));
    CHECK(str(passing, "/data/check/status") == "healthy");
    CHECK(str(passing, "/data/check/previous_status") == "critical");
    CHECK(num(passing, "/data/check/count") == 2);
    CHECK(str(passing, "/data/check/output") == "ok");
    CHECK(str(next_of("service_state_changed"), "/data/service/state") == "starting");
    CHECK(str(next_of("service_state_changed"), "/data/service/state") == "running");
    s = client.call("get_service", json::object{{"instance_id", "static-site.local"}});
    CHECK(str(s, "/service/state") == "running");
    CHECK(str(s, "/service/health/status") == "healthy");

    // Passing on: no more events.
    const int now = dep::health_runs(installed);
    const auto deadline = it::steady::now() + it::scaled(10s);
    while (dep::health_runs(installed) < now + 3 && it::steady::now() < deadline) std::this_thread::sleep_for(50ms);
    CHECK(dep::health_runs(installed) >= now + 3);
    CHECK(!watcher.next_event(300ms).has_value());
}
