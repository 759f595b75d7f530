// Webhook notifications (notifier.hpp): HMAC-SHA256 against the FIPS and
// RFC 4231 vectors; filters, headers and signature; revision order with
// one POST in flight per webhook; the backoff schedule; max_attempts → dead
// letter; sending dead letters again; a restart that resumes from the
// outbox; the bounds. A fake clock, store, random and poster: nothing sleeps.
#include "registry_test_support.hpp"

#include "notify/hmac_sha256.hpp"

#include <registry/notifier.hpp>
#include <registry/testing/fake_random.hpp>

#include <doctest/doctest.h>

#include <coroutine>
#include <deque>
#include <functional>
#include <string>

using namespace registry;
using namespace registry::test;
using namespace std::chrono_literals;
using testing::fake_clock;
using testing::fake_random;
using testing::memory_store;

namespace {

std::string hex_of(std::string_view key, std::string_view msg) {
    return notify::to_hex(notify::hmac_sha256(key, msg));
}

std::string sha_of(std::string_view msg) {
    notify::sha256 h;
    h.update(msg);
    return notify::to_hex(h.finish());
}

std::string header(const http_post& p, std::string_view name) {
    for (const auto& [k, v] : p.headers) {
        if (k == name) return v;
    }
    return {};
}

// Records every POST with the fake clock's time; answers with `answer`
// (200 unless told), inline, or waits while `hold` until released.
struct fake_poster final : http_poster {
    struct call {
        http_post req;
        time_point at;
    };
    const registry::clock& clk;
    std::vector<call> calls;
    std::function<http_post_result(const http_post&)> answer = [](const http_post&) {
        return http_post_result{200, {}};
    };
    bool hold = false;
    std::deque<std::coroutine_handle<>> held;
    std::size_t in_flight = 0, most_in_flight = 0;

    explicit fake_poster(const registry::clock& c) : clk(c) {}

    struct wait {
        fake_poster& p;
        bool await_ready() const noexcept { return !p.hold; }
        void await_suspend(std::coroutine_handle<> h) { p.held.push_back(h); }
        void await_resume() const noexcept {}
    };

    task<http_post_result> post(http_post r, std::stop_token) override {
        calls.push_back({r, clk.now()});
        most_in_flight = std::max(most_in_flight, ++in_flight);
        wait w{*this};
        co_await w;
        --in_flight;
        co_return answer(r);
    }
    void release() {
        hold = false;
        while (!held.empty()) {
            auto h = held.front();
            held.pop_front();
            h.resume();
        }
    }
    std::vector<std::string> bodies_to(std::string_view webhook) const {
        std::vector<std::string> out;
        for (const auto& c : calls) {
            if (header(c.req, "X-Registry-Webhook") == webhook) out.push_back(*c.req.body);
        }
        return out;
    }
};

webhook hook(std::string name, std::string url = "http://127.0.0.1:9/hook") {
    webhook w;
    w.name = std::move(name);
    w.url = std::move(url);
    return w;
}

// A registry and a notifier on one store; restart() makes both anew on it.
struct fixture {
    fake_clock clk;
    memory_store st;
    fake_random random;
    fake_poster poster{clk};
    notifier_options options;
    std::optional<registry::registry> reg;
    std::optional<notifier> n;
    std::stop_source stop;
    async_scope running;

    explicit fixture(notifier_options o) : options(std::move(o)) {}
    ~fixture() { halt(); }

    void start() {
        reg.emplace(clk, st);
        REQUIRE(run_now(reg->open()));
        n.emplace(*reg, st, random, poster, options);
        auto opened = run_now(n->open());
        REQUIRE_MESSAGE(opened, (opened ? "" : opened.err().message));
        stop = std::stop_source{};
        running.spawn(n->run(stop.get_token()));
    }
    void halt() {
        if (!n) return;
        stop.request_stop();
        poster.release();
        REQUIRE(running.active() == 0);
        n.reset();
        reg.reset();
    }
    void restart() {
        halt();
        start();
    }
    std::string add(std::string name, std::string id) {
        auto g = run_now(reg->register_service(make_registration(std::move(name), std::move(id))));
        REQUIRE(g);
        return g->instance_id;
    }
    std::size_t stored(std::string_view prefix) const {
        std::size_t count = 0;
        auto st_copy = run_now(load_copy(const_cast<memory_store&>(st), std::string(prefix)));
        count = st_copy.entries.size();
        return count;
    }
    webhook_stats stats_of(std::string_view name) const {
        for (auto& s : n->stats()) {
            if (s.name == name) return s;
        }
        FAIL("no such webhook");
        return {};
    }
};

}  // namespace

TEST_CASE("notifier: SHA-256 and HMAC-SHA256 match FIPS 180-4 and RFC 4231") {
    CHECK(sha_of("") == "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
    CHECK(sha_of("abc") == "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
    CHECK(sha_of("abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq") ==
          "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1");
    {
        notify::sha256 h;  // fed in uneven pieces across block boundaries
        const std::string a(1000, 'a');
        for (std::size_t i = 0; i < a.size(); i += 37) h.update(std::string_view(a).substr(i, 37));
        CHECK(notify::to_hex(h.finish()) == "41edece42d63e8d9bf515a9ba6932e1c20cbc9f5a5d134645adb5db1b9737ea3");
    }
    CHECK(hex_of(std::string(20, '\x0b'), "Hi There") ==
          "b0344c61d8db38535ca8afceaf0bf12b881dc200c9833da726e9376c2e32cff7");
    CHECK(hex_of("Jefe", "what do ya want for nothing?") ==
          "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843");
    CHECK(hex_of(std::string(131, '\xaa'), "Test Using Larger Than Block-Size Key - Hash Key First") ==
          "60e431591ee0b67f0d8a26aacbf5b77f8e0bc6213728c5140546040f0ee37f54");
    CHECK(webhook_signature("Jefe", "what do ya want for nothing?") ==
          "sha256=5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843");
}

TEST_CASE("notifier: each change a webhook's filter takes is POSTed, signed, with its revision as idempotency key") {
    notifier_options o;
    o.webhooks.push_back(hook("all"));
    o.webhooks.back().secret = "s3cret";
    o.webhooks.push_back(hook("web-only"));
    o.webhooks.back().services = {"web*"};
    o.webhooks.back().events = {event_type::service_registered};
    fixture f(o);
    f.start();
    f.add("web-front", "w1");
    f.add("db", "d1");
    REQUIRE(run_now(f.reg->deregister("w1")));

    const auto all = f.poster.bodies_to("all");
    REQUIRE(all.size() == 3);
    CHECK(all[0].starts_with(R"({"webhook":"all","event":"service_registered","revision":1,"data":{"service":{)"));
    CHECK(all[1].find(R"("event":"service_registered","revision":2)") != std::string::npos);
    CHECK(all[2].find(R"("event":"service_deregistered","revision":3)") != std::string::npos);
    const auto web = f.poster.bodies_to("web-only");
    REQUIRE(web.size() == 1);  // not db's, not the deregistration
    CHECK(web[0].find(R"("instance_id":"w1")") != std::string::npos);

    const http_post& first = f.poster.calls[0].req;
    CHECK(first.url == "http://127.0.0.1:9/hook");
    CHECK(header(first, "Content-Type") == "application/json");
    CHECK(header(first, "X-Registry-Event") == "service_registered");
    CHECK(header(first, "X-Registry-Revision") == "1");
    CHECK(header(first, "X-Registry-Attempt") == "1");
    CHECK(header(first, "Idempotency-Key") == "all/1.0");
    CHECK(header(first, "X-Registry-Signature") == "sha256=" + hex_of("s3cret", *first.body));
    for (const auto& c : f.poster.calls) {
        if (header(c.req, "X-Registry-Webhook") == "web-only") CHECK(header(c.req, "X-Registry-Signature").empty());
    }
    CHECK(f.stats_of("all").delivered == 3);
    CHECK(f.stats_of("web-only").delivered == 1);
    CHECK(f.stored("notify/") == 0);  // delivered: out of the outbox
}

TEST_CASE("notifier: one POST in flight per webhook, in revision order: a failed one is retried with backoff first") {
    notifier_options o;
    o.webhooks.push_back(hook("a"));
    o.initial_backoff = 1000ms;
    o.max_backoff = 4000ms;
    fixture f(o);
    int failures = 4;
    f.poster.answer = [&](const http_post& p) {
        if (header(p, "X-Registry-Revision") == "1" && failures > 0) {
            --failures;
            return http_post_result{std::nullopt, "connection refused"};
        }
        return http_post_result{200, {}};
    };
    f.start();
    const time_point t0 = f.clk.now();
    for (int i = 0; i < 3; ++i) f.add("svc", "i" + std::to_string(i));
    CHECK(f.poster.calls.size() == 1);  // the others wait for revision 1
    CHECK(f.stored("notify/outbox/a/") == 3);
    for (int i = 0; i < 20 && f.poster.calls.size() < 7; ++i) f.clk.advance(500ms);
    REQUIRE(f.poster.calls.size() == 7);  // 5 attempts of revision 1, then 2 and 3
    std::vector<std::string> revisions;
    for (const auto& c : f.poster.calls) revisions.push_back(header(c.req, "X-Registry-Revision"));
    CHECK(revisions == std::vector<std::string>{"1", "1", "1", "1", "1", "2", "3"});
    CHECK(header(f.poster.calls[4].req, "X-Registry-Attempt") == "5");
    // Delays: 1s, 2s, 4s, 4s (capped), each less up to half of it (jitter).
    const milliseconds want[] = {1000ms, 2000ms, 4000ms, 4000ms};
    time_point prev = t0;
    for (int i = 1; i <= 4; ++i) {
        const auto gap = std::chrono::duration_cast<milliseconds>(f.poster.calls[static_cast<std::size_t>(i)].at - prev);
        CHECK(gap <= want[i - 1]);
        CHECK(gap >= want[i - 1] / 2);
        prev = f.poster.calls[static_cast<std::size_t>(i)].at;
    }
    CHECK(f.poster.most_in_flight == 1);
    CHECK(f.stats_of("a").retried == 4);
    CHECK(f.stats_of("a").delivered == 3);
    CHECK(f.stored("notify/") == 0);
}

TEST_CASE("notifier: webhook_backoff doubles from initial_backoff up to max_backoff, jitter taking at most half") {
    notifier_options o;
    o.initial_backoff = 100ms;
    o.max_backoff = 1000ms;
    fake_random r;
    for (int k = 0; k < 50; ++k) {
        const auto b2 = webhook_backoff(o, 2, r), b3 = webhook_backoff(o, 3, r), b9 = webhook_backoff(o, 9, r);
        CHECK((b2 >= 50ms && b2 <= 100ms));
        CHECK((b3 >= 100ms && b3 <= 200ms));
        CHECK((b9 >= 500ms && b9 <= 1000ms));
        CHECK(webhook_backoff(o, 200, r) <= 1000ms);
    }
}

TEST_CASE("notifier: after max_attempts an event is a dead letter and the next one goes, sent again, it is delivered") {
    notifier_options o;
    o.webhooks.push_back(hook("a"));
    o.webhooks.back().max_attempts = 3;
    o.initial_backoff = 10ms;
    fixture f(o);
    bool failing = true;
    f.poster.answer = [&](const http_post&) { return failing ? http_post_result{500, {}} : http_post_result{204, {}}; };
    f.start();
    f.add("svc", "i1");
    f.add("svc", "i2");
    for (int i = 0; i < 100 && f.n->dead_letters().size() < 2; ++i) f.clk.advance(10ms);
    const auto dead = f.n->dead_letters("a");
    REQUIRE(dead.size() == 2);
    CHECK(dead[0].id == "1.0");
    CHECK(dead[0].revision == 1);
    CHECK(dead[0].event == "service_registered");
    CHECK(dead[0].reason == "max_attempts");
    CHECK(dead[0].attempts == 3);
    CHECK(dead[0].last_error == "HTTP 500");
    CHECK(dead[1].id == "2.0");
    CHECK(f.poster.calls.size() == 6);
    CHECK(f.stats_of("a").dropped == 2);
    CHECK(f.stats_of("a").retried == 4);
    CHECK(f.stored("notify/dead/a/") == 2);
    CHECK(f.stored("notify/outbox/") == 0);

    // Kept across a restart, then sent again, in order.
    f.restart();
    REQUIRE(f.n->dead_letters().size() == 2);
    CHECK(*f.n->dead_letters()[0].body == *dead[0].body);
    failing = false;
    f.poster.calls.clear();
    auto bad = run_now(f.n->retry_dead_letters("a", {"7.0"}));
    REQUIRE(!bad);
    CHECK(bad.err().code == errc::not_found);
    auto none = run_now(f.n->retry_dead_letters("nope", {}));
    REQUIRE(!none);
    auto retried = run_now(f.n->retry_dead_letters("a", {}));
    REQUIRE(retried);
    CHECK(*retried == 2);
    REQUIRE(f.poster.calls.size() == 2);
    CHECK(header(f.poster.calls[0].req, "Idempotency-Key") == "a/1.0");
    CHECK(header(f.poster.calls[1].req, "Idempotency-Key") == "a/2.0");
    CHECK(f.n->dead_letters().empty());
    CHECK(f.stored("notify/") == 0);
}

TEST_CASE("notifier: a restart resumes from the outbox: nothing lost, in order") {
    notifier_options o;
    o.webhooks.push_back(hook("a"));
    fixture f(o);
    f.poster.hold = true;  // the receiver never answers before the restart
    f.start();
    for (int i = 0; i < 5; ++i) f.add("svc", "i" + std::to_string(i));
    CHECK(f.stored("notify/outbox/a/") == 5);
    CHECK(f.poster.calls.size() == 1);
    f.stop.request_stop();  // the run ends with the POST cut off (as a killed daemon's)
    f.poster.release();
    REQUIRE(f.running.active() == 0);
    f.n.reset();
    f.reg.reset();
    f.poster.calls.clear();
    f.poster.hold = false;
    f.start();
    REQUIRE(f.poster.calls.size() == 5);
    for (std::size_t i = 0; i < 5; ++i) {
        CHECK(header(f.poster.calls[i].req, "X-Registry-Revision") == std::to_string(i + 1));
    }
    CHECK(f.stored("notify/") == 0);
    f.add("svc", "later");  // and new events after the restart follow
    REQUIRE(f.poster.calls.size() == 6);
    CHECK(header(f.poster.calls[5].req, "X-Registry-Revision") == "6");
}

TEST_CASE("notifier: a full outbox dead-letters the event, the dead letters keep max_dead_letters, the newest") {
    notifier_options o;
    o.webhooks.push_back(hook("a"));
    o.max_outbox = 2;
    o.max_dead_letters = 2;
    fixture f(o);
    f.poster.hold = true;
    f.start();
    for (int i = 0; i < 6; ++i) f.add("svc", "i" + std::to_string(i));
    const auto dead = f.n->dead_letters();
    REQUIRE(dead.size() == 2);
    CHECK(dead[0].reason == "outbox_full");
    CHECK(dead[0].id == "5.0");
    CHECK(dead[1].id == "6.0");
    CHECK(f.stats_of("a").dropped == 4);
    CHECK(f.stats_of("a").outbox == 2);
    CHECK(f.stored("notify/dead/a/") == 2);
    CHECK(run_now(f.n->clear_dead_letters("a", {"5.0"})).value() == 1);
    CHECK(f.n->dead_letters().size() == 1);
    CHECK(run_now(f.n->clear_dead_letters("", {})).value() == 1);
    CHECK(f.stored("notify/dead/") == 0);
    f.poster.release();
}

TEST_CASE("notifier: the outbox of a webhook no longer configured becomes its dead letters") {
    notifier_options o;
    o.webhooks.push_back(hook("old"));
    fixture f(o);
    f.poster.hold = true;
    f.start();
    f.add("svc", "i1");
    f.add("svc", "i2");
    f.options.webhooks = {hook("new")};
    f.poster.hold = false;
    f.restart();
    const auto dead = f.n->dead_letters("old");
    REQUIRE(dead.size() == 2);
    CHECK(dead[0].reason == "webhook_removed");
    CHECK(f.stored("notify/outbox/") == 0);
    CHECK(f.stored("notify/dead/old/") == 2);
    auto retry = run_now(f.n->retry_dead_letters("old", {}));
    REQUIRE(!retry);  // nowhere to send them
    CHECK(retry.err().code == errc::not_found);
    CHECK(run_now(f.n->clear_dead_letters("old", {})).value() == 2);
}

namespace {

identity someone(std::string name, std::vector<std::string> scope = {}) {
    identity i;
    i.name = std::move(name);
    i.services = std::move(scope);
    return i;
}

notifier_options identity_hooks(std::size_t per_identity = 2) {
    notifier_options o;
    o.webhooks.push_back(hook("config"));
    o.identity_webhooks.allowed_urls = {"http://127.0.0.1:*"};
    o.identity_webhooks.max_per_identity = per_identity;
    o.check_url = [](std::string_view url) -> std::optional<std::string> {
        if (url.starts_with("http://")) return std::nullopt;
        return "must start with http://";
    };
    return o;
}

}  // namespace

TEST_CASE("notifier: identities' webhooks are off unless urls are allowed") {
    fixture f(notifier_options{});
    f.start();
    auto made = run_now(f.n->create_webhook(hook("mine"), someone("alice")));
    REQUIRE(!made);
    CHECK(made.err().code == errc::unavailable);
}

TEST_CASE("notifier: an identity's webhook gets only events about services in the identity's scope, and survives a restart") {
    fixture f(identity_hooks());
    f.start();
    webhook w = hook("alices", "http://127.0.0.1:9/alice");
    w.services = {"web-*"};
    w.secret = "k";
    auto made = run_now(f.n->create_webhook(w, someone("alice", {"web-*"})));
    REQUIRE_MESSAGE(made, (made ? "" : made.err().message));
    CHECK(made->owner == "alice");
    CHECK(made->secret.empty());  // never handed back
    f.add("web-a", "w1");
    f.add("db", "d1");
    CHECK(f.poster.bodies_to("alices").size() == 1);
    CHECK(f.poster.bodies_to("config").size() == 2);

    f.restart();
    f.poster.calls.clear();
    f.add("web-b", "w2");
    const auto after = f.poster.bodies_to("alices");
    REQUIRE(after.size() == 1);
    CHECK(after[0].find(R"("instance_id":"w2")") != std::string::npos);
    for (const auto& c : f.poster.calls) {
        if (header(c.req, "X-Registry-Webhook") == "alices") {
            CHECK(header(c.req, "X-Registry-Signature") == webhook_signature("k", *c.req.body));
        }
    }
    const auto seen_by_alice = f.n->webhooks(someone("alice"));
    REQUIRE(seen_by_alice.size() == 1);
    CHECK(seen_by_alice[0].name == "alices");
    CHECK(f.n->webhooks(identity::anonymous()).size() == 2);  // an admin sees the configuration's too
    CHECK(f.n->webhooks(someone("bob")).empty());
}

TEST_CASE("notifier: an identity's webhook is refused outside the allowed urls, the scope, the limits, and deleted by its owner") {
    fixture f(identity_hooks(1));
    f.start();
    auto code = [&](webhook w, identity by) {
        auto r = run_now(f.n->create_webhook(std::move(w), by));
        return r ? std::string("ok") : std::string(to_string(r.err().code));
    };
    CHECK(code(hook("x", "http://10.0.0.1/"), someone("alice")) == "forbidden");  // not an allowed url
    CHECK(code(hook("x", "ftp://127.0.0.1:1/"), someone("alice")) == "invalid_request");  // the embedder's check
    CHECK(code(hook("Bad Name", "http://127.0.0.1:1/"), someone("alice")) == "invalid_request");
    CHECK(code(hook("x", "http://127.0.0.1:1/"), someone("alice", {"web-*"})) == "forbidden");  // no services: beyond its scope
    webhook wide = hook("x", "http://127.0.0.1:1/");
    wide.services = {"*"};
    CHECK(code(wide, someone("alice", {"web-*"})) == "forbidden");
    CHECK(code(hook("config", "http://127.0.0.1:1/"), someone("alice")) == "conflict");
    CHECK(code(hook("a1", "http://127.0.0.1:1/"), someone("alice")) == "ok");
    CHECK(code(hook("a2", "http://127.0.0.1:1/"), someone("alice")) == "limit_exceeded");
    CHECK(code(hook("b1", "http://127.0.0.1:1/"), someone("bob")) == "ok");

    auto deleted_by = [&](std::string name, identity by) {
        auto r = run_now(f.n->delete_webhook(std::move(name), by));
        return r ? std::string("ok") : std::string(to_string(r.err().code));
    };
    CHECK(deleted_by("a1", someone("bob")) == "not_found");
    CHECK(deleted_by("config", identity::anonymous()) == "forbidden");
    f.poster.hold = true;  // a1 has an event in its outbox when it goes
    f.add("svc", "s1");
    CHECK(f.stored("notify/outbox/a1/") == 1);
    CHECK(deleted_by("a1", someone("alice")) == "ok");
    CHECK(f.stored("notify/outbox/a1/") == 0);
    CHECK(f.stored("notify/hooks/a1") == 0);
    CHECK(f.stored("notify/hooks/b1") == 1);
    CHECK(deleted_by("b1", identity::anonymous()) == "ok");  // an admin deletes anyone's
    f.poster.release();
    CHECK(f.n->webhooks(identity::anonymous()).size() == 1);
    f.restart();
    CHECK(f.n->webhooks(identity::anonymous()).size() == 1);
}
