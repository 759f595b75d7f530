// The event log (registry_options::event_log) and replicas
// (registry::become_replica): what several registryd on one etcd rely on. A
// writer's transactions are recorded as its store commits them and handed
// to a replica opened on the same store, as registryd's etcd watch does.
#include "registry_test_support.hpp"

#include "codec/event_record.hpp"
#include "codec/json_writer.hpp"
#include "protocol/event_encoder.hpp"

#include <registry/health_check.hpp>
#include <registry/registry.hpp>

#include <doctest/doctest.h>

#include <string>
#include <vector>

using namespace registry;
using namespace registry::test;
using namespace std::chrono_literals;

namespace {

// Every committed batch's mutations, in commit order, on a memory store.
class recording_store final : public store {
public:
    explicit recording_store(testing::memory_store& st) : st_(st) {}
    task<std::uint64_t> load(std::string prefix, store_visitor each) override {
        return st_.load(std::move(prefix), std::move(each));
    }
    task<void> commit(store_batch batch) override {
        auto mutations = batch.mutations;
        co_await st_.commit(std::move(batch));
        txns.push_back(std::move(mutations));
    }
    std::vector<std::vector<store_mutation>> txns;

private:
    testing::memory_store& st_;
};

registry_options logged_options() {
    registry_options o;
    o.bookmark_interval = seconds{3600};
    o.event_log = true;
    return o;
}

// A writer with an event log, and a replica opened on its store when asked.
struct writer_and_replica {
    testing::fake_clock clk;
    testing::memory_store st;
    recording_store rec{st};
    registry_options opt = logged_options();
    ::registry::registry writer{clk, rec, opt};
    std::optional<::registry::registry> replica;
    std::size_t applied = 0;  // rec.txns handed to the replica
    std::stop_source stop;
    async_scope runners;

    writer_and_replica() {
        REQUIRE(run_now(writer.open()).ok());
        runners.spawn(writer.run(stop.get_token()));
    }
    ~writer_and_replica() {
        stop.request_stop();
        CHECK(runners.active() == 0);
    }
    void open_replica() {
        replica.emplace(clk, st, opt);
        REQUIRE(run_now(replica->open()).ok());
        replica->become_replica("registryd A");
        applied = rec.txns.size();
        runners.spawn(replica->run(stop.get_token()));
    }
    // Hands the replica what the writer committed since the last call.
    void follow() {
        for (; applied < rec.txns.size(); ++applied) {
            auto r = replica->apply(rec.txns[applied]);
            REQUIRE_MESSAGE(r.ok(), (r.ok() ? "" : r.err().message));
        }
    }
    lease_grant add(std::string name, std::string id, seconds ttl = 30s) {
        auto r = make_registration(std::move(name), std::move(id));
        r.ttl = ttl;
        auto g = run_now(writer.register_service(std::move(r)));
        REQUIRE_MESSAGE(g.ok(), (g.ok() ? "" : g.err().message));
        return g.value();
    }
};

std::vector<std::pair<event_type, std::uint64_t>> changes(const collector& c) {
    std::vector<std::pair<event_type, std::uint64_t>> out;
    for (const auto& e : c.events) {
        if (e->type != event_type::registry_loaded && e->type != event_type::bookmark) out.emplace_back(e->type, e->revision);
    }
    return out;
}

// A companion's data the registry carries without knowing its type.
struct test_detail final : event_detail {
    void write_data(detail::json_writer& w, const event&) const override {
        w.key("engine").string("podman-1").key("lease_id").number(42).key("tags").begin_array().string("a\"b").end_array();
    }
};

}  // namespace

TEST_CASE("event log: each kind of event reads back as it was written, a companion's data verbatim") {
    auto s = std::make_shared<service_instance>();
    s->name = "api";
    s->instance_id = "api-1";
    s->version = "2.0.0";
    s->lease = lease{7, seconds{30}, time_point{milliseconds{123456}}, false, "ci"};
    s->endpoints.push_back(endpoint{"http", "10.0.0.1", 80, "http"});
    std::vector<std::shared_ptr<event>> events;
    auto changed = std::make_shared<event>();
    changed->type = event_type::service_state_changed;
    changed->service = s;
    changed->previous_state = service_state::registered;
    changed->reason = "ready";
    events.push_back(changed);
    auto checked = std::make_shared<event>();
    checked->type = event_type::health_check_result;
    checked->service = s;
    checked->check = std::make_shared<check_change>(
        check_change{"http", check_kind::http, health_status::critical, health_status::healthy, "503", 3});
    events.push_back(checked);
    auto deployed = std::make_shared<event>();
    deployed->type = event_type::deployment_failed;
    deployed->failure = error{errc::deployment_failed, "start.sh exited 3"};
    deployed->deployment = std::make_shared<deployment_change>(
        deployment_change{"web-1", "web", "local", std::nullopt, "1.2.0", "starting", "failed", std::nullopt, 9, "r-1"});
    events.push_back(deployed);
    auto container = std::make_shared<event>();
    container->type = event_type::container_state_changed;
    container->detail = std::make_shared<test_detail>();
    events.push_back(container);

    auto decoded = detail::decode_event_log(detail::encode_event_log(events), 17);
    REQUIRE_MESSAGE(decoded.ok(), (decoded.ok() ? "" : decoded.err().message));
    REQUIRE(decoded->size() == events.size());
    for (std::size_t i = 0; i < events.size(); ++i) {
        events[i]->revision = 17;
        CHECK((*decoded)[i]->revision == 17);
        CHECK(*protocol::event_body(*(*decoded)[i]) == *protocol::event_body(*events[i]));
    }

    CHECK_FALSE(detail::decode_event_log(R"([{"type":"no_such_event"}])", 1).ok());
    CHECK_FALSE(detail::decode_event_log(R"([{"type":"bookmark","surprise":1}])", 1).ok());
    CHECK_FALSE(detail::decode_event_log(R"({"type":"bookmark"})", 1).ok());
}

TEST_CASE("event log: a registry opened on the store replays what followed a revision, across a restart") {
    running_registry f;
    f.opt.event_log = true;
    f.restart();
    f.add("api", "api-1");
    f.add("api", "api-2");
    REQUIRE(run_now(f.reg->deregister("api-1")).ok());
    CHECK(f.st.data().contains("log/00000000000000000001"));
    CHECK(f.st.data().contains("log/00000000000000000003"));
    f.restart();

    collector c;
    watch_options o;
    o.from_revision = 1;
    c.start(*f.reg, o);
    REQUIRE(c.events.size() == 2);
    CHECK(c.events[0]->type == event_type::service_registered);
    CHECK(c.events[0]->revision == 2);
    CHECK(c.events[0]->service->instance_id == "api-2");
    CHECK(c.events[1]->type == event_type::service_deregistered);
    CHECK(c.events[1]->revision == 3);
    CHECK(c.events[1]->reason == "deregistered");

    // Live events go on from there.
    f.add("api", "api-3");
    REQUIRE(c.events.size() == 3);
    CHECK(c.events[2]->revision == 4);
}

TEST_CASE("event log: it keeps history_limit revisions, and a resume from before them gets resync_required") {
    running_registry f;
    f.opt.event_log = true;
    f.opt.history_limit = 3;
    f.restart();
    for (int i = 1; i <= 5; ++i) f.add("api", "api-" + std::to_string(i));
    std::vector<std::string> logged;
    for (const auto& [key, value] : f.st.data()) {
        if (key.starts_with("log/")) logged.push_back(key);
    }
    CHECK(logged == std::vector<std::string>{"log/00000000000000000003", "log/00000000000000000004",
                                             "log/00000000000000000005"});
    f.restart();
    collector replay;
    watch_options from2;
    from2.from_revision = 2;
    replay.start(*f.reg, from2);
    CHECK(changes(replay) == std::vector<std::pair<event_type, std::uint64_t>>{
                                 {event_type::service_registered, 3},
                                 {event_type::service_registered, 4},
                                 {event_type::service_registered, 5}});
    collector too_old;
    watch_options from1;
    from1.from_revision = 1;
    too_old.start(*f.reg, from1);
    REQUIRE(!too_old.events.empty());
    CHECK(too_old.events[0]->type == event_type::resync_required);
    CHECK(too_old.events[0]->oldest_revision == 3);
}

TEST_CASE("replica: it publishes the writer's events under the writer's revisions and answers reads from what it applied") {
    writer_and_replica f;
    f.add("api", "api-1", 5s);
    f.open_replica();
    CHECK(f.replica->revision() == 1);
    REQUIRE(f.replica->find("api-1"));

    collector on_writer, on_replica;
    watch_options live;
    live.snapshot = false;
    on_writer.start(f.writer, live);
    on_replica.start(*f.replica, live);

    const auto kept = f.add("web", "web-1", 60s);
    REQUIRE(run_now(f.writer.keepalive(kept.lease_id)).ok());
    REQUIRE(run_now(f.writer.set_state("web-1", service_state::running, "started")).ok());
    REQUIRE(run_now(f.writer.deregister("web-1", "done")).ok());
    f.clk.advance(6s);  // api-1's lease runs out on the writer; the replica expires nothing itself
    f.follow();
    CHECK(f.replica->find("api-1") == nullptr);
    CHECK(f.replica->find("web-1") == nullptr);
    CHECK(f.replica->revision() == f.writer.revision());

    const auto expected = changes(on_writer);
    CHECK(expected.size() == 5);  // registered, state_changed, deregistered, lease_expired + deregistered
    CHECK(changes(on_replica) == expected);
    for (std::size_t i = 0; i < on_writer.events.size() && i < on_replica.events.size(); ++i) {
        CHECK(*protocol::event_body(*on_replica.events[i]) == *protocol::event_body(*on_writer.events[i]));
    }
}

TEST_CASE("replica: a lease is not expired by the replica, only by the writer's transaction") {
    writer_and_replica f;
    f.add("api", "api-1", 2s);
    f.open_replica();
    REQUIRE(run_now(f.writer.keepalive(f.writer.find("api-1")->lease.id)).ok());
    f.follow();
    // The writer has not run out the lease yet; a replica with no writer never does.
    f.stop.request_stop();
    f.clk.advance(10s);
    CHECK(f.replica->find("api-1") != nullptr);
}

TEST_CASE("replica: writes are refused with not_writer naming the writer, and a resume replays the logged history") {
    writer_and_replica f;
    f.add("api", "api-1");
    f.add("api", "api-2");
    f.open_replica();
    auto refused = run_now(f.replica->register_service(make_registration("api", "api-3")));
    REQUIRE(!refused.ok());
    CHECK(refused.err().code == errc::not_writer);
    CHECK(refused.err().message.find("registryd A") != std::string::npos);
    auto no_renewal = run_now(f.replica->keepalive(f.writer.find("api-1")->lease.id));
    REQUIRE(!no_renewal.ok());
    CHECK(no_renewal.err().code == errc::not_writer);
    CHECK(run_now(f.replica->deregister("api-1")).err().code == errc::not_writer);

    // A client that saw revision 1 on the writer resumes on the replica.
    collector moved;
    watch_options o;
    o.from_revision = 1;
    moved.start(*f.replica, o);
    f.add("api", "api-4");
    f.follow();
    CHECK(changes(moved) == std::vector<std::pair<event_type, std::uint64_t>>{
                                {event_type::service_registered, 2}, {event_type::service_registered, 3}});
}

TEST_CASE("replica: a transaction whose revision does not follow the last one is refused and changes nothing") {
    writer_and_replica f;
    f.add("api", "api-1");
    f.open_replica();
    f.add("api", "api-2");
    f.add("api", "api-3");
    REQUIRE(f.rec.txns.size() == f.applied + 2);
    auto skipped = f.replica->apply(f.rec.txns[f.applied + 1]);  // revision 3 before 2
    REQUIRE(!skipped.ok());
    CHECK(skipped.err().message.find("does not follow") != std::string::npos);
    CHECK(f.replica->find("api-3") == nullptr);
    CHECK(f.replica->revision() == 1);

    std::vector<store_mutation> garbled{{"svc/api-9", std::string("{not json")}};
    CHECK_FALSE(f.replica->apply(garbled).ok());
    CHECK(f.replica->find("api-9") == nullptr);

    f.follow();  // in order, both go through
    CHECK(f.replica->revision() == 3);
}

TEST_CASE("replica: a transaction carrying several revisions (batches committed together) is applied whole") {
    writer_and_replica f;
    f.add("api", "api-1");
    f.open_replica();
    f.add("api", "api-2");
    f.add("api", "api-3");
    f.add("api", "api-4");
    REQUIRE(f.rec.txns.size() == f.applied + 3);
    collector live;
    watch_options o;
    o.snapshot = false;
    live.start(*f.replica, o);
    // What registryd's etcd store writes when the three were queued at once.
    std::vector<store_mutation> together;
    for (std::size_t i = f.applied; i < f.rec.txns.size(); ++i) {
        together.insert(together.end(), f.rec.txns[i].begin(), f.rec.txns[i].end());
    }
    auto applied = f.replica->apply(together);
    REQUIRE_MESSAGE(applied.ok(), (applied.ok() ? "" : applied.err().message));
    CHECK(f.replica->revision() == 4);
    CHECK(f.replica->find("api-4") != nullptr);
    CHECK(changes(live) == std::vector<std::pair<event_type, std::uint64_t>>{{event_type::service_registered, 2},
                                                                             {event_type::service_registered, 3},
                                                                             {event_type::service_registered, 4}});
}

TEST_CASE("replica: reads wait on the embedder's barrier, and fail with it") {
    writer_and_replica f;
    f.open_replica();
    CHECK(run_now(f.replica->read_barrier()).ok());  // none set: at once
    int asked = 0;
    f.replica->set_read_barrier([&asked]() -> task<result<void>> {
        ++asked;
        co_return fail(errc::unavailable, "etcd unreachable");
    });
    CHECK(f.replica->has_read_barrier());
    auto r = run_now(f.replica->read_barrier());
    REQUIRE(!r.ok());
    CHECK(r.err().code == errc::unavailable);
    CHECK(asked == 1);
}
