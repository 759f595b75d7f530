// A deployed package's periodic health checks with the thresholds of a
// registration's checks (health.failures_before_critical,
// health.successes_before_passing in its manifest).
#include "deployer_test_support.hpp"
#include "registry_test_support.hpp"

#include <registry/deploy/deployer.hpp>
#include <registry/deploy/package_manifest.hpp>

#include <doctest/doctest.h>

namespace {

using namespace registry;
using namespace registry::deploy;

struct fixture {
    testing::fake_clock clock;
    testing::memory_store store;
    class registry reg{clock, store};
    test::scripted_target target;
    test::manifest_unpacker unpacker;
    deployer d{reg, clock, store, unpacker, deployer_options{}};

    fixture() {
        REQUIRE(test::run_now(reg.open()).ok());
        d.add_target(target);
        unpacker.manifest.name = "demo";
        unpacker.manifest.version = "1.0.0";
        unpacker.manifest.ports.push_back({"http", 8080, "http"});
        package_health h{"scripts/health.sh", milliseconds(1000), milliseconds(500), milliseconds(3500)};
        h.failures_before_critical = 3;
        h.successes_before_passing = 2;
        unpacker.manifest.health = h;
    }
    ~fixture() {
        async_scope stopping;
        stopping.spawn(d.shutdown());
        CHECK(stopping.active() == 0);
    }
};

}  // namespace

TEST_CASE("deployer: a deployed service fails after failures_before_critical and recovers after successes_before_passing") {
    fixture f;
    f.target.health_exits = {0};
    deploy_request r;
    r.archive = "/tmp/demo-1.0.0.tar.gz";
    r.target = "fake";
    auto out = test::run_now(f.d.deploy(r, [](const progress&) {}));
    REQUIRE(out.ok());
    CHECK(f.reg.find("demo.fake")->state == service_state::running);

    f.target.health_exits = {2, 2, 2, 0, 0};
    f.clock.advance(milliseconds(1000));
    f.clock.advance(milliseconds(1000));
    CHECK(f.reg.find("demo.fake")->health->status == health_status::critical);
    CHECK(f.reg.find("demo.fake")->state == service_state::running);  // two criticals: not yet
    f.clock.advance(milliseconds(1000));
    CHECK(f.reg.find("demo.fake")->state == service_state::failed);
    f.clock.advance(milliseconds(1000));
    CHECK(f.reg.find("demo.fake")->health->status == health_status::healthy);
    CHECK(f.reg.find("demo.fake")->state == service_state::failed);  // one healthy: not yet
    f.clock.advance(milliseconds(1000));
    CHECK(f.reg.find("demo.fake")->state == service_state::running);
}

TEST_CASE("package manifest: health thresholds are 1-100") {
    const std::string head = "name: demo\nversion: 1.0.0\nservice:\n  type: managed_process\n";
    auto ok = parse_package_manifest(head + "health:\n  script: scripts/health.sh\n  failures_before_critical: 3\n"
                                            "  successes_before_passing: 2\n");
    REQUIRE_MESSAGE(ok.ok(), (ok.ok() ? "" : ok.err().message));
    CHECK(ok->health->failures_before_critical == 3);
    CHECK(ok->health->successes_before_passing == 2);
    auto bad = parse_package_manifest(head + "health:\n  script: scripts/health.sh\n  failures_before_critical: 0\n");
    REQUIRE(!bad.ok());
    CHECK(bad.err().message.find("health.failures_before_critical: must be an integer 1-100") != std::string::npos);
}
