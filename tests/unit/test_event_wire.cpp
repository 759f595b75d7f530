// Events encoded once, as the registry publishes them (registry::
// set_event_encoder, watch_options::wire), and connections on several event
// loops (protocol::loop_context) served by one protocol::server.
#include "protocol_test_support.hpp"
#include "registry_test_support.hpp"

#include <registry/protocol/connection.hpp>
#include <registry/protocol/loop_context.hpp>

#include <doctest/doctest.h>

#include <memory>
#include <string>

using namespace registry;
using namespace registry::test;
using testing::fake_clock;
using testing::memory_store;

namespace {

int encoded = 0;

watch_options live_only(bool wire) {
    watch_options o;
    o.snapshot = false;
    o.wire = wire;
    return o;
}

std::shared_ptr<const std::string> counting_encoder(const event& e) {
    ++encoded;
    return std::make_shared<const std::string>(std::string(to_string(e.type)));
}

}  // namespace

TEST_CASE("event wire: encoded once as it is published, for the watchers that send it, never for the others") {
    fake_clock clk;
    memory_store st;
    registry::registry reg(clk, st);
    REQUIRE(run_now(reg.open()).ok());
    reg.set_event_encoder(&counting_encoder);
    encoded = 0;

    collector reader;  // reads the events, sends nothing
    reader.start(reg, live_only(false));
    REQUIRE(run_now(reg.register_service(make_registration("api", "api-1"))));
    REQUIRE(reader.events.size() == 1);
    CHECK(encoded == 0);
    CHECK_FALSE(reader.events[0]->wire);

    collector a, b;
    a.start(reg, live_only(true));
    b.start(reg, live_only(true));
    REQUIRE(run_now(reg.register_service(make_registration("api", "api-2"))));
    REQUIRE(a.events.size() == 1);
    REQUIRE(b.events.size() == 1);
    CHECK(encoded == 1);
    REQUIRE(a.events[0]->wire);
    CHECK(*a.events[0]->wire == "service_registered");
    CHECK(a.events[0]->wire == b.events[0]->wire);  // the same bytes, shared
    CHECK(reader.events.back() == a.events[0]);     // one event for every watcher
}

TEST_CASE("event wire: connections on two loops' contexts share one server's registry and subscriptions") {
    fake_clock clk;
    memory_store st;
    registry::registry reg(clk, st);
    REQUIRE(run_now(reg.open()).ok());
    protocol::server srv(reg);
    client watcher(srv, 1);  // each test client has a loop_context of its own
    client writer(srv, 2);
    watcher.send(req("1", "subscribe", R"({"snapshot":false})"));
    writer.send(req("2", "register",
                    R"({"service":{"name":"api","instance_id":"api-1","version":"1.0.0",)"
                    R"("endpoints":[{"name":"http","address":"127.0.0.1","port":8080,"protocol":"http"}]}})"));
    REQUIRE(watcher.out.frames.size() == 1);
    CHECK(watcher.out.frames[0].text().starts_with(R"({"type":"event","subscription":"s1","event":"service_registered",)"));

    // A third connection on the writer's loop: one parser serves both.
    protocol::loop_context loop;
    capture out;
    protocol::connection a(srv, loop, out, 3);
    protocol::connection b(srv, loop, out, 4);
    CHECK(run_now(a.handle(req("3", "list_services"))).code == "ok");
    CHECK(run_now(b.handle("not json")).code == "invalid_request");
    CHECK(run_now(a.handle(req("4", "get_service", R"({"instance_id":"api-1"})"))).code == "ok");
    CHECK(out.frames.size() == 3);
}
