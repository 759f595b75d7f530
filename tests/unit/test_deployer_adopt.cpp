// deployer::adopt_target: a target that appears after open() (registryd on
// etcd: another member's host) brings the deployments stored for it under
// control and health checks, once each, and a store that cannot be read
// leaves them for a later call.
#include "deployer_test_support.hpp"
#include "registry_test_support.hpp"

#include <registry/deploy/deployer.hpp>

#include <doctest/doctest.h>

#include <algorithm>
#include <string>

namespace {

using namespace registry;
using namespace registry::deploy;

using test::manifest_unpacker;
using test::scripted_target;

// A memory store whose loads throw while `fail_loads` is set.
class flaky_store final : public store {
public:
    explicit flaky_store(testing::memory_store& st) : st_(st) {}
    bool fail_loads = false;
    task<std::uint64_t> load(std::string prefix, store_visitor each) override {
        if (fail_loads) throw store_error("flaky_store: read failed");
        co_return co_await st_.load(std::move(prefix), std::move(each));
    }
    task<void> commit(store_batch batch) override { co_await st_.commit(std::move(batch)); }

private:
    testing::memory_store& st_;
};

void shut_down(deployer& d) {
    async_scope stopping;
    stopping.spawn(d.shutdown());
    REQUIRE(stopping.active() == 0);  // the health loops end at once on a fake clock
}

long health_runs(const scripted_target& t) {
    return std::count_if(t.ran.begin(), t.ran.end(),
                         [](const std::string& s) { return s.find("scripts/health.sh") != std::string::npos; });
}

// Deployer a deployed "demo" on t1 and t2; b, a new registry and deployer
// on the same store (a restart, or another member), knows neither target.
struct cluster {
    testing::fake_clock clock;
    testing::memory_store store;
    flaky_store flaky{store};
    manifest_unpacker unpacker;
    scripted_target t1{"t1"};
    scripted_target t2{"t2"};
    bool seeded = seed();
    class registry reg{clock, flaky};
    deployer b{reg, clock, flaky, unpacker, deployer_options{}};

    cluster() { REQUIRE(test::run_now(reg.open()).ok()); }
    ~cluster() { shut_down(b); }

    bool seed() {
        unpacker.manifest.name = "demo";
        unpacker.manifest.version = "1.0.0";
        unpacker.manifest.health = package_health{"scripts/health.sh", milliseconds(1000), milliseconds(500),
                                                  milliseconds(3500)};
        class registry reg_a{clock, store};
        REQUIRE(test::run_now(reg_a.open()).ok());
        deployer a{reg_a, clock, store, unpacker, deployer_options{}};
        a.add_target(t1);
        a.add_target(t2);
        for (auto* t : {&t1, &t2}) {
            t->health_exits = {0};
            deploy_request r;
            r.target = t->name();
            auto out = test::run_now(a.deploy(r, {}));
            REQUIRE_MESSAGE(out.ok(), out.err().message);
        }
        shut_down(a);
        t1.ran.clear();
        t2.ran.clear();
        return true;
    }
};

}  // namespace

TEST_CASE("deployer: adopt_target brings a later target's deployments under control and health checks") {
    cluster c;
    auto opened = test::run_now(c.b.open());
    REQUIRE(opened.ok());
    CHECK(*opened == 2);
    CHECK_FALSE(c.b.has_target("t1"));

    auto adopted = test::run_now(c.b.adopt_target(c.t1));
    REQUIRE(adopted.ok());
    CHECK(*adopted == 1);
    CHECK(c.b.has_target("t1"));

    // Its health checks run on t1 at the interval; t2's deployment stays untouched.
    c.t1.health_exits = {1};
    c.clock.advance(milliseconds(1000));
    CHECK(health_runs(c.t1) == 1);
    auto s = c.reg.find("demo.t1");
    REQUIRE(s);
    REQUIRE(s->health.has_value());
    CHECK(s->health->status == health_status::warning);
    CHECK(c.t2.ran.empty());
    auto other = test::run_now(c.b.control("demo.t2", service_command::stop, {}));
    REQUIRE_FALSE(other.ok());
    CHECK(other.err().code == errc::not_found);

    auto stopped = test::run_now(c.b.control("demo.t1", service_command::stop, {}));
    REQUIRE_MESSAGE(stopped.ok(), stopped.err().message);
    CHECK((*stopped)->state == service_state::stopped);
    CHECK(c.t1.ran_matching("cd '/srv/demo-1.0.0' && exec /bin/sh 'scripts/stop.sh'"));
    c.t1.health_exits = {0};
    auto started = test::run_now(c.b.control("demo.t1", service_command::start, {}));
    REQUIRE_MESSAGE(started.ok(), started.err().message);
    CHECK((*started)->state == service_state::running);

    REQUIRE(test::run_now(c.b.undeploy("demo.t1", {})).ok());
    CHECK(c.reg.find("demo.t1") == nullptr);
    CHECK(c.t1.ran_matching("drop 'demo'"));
    const store_state left = test::run_now(load_copy(c.store, "dep/"));
    REQUIRE(left.entries.size() == 1);
    CHECK(left.entries[0].first == "dep/demo.t2");
}

TEST_CASE("deployer: adopt_target again with the same target adopts nothing twice") {
    cluster c;
    REQUIRE(test::run_now(c.b.open()).ok());
    auto first = test::run_now(c.b.adopt_target(c.t1));
    REQUIRE(first.ok());
    CHECK(*first == 1);
    auto second = test::run_now(c.b.adopt_target(c.t1));
    REQUIRE(second.ok());
    CHECK(*second == 0);

    // One health loop: one run of the script per interval.
    c.t1.health_default = 0;
    c.clock.advance(milliseconds(1000));
    CHECK(health_runs(c.t1) == 1);
    c.clock.advance(milliseconds(1000));
    CHECK(health_runs(c.t1) == 2);
}

TEST_CASE("deployer: adopt_target with another target of a present target's name is a conflict") {
    cluster c;
    REQUIRE(test::run_now(c.b.open()).ok());
    REQUIRE(test::run_now(c.b.adopt_target(c.t1)).ok());
    scripted_target impostor("t1");
    auto refused = test::run_now(c.b.adopt_target(impostor));
    REQUIRE_FALSE(refused.ok());
    CHECK(refused.err().code == errc::conflict);

    // t1 is still the one the deployment's commands run on.
    c.clock.advance(milliseconds(1000));
    CHECK(health_runs(c.t1) == 1);
    CHECK(impostor.ran.empty());
    REQUIRE(test::run_now(c.b.control("demo.t1", service_command::stop, {})).ok());
    CHECK(impostor.ran.empty());
}

TEST_CASE("deployer: adopt_target before open() only adds the target, and open() adopts its deployments") {
    cluster c;
    auto early = test::run_now(c.b.adopt_target(c.t1));
    REQUIRE(early.ok());
    CHECK(*early == 0);
    CHECK(c.b.has_target("t1"));
    c.clock.advance(milliseconds(1000));
    CHECK(c.t1.ran.empty());  // nothing adopted yet

    auto opened = test::run_now(c.b.open());
    REQUIRE(opened.ok());
    CHECK(*opened == 1);  // t2's only
    c.clock.advance(milliseconds(1000));
    CHECK(health_runs(c.t1) == 1);
    REQUIRE(test::run_now(c.b.control("demo.t1", service_command::stop, {})).ok());
    CHECK(c.reg.find("demo.t1")->state == service_state::stopped);
}

TEST_CASE("deployer: adopt_target on a store that cannot be read adds the target, and a later call adopts") {
    cluster c;
    REQUIRE(test::run_now(c.b.open()).ok());
    c.flaky.fail_loads = true;
    auto failed = test::run_now(c.b.adopt_target(c.t1));
    REQUIRE_FALSE(failed.ok());
    CHECK(failed.err().code == errc::unavailable);
    CHECK(c.b.has_target("t1"));
    auto control = test::run_now(c.b.control("demo.t1", service_command::stop, {}));
    REQUIRE_FALSE(control.ok());
    CHECK(control.err().code == errc::not_found);
    c.clock.advance(milliseconds(1000));
    CHECK(c.t1.ran.empty());

    c.flaky.fail_loads = false;
    auto retried = test::run_now(c.b.adopt_target(c.t1));
    REQUIRE(retried.ok());
    CHECK(*retried == 1);
    c.clock.advance(milliseconds(1000));
    CHECK(health_runs(c.t1) == 1);
    REQUIRE(test::run_now(c.b.control("demo.t1", service_command::stop, {})).ok());
}
