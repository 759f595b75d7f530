// The registry domain, driven by a fake clock and an in-memory store:
// deterministic, nothing sleeps.
#include "registry_test_support.hpp"

#include <registry/registry.hpp>

#include <doctest/doctest.h>

using namespace registry;
using namespace registry::test;
using namespace std::chrono_literals;
using testing::fake_clock;
using testing::memory_store;

using fixture = running_registry;

TEST_CASE("registry: register, find, list, endpoints") {
    fixture f;
    auto g = f.add("api", "api-1");
    CHECK(g.created);
    CHECK(g.instance_id == "api-1");
    CHECK(g.ttl == 30s);
    CHECK(g.expires_at == f.clk.now() + 30s);
    CHECK(g.revision == 1);
    CHECK(g.lease_id == 1);

    auto s = f.reg->find("api-1");
    REQUIRE(s);
    CHECK(s->state == service_state::registered);
    CHECK(s->lease.id == g.lease_id);
    CHECK(s->created_revision == 1);

    auto generated = f.add("api");
    CHECK(generated.instance_id == "api-2");

    f.add("db", "db-1");
    CHECK(f.reg->list().size() == 3);
    service_filter by_name;
    by_name.name = "api";
    CHECK(f.reg->list(by_name).size() == 2);
    endpoint_filter ef;
    ef.service = "db";
    auto eps = f.reg->endpoints(ef);
    REQUIRE(eps.size() == 1);
    CHECK(eps[0].service->instance_id == "db-1");
    CHECK(eps[0].ep->port == 8080);
    CHECK(f.st.data().contains("svc/api-1"));
    CHECK(f.st.revision() == 3);
}

TEST_CASE("registry: validation reports every problem with its field") {
    fixture f;
    auto r = make_registration("bad name!", "ok-id");
    r.service.endpoints.push_back(endpoint{"grpc", "127.0.0.1", 0, "GRPC"});
    r.ttl = 0s;
    auto g = run_now(f.reg->register_service(std::move(r)));
    REQUIRE(!g.ok());
    CHECK(g.err().code == errc::invalid_request);
    const auto& msg = g.err().message;
    CHECK(msg.find("service.name:") != std::string::npos);
    CHECK(msg.find("service.endpoints[1].port: must be 1-65535") != std::string::npos);
    CHECK(msg.find("service.endpoints[1].protocol:") != std::string::npos);
    CHECK(msg.find("ttl_seconds:") != std::string::npos);
    // The same problems as fields, by paths relative to the registration
    // (the protocol prefixes "params." to them).
    const auto& fields = g.err().fields;
    REQUIRE(fields.size() == 4);
    CHECK(fields[0].path == "service.name");
    CHECK(fields[1].path == "service.endpoints[1].port");
    CHECK(fields[1].problem == "must be 1-65535");
    CHECK(fields[3].path == "ttl_seconds");
    CHECK(msg.find("service.name: ") == 0);
    CHECK(f.reg->size() == 0);
    CHECK(f.st.commits() == 0);
}

TEST_CASE("registry: a lease expires at its deadline, with events, unless kept alive") {
    fixture f;
    collector c;
    c.start(*f.reg);
    auto short_lived = f.add("api", "api-1", 5s);
    auto kept = f.add("api", "api-2", 5s);

    f.clk.advance(4s);
    CHECK(run_now(f.reg->keepalive(kept.lease_id)).ok());
    CHECK(f.reg->find("api-1"));
    f.clk.advance(999ms);
    CHECK(f.reg->find("api-1"));
    f.clk.advance(1ms);
    CHECK_FALSE(f.reg->find("api-1"));
    CHECK(f.reg->find("api-2"));
    CHECK_FALSE(f.st.data().contains("svc/api-1"));

    REQUIRE(c.events.size() == 5);
    CHECK(c.types() == std::vector<event_type>{event_type::registry_loaded, event_type::service_registered,
                                               event_type::service_registered, event_type::lease_expired,
                                               event_type::service_deregistered});
    CHECK(c.events[3]->revision == c.events[4]->revision);
    CHECK(c.events[3]->reason == "ttl");
    CHECK(c.events[4]->reason == "lease_expired");
    CHECK(c.events[3]->service->instance_id == "api-1");

    // The kept one expires 5 s after its keepalive (at 9 s).
    f.clk.advance(3999ms);
    CHECK(f.reg->find("api-2"));
    f.clk.advance(1ms);
    CHECK_FALSE(f.reg->find("api-2"));
    auto missing = run_now(f.reg->keepalive(kept.lease_id));
    REQUIRE(!missing.ok());
    CHECK(missing.err().code == errc::lease_not_found);
    (void)short_lived;
}

TEST_CASE("registry: leases renewed many times expire at their last deadline, each once") {
    // Every renewal leaves the previous deadline queued (stale): hundreds of
    // them, so the expiry queue is rebuilt several times meanwhile.
    fixture f;
    collector c;
    c.start(*f.reg);
    auto first = f.add("api", "api-1", 5s);
    auto second = f.add("api", "api-2", 5s);
    for (int i = 0; i < 300; ++i) {
        f.clk.advance(10ms);
        REQUIRE(run_now(f.reg->keepalive(first.lease_id)).ok());
        if (i < 200) REQUIRE(run_now(f.reg->keepalive(second.lease_id)).ok());
    }
    // Now 3 s in: api-2 was last renewed at 2 s (deadline 7 s), api-1 at 3 s (8 s).
    f.clk.advance(3999ms);
    CHECK(f.reg->find("api-2"));
    f.clk.advance(1ms);
    CHECK_FALSE(f.reg->find("api-2"));
    CHECK(f.reg->find("api-1"));
    f.clk.advance(999ms);
    CHECK(f.reg->find("api-1"));
    f.clk.advance(1ms);
    CHECK_FALSE(f.reg->find("api-1"));
    f.clk.advance(10s);
    CHECK(c.types() == std::vector<event_type>{event_type::registry_loaded, event_type::service_registered,
                                               event_type::service_registered, event_type::lease_expired,
                                               event_type::service_deregistered, event_type::lease_expired,
                                               event_type::service_deregistered});
}

TEST_CASE("registry: a change is acknowledged and published only once durable, in revision order") {
    fixture f;
    collector c;
    c.start(*f.reg);
    f.st.hold();
    started a(f.reg->register_service(make_registration("a", "a-1")));
    started b(f.reg->register_service(make_registration("b", "b-1")));
    CHECK_FALSE(a.done());
    CHECK_FALSE(b.done());
    CHECK(f.st.pending_commits() == 2);
    CHECK(c.events.size() == 1);  // the snapshot only
    f.st.release();
    REQUIRE(a.done());
    REQUIRE(b.done());
    CHECK(a.get()->revision == 1);
    CHECK(b.get()->revision == 2);
    REQUIRE(c.events.size() == 3);
    CHECK(c.events[1]->revision == 1);
    CHECK(c.events[2]->revision == 2);
}

TEST_CASE("registry: a failed store makes the registry unavailable, not inconsistent") {
    fixture f;
    f.add("a", "a-1");
    f.st.fail();
    auto g = run_now(f.reg->register_service(make_registration("b", "b-1")));
    REQUIRE(!g.ok());
    CHECK(g.err().code == errc::unavailable);
    CHECK_FALSE(f.reg->available());
    auto again = run_now(f.reg->deregister("a-1"));
    REQUIRE(!again.ok());
    CHECK(again.err().code == errc::unavailable);
}

TEST_CASE("registry: conflicts and re-registration") {
    fixture f;
    collector c;
    c.start(*f.reg);
    auto g = f.add("api", "api-1");

    auto dup = run_now(f.reg->register_service(make_registration("api", "api-1")));
    REQUIRE(!dup.ok());
    CHECK(dup.err().code == errc::conflict);

    auto wrong = make_registration("api", "api-1");
    wrong.lease_id = g.lease_id + 100;
    auto w = run_now(f.reg->register_service(std::move(wrong)));
    REQUIRE(!w.ok());
    CHECK(w.err().code == errc::lease_not_found);

    // Same lease, new endpoint: endpoint_updated, lease renewed.
    f.clk.advance(10s);
    auto again = make_registration("api", "api-1", 9090);
    again.lease_id = g.lease_id;
    auto r = run_now(f.reg->register_service(std::move(again)));
    REQUIRE(r.ok());
    CHECK_FALSE(r->created);
    CHECK(r->lease_id == g.lease_id);
    CHECK(r->expires_at == f.clk.now() + 30s);
    CHECK(f.reg->find("api-1")->endpoints[0].port == 9090);
    CHECK(f.reg->find("api-1")->created_revision == 1);
    CHECK(c.types().back() == event_type::endpoint_updated);

    // Same lease, nothing changed: no new revision, no event.
    const auto events_before = c.events.size();
    auto same = make_registration("api", "api-1", 9090);
    same.lease_id = g.lease_id;
    auto s = run_now(f.reg->register_service(std::move(same)));
    REQUIRE(s.ok());
    CHECK(s->revision == r->revision);
    CHECK(c.events.size() == events_before);
}

TEST_CASE("registry: the state machine rejects illegal transitions") {
    fixture f;
    collector c;
    c.start(*f.reg);
    f.add("api", "api-1");
    auto bad = run_now(f.reg->set_state("api-1", service_state::stopping));
    REQUIRE(!bad.ok());
    CHECK(bad.err().code == errc::invalid_transition);
    CHECK(bad.err().message.find("registered") != std::string::npos);
    CHECK(bad.err().message.find("stopping") != std::string::npos);

    auto ok = run_now(f.reg->set_state("api-1", service_state::starting));
    REQUIRE(ok.ok());
    CHECK((*ok)->state == service_state::starting);
    auto running = run_now(f.reg->set_state("api-1", service_state::running));
    REQUIRE(running.ok());
    const auto events_before = c.events.size();
    auto same = run_now(f.reg->set_state("api-1", service_state::running));
    REQUIRE(same.ok());
    CHECK(c.events.size() == events_before);
    auto failed = run_now(f.reg->set_state("api-1", service_state::failed, "crashed"));
    REQUIRE(failed.ok());
    CHECK((*failed)->failure_reason == "crashed");
    CHECK(c.events.back()->type == event_type::service_state_changed);
    CHECK(c.events.back()->previous_state == service_state::running);
    CHECK(c.events.back()->reason == "crashed");

    auto missing = run_now(f.reg->set_state("nope", service_state::running));
    REQUIRE(!missing.ok());
    CHECK(missing.err().code == errc::not_found);

    CHECK(is_allowed_transition(service_state::stopped, service_state::starting));
    CHECK_FALSE(is_allowed_transition(service_state::stopped, service_state::running));
    CHECK_FALSE(is_allowed_transition(service_state::running, service_state::registered));
}

TEST_CASE("registry: session-bound leases get a grace period when their session goes") {
    fixture f;
    f.opt.session_grace = 2000ms;
    f.restart();
    auto r = make_registration("eph", "eph-1");
    r.session_bound = true;
    auto g = run_now(f.reg->register_service(std::move(r), 7));
    REQUIRE(g.ok());

    auto r2 = make_registration("eph", "eph-2");
    r2.session_bound = true;
    auto g2 = run_now(f.reg->register_service(std::move(r2), 7));
    REQUIRE(g2.ok());

    f.clk.advance(10s);  // connected: no expiry before the TTL
    CHECK(f.reg->find("eph-1"));
    f.reg->release_session(7);
    f.clk.advance(1s);
    // eph-2 is picked up by a reconnecting client (new session 8) within the grace.
    CHECK(run_now(f.reg->keepalive(g2->lease_id, 8)).ok());
    f.clk.advance(1s);
    CHECK_FALSE(f.reg->find("eph-1"));
    CHECK(f.reg->find("eph-2"));
    f.clk.advance(10s);
    CHECK(f.reg->find("eph-2"));
    f.reg->release_session(8);
    f.clk.advance(2s);
    CHECK_FALSE(f.reg->find("eph-2"));
}

TEST_CASE("registry: a restart keeps services and absolute lease deadlines") {
    fixture f;
    auto g = f.add("api", "api-1", 60s);
    auto r = make_registration("eph", "eph-1");
    r.session_bound = true;
    REQUIRE(run_now(f.reg->register_service(std::move(r), 3)).ok());
    REQUIRE(run_now(f.reg->set_state("api-1", service_state::running)).ok());
    f.clk.advance(20s);
    f.restart();

    auto s = f.reg->find("api-1");
    REQUIRE(s);
    CHECK(s->state == service_state::running);
    CHECK(s->lease.expires_at == g.expires_at);
    CHECK(f.reg->revision() == 3);
    // The session of eph-1 died with the old process: grace, then gone.
    CHECK(f.reg->find("eph-1"));
    f.clk.advance(f.opt.session_grace);
    CHECK_FALSE(f.reg->find("eph-1"));
    // The old lease still expires at its original time, not 60 s after the restart.
    f.clk.advance_to(g.expires_at - 1ms);
    CHECK(f.reg->find("api-1"));
    f.clk.advance(1ms);
    CHECK_FALSE(f.reg->find("api-1"));
    // New revisions continue after the old ones; lease ids stay unique.
    auto next = f.add("db", "db-1");
    CHECK(next.revision > 3);
    CHECK(next.lease_id != g.lease_id);
}

TEST_CASE("registry: watch filters by event type and service name") {
    fixture f;
    collector only_db;
    watch_options o;
    o.services = {"db"};
    o.snapshot = false;
    only_db.start(*f.reg, o);
    collector only_dereg;
    watch_options o2;
    o2.types = {event_type::service_deregistered};
    only_dereg.start(*f.reg, o2);

    f.add("api", "api-1");
    f.add("db", "db-1");
    REQUIRE(run_now(f.reg->deregister("api-1")).ok());
    REQUIRE(run_now(f.reg->deregister("db-1")).ok());

    CHECK(only_db.types() == std::vector<event_type>{event_type::service_registered, event_type::service_deregistered});
    for (auto& e : only_db.events) CHECK(e->service->name == "db");
    CHECK(only_dereg.types() == std::vector<event_type>{event_type::registry_loaded, event_type::service_deregistered,
                                                        event_type::service_deregistered});
}

TEST_CASE("registry: resume from a revision replays exactly what was missed") {
    fixture f;
    f.add("a", "a-1");
    f.add("b", "b-1");
    const auto seen = f.reg->revision();
    f.add("c", "c-1");
    REQUIRE(run_now(f.reg->deregister("a-1")).ok());

    collector c;
    watch_options o;
    o.from_revision = seen;
    c.start(*f.reg, o);
    REQUIRE(c.types() == std::vector<event_type>{event_type::service_registered, event_type::service_deregistered});
    CHECK(c.events[0]->revision == seen + 1);
    CHECK(c.events[1]->revision == seen + 2);
    f.add("d", "d-1");
    CHECK(c.events.size() == 3);
    CHECK(c.events.back()->revision == seen + 3);
}

TEST_CASE("registry: resume beyond the history gets resync_required and a fresh snapshot") {
    fixture f;
    f.opt.history_limit = 4;
    f.restart();
    for (int i = 0; i < 10; ++i) f.add("svc", "svc-" + std::to_string(i));

    collector c;
    watch_options o;
    o.from_revision = 2;
    c.start(*f.reg, o);
    REQUIRE(c.events.size() == 2);
    CHECK(c.events[0]->type == event_type::resync_required);
    CHECK(c.events[0]->resync_from == 2);
    CHECK(c.events[0]->oldest_revision == 7);
    CHECK(c.events[1]->type == event_type::registry_loaded);
    CHECK(c.events[1]->snapshot.size() == 10);
    CHECK(c.events[1]->revision == 10);

    // A revision from the future (e.g. a wiped data dir) is not trusted either.
    collector future;
    watch_options o2;
    o2.from_revision = 500;
    future.start(*f.reg, o2);
    REQUIRE(future.events.size() == 2);
    CHECK(future.events[0]->type == event_type::resync_required);

    // Within the history: replay.
    collector recent;
    watch_options o3;
    o3.from_revision = 7;
    recent.start(*f.reg, o3);
    CHECK(recent.events.size() == 3);
}

TEST_CASE("registry: a watcher that falls too far behind gets resync_required, never a silent gap") {
    fixture f;
    f.opt.watch_queue_limit = 3;
    f.restart();
    collector slow;
    slow.pause.open = false;  // takes the snapshot, then stops reading
    slow.start(*f.reg);
    REQUIRE(slow.events.size() == 1);
    for (int i = 0; i < 10; ++i) f.add("svc", "svc-" + std::to_string(i));
    slow.pause.release();
    REQUIRE(slow.events.size() >= 3);
    CHECK(slow.events[1]->type == event_type::resync_required);
    CHECK(slow.events[2]->type == event_type::registry_loaded);
    CHECK(slow.events[2]->snapshot.size() == 10);
}

TEST_CASE("registry: bookmarks carry the current revision") {
    fixture f;
    f.opt.bookmark_interval = 5s;
    f.restart();
    collector c;
    watch_options o;
    o.services = {"nothing-matches"};
    c.start(*f.reg, o);
    f.add("api", "api-1");
    f.clk.advance(5s);
    REQUIRE(c.events.size() == 2);
    CHECK(c.events[1]->type == event_type::bookmark);
    CHECK(c.events[1]->revision == 1);
}

TEST_CASE("registry: bookmark() sends the current revision to every watcher at once") {
    fixture f;
    collector filtered;
    watch_options o;
    o.services = {"api"};
    o.snapshot = false;
    filtered.start(*f.reg, o);
    f.add("api", "api-1");
    f.add("other", "other-1");  // filtered out: the watcher's last revision stays 1
    REQUIRE(filtered.events.size() == 1);
    CHECK(filtered.events[0]->revision == 1);
    f.reg->bookmark();
    REQUIRE(filtered.events.size() == 2);
    CHECK(filtered.events[1]->type == event_type::bookmark);
    CHECK(filtered.events[1]->revision == 2);
}

TEST_CASE("registry: ending a watch ends the generator and unsubscribes") {
    fixture f;
    {
        collector c;
        c.start(*f.reg);
        f.add("a", "a-1");
        c.end();
        CHECK(c.ended);
        CHECK(c.scope.active() == 0);
        f.add("b", "b-1");
        CHECK(c.events.size() == 2);
    }
    f.add("c", "c-1");  // no watcher left behind to crash into
}
