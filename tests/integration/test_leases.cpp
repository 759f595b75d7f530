// Leases in real time: TTL expiry and keepalive; session-bound leases.
#include "harness.hpp"

#include <doctest/doctest.h>

#include <string>
#include <thread>
#include <vector>

using it::dump;
using it::num;
using it::parse_object;
using it::str;
using namespace std::chrono_literals;
namespace json = it::json;

namespace {

std::int64_t elapsed_ms(it::steady::time_point since) {
    return std::chrono::duration_cast<it::ms>(it::steady::now() - since).count();
}

// Expects lease_expired then service_deregistered for `instance` (the next
// two events), sharing one revision.
void expect_expiry(it::ws_client& sub, const std::string& instance, std::int64_t lease, const char* reason,
                   it::ms timeout) {
    const json::value expired = sub.expect_event("lease_expired", timeout);
    INFO("lease_expired: ", dump(expired));
    CHECK(str(expired, "/data/instance_id") == instance);
    CHECK(num(expired, "/data/lease_id") == lease);
    CHECK(str(expired, "/data/reason") == reason);
    const json::value gone = sub.expect_event("service_deregistered", 1s);
    INFO("service_deregistered: ", dump(gone));
    CHECK(str(gone, "/data/service/instance_id") == instance);
    CHECK(str(gone, "/data/reason") == "lease_expired");
    CHECK(num(gone, "/revision") == num(expired, "/revision"));
}

}  // namespace

TEST_CASE("integration: a lease expires in real time unless kept alive") {
    it::registryd d;
    IT_DIAGNOSE(d);
    it::ws_client w(d);
    it::ws_client sub(d);
    sub.call("subscribe");
    sub.expect_event("registry_loaded");

    const auto t0 = it::steady::now();
    const json::value shortlived = w.call("register", it::registration(it::service("short", "short-1"), 1));
    const json::value kept = w.call("register", it::registration(it::service("kept", "kept-1"), 1));
    const auto short_lease = num(shortlived, "/lease_id");
    const auto short_expires = num(shortlived, "/expires_at_ms");
    const auto kept_lease = num(kept, "/lease_id");
    CHECK(num(shortlived, "/ttl_seconds") == 1);
    sub.expect_event("service_registered");
    sub.expect_event("service_registered");

    // Keep "kept-1" alive every 300 ms for 3 s while collecting events.
    std::vector<std::pair<json::value, std::int64_t>> events;  // event, wall-clock arrival
    std::int64_t last_expiry = num(kept, "/expires_at_ms");
    auto next_keepalive = t0 + 300ms;
    while (it::steady::now() < t0 + 3s) {
        while (it::steady::now() < next_keepalive) {
            const auto left = std::chrono::duration_cast<it::ms>(next_keepalive - it::steady::now());
            if (auto ev = sub.next_event(std::max(left, it::ms(1)))) events.emplace_back(std::move(*ev), it::now_ms());
        }
        next_keepalive += 300ms;
        const json::value k = w.call("keepalive", json::object{{"lease_id", kept_lease}});
        INFO("keepalive: ", dump(k));
        CHECK(str(k, "/instance_id") == "kept-1");
        CHECK(num(k, "/expires_at_ms") >= last_expiry);
        last_expiry = num(k, "/expires_at_ms");
    }

    // short-1: lease_expired then service_deregistered, one revision, on time.
    std::string seen;
    for (const auto& [ev, arrival] : events) seen += dump(ev) + " at " + std::to_string(arrival) + "\n";
    INFO("events:\n", seen);
    REQUIRE_MESSAGE(events.size() >= 2, "expected lease_expired and service_deregistered for short-1 within 3 s, got ",
                    events.size(), " events");
    {
        const json::value& expired = events[0].first;
        const json::value& gone = events[1].first;
        INFO("first: ", dump(expired), "\nsecond: ", dump(gone));
        CHECK(str(expired, "/event") == "lease_expired");
        CHECK(str(expired, "/data/instance_id") == "short-1");
        CHECK(str(expired, "/data/name") == "short");
        CHECK(num(expired, "/data/lease_id") == short_lease);
        CHECK(str(expired, "/data/reason") == "ttl");
        CHECK(str(gone, "/event") == "service_deregistered");
        CHECK(str(gone, "/data/service/instance_id") == "short-1");
        CHECK(str(gone, "/data/reason") == "lease_expired");
        CHECK(num(gone, "/revision") == num(expired, "/revision"));
        // Not before the deadline, and not much after it.
        CHECK(events[0].second >= short_expires - 20);
        CHECK(events[0].second <= short_expires + 1500);
    }
    for (std::size_t i = 2; i < events.size(); ++i) {
        CHECK_MESSAGE(false, "unexpected event (kept-1 must survive): ", dump(events[i].first));
    }
    CHECK(str(w.call("get_service", parse_object(R"({"instance_id": "kept-1"})")), "/service/instance_id") == "kept-1");
    CHECK(it::error_code(w.request("get_service", parse_object(R"({"instance_id": "short-1"})"))) == "not_found");
    CHECK(it::error_code(w.request("keepalive", json::object{{"lease_id", short_lease}})) == "lease_not_found");

    // Without keepalives kept-1 goes too.
    expect_expiry(sub, "kept-1", kept_lease, "ttl", 3s);
    CHECK(it::now_ms() >= last_expiry - 20);
}

TEST_CASE("integration: a session-bound lease ends with its connection unless renewed from another") {
    it::registryd d{"registry:\n  session_grace_seconds: 1\n"};
    IT_DIAGNOSE(d);
    it::ws_client sub(d);
    sub.call("subscribe");
    sub.expect_event("registry_loaded");
    it::ws_client w(d);

    // A registers a session-bound instance and closes: gone after the grace.
    std::int64_t lease_a = 0;
    {
        it::ws_client a(d);
        const json::value r = a.call("register", it::registration(it::service("sess", "sess-a"), 60, true));
        lease_a = num(r, "/lease_id");
        const json::value got = w.call("get_service", parse_object(R"({"instance_id": "sess-a"})"));
        CHECK(it::boolean(got, "/service/lease/session_bound"));
        sub.expect_event("service_registered");
        a.close();
    }
    auto closed_at = it::steady::now();
    expect_expiry(sub, "sess-a", lease_a, "session_closed", 5s);
    {
        const auto took = elapsed_ms(closed_at);
        INFO("expired ", took, " ms after the close (grace 1 s)");
        CHECK(took >= 900);
        CHECK(took <= 3000);
    }
    CHECK(it::error_code(w.request("get_service", parse_object(R"({"instance_id": "sess-a"})"))) == "not_found");

    // Again, but B renews the lease within the grace: it survives.
    std::int64_t lease_b = 0;
    {
        it::ws_client a(d);
        const json::value r = a.call("register", it::registration(it::service("sess", "sess-b"), 60, true));
        lease_b = num(r, "/lease_id");
        sub.expect_event("service_registered");
        a.close();
    }
    closed_at = it::steady::now();
    it::ws_client b(d);
    const json::value k = b.call("keepalive", json::object{{"lease_id", lease_b}});
    INFO("keepalive from B: ", dump(k));
    CHECK(str(k, "/instance_id") == "sess-b");
    REQUIRE_MESSAGE(elapsed_ms(closed_at) < 900, "reconnect + keepalive took too long to be within the grace");
    {
        const auto ev = sub.next_event(2s);  // the grace (1 s) and then some
        CHECK_MESSAGE(!ev, "sess-b must survive past the grace, got: ", ev ? dump(*ev) : std::string());
    }
    const json::value got = w.call("get_service", parse_object(R"({"instance_id": "sess-b"})"));
    CHECK(num(got, "/service/lease/id") == lease_b);
    CHECK(it::boolean(got, "/service/lease/session_bound"));

    // The lease now belongs to B: B going away (abruptly) ends it after the grace.
    b.abort();
    closed_at = it::steady::now();
    expect_expiry(sub, "sess-b", lease_b, "session_closed", 5s);
    {
        const auto took = elapsed_ms(closed_at);
        INFO("expired ", took, " ms after B dropped (grace 1 s)");
        CHECK(took >= 900);
        CHECK(took <= 3000);
    }
}

TEST_CASE("integration: a lease that ran out while registryd was stopped expires at its start, and the log says so") {
    it::registryd d;
    IT_DIAGNOSE(d);
    {
        it::ws_client c(d);
        c.call("register", it::registration(it::service("api", "api-gone"), 1));
        c.call("register", it::registration(it::service("api", "api-kept"), 300));
    }
    CHECK(d.terminate().clean());
    std::this_thread::sleep_for(1500ms);
    d.start();
    d.wait_writer();
    it::ws_client c(d);
    const auto deadline = it::steady::now() + it::scaled(5s);
    while (it::has(c.request("get_service", json::object{{"instance_id", "api-gone"}}), "/data") &&
           it::steady::now() < deadline) {
        std::this_thread::sleep_for(20ms);
    }
    CHECK(it::error_code(c.request("get_service", json::object{{"instance_id", "api-gone"}})) == "not_found");
    CHECK(str(c.call("get_service", json::object{{"instance_id", "api-kept"}}), "/service/name") == "api");
    // The expiry at start is an info line like any other (the log's watch
    // starts before expiry runs), written once the expiry is durable.
    const std::string line = R"("msg":"lease expired","service":"api","instance_id":"api-gone")";
    const auto logged = [&] { return d.diagnostics(200000).find(line) != std::string::npos; };
    const auto until = it::steady::now() + it::scaled(5s);
    while (!logged() && it::steady::now() < until) std::this_thread::sleep_for(20ms);
    CHECK_MESSAGE(logged(), d.diagnostics(200000));
}
