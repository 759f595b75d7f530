// The deployer's decisions on a fake clock, with a scripted target: the
// health gate retries at the manifest interval, and a version that never
// passes is stopped and unlinked when there is nothing to roll back to.
#include "deployer_test_support.hpp"
#include "registry_test_support.hpp"

#include <registry/deploy/deployer.hpp>

#include <doctest/doctest.h>

#include <algorithm>
#include <deque>
#include <optional>
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
    deployer d{reg, clock, store, unpacker, deployer_options{}};
    std::vector<progress> seen;

    fixture() {
        REQUIRE(test::run_now(reg.open()).ok());
        d.add_target(target);
        unpacker.manifest.name = "demo";
        unpacker.manifest.version = "1.0.0";
        unpacker.manifest.ports.push_back({"http", 8080, "http"});
        unpacker.manifest.health = package_health{"scripts/health.sh", milliseconds(1000), milliseconds(500),
                                                  milliseconds(3500)};
    }
    ~fixture() {
        async_scope stopping;
        stopping.spawn(d.shutdown());
        CHECK(stopping.active() == 0);  // the health loops end at once on a fake clock
    }

    task<result<deploy_outcome>> deploy() {
        deploy_request r;
        r.archive = "/tmp/demo-1.0.0.tar.gz";
        r.target = "fake";
        return d.deploy(r, [this](const progress& p) { seen.push_back(p); });
    }
};

// Ends a deployer's health loops (at once on a fake clock).
void shut_down(deployer& d) {
    async_scope stopping;
    stopping.spawn(d.shutdown());
    REQUIRE(stopping.active() == 0);
}

}  // namespace

TEST_CASE("deployer: the health gate retries soon, backing off, until the script passes") {
    fixture f;
    f.target.health_exits = {2, 2, 0};
    test::started<result<deploy_outcome>> deploying(f.deploy());
    CHECK_FALSE(deploying.done());  // first check failed: the next one 100 ms later
    f.clock.advance(milliseconds(99));
    CHECK_FALSE(deploying.done());
    f.clock.advance(milliseconds(1));
    CHECK_FALSE(deploying.done());  // second check failed: the next one 200 ms later
    f.clock.advance(milliseconds(199));
    CHECK_FALSE(deploying.done());
    f.clock.advance(milliseconds(1));
    REQUIRE(deploying.done());
    auto& out = deploying.get();
    REQUIRE(out.ok());
    CHECK(out->instance_id == "demo.fake");
    CHECK(out->install_dir == "/srv/demo-1.0.0");
    auto s = f.reg.find("demo.fake");
    REQUIRE(s);
    CHECK(s->state == service_state::running);
    REQUIRE(s->health.has_value());
    CHECK(s->health->status == health_status::healthy);
    REQUIRE(s->endpoints.size() == 1);
    CHECK(s->endpoints[0].port == 8080);
    CHECK(f.target.ran_matching("upload /srv/.staging-demo-1.0.0-"));
    CHECK(f.target.ran_matching("ln -sfn '/srv/demo-1.0.0' '/srv/demo/current.new'"));
    CHECK(f.target.ran_matching("exec /bin/sh 'scripts/start.sh'"));
    CHECK(f.seen.back().at == stage::done);
    const auto gate_runs = std::count_if(f.seen.begin(), f.seen.end(), [](const progress& p) {
        return p.at == stage::health_gating && p.exit_code.has_value();
    });
    CHECK(gate_runs == 3);

    // The periodic check (the script check, thresholds 1) then runs at the interval.
    f.target.health_exits = {1};
    f.clock.advance(milliseconds(1000));
    s = f.reg.find("demo.fake");
    REQUIRE(s->health.has_value());
    CHECK(s->health->status == health_status::warning);
    CHECK(s->health->output == "health.sh: not yet");
}

TEST_CASE("deployer: the package's scripts are marked to run as the script user, its own bookkeeping is not") {
    fixture f;
    f.target.health_exits = {0};
    test::started<result<deploy_outcome>> deploying(f.deploy());
    REQUIRE(deploying.done());
    REQUIRE(deploying.get().ok());
    auto scripts = f.target.package_scripts;
    REQUIRE(scripts.size() == 2);
    CHECK(scripts[0] == "cd '/srv/demo-1.0.0' && exec /bin/sh 'scripts/start.sh'");
    CHECK(scripts[1] == "cd '/srv/demo-1.0.0' && exec /bin/sh 'scripts/health.sh'");
    // Everything else the deploy ran (claims, moves, the link switch) is the deployer's.
    const auto others = std::count_if(f.target.ran.begin(), f.target.ran.end(), [&](const std::string& s) {
        return !s.starts_with("upload ") && std::find(scripts.begin(), scripts.end(), s) == scripts.end();
    });
    CHECK(others >= 3);
    CHECK(f.target.ran_matching("ln -sfn '/srv/demo-1.0.0' '/srv/demo/current.new'"));

    auto stopped = test::run_now(f.d.control("demo.fake", service_command::stop, {}));
    REQUIRE(stopped);
    CHECK(f.target.package_scripts.back() == "cd '/srv/demo-1.0.0' && exec /bin/sh 'scripts/stop.sh'");
}

TEST_CASE("deployer: a first version that never gets healthy is stopped, unlinked and not registered") {
    fixture f;
    test::started<result<deploy_outcome>> deploying(f.deploy());
    for (int i = 0; i < 5 && !deploying.done(); ++i) f.clock.advance(milliseconds(1000));
    REQUIRE(deploying.done());
    auto& out = deploying.get();
    REQUIRE_FALSE(out.ok());
    CHECK(out.err().code == errc::deployment_failed);
    CHECK(out.err().message ==
          "health check did not pass within 3.5s: not yet; no previous version to roll back to");
    CHECK(f.target.ran_matching("exec /bin/sh 'scripts/stop.sh'"));
    CHECK(f.target.ran_matching("rm -f '/srv/demo/current'"));
    CHECK(f.reg.find("demo.fake") == nullptr);
    CHECK(f.seen.back().at == stage::failed);
    // Nothing of it is left behind that no undeploy could reach.
    CHECK(f.target.ran_matching("p='/srv'; h='demo'; v='demo-1.0.0'\nrm -rf -- \"$p/$v\" && rm -f \"$p/.owner/$v\"\n"));
    CHECK(f.target.ran_matching("grep -vxF \"$v\" \"$p/$h/installed\""));
    CHECK(f.target.ran_matching("then rm -rf -- \"$p/$h\" && rm -f \"$p/.owner/$h\"; fi"));
}

TEST_CASE("deployer: a failed redeploy keeps the versions the deployment installed") {
    fixture f;
    f.target.health_exits = {0};
    REQUIRE(test::run_now(f.deploy()).ok());
    f.unpacker.manifest.version = "2.0.0";
    f.target.ran.clear();
    test::started<result<deploy_outcome>> deploying(f.deploy());
    for (int i = 0; i < 10 && !deploying.done(); ++i) f.clock.advance(milliseconds(1000));
    REQUIRE(deploying.done());
    REQUIRE_FALSE(deploying.get().ok());
    CHECK(f.target.ran_matching("mv -T '/srv/.staging-demo-2.0.0-"));
    CHECK_FALSE(f.target.ran_matching("rm -rf -- '/srv/demo-2.0.0'"));
    CHECK_FALSE(f.target.ran_matching("grep -vxF"));
}

TEST_CASE("deployer: a deployer opened on the store of an earlier one controls and undeploys its deployments") {
    testing::fake_clock clock;
    testing::memory_store store;
    scripted_target target;
    manifest_unpacker unpacker;
    unpacker.manifest.name = "demo";
    unpacker.manifest.version = "1.0.0";
    unpacker.manifest.ports.push_back({"http", 8080, "http"});
    unpacker.manifest.health = package_health{"scripts/health.sh", milliseconds(1000), milliseconds(500),
                                              milliseconds(3500)};
    {
        class registry reg{clock, store};
        REQUIRE(test::run_now(reg.open()).ok());
        deployer before{reg, clock, store, unpacker, deployer_options{}};
        before.add_target(target);
        target.health_exits = {0};
        deploy_request r;
        r.archive = "/tmp/demo-1.0.0.tar.gz";
        r.target = "fake";
        auto out = test::run_now(before.deploy(r, {}));
        REQUIRE(out.ok());
        shut_down(before);
    }

    // The restart: a new registry and deployer on the same store.
    class registry reg{clock, store};
    REQUIRE(test::run_now(reg.open()).ok());
    deployer after{reg, clock, store, unpacker, deployer_options{}};
    after.add_target(target);
    auto opened = test::run_now(after.open());
    REQUIRE(opened.ok());
    CHECK(*opened == 0);
    const auto lease = reg.find("demo.fake")->lease.id;

    // Its health loop runs again: it renews the same lease and records results.
    target.health_exits = {1};
    clock.advance(milliseconds(1000));
    auto s = reg.find("demo.fake");
    REQUIRE(s);
    CHECK(s->lease.id == lease);
    REQUIRE(s->health.has_value());
    CHECK(s->health->status == health_status::warning);

    target.ran.clear();
    target.health_exits = {0};
    auto restarted = test::run_now(after.control("demo.fake", service_command::restart, {}));
    REQUIRE(restarted.ok());
    CHECK((*restarted)->state == service_state::running);
    CHECK(target.ran_matching("cd '/srv/demo-1.0.0' && exec /bin/sh 'scripts/stop.sh'"));
    CHECK(target.ran_matching("cd '/srv/demo-1.0.0' && exec /bin/sh 'scripts/start.sh'"));

    REQUIRE(test::run_now(after.undeploy("demo.fake", {})).ok());
    CHECK(reg.find("demo.fake") == nullptr);
    CHECK(target.ran_matching("p='/srv'; n='demo'\n"));
    CHECK(target.ran_matching("drop 'demo'"));
    const store_state left = test::run_now(load_copy(store, "dep/"));
    CHECK(left.entries.empty());
    auto unknown = test::run_now(after.control("demo.fake", service_command::start, {}));
    REQUIRE_FALSE(unknown.ok());
    CHECK(unknown.err().code == errc::not_found);
    shut_down(after);
}

TEST_CASE("deployer: deployments on a target that is no longer configured are counted, not loaded") {
    testing::fake_clock clock;
    testing::memory_store store;
    scripted_target target;
    manifest_unpacker unpacker;
    unpacker.manifest.name = "demo";
    unpacker.manifest.version = "1.0.0";
    {
        class registry reg{clock, store};
        REQUIRE(test::run_now(reg.open()).ok());
        deployer before{reg, clock, store, unpacker, deployer_options{}};
        before.add_target(target);
        deploy_request r;
        r.target = "fake";
        REQUIRE(test::run_now(before.deploy(r, {})).ok());
        shut_down(before);
    }
    class registry reg{clock, store};
    REQUIRE(test::run_now(reg.open()).ok());
    deployer after{reg, clock, store, unpacker, deployer_options{}};  // no target "fake"
    auto opened = test::run_now(after.open());
    REQUIRE(opened.ok());
    CHECK(*opened == 1);
    auto control = test::run_now(after.control("demo.fake", service_command::stop, {}));
    REQUIRE_FALSE(control.ok());
    CHECK(control.err().code == errc::not_found);
}

// registryd on etcd: each registryd's own host is the target "local.<member>",
// which requests call "local"; after a failover the new writer does not take
// the old one's host for its own.
TEST_CASE("deployer: a request names a target by its alias, the deployment keeps the target's own name, and another host's deployment is not loaded") {
    testing::fake_clock clock;
    testing::memory_store store;
    manifest_unpacker unpacker;
    unpacker.manifest.name = "demo";
    unpacker.manifest.version = "1.0.0";
    {
        class registry reg{clock, store};
        REQUIRE(test::run_now(reg.open()).ok());
        scripted_target host_a("local.a");
        deployer a{reg, clock, store, unpacker, deployer_options{}};
        a.add_target(host_a);
        a.add_alias("local", host_a);
        CHECK(a.has_target("local"));
        CHECK(a.has_target("local.a"));
        std::vector<progress> seen;
        deploy_request r;
        r.target = "local";
        auto done = test::run_now(a.deploy(r, [&](const progress& p) { seen.push_back(p); }));
        REQUIRE_MESSAGE(done.ok(), done.err().message);
        CHECK(done->instance_id == "demo.local.a");
        REQUIRE_FALSE(seen.empty());
        CHECK(seen.front().target == "local.a");
        auto s = reg.find("demo.local.a");
        REQUIRE(s);
        CHECK(s->metadata.at("target") == "local.a");
        shut_down(a);
    }
    class registry reg{clock, store};
    REQUIRE(test::run_now(reg.open()).ok());
    scripted_target host_b("local.b");
    deployer b{reg, clock, store, unpacker, deployer_options{}};
    b.add_target(host_b);
    b.add_alias("local", host_b);
    auto opened = test::run_now(b.open());
    REQUIRE(opened.ok());
    CHECK(*opened == 1);  // a's, on a host b does not run commands on
    CHECK(host_b.ran.empty());
    auto control = test::run_now(b.control("demo.local.a", service_command::stop, {}));
    REQUIRE_FALSE(control.ok());
    CHECK(control.err().code == errc::not_found);
}

TEST_CASE("deployer: undeploy with a failing stop.sh removes nothing unless forced, then kills the processes") {
    fixture f;
    f.target.health_exits = {0};
    REQUIRE(test::run_now(f.deploy()).ok());

    f.target.ran.clear();
    f.target.stop_exits = {3};
    std::vector<progress> seen;
    auto refused = test::run_now(f.d.undeploy("demo.fake", [&](const progress& p) { seen.push_back(p); }));
    REQUIRE_FALSE(refused.ok());
    CHECK(refused.err().code == errc::deployment_failed);
    CHECK(refused.err().message == "stop.sh exited 3: cannot stop; nothing was removed and 'demo.fake' stays registered "
                                   "(undeploy with force kills its processes)");
    REQUIRE_FALSE(seen.empty());
    CHECK(seen.back().exit_code == 3);
    CHECK(seen.back().output == "cannot stop");
    CHECK_FALSE(f.target.ran_matching("rm -rf"));
    CHECK_FALSE(f.target.ran_matching("kill -9"));
    auto s = f.reg.find("demo.fake");
    REQUIRE(s);
    CHECK(s->state == service_state::failed);
    CHECK(s->failure_reason == "stop.sh exited 3: cannot stop");
    CHECK_FALSE(test::run_now(load_copy(f.store, "dep/")).entries.empty());
    // It still runs: the health checks carry on and bring it back to running.
    f.target.health_exits = {0};
    f.clock.advance(milliseconds(1000));
    CHECK(f.reg.find("demo.fake")->state == service_state::running);

    f.target.stop_exits = {3};
    auto forced = test::run_now(f.d.undeploy("demo.fake", {}, true));
    REQUIRE(forced.ok());
    CHECK(f.target.ran_matching("d='/srv/demo-1.0.0'\ng="));
    CHECK(f.target.ran_matching("kill -9 $pids"));
    CHECK(f.target.ran_matching("drop 'demo'"));
    CHECK(f.reg.find("demo.fake") == nullptr);
    CHECK(test::run_now(load_copy(f.store, "dep/")).entries.empty());
}

TEST_CASE("deployer: a package whose instance id or paths are another package's is refused") {
    fixture f;
    f.unpacker.manifest.name = "de.mo";
    f.target.health_exits = {0};
    auto first = test::run_now(f.deploy());
    REQUIRE(first.ok());
    CHECK(first->instance_id == "de_mo.fake");
    CHECK(f.target.ran_matching("p='/srv'; n='de.mo'; h='de_mo'; v='de_mo-1.0.0'\ntaken() {"));

    // "de_mo" sanitizes to the same instance id and home: refused before anything runs.
    f.unpacker.manifest.name = "de_mo";
    f.target.ran.clear();
    auto same_id = test::run_now(f.deploy());
    REQUIRE_FALSE(same_id.ok());
    CHECK(same_id.err().code == errc::conflict);
    CHECK(same_id.err().message == "'de_mo' cannot be deployed on 'fake': its instance id 'de_mo.fake' is package 'de.mo''s");
    CHECK(f.target.ran.empty());
    CHECK(f.reg.find("de_mo.fake")->name == "de.mo");

    // A path the target says another package claimed: refused before the upload.
    f.unpacker.manifest.name = "de";
    f.unpacker.manifest.version = "mo-1.0.0";
    f.target.claim_answer = command_result{4, false, "/srv/de_mo-1.0.0 belongs to package 'de.mo'\n", {}};
    auto taken = test::run_now(f.deploy());
    REQUIRE_FALSE(taken.ok());
    CHECK(taken.err().code == errc::conflict);
    CHECK(taken.err().message ==
          "'de' mo-1.0.0 cannot be installed on 'fake': /srv/de_mo-1.0.0 belongs to package 'de.mo'");
    CHECK_FALSE(f.target.ran_matching("upload "));
    CHECK(f.reg.find("de.fake") == nullptr);
}

TEST_CASE("deployer: a first deploy runs its commands in two sequences, and a replacing one stops the old version first") {
    fixture f;
    f.target.track_current = true;
    f.target.health_exits = {0};
    auto out = test::run_now(f.deploy());
    REQUIRE(out.ok());
    // Claim and prefix before the upload; install, switch, start.sh and the
    // first health check after it.
    CHECK(f.target.round_trips == 2);
    REQUIRE(f.target.ran.size() == 7);
    CHECK(f.target.ran[0].find("taken() {") != std::string::npos);
    CHECK(f.target.ran[1].rfind("mkdir -p '/srv'", 0) == 0);
    CHECK(f.target.ran[2].rfind("upload /srv/.staging-demo-1.0.0-", 0) == 0);
    CHECK(f.target.ran[3].find("mv -T") != std::string::npos);
    CHECK(f.target.ran[4].rfind("ln -sfn '/srv/demo-1.0.0'", 0) == 0);
    CHECK(f.target.ran[5].find("scripts/start.sh") != std::string::npos);
    CHECK(f.target.ran[6].find("scripts/health.sh") != std::string::npos);

    // 1.0.0 is current: the install's sequence ends with the install, and
    // stop.sh of 1.0.0 runs before the switch to 1.1.0.
    f.unpacker.manifest.version = "1.1.0";
    f.target.ran.clear();
    f.target.round_trips = 0;
    f.target.health_exits = {0};
    auto again = test::run_now(f.deploy());
    REQUIRE(again.ok());
    REQUIRE(f.target.ran.size() == 8);
    CHECK(f.target.ran[3].find("mv -T") != std::string::npos);
    CHECK(f.target.ran[4].find("'/srv/demo-1.0.0' && exec /bin/sh 'scripts/stop.sh'") != std::string::npos);
    CHECK(f.target.ran[5].rfind("ln -sfn '/srv/demo-1.1.0'", 0) == 0);
    CHECK(f.target.ran[6].find("'/srv/demo-1.1.0' && exec /bin/sh 'scripts/start.sh'") != std::string::npos);
    CHECK(f.target.ran[7].find("scripts/health.sh") != std::string::npos);
    CHECK(f.target.round_trips == 6);  // claim+prefix, install, stop.sh, switch, start.sh, health
}
