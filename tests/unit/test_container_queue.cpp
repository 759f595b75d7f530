// The container manager's create queue (container_request::queue) on a fake
// clock, an in-memory store and in-memory engines: FIFO order and position
// reports, its bounds, cancelling (by id and by the listener's stop), slots
// freed by a removal, an exit, an expiry, a node coming online or growing, a
// named node removed, the manager stopping, and a restart dropping what was
// queued.
#include "registry_test_support.hpp"

#include <registry/container_manager.hpp>
#include <registry/testing/memory_engine.hpp>

#include <doctest/doctest.h>

#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

namespace {

using namespace registry;
using namespace std::chrono_literals;
using registry::test::run_now;
using registry::test::started;
using testing::memory_engine;

using create_result = result<container_ptr>;

// What a queued request's listener was told, in order: "q1@2" is queue id q1 at position 2.
struct positions {
    std::vector<std::string> told;
    queue_listener listener(std::stop_token cancel = {}) {
        queue_listener l;
        l.on_position = [this](const queued_create& q, std::size_t at) {
            told.push_back(q.queue_id + "@" + std::to_string(at));
        };
        l.cancel = std::move(cancel);
        return l;
    }
};

struct cluster {
    testing::fake_clock clk;
    testing::memory_store st;
    memory_engine a{"a"};
    memory_engine b{"b"};
    std::optional<class registry> reg;
    std::optional<container_manager> mgr;
    std::optional<std::stop_source> stop;
    async_scope scope;
    container_manager_options opt;
    std::vector<queued_create> dropped;  // on_queue_dropped
    std::size_t cap_a = 1;
    std::size_t cap_b = 1;

    cluster() {
        opt.instance_id = "reg-1";
        opt.stop_grace = 1s;
        opt.max_queued = 4;
        opt.max_queued_per_identity = 3;
        opt.on_queue_dropped = [this](const queued_create& q) { dropped.push_back(q); };
        a.clk = &clk;
        b.clk = &clk;
    }

    void start() {
        reg.emplace(clk, st);
        REQUIRE(run_now(reg->open()));
        std::vector<container_node> nodes{{"a", "mem://a", &a, cap_a}, {"b", "mem://b", &b, cap_b}};
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
        mgr.reset();
        reg.reset();
    }

    ~cluster() { shut_down(); }

    static container_request request(std::string owner = "anonymous", std::optional<std::string> engine = {},
                                     std::optional<seconds> ttl = {}) {
        container_request r;
        r.spec.image = "img";
        r.spec.command = {"sleep", "100"};
        r.owner = std::move(owner);
        r.engine = std::move(engine);
        r.ttl = ttl;
        r.queue = true;
        return r;
    }

    container_ptr create_now(std::optional<std::string> engine = {}, std::optional<seconds> ttl = {}) {
        auto made = run_now(mgr->create(request("anonymous", std::move(engine), ttl)));
        REQUIRE_MESSAGE(made, (made ? "" : made.err().message));
        return *made;
    }

    void exit(const container_ptr& c) { (c->engine == "a" ? a : b).exit(c->container_id, 0); }

    std::vector<std::string> queue_ids() const {
        std::vector<std::string> out;
        for (const auto& q : mgr->queued()) out.push_back(q.queue_id);
        return out;
    }

    std::size_t stored_queue_records() const {
        std::size_t n = 0;
        for (const auto& [key, value] : st.data()) n += key.starts_with("ctr-queue/") ? 1 : 0;
        return n;
    }
};

using strings = std::vector<std::string>;

const container_ptr& made(started<create_result>& s) {
    REQUIRE(s.done());
    REQUIRE_MESSAGE(s.get(), (s.get() ? "" : s.get().err().message));
    return *s.get();
}

const error& failed(started<create_result>& s) {
    REQUIRE(s.done());
    REQUIRE(!s.get());
    return s.get().err();
}

TEST_CASE("create queue: without queue a full cluster is limit_exceeded, with it the request waits, FIFO, told its position") {
    cluster k;
    k.start();
    auto first = k.create_now();
    auto second = k.create_now();
    REQUIRE(first->engine != second->engine);

    container_request plain = cluster::request();
    plain.queue = false;
    auto refused = run_now(k.mgr->create(plain));
    REQUIRE(!refused);
    CHECK(refused.err().code == errc::limit_exceeded);
    CHECK(k.mgr->queued().empty());

    positions p1, p2, p3;
    started<create_result> q1(k.mgr->create(cluster::request("ann"), p1.listener()));
    started<create_result> q2(k.mgr->create(cluster::request("bob"), p2.listener()));
    started<create_result> q3(k.mgr->create(cluster::request("ann"), p3.listener()));
    CHECK(!q1.done());
    CHECK(!q2.done());
    CHECK(!q3.done());
    CHECK(k.queue_ids() == strings{"q1", "q2", "q3"});
    CHECK(p1.told == strings{"q1@1"});
    CHECK(p2.told == strings{"q2@2"});
    CHECK(p3.told == strings{"q3@3"});
    const auto listed = k.mgr->queued();
    CHECK(listed[1].owner == "bob");
    CHECK(listed[1].image == "img");
    CHECK(listed[1].queued_at == k.clk.now());
    CHECK(k.stored_queue_records() == 3);  // durable while waiting

    // A removal frees a slot: the first in line gets it, the others move up.
    REQUIRE(run_now(k.mgr->remove(first->container_id, true)));
    const container_ptr& c1 = made(q1);
    CHECK(c1->state == managed_state::running);
    CHECK(c1->owner == "ann");
    CHECK(c1->engine == first->engine);
    CHECK(!q2.done());
    CHECK(p2.told == strings{"q2@2", "q2@1"});
    CHECK(p3.told == strings{"q3@3", "q3@2"});
    CHECK(k.stored_queue_records() == 2);

    // An exit frees one too (an exited container does not count).
    k.exit(second);
    CHECK(made(q2)->owner == "bob");
    CHECK(p3.told == strings{"q3@3", "q3@2", "q3@1"});
    CHECK(!q3.done());

    // An expiry as well: the reaper removes c1 at its deadline.
    k.clk.advance(k.opt.default_ttl);
    CHECK(made(q3)->owner == "ann");
    CHECK(k.mgr->queued().empty());
    CHECK(k.stored_queue_records() == 0);
}

TEST_CASE("create queue: bounded in all and per identity, each refusal naming its quota") {
    cluster k;  // max_queued 4, max_queued_per_identity 3
    k.start();
    k.create_now();
    k.create_now();
    positions p;
    std::vector<std::unique_ptr<started<create_result>>> waiting;
    for (int i = 0; i < 3; ++i) waiting.push_back(std::make_unique<started<create_result>>(k.mgr->create(cluster::request("ann"))));
    auto over_share = run_now(k.mgr->create(cluster::request("ann")));
    REQUIRE(!over_share);
    CHECK(over_share.err().code == errc::limit_exceeded);
    CHECK(over_share.err().message ==
          "quota containers.max_queued_per_identity: 'ann' has its maximum of 3 container creates queued");
    waiting.push_back(std::make_unique<started<create_result>>(k.mgr->create(cluster::request("bob"))));
    auto full = run_now(k.mgr->create(cluster::request("cid")));
    REQUIRE(!full);
    CHECK(full.err().code == errc::limit_exceeded);
    CHECK(full.err().message.starts_with("quota containers.max_queued: every eligible engine is at its capacity"));
    CHECK(k.mgr->queued().size() == 4);
    for (const auto& w : waiting) CHECK(!w->done());

    // Stopping the manager ends every queued create, unavailable, and forgets it.
    k.stop->request_stop();
    for (const auto& w : waiting) {
        REQUIRE(w->done());
        REQUIRE(!w->get());
        CHECK(w->get().err().code == errc::unavailable);
    }
    CHECK(k.stored_queue_records() == 0);
}

TEST_CASE("create queue: cancelled by its owner or an admin (by queue id) or by its listener's stop") {
    cluster k;
    k.start();
    k.create_now();
    k.create_now();
    positions p1, p2, p3;
    std::stop_source closing;
    started<create_result> q1(k.mgr->create(cluster::request("ann"), p1.listener()));
    started<create_result> q2(k.mgr->create(cluster::request("bob"), p2.listener(closing.get_token())));
    started<create_result> q3(k.mgr->create(cluster::request("ann"), p3.listener()));

    identity bob{"bob", false, {}};
    auto forbidden = k.mgr->cancel_queued("q1", bob);
    REQUIRE(!forbidden);
    CHECK(forbidden.err().code == errc::forbidden);
    CHECK(!q1.done());
    auto unknown = k.mgr->cancel_queued("q9", bob);
    REQUIRE(!unknown);
    CHECK(unknown.err().code == errc::not_found);
    CHECK(unknown.err().message == "no queued container create 'q9'");

    identity ann{"ann", false, {}};
    REQUIRE(k.mgr->cancel_queued("q1", ann));
    CHECK(failed(q1).code == errc::unavailable);
    CHECK(failed(q1).message == "queued container create q1 was cancelled");
    CHECK(p2.told == strings{"q2@2", "q2@1"});
    CHECK(p3.told == strings{"q3@3", "q3@2"});

    closing.request_stop();  // its connection closed
    CHECK(failed(q2).code == errc::unavailable);
    CHECK(p3.told == strings{"q3@3", "q3@2", "q3@1"});
    CHECK(k.queue_ids() == strings{"q3"});

    identity admin{"root", true, {}};
    REQUIRE(k.mgr->cancel_queued("q3", admin));
    CHECK(failed(q3).code == errc::unavailable);
    CHECK(k.mgr->queued().empty());
    CHECK(k.stored_queue_records() == 0);
    // Nothing was created for them.
    CHECK(k.mgr->list().size() == 2);
}

TEST_CASE("create queue: a slot on another node goes to the first request that may use it") {
    cluster k;
    k.start();
    auto on_a = k.create_now("a");
    auto on_b = k.create_now("b");
    started<create_result> wants_a(k.mgr->create(cluster::request("ann", "a")));
    started<create_result> any(k.mgr->create(cluster::request("bob")));
    started<create_result> also_a(k.mgr->create(cluster::request("cid", "a")));
    // b frees: the request for a keeps waiting, the one for any node goes.
    REQUIRE(run_now(k.mgr->remove(on_b->container_id, true)));
    CHECK(!wants_a.done());
    CHECK(made(any)->engine == "b");
    CHECK(!also_a.done());
    // a frees: the earlier of the two asking for it.
    REQUIRE(run_now(k.mgr->remove(on_a->container_id, true)));
    CHECK(made(wants_a)->engine == "a");
    CHECK(!also_a.done());
    // More capacity lets the last one go.
    REQUIRE(k.mgr->set_capacity("a", 2));
    CHECK(made(also_a)->owner == "cid");
}

TEST_CASE("create queue: a node removed fails the creates that name it, one added serves the others") {
    cluster k;
    k.start();
    k.create_now("a");
    k.create_now("b");
    started<create_result> wants_b(k.mgr->create(cluster::request("ann", "b")));
    started<create_result> any(k.mgr->create(cluster::request("bob")));
    REQUIRE(run_now(k.mgr->remove_node("b", "deregistered")));
    CHECK(failed(wants_b).code == errc::not_found);
    CHECK(!any.done());

    auto c = std::make_shared<memory_engine>("c");
    c->clk = &k.clk;
    REQUIRE(k.mgr->add_node({"c", "mem://c", nullptr, 1}, c));
    CHECK(made(any)->engine == "c");  // pinged at once, online, reconciled: its slot is free
}

TEST_CASE("create queue: a restart drops what was queued, reports it, and forgets its records") {
    cluster k;
    k.start();
    k.create_now();
    k.create_now();
    k.clk.advance(1s);
    const time_point queued_at = k.clk.now();
    auto pending = std::make_unique<started<create_result>>(k.mgr->create(cluster::request("ann", "b")));
    CHECK(k.stored_queue_records() == 1);
    // registryd killed: nothing ran to completion, the record is all that is left.
    auto record = k.st.data().at("ctr-queue/q1");
    k.shut_down();
    CHECK(failed(*pending).code == errc::unavailable);
    pending.reset();
    k.st.put("ctr-queue/q1", record);

    k.start();
    REQUIRE(k.dropped.size() == 1);
    CHECK(k.dropped[0].queue_id == "q1");
    CHECK(k.dropped[0].owner == "ann");
    CHECK(k.dropped[0].image == "img");
    CHECK(k.dropped[0].engine == std::optional<std::string>("b"));
    CHECK(k.dropped[0].queued_at == queued_at);
    CHECK(k.stored_queue_records() == 0);
    CHECK(k.mgr->queued().empty());
    // Queue ids go on from the dropped ones.
    started<create_result> next(k.mgr->create(cluster::request("bob")));
    CHECK(k.queue_ids() == strings{"q2"});
    k.shut_down();
    CHECK(failed(next).code == errc::unavailable);
}

}  // namespace
