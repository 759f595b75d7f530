// container_manager on a fake clock, an in-memory store and in-memory engines:
// leases and labels, the reaper (retries, backoff, 404, never forgetting),
// reconciliation, extension, scheduling, nodes going offline, streams.
#include "registry_test_support.hpp"

#include <registry/container_manager.hpp>
#include <registry/testing/memory_engine.hpp>

#include <doctest/doctest.h>

#include <optional>

namespace {

using namespace registry;
using namespace std::chrono_literals;
using registry::test::collector;
using registry::test::run_now;
using testing::memory_engine;

std::string label(const memory_engine& e, const std::string& id, std::string_view key) {
    return e.containers().at(id).spec.labels.at(std::string(key));
}

struct cluster {
    testing::fake_clock clk;
    testing::memory_store st;
    memory_engine a{"a"};
    memory_engine b{"b"};
    std::optional<class registry> reg;
    collector events;
    std::optional<container_manager> mgr;
    std::optional<std::stop_source> stop;
    async_scope scope;
    container_manager_options opt;
    std::size_t cap_a = 2;
    std::size_t cap_b = 4;
    bool configure_b = true;  // false: a restart whose configuration dropped engine b

    cluster() {
        opt.instance_id = "reg-1";
        opt.stop_grace = 1s;
        a.clk = &clk;
        b.clk = &clk;
    }

    void start() {
        reg.emplace(clk, st);
        REQUIRE(run_now(reg->open()));
        watch_options w;
        w.snapshot = false;
        events.events.clear();
        events.stop = std::stop_source{};
        events.start(*reg, w);
        std::vector<container_node> nodes{{"a", "mem://a", &a, cap_a}};
        if (configure_b) nodes.push_back({"b", "mem://b", &b, cap_b});
        mgr.emplace(*reg, clk, st, std::move(nodes), opt);
        REQUIRE(run_now(mgr->open()));
        stop.emplace();
        scope.spawn(mgr->run(stop->get_token()));
    }

    void shut_down() {
        if (!stop) return;
        stop->request_stop();
        REQUIRE(scope.active() == 0);
        stop.reset();
        events.end();
        mgr.reset();
        reg.reset();
    }

    ~cluster() { shut_down(); }

    container_ptr create(std::optional<seconds> ttl = std::nullopt, std::optional<std::string> engine = {}) {
        container_request r;
        r.spec.image = "img";
        r.spec.command = {"sleep", "100"};
        r.ttl = ttl;
        r.engine = std::move(engine);
        auto made = run_now(mgr->create(std::move(r)));
        REQUIRE_MESSAGE(made, (made ? "" : made.err().message));
        return *made;
    }

    memory_engine& engine_of(const container_ptr& c) { return c->engine == "a" ? a : b; }

    // "created", "running", ... of the container_state_changed events so far, and
    // "expired"/"reap_failed" for the other container events.
    std::vector<std::string> history(const container_ptr& c) const {
        std::vector<std::string> out;
        for (const auto& e : events.events) {
            const container_ptr ct = container_of(*e);
            if (!ct || ct->lease_id != c->lease_id) continue;
            if (e->type == event_type::container_state_changed) out.emplace_back(to_string(ct->state));
            if (e->type == event_type::lease_expired) out.emplace_back("expired");
            if (e->type == event_type::container_reap_failed) out.emplace_back("reap_failed");
        }
        return out;
    }
};

using strings = std::vector<std::string>;

TEST_CASE("container_manager: create labels the container and records the lease durably") {
    cluster k;
    k.start();
    auto c = k.create(60s);
    CHECK(c->state == managed_state::running);
    CHECK(c->expires_at == k.clk.now() + 60s);
    memory_engine& e = k.engine_of(c);
    CHECK(e.containers().at(c->container_id).status == container_status::running);
    CHECK(label(e, c->container_id, container_labels::instance) == "reg-1");
    CHECK(label(e, c->container_id, container_labels::lease) == std::to_string(c->lease_id));
    CHECK(label(e, c->container_id, container_labels::expires) ==
          std::to_string(c->expires_at.time_since_epoch().count()));
    CHECK(k.history(c) == strings{"created", "running"});
    CHECK(k.st.data().contains("ctr/" + std::to_string(c->lease_id)));
    CHECK(k.mgr->find(c->container_id) == c);
    CHECK(k.mgr->list().size() == 1);
    // Hardened whatever the policy: no capabilities, no privilege gain.
    CHECK(e.containers().at(c->container_id).spec.drop_all_capabilities);
    CHECK(e.containers().at(c->container_id).spec.no_new_privileges);

    // Revisions are the registry's: one per change.
    const auto& ev = k.events.events;
    REQUIRE(ev.size() == 2);
    CHECK(ev[1]->revision == ev[0]->revision + 1);
    CHECK(k.reg->revision() == ev[1]->revision);
}

TEST_CASE("container_manager: bad requests are refused before anything is created") {
    cluster k;
    k.start();
    container_request r;
    r.spec.image = "img";
    r.spec.labels["io.registry.lease"] = "7";
    auto refused = run_now(k.mgr->create(r));
    REQUIRE(!refused);
    CHECK(refused.err().code == errc::invalid_request);
    REQUIRE(refused.err().fields.size() == 1);
    CHECK(refused.err().fields[0].path == "labels.io.registry.lease");

    r.spec.labels.clear();
    r.ttl = 0s;
    auto short_ttl = run_now(k.mgr->create(r));
    REQUIRE(!short_ttl);
    CHECK(short_ttl.err().message == "ttl_seconds: must be 1-86400");
    REQUIRE(short_ttl.err().fields.size() == 1);
    CHECK(short_ttl.err().fields[0].path == "ttl_seconds");

    r.ttl.reset();
    r.spec.image = "nope";
    auto no_image = run_now(k.mgr->create(r));
    REQUIRE(!no_image);
    CHECK(no_image.err().code == errc::not_found);

    r.spec.image = "img";
    r.engine = "z";
    auto no_engine = run_now(k.mgr->create(r));
    REQUIRE(!no_engine);
    CHECK(no_engine.err().code == errc::not_found);
    CHECK(k.a.containers().empty());
    CHECK(k.b.containers().empty());
    CHECK(k.mgr->list().empty());
}

TEST_CASE("container_manager: a preset gives what the request leaves unset, and unknown presets are refused") {
    cluster k;
    container_preset sleeper{"img", {"sleep", "100"}, {}};
    sleeper.limits.memory_bytes = 64u << 20;
    sleeper.limits.pids = 16;
    k.opt.presets.emplace("sleeper", sleeper);
    k.start();

    container_request plain;
    plain.preset = "sleeper";
    auto made = run_now(k.mgr->create(std::move(plain)));
    REQUIRE(made);
    const auto& spec = k.engine_of(*made).containers().at((*made)->container_id).spec;
    CHECK(spec.image == "img");
    CHECK(spec.command == strings{"sleep", "100"});
    CHECK(spec.limits == sleeper.limits);
    CHECK((*made)->image == "img");
    CHECK((*made)->command == strings{"sleep", "100"});

    container_request overridden;
    overridden.preset = "sleeper";
    overridden.spec.command = {"true"};
    overridden.spec.limits.pids = 4;
    overridden.spec.limits.cpus = 0.25;
    auto other = run_now(k.mgr->create(std::move(overridden)));
    REQUIRE(other);
    const auto& other_spec = k.engine_of(*other).containers().at((*other)->container_id).spec;
    CHECK(other_spec.command == strings{"true"});
    CHECK(other_spec.limits.pids == 4);
    CHECK(other_spec.limits.cpus == 0.25);
    CHECK(other_spec.limits.memory_bytes == sleeper.limits.memory_bytes);  // not overridden: the preset's

    container_request unknown;
    unknown.preset = "ubuntu";
    auto refused = run_now(k.mgr->create(std::move(unknown)));
    REQUIRE(!refused);
    CHECK(refused.err().code == errc::invalid_request);
    CHECK(refused.err().message == "preset: no preset 'ubuntu' (configured: sleeper)");
    container_request nothing;
    auto no_image = run_now(k.mgr->create(std::move(nothing)));
    REQUIRE(!no_image);
    CHECK(no_image.err().code == errc::invalid_request);
    CHECK(k.mgr->list().size() == 2);
}

TEST_CASE("container_manager: the container policy refuses images and limits outside it, naming the field") {
    cluster k;
    k.a.images.insert("localhost/app:1");
    k.b.images.insert("localhost/app:1");
    k.opt.policy.images = {"localhost/*"};
    k.opt.policy.max_limits.memory_bytes = 64u << 20;
    k.opt.policy.max_limits.cpus = 1;
    k.opt.policy.max_limits.pids = 32;
    container_preset outside{"img", {}, {}};  // "img" is on the engines, but not allowed
    k.opt.presets.emplace("outside", outside);
    k.start();

    auto refused = [&](container_request r) {
        auto made = run_now(k.mgr->create(std::move(r)));
        REQUIRE(!made);
        CHECK(made.err().code == errc::invalid_request);
        std::vector<std::string> fields;
        for (const auto& f : made.err().fields) fields.push_back(f.path);
        return fields;
    };
    container_request image;
    image.spec.image = "img";
    CHECK(refused(image) == strings{"image"});
    container_request preset;
    preset.preset = "outside";
    CHECK(refused(preset) == strings{"image"});
    container_request memory;
    memory.spec.image = "localhost/app:1";
    memory.spec.limits.memory_bytes = (64u << 20) + 1;
    CHECK(refused(memory) == strings{"limits.memory_bytes"});
    container_request cpus;
    cpus.spec.image = "localhost/app:1";
    cpus.spec.limits.cpus = 1.25;
    CHECK(refused(cpus) == strings{"limits.cpus"});
    container_request pids;
    pids.spec.image = "localhost/app:1";
    pids.spec.limits.pids = 33;
    CHECK(refused(pids) == strings{"limits.pids"});
    container_request ttl;  // the lease's ceiling is max_ttl
    ttl.spec.image = "localhost/app:1";
    ttl.ttl = k.opt.max_ttl + 1s;
    CHECK(refused(ttl) == strings{"ttl_seconds"});
    container_request everything;
    everything.spec.image = "docker.io/library/busybox:latest";
    everything.spec.limits = {128u << 20, 4.0, 1000};
    CHECK(refused(everything) == strings{"image", "limits.memory_bytes", "limits.cpus", "limits.pids"});
    CHECK(k.a.containers().empty());
    CHECK(k.b.containers().empty());
    CHECK(k.mgr->list().empty());

    // Inside the policy: what it leaves out is the ceiling, what it asks below it is kept.
    container_request allowed;
    allowed.spec.image = "localhost/app:1";
    allowed.spec.limits.pids = 8;
    auto made = run_now(k.mgr->create(std::move(allowed)));
    REQUIRE(made);
    const auto& spec = k.engine_of(*made).containers().at((*made)->container_id).spec;
    CHECK(spec.limits == container_limits{64u << 20, 1.0, 8});
    CHECK((*made)->limits == spec.limits);
    CHECK(spec.drop_all_capabilities);
    CHECK(spec.no_new_privileges);
}

TEST_CASE("container_manager: scheduling picks the lowest load relative to capacity") {
    cluster k;  // a: capacity 2, b: capacity 4
    k.start();
    strings placed;
    for (int i = 0; i < 6; ++i) placed.push_back(k.create()->engine);
    // 0/2=0/4 -> a; 1/2 vs 0/4 -> b; .5 vs .25 -> b; .5=.5 -> a; 1 (full) -> b; b.
    CHECK(placed == strings{"a", "b", "b", "a", "b", "b"});
    container_request r;
    r.spec.image = "img";
    auto full = run_now(k.mgr->create(r));
    REQUIRE(!full);
    CHECK(full.err().code == errc::limit_exceeded);

    // An exited container no longer counts.
    auto on_a = k.mgr->list().front();
    REQUIRE(on_a->engine == "a");
    k.a.exit(on_a->container_id, 0);
    CHECK(k.mgr->find(on_a->container_id)->state == managed_state::exited);
    CHECK(k.create()->engine == "a");

    auto nodes = k.mgr->nodes();
    REQUIRE(nodes.size() == 2);
    CHECK(nodes[0].name == "a");
    CHECK(nodes[0].running == 2);
    CHECK(nodes[0].capacity == 2);
    CHECK(nodes[0].online);
    CHECK(nodes[0].last_heartbeat == k.clk.now());
    CHECK(nodes[1].running == 4);
}

TEST_CASE("container_manager: an exit is an event with the exit code") {
    cluster k;
    k.start();
    auto c = k.create();
    k.engine_of(c).exit(c->container_id, 3);
    auto now = k.mgr->find(c->container_id);
    CHECK(now->state == managed_state::exited);
    REQUIRE(now->exit_code);
    CHECK(*now->exit_code == 3);
    CHECK(k.history(c) == strings{"created", "running", "exited"});

    auto removed = run_now(k.mgr->remove(c->container_id, false));
    REQUIRE(removed);
    CHECK(k.history(c) == strings{"created", "running", "exited", "removed"});
    CHECK(!k.engine_of(c).exists(c->container_id));
    CHECK(k.mgr->list().empty());
    CHECK(!k.st.data().contains("ctr/" + std::to_string(c->lease_id)));
}

TEST_CASE("container_manager: start and finish times and the engine's error come from inspect, across a restart") {
    cluster k;
    k.start();
    container_request r;
    r.spec.image = "img";
    r.spec.command = {"sh", "-c", "exit 4"};
    r.spec.labels = {{"team", "core"}};
    r.spec.limits.memory_bytes = 64u << 20;
    r.spec.limits.cpus = 0.5;
    r.spec.limits.pids = 32;
    r.engine = "a";
    const time_point started = k.clk.now();
    auto made = run_now(k.mgr->create(std::move(r)));
    REQUIRE(made);
    const std::string id = (*made)->container_id;
    REQUIRE((*made)->started_at);
    CHECK(*(*made)->started_at == started);
    CHECK(!(*made)->finished_at);
    CHECK((*made)->error.empty());
    CHECK((*made)->command == strings{"sh", "-c", "exit 4"});
    CHECK((*made)->labels == std::map<std::string, std::string>{{"team", "core"}});  // not io.registry.*
    CHECK((*made)->limits.pids == 32);

    k.clk.advance(5s);
    k.a.set_error(id, "oci runtime: out of cheese");
    k.a.exit(id, 4);
    auto exited = k.mgr->find(id);
    REQUIRE(exited->finished_at);
    CHECK(*exited->finished_at == started + 5s);
    CHECK(exited->error == "oci runtime: out of cheese");
    CHECK(exited->exit_code == 4);
    // The exited event carries them too.
    REQUIRE(!k.events.events.empty());
    CHECK(container_of(*k.events.events.back())->finished_at == exited->finished_at);

    // A restart reads them back from the store, with what it runs.
    k.shut_down();
    k.start();
    auto reloaded = k.mgr->find(id);
    REQUIRE(reloaded);
    CHECK(reloaded->started_at == exited->started_at);
    CHECK(reloaded->finished_at == exited->finished_at);
    CHECK(reloaded->error == exited->error);
    CHECK(reloaded->exit_code == 4);
    CHECK(reloaded->command == exited->command);
    CHECK(reloaded->labels == exited->labels);
    CHECK(reloaded->limits == exited->limits);
}

TEST_CASE("container_manager: a container that exited while registryd was down is adopted with its finish time") {
    cluster k;
    k.start();
    auto c = k.create(100s, "a");
    k.shut_down();
    k.clk.advance(3s);
    k.a.exit(c->container_id, 9);
    k.start();
    auto adopted = k.mgr->find(c->container_id);
    REQUIRE(adopted);
    CHECK(adopted->state == managed_state::exited);
    CHECK(adopted->exit_code == 9);
    REQUIRE(adopted->finished_at);
    CHECK(*adopted->finished_at == k.clk.now());
    CHECK(adopted->started_at == c->started_at);
}

TEST_CASE("container_manager: an expired lease is reaped: stopped, removed, forgotten") {
    cluster k;
    k.start();
    auto c = k.create(10s);
    memory_engine& e = k.engine_of(c);
    k.clk.advance(9999ms);
    CHECK(e.exists(c->container_id));
    k.clk.advance(1ms);
    CHECK(!e.exists(c->container_id));
    CHECK(e.stop_calls == 1);
    CHECK(k.history(c) == strings{"created", "running", "expired", "exited", "removed"});
    CHECK(k.mgr->list().empty());
    CHECK(!k.st.data().contains("ctr/" + std::to_string(c->lease_id)));
}

TEST_CASE("container_manager: the reaper retries with exponential backoff") {
    cluster k;
    k.opt.reap_backoff = 500ms;
    k.start();
    auto c = k.create(10s);
    memory_engine& e = k.engine_of(c);
    e.remove_failures = 2;  // the first two attempts fail
    k.clk.advance(10s);
    CHECK(e.stop_calls == 1);
    k.clk.advance(499ms);
    CHECK(e.stop_calls == 1);
    k.clk.advance(1ms);  // +500 ms: the second attempt
    CHECK(e.stop_calls == 2);
    k.clk.advance(999ms);
    CHECK(e.stop_calls == 2);
    k.clk.advance(1ms);  // +1000 ms more: the third, which succeeds
    CHECK(e.stop_calls == 3);
    CHECK(!e.exists(c->container_id));
    CHECK(k.history(c) == strings{"created", "running", "expired", "exited", "removed"});
}

TEST_CASE("container_manager: every reaping is reported to on_reap: removed, or failed with the error") {
    cluster k;
    std::vector<reap_report> reports;
    k.opt.on_reap = [&](const reap_report& r) { reports.push_back(r); };
    k.opt.reap_backoff = 500ms;
    k.start();
    auto gone = k.create(10s, "a");
    auto stuck = k.create(20s, "b");
    k.b.remove_failures = 3;
    k.clk.advance(10s);
    REQUIRE(reports.size() == 1);
    CHECK(reports[0].container_id == gone->container_id);
    CHECK(reports[0].engine == "a");
    CHECK(reports[0].lease_id == gone->lease_id);
    CHECK(reports[0].removed);
    CHECK(reports[0].at == gone->expires_at);
    CHECK(reports[0].error.empty());

    k.clk.advance(10s + 1500ms);  // stuck's three attempts
    REQUIRE(reports.size() == 2);
    CHECK(reports[1].container_id == stuck->container_id);
    CHECK(!reports[1].removed);
    CHECK(reports[1].error == "engine busy");
    k.clk.advance(k.opt.sweep_interval);  // the next sweep removes it
    REQUIRE(reports.size() == 3);
    CHECK(reports[2].container_id == stuck->container_id);
    CHECK(reports[2].removed);
    CHECK(!k.b.exists(stuck->container_id));
}

TEST_CASE("container_manager: a container that is already gone (404) counts as reaped") {
    cluster k;
    k.start();
    auto c = k.create(10s);
    memory_engine& e = k.engine_of(c);
    k.events.events.clear();
    // Removed behind the registry's back: the waiter sees it vanish without an exit.
    REQUIRE(run_now(e.remove(c->container_id, true)));
    k.clk.advance(10s);
    CHECK(e.stop_calls == 1);
    CHECK(k.history(c) == strings{"expired", "removed"});
    CHECK(k.mgr->list().empty());
}

TEST_CASE("container_manager: a lease the reaper cannot remove is reported and never forgotten") {
    cluster k;
    k.opt.reap_backoff = 500ms;
    k.opt.sweep_interval = 5s;
    k.start();
    auto c = k.create(10s);
    memory_engine& e = k.engine_of(c);
    e.remove_failures = 1000;
    k.clk.advance(10s + 1500ms);  // three attempts
    CHECK(e.stop_calls == 3);
    CHECK(k.history(c) == strings{"created", "running", "expired", "reap_failed"});
    const auto& failed = k.events.events.back();
    CHECK(detail_of<container_change>(*failed)->attempts == 3);
    REQUIRE(failed->failure);
    CHECK(failed->failure->code == errc::unavailable);
    CHECK(k.mgr->find(c->container_id) != nullptr);
    CHECK(k.st.data().contains("ctr/" + std::to_string(c->lease_id)));

    k.clk.advance(4999ms);
    CHECK(e.stop_calls == 3);
    k.clk.advance(1ms);  // the next sweep: three more attempts
    CHECK(e.stop_calls == 4);
    k.clk.advance(1500ms);
    CHECK(e.stop_calls == 6);
    CHECK(k.history(c) == strings{"created", "running", "expired", "reap_failed", "reap_failed"});

    e.remove_failures = 0;
    k.clk.advance(5s);
    CHECK(!e.exists(c->container_id));
    CHECK(k.history(c) == strings{"created", "running", "expired", "reap_failed", "reap_failed", "exited", "removed"});
    CHECK(k.mgr->list().empty());
}

TEST_CASE("container_manager: an extended lease survives its first deadline, durably") {
    cluster k;
    k.start();
    auto c = k.create(10s);
    memory_engine& e = k.engine_of(c);
    k.clk.advance(8s);
    auto extended = run_now(k.mgr->extend(c->container_id, 20s));
    REQUIRE(extended);
    CHECK((*extended)->expires_at == k.clk.now() + 20s);
    k.clk.advance(5s);  // past the original deadline
    CHECK(e.exists(c->container_id));
    CHECK(k.st.data().at("ctr/" + std::to_string(c->lease_id)).find(
              std::to_string((*extended)->expires_at.time_since_epoch().count())) != std::string::npos);
    k.clk.advance(15s - 1ms);
    CHECK(e.exists(c->container_id));
    k.clk.advance(1ms);
    CHECK(!e.exists(c->container_id));

    auto gone = run_now(k.mgr->extend(c->container_id, 20s));
    REQUIRE(!gone);
    CHECK(gone.err().code == errc::not_found);
}

TEST_CASE("container_manager: a restart adopts its containers, keeps extensions, reaps on time") {
    cluster k;
    k.start();
    auto short_lived = k.create(10s, "a");
    auto extended = k.create(10s, "a");
    auto renewed = run_now(k.mgr->extend(extended->container_id, 100s));
    REQUIRE(renewed);
    const time_point renewed_expiry = (*renewed)->expires_at;
    // Not ours: no label, and another registry's.
    container_spec unlabelled;
    unlabelled.image = "img";
    const std::string foreign = k.a.add(unlabelled, container_status::running);
    container_spec other;
    other.image = "img";
    other.labels = {{"io.registry.instance", "reg-2"}, {"io.registry.lease", "1"}, {"io.registry.expires_at_ms", "1"}};
    const std::string others = k.a.add(other, container_status::running);
    k.shut_down();

    k.clk.advance(20s);  // down while short_lived expired
    k.start();
    CHECK(!k.a.exists(short_lived->container_id));  // reaped at once
    REQUIRE(k.a.exists(extended->container_id));
    auto adopted = k.mgr->find(extended->container_id);
    REQUIRE(adopted);
    CHECK(adopted->state == managed_state::running);
    CHECK(adopted->expires_at == renewed_expiry);  // the stored lease, not the label's 10 s
    CHECK(k.mgr->list().size() == 1);
    CHECK(k.a.exists(foreign));
    CHECK(k.a.exists(others));
    CHECK(k.mgr->find(foreign) == nullptr);

    // The new lease ids do not collide with the adopted one.
    auto fresh = k.create(10s, "b");
    CHECK(fresh->lease_id > extended->lease_id);

    // The waiter was resumed too: an exit is noticed.
    k.a.exit(extended->container_id, 5);
    CHECK(k.mgr->find(extended->container_id)->state == managed_state::exited);
    k.clk.advance(90s);
    CHECK(!k.a.exists(extended->container_id));
    CHECK(k.a.exists(foreign));
    CHECK(k.a.exists(others));
}

TEST_CASE("container_manager: a lease on an engine no longer configured is kept, and acting on it is unavailable") {
    cluster k;
    k.start();
    auto on_b = k.create(100s, "b");
    k.shut_down();

    k.configure_b = false;
    k.start();
    REQUIRE(k.mgr->find(on_b->container_id));
    auto stopped = run_now(k.mgr->stop(on_b->container_id, 1s));
    REQUIRE_FALSE(stopped);
    CHECK(stopped.err().code == errc::unavailable);
    CHECK(stopped.err().message == "container '" + on_b->container_id + "' is on engine 'b', which is not configured");
    auto removed = run_now(k.mgr->remove(on_b->container_id, true));
    REQUIRE_FALSE(removed);
    CHECK(removed.err().code == errc::unavailable);
    auto logs = run_now(k.mgr->logs(on_b->container_id, std::nullopt));
    REQUIRE_FALSE(logs);
    CHECK(logs.err().code == errc::unavailable);
    CHECK(k.b.exists(on_b->container_id));  // nothing was done to it
    CHECK(k.mgr->list().size() == 1);
}

TEST_CASE("container_manager: without a stored record the labels give the lease") {
    cluster k;
    const auto expires = k.clk.now() + 30s;
    container_spec ours;
    ours.image = "img";
    ours.labels = {{"io.registry.instance", "reg-1"},
                   {"io.registry.lease", "41"},
                   {"io.registry.expires_at_ms", std::to_string(expires.time_since_epoch().count())}};
    const std::string id = k.a.add(ours, container_status::running);
    container_spec expired = ours;
    expired.labels["io.registry.lease"] = "42";
    expired.labels["io.registry.expires_at_ms"] = std::to_string((k.clk.now() - 1s).time_since_epoch().count());
    const std::string old = k.a.add(expired, container_status::exited);
    k.start();
    CHECK(!k.a.exists(old));
    auto adopted = k.mgr->find(id);
    REQUIRE(adopted);
    CHECK(adopted->lease_id == 41);
    CHECK(adopted->expires_at == expires);
    CHECK(k.create(10s, "b")->lease_id == 43);
    k.clk.advance(30s);
    CHECK(!k.a.exists(id));
}

TEST_CASE("container_manager: an engine that stops answering goes offline and its containers are lost") {
    cluster k;
    k.opt.heartbeat_interval = 1s;
    k.opt.heartbeat_timeout = 3s;
    k.start();
    auto on_a = k.create(100s, "a");
    auto on_b = k.create(100s, "b");
    k.a.go_offline();
    k.clk.advance(2s);
    CHECK(k.mgr->nodes()[0].online);  // not yet: within the timeout
    k.clk.advance(1s);
    CHECK(!k.mgr->nodes()[0].online);
    CHECK(k.history(on_a) == strings{"created", "running", "lost"});
    CHECK(k.mgr->find(on_a->container_id) == nullptr);
    CHECK(!k.st.data().contains("ctr/" + std::to_string(on_a->lease_id)));
    CHECK(k.mgr->find(on_b->container_id) != nullptr);

    // New work goes elsewhere; asking for the offline node is unavailable.
    CHECK(k.create()->engine == "b");
    container_request r;
    r.spec.image = "img";
    r.engine = "a";
    auto refused = run_now(k.mgr->create(r));
    REQUIRE(!refused);
    CHECK(refused.err().code == errc::unavailable);

    // Back online: its containers are adopted again.
    k.a.offline = false;
    k.clk.advance(1s);
    CHECK(k.mgr->nodes()[0].online);
    CHECK(k.mgr->find(on_a->container_id) != nullptr);
}

TEST_CASE("container_manager: on_node_change reports a node coming online, going offline with the reason, and back") {
    cluster k;
    std::vector<node_change> changes;
    k.opt.on_node_change = [&](const node_change& c) { changes.push_back(c); };
    k.opt.heartbeat_interval = 1s;
    k.opt.heartbeat_timeout = 3s;
    k.start();
    REQUIRE(changes.size() == 2);  // both nodes, once, at start
    CHECK(changes[0].online);
    CHECK(changes[1].online);
    CHECK((changes[0].engine == "a" || changes[1].engine == "a"));
    changes.clear();

    k.a.go_offline();
    k.clk.advance(2s);
    CHECK(changes.empty());  // within the timeout
    k.clk.advance(2s);
    REQUIRE(changes.size() == 1);
    CHECK(changes[0].engine == "a");
    CHECK(!changes[0].online);
    CHECK(changes[0].reason.rfind("engine offline: ", 0) == 0);
    k.clk.advance(3s);
    CHECK(changes.size() == 1);  // still offline: reported once

    k.a.offline = false;
    k.clk.advance(1s);
    REQUIRE(changes.size() == 2);
    CHECK(changes[1].engine == "a");
    CHECK(changes[1].online);
    CHECK(changes[1].reason.empty());
}

TEST_CASE("container_manager: with every engine offline, create is unavailable") {
    cluster k;
    k.a.offline = true;
    k.b.offline = true;
    k.start();
    container_request r;
    r.spec.image = "img";
    auto refused = run_now(k.mgr->create(r));
    REQUIRE(!refused);
    CHECK(refused.err().code == errc::unavailable);
    CHECK(refused.err().message == "no container engine is online");
}

std::string ms_text(time_point t) { return std::to_string(t.time_since_epoch().count()); }

TEST_CASE("container_manager: a held container is reaped at its deadline, quietly, unless released") {
    cluster k;
    k.start();
    const time_point deadline = k.clk.now() + 10s;
    container_spec spec;
    spec.image = "img";
    spec.labels = k.mgr->hold_labels("tester", deadline);
    CHECK(spec.labels == std::map<std::string, std::string>{{"io.registry.expires_at_ms", ms_text(deadline)},
                                                            {"io.registry.holder", "tester"},
                                                            {"io.registry.instance", "reg-1"}});
    const std::string id = k.a.add(spec, container_status::running);
    const std::string released = k.a.add(spec, container_status::running);
    REQUIRE(k.mgr->hold("a", id, deadline));
    REQUIRE(k.mgr->hold("a", released, deadline));
    k.mgr->release("a", released);
    auto held = k.mgr->held();
    REQUIRE(held.size() == 1);
    CHECK(held[0].container_id == id);
    // Not managed: not listed, not counted, no event, nothing stored.
    CHECK(k.mgr->list().empty());
    CHECK(k.mgr->find(id) == nullptr);
    CHECK(k.mgr->nodes()[0].running == 0);

    k.clk.advance(10s - 1ms);
    CHECK(k.a.exists(id));
    k.clk.advance(1ms);
    CHECK(!k.a.exists(id));
    CHECK(k.a.exists(released));
    CHECK(k.mgr->held().empty());
    CHECK(k.events.events.empty());
    CHECK(k.st.data().count("ctr-next-lease") == 0);

    auto unknown = k.mgr->hold("z", "x", deadline);
    REQUIRE_FALSE(unknown);
    CHECK(unknown.err().code == errc::not_found);
    CHECK(unknown.err().message == "no engine 'z'");

    // An offline node takes none; one that vanished while it was offline is
    // forgotten when it comes back.
    const std::string vanishing = k.b.add(spec, container_status::running);
    REQUIRE(k.mgr->hold("b", vanishing, k.clk.now() + 100s));
    k.b.go_offline();
    k.clk.advance(6s);
    CHECK_FALSE(k.mgr->online("b"));
    CHECK(k.mgr->online("a"));
    auto offline = k.mgr->hold("b", "x", deadline);
    REQUIRE_FALSE(offline);
    CHECK(offline.err().code == errc::unavailable);
    CHECK(k.mgr->held().size() == 1);  // kept while offline
    k.b.offline = false;
    REQUIRE(run_now(k.b.remove(vanishing, true)));
    k.clk.advance(2s);
    CHECK(k.mgr->online("b"));
    CHECK(k.mgr->held().empty());
    CHECK(k.events.events.empty());
}

TEST_CASE("container_manager: a restart adopts held containers from their labels, reaps them on time, retries") {
    cluster k;
    k.opt.reap_backoff = 500ms;
    k.opt.sweep_interval = 5s;
    const time_point deadline = k.clk.now() + 30s;
    // What a killed registryd left: a held container with a lease, an expired
    // one, one whose expiry is unreadable, another registry's.
    container_spec held;
    held.image = "img";
    held.labels = {{"io.registry.instance", "reg-1"}, {"io.registry.holder", "repl"},
                   {"io.registry.expires_at_ms", ms_text(deadline)}};
    const std::string live = k.a.add(held, container_status::running);
    container_spec expired = held;
    expired.labels["io.registry.expires_at_ms"] = ms_text(k.clk.now() - 1s);
    const std::string old = k.b.add(expired, container_status::exited);
    container_spec garbled = held;
    garbled.labels["io.registry.expires_at_ms"] = "soon";
    const std::string unreadable = k.a.add(garbled, container_status::running);
    container_spec foreign = expired;
    foreign.labels["io.registry.instance"] = "reg-2";
    const std::string others = k.a.add(foreign, container_status::running);
    k.start();
    CHECK(!k.b.exists(old));  // reaped at once
    auto adopted = k.mgr->held();
    REQUIRE(adopted.size() == 1);
    CHECK(adopted[0].engine == "a");
    CHECK(adopted[0].container_id == live);
    CHECK(adopted[0].expires_at == deadline);
    CHECK(k.mgr->list().empty());

    k.a.remove_failures = 4;  // three attempts fail, and the first of the next sweep
    k.clk.advance_to(deadline - 1ms);
    CHECK(k.a.exists(live));
    k.clk.advance(1ms + 1500ms);
    CHECK(k.a.stop_calls == 3);
    CHECK(k.a.exists(live));
    CHECK(k.mgr->held().size() == 1);
    // The failed sweep is reported (the only event about a held container).
    REQUIRE(k.events.events.size() == 1);
    CHECK(k.events.events[0]->type == event_type::container_reap_failed);
    REQUIRE(container_of(*k.events.events[0]));
    CHECK(container_of(*k.events.events[0])->lease_id == 0);
    CHECK(container_of(*k.events.events[0])->engine == "a");
    CHECK(container_of(*k.events.events[0])->container_id == live);
    CHECK(container_of(*k.events.events[0])->expires_at == deadline);
    CHECK(detail_of<container_change>(*k.events.events[0])->attempts == 3);
    REQUIRE(k.events.events[0]->failure);
    CHECK(k.events.events[0]->failure->code == errc::unavailable);
    k.events.events.clear();
    k.clk.advance(5s);
    CHECK(k.a.stop_calls == 4);
    k.clk.advance(500ms);
    CHECK(!k.a.exists(live));
    CHECK(k.mgr->held().empty());
    CHECK(k.a.exists(unreadable));
    CHECK(k.a.exists(others));
    CHECK(k.events.events.empty());
}

TEST_CASE("container_manager: logs, followed until the container exits or the consumer stops") {
    cluster k;
    k.start();
    auto c = k.create();
    memory_engine& e = k.engine_of(c);
    e.write(c->container_id, "one\n");
    e.write(c->container_id, "two\n", output_stream::err);
    auto tail = run_now(k.mgr->logs(c->container_id, 1));
    REQUIRE(tail);
    REQUIRE(tail->size() == 1);
    CHECK(tail->front().bytes == "two\n");

    struct follower {
        std::vector<event_ptr> got;
        bool ended = false;
        task<void> pump(async_generator<event_ptr> g) {
            for (auto it = co_await g.begin(); it != g.end(); co_await ++it) got.push_back(*it);
            ended = true;
        }
    };
    follower f;
    async_scope s;
    s.spawn(f.pump(k.mgr->follow_logs(c->container_id, std::nullopt, {})));
    REQUIRE(f.got.size() == 2);
    e.write(c->container_id, "three\n");
    REQUIRE(f.got.size() == 3);
    CHECK(detail_of<container_log_item>(*f.got[2])->output->bytes == "three\n");
    CHECK(!f.ended);
    e.exit(c->container_id, 0);
    CHECK(f.ended);
    REQUIRE(f.got.size() == 4);
    CHECK(detail_of<container_log_item>(*f.got[3])->end);
    CHECK(f.got[3]->type == event_type::container_log);

    // A stop ends the stream inline.
    auto d = k.create();
    follower g;
    std::stop_source stop;
    s.spawn(g.pump(k.mgr->follow_logs(d->container_id, std::nullopt, stop.get_token())));
    CHECK(!g.ended);
    stop.request_stop();
    CHECK(g.ended);
    CHECK(s.active() == 0);
}

TEST_CASE("container_manager: image pulls stream progress and end per engine") {
    cluster k;
    k.start();
    struct puller {
        std::vector<event_ptr> got;
        task<void> pump(async_generator<event_ptr> g) {
            for (auto it = co_await g.begin(); it != g.end(); co_await ++it) got.push_back(*it);
        }
    };
    puller p;
    async_scope s;
    s.spawn(p.pump(k.mgr->pull_image("app:1", std::string("b"), {})));
    REQUIRE(p.got.size() == 3);
    CHECK(detail_of<image_pull_item>(*p.got[0])->progress->status == "Downloading");
    CHECK(detail_of<image_pull_item>(*p.got[0])->engine == "b");
    CHECK(detail_of<image_pull_item>(*p.got[2])->end);
    CHECK(!p.got[2]->failure);
    CHECK(k.b.images.contains("app:1"));

    puller q;
    s.spawn(q.pump(k.mgr->pull_image("missing", std::nullopt, {})));
    REQUIRE(q.got.size() == 2);  // one failed end per online engine
    CHECK(detail_of<image_pull_item>(*q.got[0])->engine == "a");
    REQUIRE(q.got[0]->failure);
    CHECK(q.got[0]->failure->code == errc::not_found);
    CHECK(detail_of<image_pull_item>(*q.got[1])->engine == "b");
    CHECK(s.active() == 0);
}

}  // namespace

namespace {

using namespace registry;
using namespace std::chrono_literals;
using registry::test::run_now;

TEST_CASE("container_manager: an extended lease lost with its engine comes back with its extension, even after a restart") {
    cluster k;
    k.opt.heartbeat_interval = 1s;
    k.opt.heartbeat_timeout = 3s;
    k.start();
    auto c = k.create(10s, "a");
    auto extended = run_now(k.mgr->extend(c->container_id, 100s));
    REQUIRE(extended);
    const time_point deadline = (*extended)->expires_at;
    k.a.go_offline();
    k.clk.advance(3s);
    REQUIRE(k.mgr->find(c->container_id) == nullptr);  // lost
    CHECK(k.st.data().contains("ctr-lost/" + std::to_string(c->lease_id)));
    k.shut_down();

    k.clk.advance(20s);  // past the label's deadline, not the extension's
    k.start();
    k.a.offline = false;
    k.clk.advance(1s);
    auto adopted = k.mgr->find(c->container_id);
    REQUIRE(adopted);
    CHECK(adopted->expires_at == deadline);
    k.clk.advance(5s);
    CHECK(k.a.exists(c->container_id));

    // Reaped at the extended deadline; the lost record is forgotten once past.
    k.clk.advance_to(deadline);
    k.clk.advance(1s);
    CHECK(!k.a.exists(c->container_id));
    CHECK(!k.st.data().contains("ctr-lost/" + std::to_string(c->lease_id)));
}

}  // namespace

namespace {

std::optional<resource_usage> usage_in_last_event(const cluster& k, const container_ptr& c, managed_state state) {
    for (auto it = k.events.events.rbegin(); it != k.events.events.rend(); ++it) {
        const container_ptr ct = container_of(**it);
        if (ct && ct->lease_id == c->lease_id && ct->state == state) return ct->usage;
    }
    return std::nullopt;
}

}  // namespace

TEST_CASE("container_manager: usage is sampled for a running container and before a stop, a removal or a reap") {
    cluster k;
    k.start();
    auto c = k.create(10s);
    auto& e = k.engine_of(c);
    CHECK(c->usage.empty());
    e.set_figures(c->container_id, container_stats{300'000'000, 8 << 20, std::nullopt});
    auto live = run_now(k.mgr->with_usage(k.mgr->find(c->container_id)));
    CHECK(live->usage.cpu_ms == 300);
    CHECK(live->usage.memory_peak_bytes == 8u << 20);

    // A stop: sampled before, then the container's figures are gone.
    e.set_figures(c->container_id, container_stats{700'000'000, 4 << 20, 20 << 20});
    auto stopped = run_now(k.mgr->stop(c->container_id, 1s));
    REQUIRE(stopped);
    CHECK((*stopped)->usage.cpu_ms == 700);
    CHECK((*stopped)->usage.memory_peak_bytes == 20u << 20);
    CHECK(usage_in_last_event(k, c, managed_state::exited)->cpu_ms == 700);
    CHECK(run_now(k.mgr->with_usage(k.mgr->find(c->container_id)))->usage.cpu_ms == 700);  // kept, not sampled
    // Kept in the record: a restart has it.
    k.shut_down();
    k.start();
    CHECK(k.mgr->find(c->container_id)->usage.cpu_ms == 700);
    auto removed = run_now(k.mgr->remove(c->container_id, true));
    REQUIRE(removed);
    CHECK(usage_in_last_event(k, c, managed_state::removed)->cpu_ms == 700);

    // The reaper samples a running one before it removes it.
    auto r = k.create(5s);
    k.engine_of(r).set_figures(r->container_id, container_stats{1'200'000'000, 1 << 20, std::nullopt});
    k.clk.advance(5s);
    CHECK_FALSE(k.engine_of(r).exists(r->container_id));
    const auto reaped = usage_in_last_event(k, r, managed_state::removed);
    REQUIRE(reaped);
    CHECK(reaped->cpu_ms == 1200);
}
