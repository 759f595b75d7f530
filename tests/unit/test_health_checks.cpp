// Health checks: their validation and record, the monitor's schedule and
// thresholds, ttl reports, deregister_critical_after, the discovery filter.
// A fake clock and a fake prober: deterministic, nothing sleeps.
#include "registry_test_support.hpp"

#include "codec/service_record.hpp"

#include <registry/health_monitor.hpp>
#include <registry/registry.hpp>

#include <doctest/doctest.h>

#include <coroutine>
#include <map>

using namespace registry;
using namespace registry::test;
using namespace std::chrono_literals;
using testing::fake_clock;
using testing::memory_store;

namespace {

// Answers every probe of a port with that port's status (critical
// "connection refused" for ports it was not told of); while held, probes
// wait until released.
struct fake_prober final : health_prober {
    std::map<std::uint16_t, health_status> status;
    std::vector<probe_request> seen;
    std::vector<time_point> at;
    const registry::clock* clk = nullptr;
    bool hold = false;
    std::vector<std::coroutine_handle<>> held;
    std::size_t most_in_flight = 0;
    std::size_t in_flight = 0;

    struct wait {
        fake_prober& p;
        bool await_ready() const noexcept { return !p.hold; }
        void await_suspend(std::coroutine_handle<> h) { p.held.push_back(h); }
        void await_resume() const noexcept {}
    };

    task<probe_result> probe(probe_request r, std::stop_token) override {
        seen.push_back(r);
        if (clk) at.push_back(clk->now());
        most_in_flight = std::max(most_in_flight, ++in_flight);
        wait w{*this};
        co_await w;
        --in_flight;
        auto it = status.find(r.port);
        if (it == status.end()) co_return probe_result{health_status::critical, "connection refused"};
        co_return probe_result{it->second, it->second == health_status::healthy ? "HTTP 200" : "HTTP 503"};
    }
    void release() {
        hold = false;
        auto h = std::move(held);
        for (auto c : h) c.resume();
    }
};

struct fixture {
    fake_clock clk;
    memory_store st;
    fake_prober prober;
    std::optional<registry::registry> reg;
    std::optional<health_monitor> monitor;
    std::stop_source stop;
    async_scope runner;

    explicit fixture(health_monitor_options mo = {}) {
        registry_options o;
        o.bookmark_interval = 3600s;
        o.default_ttl = 86400s;
        o.max_ttl = 86400s;
        reg.emplace(clk, st, o);
        REQUIRE(run_now(reg->open()).ok());
        prober.clk = &clk;
        monitor.emplace(*reg, clk, prober, mo);
        runner.spawn(reg->run(stop.get_token()));
        runner.spawn(monitor->run(stop.get_token()));
    }
    ~fixture() {
        stop.request_stop();
        prober.release();
        CHECK(runner.active() == 0);
        monitor.reset();
    }

    lease_grant add(std::string id, std::vector<health_check> checks, std::uint16_t port = 8080) {
        auto r = make_registration("api", std::move(id), port);
        r.service.checks = std::move(checks);
        auto g = run_now(reg->register_service(std::move(r)));
        REQUIRE_MESSAGE(g.ok(), (g.ok() ? "" : g.err().message));
        REQUIRE(run_now(reg->set_state(g->instance_id, service_state::running)).ok());
        return *g;
    }
    health_status check_status(const std::string& id, std::size_t i = 0) {
        auto s = reg->find(id);
        REQUIRE(s);
        return s->checks.at(i).result.status;
    }
};

health_check http_check(std::string name = "web", milliseconds interval = 1000ms) {
    health_check c;
    c.name = std::move(name);
    c.kind = check_kind::http;
    c.endpoint = "http";
    c.path = "/healthz";
    c.interval = interval;
    c.timeout = 500ms;
    return c;
}

health_check ttl_check(milliseconds interval) {
    health_check c;
    c.name = "alive";
    c.kind = check_kind::ttl;
    c.interval = interval;
    return c;
}

std::vector<event_ptr> check_events(const collector& c) {
    std::vector<event_ptr> out;
    for (const auto& e : c.events) {
        if (e->type == event_type::health_check_result) out.push_back(e);
    }
    return out;
}

}  // namespace

TEST_CASE("health checks: validated in the domain, paths relative to the registration") {
    fixture f;
    auto r = make_registration("api", "api-1");
    auto bad_http = http_check("web");
    bad_http.method = "POST";
    bad_http.endpoint = "nope";
    bad_http.status_min = 500;
    bad_http.status_max = 200;
    health_check tcp;
    tcp.name = "web";  // a duplicate name
    tcp.kind = check_kind::tcp;
    tcp.address = "localhost";
    tcp.timeout = 2000ms;
    tcp.interval = 1000ms;
    health_check script;
    script.name = "script";
    script.kind = check_kind::script;
    script.failures_before_critical = 0;
    r.service.checks = {bad_http, tcp, script};
    auto g = run_now(f.reg->register_service(std::move(r)));
    REQUIRE(!g.ok());
    CHECK(g.err().code == errc::invalid_request);
    std::vector<std::string> paths;
    for (const auto& fe : g.err().fields) paths.push_back(fe.path + ": " + fe.problem);
    CHECK(paths == std::vector<std::string>{
                       "service.checks[0].method: must be GET or HEAD",
                       "service.checks[0].endpoint: must name one of the service's endpoints",
                       "service.checks[0].expected_status: must be [min, max] within 100-599, min <= max",
                       "service.checks[1].name: duplicates service.checks[0].name",
                       "service.checks[1].address: must be host:port",
                       "service.checks[1].timeout_ms: must be at least 10 and at most interval_ms",
                       "service.checks[2].kind: script checks come only from a deployed package's manifest "
                       "(health.script)",
                       "service.checks[2].failures_before_critical: must be 1-100",
                   });
}

TEST_CASE("health checks: stored with the instance, and records without checks still read") {
    service_instance s;
    s.name = "api";
    s.instance_id = "api-1";
    s.lease.id = 1;  // a stored record always has its lease (0 marks a hidden id)
    auto c = http_check();
    c.status_min = 200;
    c.status_max = 204;
    c.deregister_critical_after = 60000ms;
    c.result = check_result{health_status::critical, "HTTP 503", time_point{5000ms}, time_point{4000ms}};
    auto t = ttl_check(3000ms);
    s.checks = {c, t};
    const std::string text = detail::encode_service_record(s);
    CHECK(text.find(R"("checks":[{"name":"web","kind":"http","method":"GET","endpoint":"http","path":"/healthz",)"
                    R"("expected_status":[200,204],"tls_verify":true,"interval_ms":1000,"timeout_ms":500,)"
                    R"("initial_delay_ms":0,"successes_before_passing":1,"failures_before_critical":1,)"
                    R"("deregister_critical_after_ms":60000,"result":{"status":"critical","output":"HTTP 503",)"
                    R"("checked_at_ms":5000,"since_ms":4000}})") != std::string::npos);
    auto back = detail::decode_service_record(text);
    REQUIRE(back.ok());
    CHECK(back->checks == s.checks);

    s.checks.clear();
    const std::string old = detail::encode_service_record(s);
    CHECK(old.find("checks") == std::string::npos);  // what records looked like before checks
    auto read = detail::decode_service_record(old);
    REQUIRE(read.ok());
    CHECK(read->checks.empty());
}

TEST_CASE("health checks: critical after exactly failures_before_critical, passing after successes_before_passing") {
    fixture f;
    collector c;
    c.start(*f.reg);
    auto check = http_check();
    check.failures_before_critical = 3;
    check.successes_before_passing = 2;
    f.prober.status[8080] = health_status::critical;
    f.add("api-1", {check});
    CHECK(f.monitor->checks() == 1);
    CHECK(f.reg->find("api-1")->health->status == health_status::unknown);

    const milliseconds spread = check_spread("api-1", "web", 1000ms);
    f.clk.advance(spread);  // the first probe
    REQUIRE(f.prober.seen.size() == 1);
    CHECK(f.prober.seen[0].host == "127.0.0.1");
    CHECK(f.prober.seen[0].port == 8080);
    CHECK(f.prober.seen[0].target == "/healthz");
    f.clk.advance(1000ms);
    CHECK(f.prober.seen.size() == 2);
    CHECK(check_events(c).empty());
    CHECK(f.reg->find("api-1")->state == service_state::running);
    f.clk.advance(1000ms);  // the third failure
    CHECK(f.prober.seen.size() == 3);
    auto events = check_events(c);
    REQUIRE(events.size() == 1);
    REQUIRE(events[0]->check);
    CHECK(events[0]->check->name == "web");
    CHECK(events[0]->check->status == health_status::critical);
    CHECK(events[0]->check->previous == health_status::unknown);
    CHECK(events[0]->check->count == 3);
    CHECK(events[0]->check->output == "HTTP 503");
    auto s = f.reg->find("api-1");
    CHECK(s->state == service_state::failed);
    CHECK(s->failure_reason == "health check 'web' critical: HTTP 503");
    CHECK(s->health->status == health_status::critical);

    f.clk.advance(1000ms);  // still failing: no new event
    CHECK(check_events(c).size() == 1);

    f.prober.status[8080] = health_status::healthy;
    f.clk.advance(1000ms);  // one success: not yet
    CHECK(check_events(c).size() == 1);
    CHECK(f.reg->find("api-1")->state == service_state::failed);
    f.clk.advance(1000ms);  // two
    events = check_events(c);
    REQUIRE(events.size() == 2);
    CHECK(events[1]->check->status == health_status::healthy);
    CHECK(events[1]->check->count == 2);
    s = f.reg->find("api-1");
    CHECK(s->state == service_state::running);
    CHECK(s->failure_reason.empty());
    CHECK(s->health->status == health_status::healthy);
    // failed -> starting -> running, as the state machine has it
    std::vector<service_state> states;
    for (const auto& e : c.events) {
        if (e->type == event_type::service_state_changed) states.push_back(e->service->state);
    }
    CHECK(states == std::vector<service_state>{service_state::running, service_state::failed, service_state::starting,
                                               service_state::running});

    f.clk.advance(10000ms);  // ten more passes: transitions only
    CHECK(check_events(c).size() == 2);
    CHECK(f.prober.seen.size() == 16);
}

TEST_CASE("health checks: a failure between successes starts the count again") {
    fixture f;
    auto check = http_check();
    check.successes_before_passing = 3;
    f.prober.status[8080] = health_status::healthy;
    f.add("api-1", {check});
    f.clk.advance(check_spread("api-1", "web", 1000ms));
    f.clk.advance(1000ms);
    CHECK(f.check_status("api-1") == health_status::unknown);
    f.prober.status[8080] = health_status::critical;  // failures_before_critical is 1
    f.clk.advance(1000ms);
    CHECK(f.check_status("api-1") == health_status::critical);
    f.prober.status[8080] = health_status::healthy;
    f.clk.advance(2000ms);
    CHECK(f.check_status("api-1") == health_status::critical);
    f.clk.advance(1000ms);
    CHECK(f.check_status("api-1") == health_status::healthy);
}

TEST_CASE("health checks: a ttl check expires without reports and recovers through report_health") {
    fixture f;
    collector c;
    c.start(*f.reg);
    auto g = f.add("api-1", {ttl_check(5000ms)});

    f.clk.advance(4000ms);
    auto reported = run_now(f.reg->record_check("api-1", check_report{"", health_status::healthy, "ok", 1, g.lease_id}));
    REQUIRE(reported.ok());
    CHECK(f.check_status("api-1") == health_status::healthy);
    CHECK(check_events(c).size() == 1);
    // Reports within the interval keep it passing, without events.
    f.clk.advance(4000ms);
    REQUIRE(run_now(f.reg->record_check("api-1", check_report{"", health_status::healthy, "ok", 1, g.lease_id})).ok());
    f.clk.advance(4000ms);
    CHECK(f.check_status("api-1") == health_status::healthy);
    CHECK(check_events(c).size() == 1);

    f.clk.advance(999ms);  // 4999 ms after the last report
    CHECK(f.check_status("api-1") == health_status::healthy);
    f.clk.advance(1ms);
    CHECK(f.check_status("api-1") == health_status::critical);
    auto events = check_events(c);
    REQUIRE(events.size() == 2);
    CHECK(events[1]->check->output == "no report within 5000 ms");
    CHECK(f.reg->find("api-1")->state == service_state::failed);

    // Only the lease holder reports.
    auto wrong = run_now(f.reg->record_check("api-1", check_report{"", health_status::healthy, "", 1, g.lease_id + 99}));
    REQUIRE(!wrong.ok());
    CHECK(wrong.err().code == errc::lease_not_found);

    REQUIRE(run_now(f.reg->record_check("api-1", check_report{"alive", health_status::healthy, "back", 1, g.lease_id})).ok());
    CHECK(f.check_status("api-1") == health_status::healthy);
    CHECK(f.reg->find("api-1")->state == service_state::running);
    f.clk.advance(4999ms);
    CHECK(f.check_status("api-1") == health_status::healthy);
    f.clk.advance(1ms);
    CHECK(f.check_status("api-1") == health_status::critical);
}

TEST_CASE("health checks: reports go to ttl checks only, and an instance without checks takes one as its health") {
    fixture f;
    auto g = f.add("api-1", {http_check()});
    auto r = run_now(f.reg->record_check("api-1", check_report{"web", health_status::healthy, "", 1, g.lease_id}));
    REQUIRE(!r.ok());
    CHECK(r.err().code == errc::invalid_request);
    r = run_now(f.reg->record_check("api-1", check_report{"", health_status::healthy, "", 1, g.lease_id}));
    REQUIRE(!r.ok());
    CHECK(r.err().message == "instance 'api-1' has no ttl check");

    auto plain = f.add("api-2", {}, 8081);
    r = run_now(f.reg->record_check("api-2", check_report{"", health_status::warning, "slow", 1, plain.lease_id}));
    REQUIRE(r.ok());
    CHECK((*r)->health->status == health_status::warning);
    CHECK((*r)->health->output == "slow");
}

TEST_CASE("health checks: deregister_critical_after removes the instance with the documented reason") {
    fixture f;
    collector c;
    c.start(*f.reg);
    health_check tcp;
    tcp.name = "port";
    tcp.kind = check_kind::tcp;
    tcp.address = "127.0.0.1:9";
    tcp.interval = 1000ms;
    tcp.timeout = 200ms;
    tcp.deregister_critical_after = 3000ms;
    f.add("api-1", {tcp});
    f.clk.advance(check_spread("api-1", "port", 1000ms));
    CHECK(f.check_status("api-1") == health_status::critical);
    f.clk.advance(2000ms);
    CHECK(f.reg->find("api-1"));
    f.clk.advance(1000ms);  // critical for 3000 ms
    CHECK(!f.reg->find("api-1"));
    CHECK(f.monitor->checks() == 0);
    const event* gone = nullptr;
    for (const auto& e : c.events) {
        if (e->type == event_type::service_deregistered) gone = e.get();
    }
    REQUIRE(gone);
    CHECK(gone->reason == "health check 'port' critical for more than 3000 ms");
    CHECK(gone->reason == critical_deregistration_reason("port", 3000ms));
}

TEST_CASE("health checks: re-registration keeps unchanged checks' results and drops removed ones") {
    fixture f;
    f.prober.status[8080] = health_status::healthy;
    auto g = f.add("api-1", {http_check("web"), ttl_check(60000ms)});
    f.clk.advance(1000ms);
    CHECK(f.check_status("api-1") == health_status::healthy);
    auto r = make_registration("api", "api-1");
    r.lease_id = g.lease_id;
    r.service.checks = {http_check("web")};
    REQUIRE(run_now(f.reg->register_service(std::move(r))).ok());
    auto s = f.reg->find("api-1");
    REQUIRE(s->checks.size() == 1);
    CHECK(s->checks[0].result.status == health_status::healthy);
    CHECK(s->health->status == health_status::healthy);  // the ttl check, unknown, is gone
    CHECK(f.monitor->checks() == 1);
}

TEST_CASE("health checks: discovery filtered by health") {
    fixture f;
    f.prober.status[8080] = health_status::healthy;
    f.prober.status[8081] = health_status::critical;
    f.add("api-1", {http_check()}, 8080);
    f.add("api-2", {http_check()}, 8081);
    auto w = f.add("api-3", {}, 8082);
    REQUIRE(run_now(f.reg->record_check("api-3", check_report{"", health_status::warning, "slow", 1, w.lease_id})).ok());
    f.add("api-4", {}, 8083);  // no checks, no health: passes
    f.clk.advance(1000ms);

    auto ids = [&](std::optional<health_filter> h) {
        service_filter sf;
        sf.health = h;
        std::vector<std::string> out;
        for (const auto& s : f.reg->list(sf)) out.push_back(s->instance_id);
        return out;
    };
    CHECK(ids(std::nullopt) == std::vector<std::string>{"api-1", "api-2", "api-3", "api-4"});
    CHECK(ids(health_filter::passing) == std::vector<std::string>{"api-1", "api-4"});
    CHECK(ids(health_filter::passing_or_warning) == std::vector<std::string>{"api-1", "api-3", "api-4"});
    endpoint_filter ef;
    ef.health = health_filter::passing;
    std::vector<std::uint16_t> ports;
    for (const auto& e : f.reg->endpoints(ef)) ports.push_back(e.ep->port);
    CHECK(ports == std::vector<std::uint16_t>{8080, 8083});
}

TEST_CASE("health checks: a thousand 1-second checks are spread over the second, and probes are bounded") {
    health_monitor_options mo;
    mo.max_concurrent_probes = 8;
    fixture f(mo);
    for (int i = 0; i < 1000; ++i) {
        f.add("api-" + std::to_string(i), {http_check()}, 8080);
    }
    f.prober.status[8080] = health_status::healthy;
    const time_point start = f.clk.now();
    for (int step = 0; step < 10; ++step) f.clk.advance(100ms);
    std::array<int, 10> per_tenth{};
    int first_second = 0;
    for (auto t : f.prober.at) {
        if (t - start >= 1000ms) continue;  // a check whose spread is 0 runs again at 1000 ms
        ++first_second;
        ++per_tenth.at(static_cast<std::size_t>((t - start) / 100ms));
    }
    CHECK(first_second == 1000);  // each once in its first second
    for (int n : per_tenth) {
        CHECK(n > 50);  // ~100 each: FNV-1a spreads them
        CHECK(n < 150);
    }
    CHECK(f.monitor->worst_lag() == 0ms);

    // Held probes: never more than max_concurrent_probes at once; the rest wait their turn.
    f.prober.hold = true;
    f.clk.advance(100ms);
    CHECK(f.prober.in_flight == 8);
    CHECK(f.monitor->in_flight() == 8);
    f.prober.release();  // the waiting ones start as slots free up
    CHECK(f.prober.most_in_flight == 8);
    CHECK(f.monitor->in_flight() == 0);
}

TEST_CASE("health checks: a probe that completes later keeps its check on schedule") {
    fixture f;
    f.prober.status[8080] = health_status::healthy;
    f.add("api-1", {http_check()});
    const time_point start = f.clk.now();
    const milliseconds spread = check_spread("api-1", "web", 1000ms);
    f.prober.hold = true;  // completes when released, as a real probe would
    f.clk.advance(spread);
    REQUIRE(f.prober.held.size() == 1);
    f.clk.advance(100ms);
    f.prober.release();  // the monitor had nothing else to wait for meanwhile
    CHECK(f.check_status("api-1") == health_status::healthy);
    f.clk.advance(900ms);
    REQUIRE(f.prober.at.size() == 2);
    CHECK(f.prober.at[1] == start + spread + 1000ms);
}
