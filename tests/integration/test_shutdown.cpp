// SIGTERM with connected clients.
#include "harness.hpp"

#include <doctest/doctest.h>

#include <csignal>
#include <string>

using it::dump;
using it::num;
using it::str;
using namespace std::chrono_literals;
namespace json = it::json;

TEST_CASE("integration: SIGTERM with connected clients closes them and exits 0 within the shutdown timeout") {
    it::registryd d{"timeouts:\n  shutdown_seconds: 2\n"};
    IT_DIAGNOSE(d);

    it::ws_client subscriber(d);
    subscriber.call("subscribe");
    subscriber.expect_event("registry_loaded");
    it::ws_client writer(d);
    const json::value reg = writer.call("register", it::registration(it::service("drain", "drain-1"), 300));
    subscriber.expect_event("service_registered");
    // Connected but never reading again: the daemon must not wait for it
    // beyond the shutdown timeout.
    it::ws_client silent(d);
    silent.call("list_services");

    const auto t0 = it::steady::now();
    d.signal(SIGTERM);
    const it::close_info a = subscriber.wait_closed(5s);
    const it::close_info b = writer.wait_closed(5s);
    INFO("subscriber: ", a.describe(), "; writer: ", b.describe());
    CHECK(a.close_frame);
    CHECK(b.close_frame);
    CHECK_FALSE(a.by_client);
    CHECK_FALSE(b.by_client);
    const auto st = d.wait_exit(5s);
    const auto took = std::chrono::duration_cast<it::ms>(it::steady::now() - t0).count();
    REQUIRE_MESSAGE(st.has_value(), "registryd still running 5 s after SIGTERM (shutdown_seconds: 2)");
    INFO("exit: ", st->describe(), " after ", took, " ms");
    CHECK(st->clean());
    CHECK(took <= 2000 + 1000);

    // What was acknowledged before the drain is still there.
    d.start();
    it::ws_client c(d);
    const json::value got = c.call("get_service", json::object{{"instance_id", "drain-1"}});
    CHECK(num(got, "/service/lease/id") == num(reg, "/lease_id"));
    const it::exit_status st2 = d.terminate();
    CHECK(st2.clean());
}
