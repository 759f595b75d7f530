// The deployer during a rollout, on a fake clock with a scripted target:
// the health gate's backoff, the deployment_* events and the instance's
// state through a rollback, the outcome log, a failed upload's staging, and a
// target that cannot be reached.
#include "deployer_test_support.hpp"
#include "registry_test_support.hpp"

#include <registry/deploy/deployer.hpp>

#include <doctest/doctest.h>

#include <algorithm>
#include <deque>
#include <string>
#include <vector>

namespace {

using namespace registry;
using namespace registry::deploy;

using test::manifest_unpacker;
using test::scripted_target;

struct fixture {
    testing::fake_clock clock;
    testing::memory_store store;
    class registry reg{clock, store};
    scripted_target target;
    manifest_unpacker unpacker;
    std::vector<operation_record> logged;
    deployer d{reg, clock, store, unpacker, options()};

    deployer_options options() {
        deployer_options o;
        o.log = [this](const operation_record& r) { logged.push_back(r); };
        return o;
    }

    fixture() {
        target.health_default = 0;
        target.track_current = true;
        REQUIRE(test::run_now(reg.open()).ok());
        d.add_target(target);
        manifest("1.0.0");
    }
    ~fixture() {
        async_scope stopping;
        stopping.spawn(d.shutdown());
        CHECK(stopping.active() == 0);
    }

    void manifest(std::string version) {
        unpacker.manifest.name = "demo";
        unpacker.manifest.version = std::move(version);
        unpacker.manifest.ports = {{"http", 8080, "http"}};
        unpacker.manifest.health = package_health{"scripts/health.sh", milliseconds(1000), milliseconds(500),
                                                  milliseconds(3500)};
    }

    task<result<deploy_outcome>> deploy() {
        deploy_request r;
        r.archive = "/tmp/demo.tar.gz";
        r.target = "fake";
        r.connection = 7;
        r.request_id = "req-1";
        return d.deploy(r, {});
    }

    // Runs a deploy to its end, advancing the fake clock as it waits.
    result<deploy_outcome> deployed() {
        test::started<result<deploy_outcome>> running(deploy());
        for (int i = 0; i < 100 && !running.done(); ++i) clock.advance(milliseconds(100));
        REQUIRE(running.done());
        return std::move(running.get());
    }
};

std::vector<std::string> states_of(const std::vector<event_ptr>& events) {
    std::vector<std::string> out;
    for (const auto& e : events) {
        if (e->type == event_type::service_state_changed) out.emplace_back(to_string(e->service->state));
        if (e->type == event_type::deployment_stage) out.push_back("stage:" + e->deployment->stage);
        if (e->type != event_type::service_state_changed && e->type != event_type::deployment_stage &&
            e->deployment) {
            out.emplace_back(to_string(e->type));
        }
    }
    return out;
}

std::string joined(const std::vector<std::string>& v) {
    std::string s;
    for (const auto& x : v) s += (s.empty() ? "" : ",") + x;
    return s;
}

}  // namespace

TEST_CASE("deployer: the gate's retries back off from 100 ms to the interval, and the last check runs at the deadline") {
    fixture f;
    f.target.health_exits = {2, 2, 2, 2, 2, 2, 0};  // at 0, 0.1, 0.3, 0.7, 1.5, 2.5 s, then 3.5 s (the deadline)
    test::started<result<deploy_outcome>> deploying(f.deploy());
    const int expected_at_ms[] = {100, 300, 700, 1500, 2500, 3500};
    int now = 0;
    for (std::size_t i = 0; i < std::size(expected_at_ms); ++i) {
        f.clock.advance(milliseconds(expected_at_ms[i] - 1 - now));
        CHECK_FALSE(deploying.done());
        CHECK(f.target.health_exits.size() == 6 - i);  // no check since the last one
        f.clock.advance(milliseconds(1));
        now = expected_at_ms[i];
    }
    REQUIRE(deploying.done());
    CHECK(deploying.get().ok());
}

TEST_CASE("deployer: deployment events tell a deploy and a rollback, the instance is starting in the gate, failed when it fails") {
    fixture f;
    test::collector events;
    watch_options w;
    w.snapshot = false;
    events.start(f.reg, w);
    REQUIRE(f.deployed().ok());
    CHECK(joined(states_of(events.events)) ==
          "deployment_started,stage:checking_requirements,stage:installing,stage:starting,stage:health_gating,running,"
          "deployment_succeeded");
    const event& started = *events.events.front();
    REQUIRE(started.deployment);
    CHECK(started.deployment->instance_id == "demo.fake");
    CHECK(started.deployment->package == "demo");
    CHECK(started.deployment->target == "fake");
    CHECK_FALSE(started.deployment->from_version.has_value());
    CHECK(started.deployment->to_version == "1.0.0");
    CHECK(started.deployment->connection == std::optional<std::uint64_t>(7));
    CHECK(started.deployment->request_id == std::optional<std::string>("req-1"));
    CHECK(started.revision > 0);
    events.events.clear();

    // 2.0.0 never passes; 1.0.0 passes again after the rollback.
    f.manifest("2.0.0");
    f.target.health_exits = {2, 2, 2, 2, 2, 2, 2, 0};
    auto out = f.deployed();
    REQUIRE_FALSE(out.ok());
    CHECK(joined(states_of(events.events)) ==
          "deployment_started,stage:checking_requirements,stage:installing,stage:starting,stopping,stopped,starting,"
          "stage:health_gating,failed,starting,running,deployment_rolled_back");
    const auto failed = std::find_if(events.events.begin(), events.events.end(), [](const event_ptr& e) {
        return e->type == event_type::service_state_changed && e->service->state == service_state::failed;
    });
    REQUIRE(failed != events.events.end());
    CHECK((*failed)->reason == "health check did not pass within 3.5s: not yet");
    const event& rolled = *events.events.back();
    CHECK(rolled.deployment->from_version == std::optional<std::string>("1.0.0"));
    CHECK(rolled.deployment->to_version == "2.0.0");
    CHECK(rolled.deployment->restored_healthy == std::optional<bool>(true));
    REQUIRE(rolled.failure.has_value());
    CHECK(rolled.failure->code == errc::deployment_failed);
    CHECK(rolled.failure->message == out.err().message);
    auto s = f.reg.find("demo.fake");
    CHECK(s->state == service_state::running);
    CHECK(s->version == "1.0.0");

    REQUIRE(f.logged.size() == 2);
    CHECK(f.logged[0].operation == "deploy");
    CHECK(f.logged[0].outcome == "succeeded");
    CHECK(f.logged[0].version == "1.0.0");
    CHECK(f.logged[1].outcome == "rolled_back");
    CHECK(f.logged[1].version == "2.0.0");
    CHECK(f.logged[1].from_version == std::optional<std::string>("1.0.0"));
    CHECK(f.logged[1].error == std::optional<errc>(errc::deployment_failed));
    CHECK(f.logged[1].target == "fake");
}

TEST_CASE("deployer: a failed upload's staging directory is removed from the target") {
    fixture f;
    test::collector events;
    watch_options w;
    w.snapshot = false;
    events.start(f.reg, w);
    f.target.upload_fails = true;
    auto out = f.deployed();
    REQUIRE_FALSE(out.ok());
    CHECK(out.err().code == errc::unavailable);
    CHECK(f.target.ran_matching("rm -rf -- '/srv/.staging-demo-1.0.0-1'"));
    REQUIRE_FALSE(events.events.empty());
    const event& last = *events.events.back();
    CHECK(last.type == event_type::deployment_failed);
    CHECK(last.deployment->stage == "installing");
    REQUIRE(f.logged.size() == 1);
    CHECK(f.logged[0].outcome == "failed");
}

TEST_CASE("deployer: an unreachable target leaves the instance's state, lease and health checks as they were") {
    fixture f;
    REQUIRE(f.deployed().ok());
    const auto lease = f.reg.find("demo.fake")->lease;
    f.target.down = true;
    auto gone = test::run_now(f.d.undeploy("demo.fake", {}));
    REQUIRE_FALSE(gone.ok());
    CHECK(gone.err().code == errc::unavailable);
    auto stopped = test::run_now(f.d.control("demo.fake", service_command::stop, {}));
    REQUIRE_FALSE(stopped.ok());
    CHECK(stopped.err().code == errc::unavailable);
    auto s = f.reg.find("demo.fake");
    REQUIRE(s);
    CHECK(s->state == service_state::running);
    // The health loop still renews the lease, far past its first TTL.
    for (int i = 0; i < 120; ++i) f.clock.advance(milliseconds(1000));
    s = f.reg.find("demo.fake");
    REQUIRE(s);
    CHECK(s->lease.id == lease.id);
    CHECK(s->lease.expires_at > lease.expires_at);
    REQUIRE(s->health.has_value());
    CHECK(s->health->status == health_status::unknown);
    REQUIRE(f.logged.size() == 2);
    CHECK(f.logged[1].operation == "undeploy");
    CHECK(f.logged[1].outcome == "failed");
    CHECK(f.logged[1].error == std::optional<errc>(errc::unavailable));

    // Back: the undeploy goes through.
    f.target.down = false;
    REQUIRE(test::run_now(f.d.undeploy("demo.fake", {})).ok());
    CHECK(f.reg.find("demo.fake") == nullptr);
}
