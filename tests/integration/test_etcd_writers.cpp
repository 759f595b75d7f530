// Several registryd on one etcd and prefix, against a real etcd: one is the
// registry's writer, the others stand by (serving reads and subscriptions,
// relaying writes: test_etcd_cluster.cpp, test_etcd_relay.cpp) until the writer dies or resigns; a writer
// that was replaced while it could not renew its lease is fenced by etcd and
// exits.
#include "etcd_server.hpp"
#include "harness.hpp"

#include <doctest/doctest.h>

#include <csignal>
#include <string>
#include <thread>

using it::num;
using it::str;
using namespace std::chrono_literals;
namespace json = it::json;

namespace {

std::string writers_config(const it::etcd_server& etcd, int lease_ttl_seconds) {
    return "store:\n  kind: etcd\n  etcd:\n    endpoints: [\"" + etcd.client_url() +
           "\"]\n    prefix: /shared/\n    dial_timeout_ms: 500\n    request_timeout_ms: 2000\n"
           "    writer_lease_ttl_seconds: " + std::to_string(lease_ttl_seconds) + "\n";
}

bool log_has(const it::registryd& d, const std::string& text) {
    return d.diagnostics(200000).find(text) != std::string::npos;
}

// Waits until `d`'s stderr has `text` (bounded).
void wait_log(const it::registryd& d, const std::string& text, it::ms timeout) {
    const auto deadline = it::steady::now() + it::scaled(timeout);
    while (!log_has(d, text) && it::steady::now() < deadline) std::this_thread::sleep_for(20ms);
    REQUIRE_MESSAGE(log_has(d, text), "no \"" << text << "\" in the log");
}

// Starts `d` and waits until it says it stands by.
void start_standby(it::registryd& d) {
    d.spawn();
    wait_log(d, "standby: another registryd is the registry's writer", 10s);
    wait_log(d, "standby: serving reads", 10s);
    d.wait_ready();
}

// A writer `a` and a standby `b` on one etcd, with a writer lease of `ttl` seconds.
struct writer_and_standby {
    explicit writer_and_standby(int ttl) : a(writers_config(etcd, ttl)), b(writers_config(etcd, ttl), false) {
        start_standby(b);
    }
    it::etcd_server etcd;
    it::registryd a;
    it::registryd b;
};

}  // namespace

TEST_CASE("etcd writers: a standby stays one while the writer lives, and after a kill -9 of the writer it takes over within the lease TTL with every acknowledged registration and the same revision line") {
    writer_and_standby w(2);
    auto& a = w.a;
    auto& b = w.b;
    IT_DIAGNOSE(a);
    IT_DIAGNOSE(b);
    // The writer renews its lease: the standby stays one for well over the TTL.
    std::this_thread::sleep_for(5s);
    CHECK(b.running());
    CHECK_FALSE(log_has(b, "elected the registry's writer"));

    std::uint64_t revision = 0;
    it::steady::time_point registered_short;
    {
        it::ws_client sub(a);
        sub.call("subscribe", json::object{{"snapshot", false}});
        it::ws_client c(a);
        for (int i = 0; i < 20; ++i) {
            const json::value r = c.call("register", it::registration(it::service("api", "api-" + std::to_string(i)), 300));
            revision = static_cast<std::uint64_t>(num(r, "/revision"));
        }
        // A lease nobody keeps alive: its deadline holds across the failover.
        registered_short = it::steady::now();
        c.call("register", it::registration(it::service("short", "short-1"), 4));
        for (int i = 0; i < 21; ++i) revision = static_cast<std::uint64_t>(num(sub.expect_event("service_registered"), "/revision"));
    }

    a.kill9();
    const auto killed = it::steady::now();
    b.wait_writer(15s);
    const auto took = it::steady::now() - killed;
    MESSAGE("takeover after kill -9: " << std::chrono::duration_cast<it::ms>(took).count() << " ms (lease TTL 2 s)");
    CHECK(took < it::scaled(4s));  // the TTL, the standby's half-second poll, the load

    it::ws_client sub(b);
    // Resumes from the last revision seen on A: no resync, nothing replayed.
    sub.call("subscribe", json::object{{"from_revision", revision}});
    it::ws_client c(b);
    const json::value listed = c.call("list_services", json::object{{"name", "api"}});
    CHECK(it::arr(listed, "/services").size() == 20);
    const json::value next = c.call("register", it::registration(it::service("api", "api-after"), 300));
    CHECK(num(next, "/revision") == static_cast<double>(revision + 1));
    const json::value e = sub.expect_event("service_registered");
    CHECK(num(e, "/revision") == static_cast<double>(revision + 1));
    CHECK(str(e, "/data/service/instance_id") == "api-after");

    // short-1's deadline (4 s after its registration) is kept: not extended by
    // the failover, and not expired early.
    const json::value expired = sub.expect_event("lease_expired", 10s);
    const auto at = it::steady::now() - registered_short;
    MESSAGE("short-1 expired " << std::chrono::duration_cast<it::ms>(at).count() << " ms after its registration (TTL 4 s)");
    CHECK(at >= 3900ms);
    CHECK(at < it::scaled(6s));
    CHECK(num(expired, "/revision") == static_cast<double>(revision + 2));
}

TEST_CASE("etcd writers: a writer stopped with SIGTERM resigns and the standby takes over at once, not after the lease TTL") {
    writer_and_standby w(10);
    auto& a = w.a;
    auto& b = w.b;
    IT_DIAGNOSE(a);
    IT_DIAGNOSE(b);
    {
        it::ws_client c(a);
        c.call("register", it::registration(it::service("api", "api-1"), 300));
    }
    const auto t0 = it::steady::now();
    CHECK(a.terminate().clean());
    CHECK(log_has(a, "resigned as the registry's writer"));
    b.wait_writer(15s);
    const auto took = it::steady::now() - t0;
    MESSAGE("takeover after SIGTERM: " << std::chrono::duration_cast<it::ms>(took).count() << " ms (lease TTL 10 s)");
    CHECK(took < it::scaled(5s));
    it::ws_client c(b);
    CHECK(str(c.call("get_service", json::object{{"instance_id", "api-1"}}), "/service/name") == "api");
    // A standby stopped with SIGTERM exits cleanly too.
    it::registryd s(writers_config(w.etcd, 10), false);
    IT_DIAGNOSE(s);
    start_standby(s);
    CHECK(s.terminate().clean());
}

TEST_CASE("etcd writers: a writer frozen past its lease is replaced, and resumed it writes nothing, exits 75, and the new writer keeps what it acknowledged") {
    writer_and_standby w(2);
    auto& a = w.a;
    auto& b = w.b;
    IT_DIAGNOSE(a);
    IT_DIAGNOSE(b);
    it::ws_client old_client(a);
    old_client.call("register", it::registration(it::service("api", "api-1"), 300));

    a.signal(SIGSTOP);
    b.wait_writer(15s);
    it::ws_client c(b);
    c.call("register", it::registration(it::service("api", "api-2"), 300));

    // The old writer, resumed, still believes it writes: its next write is
    // refused by etcd (or it learns first that its lease is gone) and it exits.
    const std::string id = old_client.send_request("register", it::registration(it::service("api", "api-stale"), 300));
    a.signal(SIGCONT);
    try {
        const json::value r = old_client.wait_response(id, 10s);
        INFO(it::dump(r));
        CHECK(it::error_code(r) == "unavailable");
    } catch (const it::failure&) {
        // the connection closed first: not acknowledged either
    }
    const auto exited = a.wait_exit(it::scaled(15s));
    REQUIRE(exited.has_value());
    CHECK(exited->code == 75);
    CHECK(log_has(a, "deposed"));

    const json::value listed = c.call("list_services", json::object{{"name", "api"}});
    const auto& services = it::arr(listed, "/services");
    CHECK(services.size() == 2);
    for (const auto& s : services) CHECK(str(s, "/instance_id") != "api-stale");
}

TEST_CASE("etcd writers: a writer lease under 2 seconds stops registryd with exit 2 and names the key") {
    it::registryd d("store:\n  kind: etcd\n  etcd:\n    writer_lease_ttl_seconds: 1\n", false);
    CHECK_THROWS(d.start(it::scaled(10s)));
    REQUIRE(d.last_exit());
    CHECK(d.last_exit()->code == 2);
    CHECK(d.diagnostics().find("store.etcd.writer_lease_ttl_seconds") != std::string::npos);
}
