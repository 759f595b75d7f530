// A deployed package's periodic health checks with the thresholds of a
// registration's checks (health.failures_before_critical,
// health.successes_before_passing in its manifest).
#include "deployer_test_support.hpp"
#include "registry_test_support.hpp"

#include <registry/deploy/deployer.hpp>
#include <registry/deploy/package_manifest.hpp>

#include <doctest/doctest.h>

#include <algorithm>

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

// The script check's health_check_result events, in order.
std::vector<check_change> script_changes(const test::collector& c) {
    std::vector<check_change> out;
    for (const auto& e : c.events) {
        if (e->type == event_type::health_check_result && e->check) out.push_back(*e->check);
    }
    return out;
}

std::size_t health_runs(const test::scripted_target& t) {
    return static_cast<std::size_t>(std::count_if(t.ran.begin(), t.ran.end(), [](const std::string& c) {
        return c.find("scripts/health.sh") != std::string::npos;
    }));
}

const health_check& script_check(const registry::registry& reg) {
    auto s = reg.find("demo.fake");
    REQUIRE(s);
    REQUIRE(s->checks.size() == 1);
    return s->checks[0];
}

}  // namespace

TEST_CASE("deployer: the health script is a check of kind script: critical after failures_before_critical, passing after successes_before_passing, no flapping") {
    fixture f;
    test::collector events;
    events.start(f.reg);
    f.target.health_exits = {0};
    deploy_request r;
    r.archive = "/tmp/demo-1.0.0.tar.gz";
    r.target = "fake";
    auto out = test::run_now(f.d.deploy(r, [](const progress&) {}));
    REQUIRE(out.ok());
    auto s = f.reg.find("demo.fake");
    CHECK(s->state == service_state::running);
    const health_check& c = script_check(f.reg);
    CHECK(c.name == "health.sh");
    CHECK(c.kind == check_kind::script);
    CHECK(c.interval == milliseconds(1000));
    CHECK(c.timeout == milliseconds(500));
    CHECK(c.failures_before_critical == 3);
    CHECK(c.successes_before_passing == 2);
    CHECK(c.result.status == health_status::healthy);  // the gate's verdict
    REQUIRE(script_changes(events).size() == 1);
    CHECK(script_changes(events)[0].status == health_status::healthy);
    CHECK(script_changes(events)[0].count == 1);

    f.target.health_exits = {2, 2, 2, 0, 0};
    f.clock.advance(milliseconds(1000));
    f.clock.advance(milliseconds(1000));
    // Two criticals: nothing changes, no event.
    CHECK(script_check(f.reg).result.status == health_status::healthy);
    CHECK(f.reg.find("demo.fake")->health->status == health_status::healthy);
    CHECK(f.reg.find("demo.fake")->state == service_state::running);
    CHECK(script_changes(events).size() == 1);

    f.clock.advance(milliseconds(1000));
    CHECK(script_check(f.reg).result.status == health_status::critical);
    CHECK(f.reg.find("demo.fake")->state == service_state::failed);
    CHECK(f.reg.find("demo.fake")->failure_reason.starts_with("health check 'health.sh' critical: "));
    REQUIRE(script_changes(events).size() == 2);
    CHECK(script_changes(events)[1].name == "health.sh");
    CHECK(script_changes(events)[1].kind == check_kind::script);
    CHECK(script_changes(events)[1].status == health_status::critical);
    CHECK(script_changes(events)[1].previous == health_status::healthy);
    CHECK(script_changes(events)[1].count == 3);

    f.clock.advance(milliseconds(1000));
    CHECK(script_check(f.reg).result.status == health_status::critical);  // one healthy: not yet
    CHECK(f.reg.find("demo.fake")->state == service_state::failed);
    f.clock.advance(milliseconds(1000));
    CHECK(script_check(f.reg).result.status == health_status::healthy);
    CHECK(f.reg.find("demo.fake")->state == service_state::running);
    REQUIRE(script_changes(events).size() == 3);
    CHECK(script_changes(events)[2].status == health_status::healthy);
    CHECK(script_changes(events)[2].count == 2);

    // Passing on: no more events.
    f.target.health_exits = {0, 0, 0};
    for (int i = 0; i < 3; ++i) f.clock.advance(milliseconds(1000));
    CHECK(script_changes(events).size() == 3);
}

TEST_CASE("deployer: a script check waits initial_delay after the gate, and a warning takes failures_before_critical too") {
    fixture f;
    f.unpacker.manifest.health->initial_delay = milliseconds(2500);
    f.target.health_exits = {0};
    deploy_request r;
    r.archive = "/tmp/demo-1.0.0.tar.gz";
    r.target = "fake";
    REQUIRE(test::run_now(f.d.deploy(r, [](const progress&) {})).ok());
    CHECK(script_check(f.reg).initial_delay == milliseconds(2500));

    f.target.health_exits = {1, 1, 1};
    const std::size_t runs = health_runs(f.target);
    f.clock.advance(milliseconds(1000));
    f.clock.advance(milliseconds(1000));
    CHECK(health_runs(f.target) == runs);  // within initial_delay: the lease renewed, no run
    f.clock.advance(milliseconds(1000));
    f.clock.advance(milliseconds(1000));
    CHECK(health_runs(f.target) == runs + 2);
    CHECK(script_check(f.reg).result.status == health_status::healthy);
    f.clock.advance(milliseconds(1000));
    CHECK(script_check(f.reg).result.status == health_status::warning);
    CHECK(f.reg.find("demo.fake")->state == service_state::running);  // warning does not fail it
}

TEST_CASE("registration: script checks only from the deployer (registration.script_checks)") {
    testing::fake_clock clock;
    testing::memory_store store;
    registry::registry reg{clock, store};
    REQUIRE(test::run_now(reg.open()).ok());
    registration r = test::make_registration("demo", "demo-1");
    package_health h{"scripts/health.sh"};
    r.service.checks.push_back(script_check_of(h));
    auto refused = test::run_now(reg.register_service(r));
    REQUIRE(!refused.ok());
    CHECK(refused.err().message.find("service.checks[0].kind: script checks come only from a deployed package's manifest") !=
          std::string::npos);
    r.script_checks = true;
    auto granted = test::run_now(reg.register_service(r));
    REQUIRE_MESSAGE(granted.ok(), (granted.ok() ? "" : granted.err().message));
    CHECK(reg.find("demo-1")->checks.at(0).kind == check_kind::script);
}

TEST_CASE("script_check_of: named after the script's file, in check-name characters") {
    CHECK(script_check_of(package_health{"scripts/health.sh"}).name == "health.sh");
    CHECK(script_check_of(package_health{"check me+now"}).name == "check_me_now");
}

TEST_CASE("package manifest: health thresholds are 1-100, interval at least 100ms, initial_delay a duration") {
    const std::string head = "name: demo\nversion: 1.0.0\nservice:\n  type: managed_process\n";
    auto ok = parse_package_manifest(head + "health:\n  script: scripts/health.sh\n  failures_before_critical: 3\n"
                                            "  successes_before_passing: 2\n");
    REQUIRE_MESSAGE(ok.ok(), (ok.ok() ? "" : ok.err().message));
    CHECK(ok->health->failures_before_critical == 3);
    CHECK(ok->health->successes_before_passing == 2);
    auto bad = parse_package_manifest(head + "health:\n  script: scripts/health.sh\n  failures_before_critical: 0\n");
    REQUIRE(!bad.ok());
    CHECK(bad.err().message.find("health.failures_before_critical: must be an integer 1-100") != std::string::npos);
    auto fast = parse_package_manifest(head + "health:\n  script: scripts/health.sh\n  interval: 50ms\n");
    REQUIRE(!fast.ok());
    CHECK(fast.err().message.find("health.interval: must be at least 100ms") != std::string::npos);
    auto delayed = parse_package_manifest(head + "health:\n  script: scripts/health.sh\n  initial_delay: 5s\n");
    REQUIRE(delayed.ok());
    CHECK(delayed->health->initial_delay == milliseconds(5000));
}
