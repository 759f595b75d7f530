// Helpers for driving the registry deterministically in unit tests: run a
// task that must complete without waiting, and collect a watch stream.
#pragma once

#include <registry/async_scope.hpp>
#include <registry/registry.hpp>
#include <registry/testing/fake_clock.hpp>
#include <registry/testing/memory_store.hpp>

#include <doctest/doctest.h>

#include <coroutine>
#include <optional>
#include <stop_token>
#include <vector>

namespace registry::test {

// Starts `t` and returns the handle to its eventual result. Tests check
// done() to see whether it completed (e.g. only after a held store releases).
template <typename T>
class started {
public:
    explicit started(task<T> t) { scope_.spawn(run(std::move(t))); }
    started(const started&) = delete;
    ~started() { CHECK_MESSAGE(done(), "a started task never completed"); }

    bool done() const { return scope_.active() == 0; }
    T& get() {
        REQUIRE(done());
        return *value_;
    }

private:
    task<void> run(task<T> t) { value_.emplace(co_await std::move(t)); }

    async_scope scope_;
    std::optional<T> value_;
};

// Runs a task that must complete synchronously (no held store, no sleep).
template <typename T>
T run_now(task<T> t) {
    started<T> s(std::move(t));
    REQUIRE(s.done());
    return std::move(s.get());
}

// A consumer that can be paused: while closed, it does not ask for the
// next event (simulating a slow subscriber).
struct gate {
    bool open = true;
    std::coroutine_handle<> waiting;
    bool await_ready() const noexcept { return open; }
    void await_suspend(std::coroutine_handle<> h) noexcept { waiting = h; }
    void await_resume() const noexcept {}
    void release() {
        open = true;
        if (waiting) std::exchange(waiting, {}).resume();
    }
};

struct collector {
    std::vector<event_ptr> events;
    std::stop_source stop;
    gate pause;
    async_scope scope;
    bool ended = false;

    void start(registry& r, watch_options o = {}) {
        o.stop = stop.get_token();
        scope.spawn(pump(r.watch(std::move(o))));
    }
    task<void> pump(async_generator<event_ptr> g) {
        for (auto it = co_await g.begin(); it != g.end(); co_await ++it) {
            events.push_back(*it);
            co_await pause;
        }
        ended = true;
    }
    void end() {
        stop.request_stop();
        pause.release();
    }
    std::vector<event_type> types() const {
        std::vector<event_type> out;
        for (auto& e : events) out.push_back(e->type);
        return out;
    }
    ~collector() {
        end();
        CHECK(scope.active() == 0);
    }
};

inline registration make_registration(std::string name, std::string instance_id = {}, std::uint16_t port = 8080) {
    registration reg;
    reg.service.name = std::move(name);
    reg.service.instance_id = std::move(instance_id);
    reg.service.version = "1.0.0";
    reg.service.endpoints.push_back(endpoint{"http", "127.0.0.1", port, "http"});
    return reg;
}

// A registry on a fake clock and a memory store, run()ning; options may be
// changed before restart().
struct running_registry {
    testing::fake_clock clk;
    testing::memory_store st;
    registry_options opt = [] {
        registry_options o;
        o.bookmark_interval = seconds{3600};
        return o;
    }();
    std::optional<::registry::registry> reg;
    std::optional<std::stop_source> stop;  // emplaced, not reassigned: libstdc++ 12's move-assignment miscounts
    async_scope runner;

    running_registry() { open(); }
    ~running_registry() { close(); }

    void open() {
        reg.emplace(clk, st, opt);
        auto opened = run_now(reg->open());
        REQUIRE(opened.ok());
        stop.emplace();
        runner.spawn(reg->run(stop->get_token()));
    }
    void close() {
        if (!reg) return;
        stop->request_stop();
        CHECK(runner.active() == 0);
        reg.reset();
    }
    void restart() {
        close();
        open();
    }
    lease_grant add(std::string name, std::string id = {}, std::optional<seconds> ttl = {}) {
        auto r = make_registration(std::move(name), std::move(id));
        r.ttl = ttl;
        auto g = run_now(reg->register_service(std::move(r)));
        REQUIRE_MESSAGE(g.ok(), (g.ok() ? "" : g.err().message));
        return g.value();
    }
};

}  // namespace registry::test
