// The registry through a store outage (store_unreachable, what the etcd store
// reports when etcd cannot be reached): the changes in flight are kept and
// written again once the store is back, in revision order; new writes are
// refused meanwhile; nothing expires while nothing can be recorded.
#include "registry_test_support.hpp"

#include <registry/registry.hpp>

#include <doctest/doctest.h>

using namespace registry;
using namespace registry::test;
using namespace std::chrono_literals;

namespace {

// Written again every 500 ms while the store is unreachable.
struct outage_fixture : running_registry {
    outage_fixture() {
        opt.store_retry_interval = 500ms;
        restart();
    }
};

}  // namespace

TEST_CASE("registry: an unreachable store refuses the change in flight, keeps it, and writes it once back") {
    outage_fixture f;
    collector c;
    c.start(*f.reg);
    f.add("api", "api-1");
    REQUIRE(c.events.size() == 2);  // snapshot, api-1

    f.st.set_unreachable(true);
    auto refused = run_now(f.reg->register_service(make_registration("api", "api-2")));
    REQUIRE(!refused.ok());
    CHECK(refused.err().code == errc::unavailable);
    CHECK(refused.err().message.find("not acknowledged") != std::string::npos);
    CHECK_FALSE(f.reg->available());
    const auto status = f.reg->store_status();
    CHECK(status.current == store_condition::state::unreachable);
    CHECK(status.unwritten == 1);
    CHECK(status.problem.find("unreachable") != std::string::npos);
    CHECK(c.events.size() == 2);  // nothing published: not durable
    CHECK(f.st.data().size() == 1);

    // Meanwhile new writes change nothing; reads are served from memory.
    auto later = run_now(f.reg->register_service(make_registration("web", "web-1")));
    REQUIRE(!later.ok());
    CHECK(later.err().code == errc::unavailable);
    CHECK(later.err().message.find("accepts no writes until it is back") != std::string::npos);
    CHECK(f.reg->find("web-1") == nullptr);
    auto gone = run_now(f.reg->deregister("api-1"));
    REQUIRE(!gone.ok());
    CHECK(f.reg->find("api-1") != nullptr);

    // Retried every store_retry_interval; still down: still kept.
    f.clk.advance(600ms);
    CHECK(f.reg->store_status().unwritten == 1);
    CHECK(c.events.size() == 2);

    f.st.set_unreachable(false);
    f.clk.advance(600ms);
    CHECK(f.reg->available());
    CHECK(f.reg->store_status().current == store_condition::state::ok);
    CHECK(f.st.data().size() == 2);
    REQUIRE(c.events.size() == 3);
    CHECK(c.events[2]->type == event_type::service_registered);
    CHECK(c.events[2]->service->instance_id == "api-2");
    CHECK(c.events[2]->revision == 2);
    CHECK(f.st.revision() == 2);
    // Writable again.
    f.add("web", "web-1");
    REQUIRE(c.events.size() == 4);
    CHECK(c.events[3]->revision == 3);
}

TEST_CASE("registry: writes in flight when the store went away are written again in their order") {
    outage_fixture f;
    collector c;
    c.start(*f.reg);
    f.add("api", "api-1");
    f.st.hold();
    started<result<lease_grant>> a(f.reg->register_service(make_registration("a", "a-1")));
    started<result<deregistration>> b(f.reg->deregister("api-1"));
    started<result<lease_grant>> d(f.reg->register_service(make_registration("d", "d-1")));
    f.st.set_unreachable(true);
    f.st.release();
    REQUIRE(a.done());
    REQUIRE(b.done());
    REQUIRE(d.done());
    CHECK(a.get().err().code == errc::unavailable);
    CHECK(b.get().err().code == errc::unavailable);
    CHECK(d.get().err().code == errc::unavailable);
    CHECK(f.reg->store_status().unwritten == 3);

    f.st.set_unreachable(false);
    f.clk.advance(1s);
    CHECK(f.reg->available());
    CHECK(f.st.data().contains("svc/a-1"));
    CHECK_FALSE(f.st.data().contains("svc/api-1"));
    CHECK(f.st.data().contains("svc/d-1"));
    REQUIRE(c.events.size() == 5);  // snapshot, api-1, then a-1, api-1 gone, d-1 in revision order
    CHECK(c.events[2]->service->instance_id == "a-1");
    CHECK(c.events[3]->type == event_type::service_deregistered);
    CHECK(c.events[4]->service->instance_id == "d-1");
    for (std::size_t i = 2; i < c.events.size(); ++i) CHECK(c.events[i]->revision == c.events[i - 1]->revision + 1);
}

TEST_CASE("registry: nothing expires during a store outage, a lease that fell due gets its TTL again after it") {
    outage_fixture f;
    collector c;
    c.start(*f.reg);
    f.add("api", "api-1", 5s);
    f.add("web", "web-1", 60s);
    f.st.set_unreachable(true);
    auto renewal = run_now(f.reg->keepalive(f.reg->find("web-1")->lease.id));  // fails: starts the outage
    REQUIRE(!renewal.ok());
    CHECK(renewal.err().code == errc::unavailable);

    f.clk.advance(10s);  // api-1's deadline passes while nothing can be written
    CHECK(f.reg->find("api-1") != nullptr);
    CHECK(c.events.size() == 3);

    f.st.set_unreachable(false);
    f.clk.advance(500ms);  // the retry at 10.5 s writes the renewal: the store is back
    REQUIRE(f.reg->available());
    CHECK(f.reg->find("api-1") != nullptr);  // given 5 s from then: due at 15.5 s
    f.clk.advance(4900ms);
    CHECK(f.reg->find("api-1") != nullptr);
    f.clk.advance(200ms);
    CHECK(f.reg->find("api-1") == nullptr);
    REQUIRE(c.events.size() == 5);
    CHECK(c.events[3]->type == event_type::lease_expired);
    CHECK(f.reg->find("web-1") != nullptr);  // its deadline never passed
}

TEST_CASE("registry: a store that fails for good during an outage stays failed") {
    outage_fixture f;
    f.add("api", "api-1");
    f.st.set_unreachable(true);
    CHECK_FALSE(run_now(f.reg->deregister("api-1")).ok());
    f.st.set_unreachable(false);
    f.st.fail();
    f.clk.advance(1s);
    CHECK(f.reg->store_status().current == store_condition::state::failed);
    CHECK_FALSE(f.reg->available());
    auto refused = run_now(f.reg->register_service(make_registration("web", "web-1")));
    REQUIRE(!refused.ok());
    CHECK(refused.err().message.find("has failed") != std::string::npos);
}
