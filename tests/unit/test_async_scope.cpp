#include <registry/async_scope.hpp>
#include <registry/sync_wait.hpp>
#include <registry/task.hpp>

#include "coroutine_test_support.hpp"

#include <doctest/doctest.h>

#include <coroutine>
#include <exception>
#include <stdexcept>
#include <string>
#include <utility>
#include <vector>

using registry::async_scope;
using registry::sync_wait;
using registry::task;

using registry::test::driver;
using registry::test::manual_event;
using registry::test::tracked;

namespace {

using step_log = std::vector<std::string>;

driver join(async_scope& scope, step_log& steps) {
    co_await scope.join();
    steps.push_back("joined");
}

task<void> step(step_log& steps, std::string name) {
    steps.push_back(name);
    co_return;
}

task<void> wait_then(manual_event& event, step_log& steps, std::string name) {
    steps.push_back(name + " started");
    co_await event;
    steps.push_back(name + " done");
}

task<void> fail_after(manual_event* event, std::string what) {
    if (event) co_await *event;
    throw std::runtime_error(what);
}

}  // namespace

TEST_CASE("async_scope runs a synchronous task to completion inside spawn()") {
    async_scope scope;
    step_log steps;
    scope.spawn(step(steps, "ran"));
    CHECK(steps == step_log{"ran"});
    CHECK(scope.active() == 0);
    sync_wait([](async_scope& s) -> task<void> { co_await s.join(); }(scope));  // idle: completes at once
}

TEST_CASE("async_scope counts running tasks and join completes after the last one") {
    async_scope scope;
    step_log steps;
    manual_event a;
    manual_event b;

    scope.spawn(wait_then(a, steps, "a"));
    CHECK(steps == step_log{"a started"});  // ran up to its first suspension
    scope.spawn(wait_then(b, steps, "b"));
    scope.spawn(step(steps, "sync"));
    CHECK(scope.active() == 2);

    driver joiner = join(scope, steps);
    CHECK_FALSE(joiner.done());

    b.set();
    CHECK(scope.active() == 1);
    CHECK_FALSE(joiner.done());

    a.set();
    CHECK(scope.active() == 0);
    REQUIRE(joiner.done());
    CHECK(steps == step_log{"a started", "b started", "sync", "b done", "a done", "joined"});
}

TEST_CASE("async_scope hands escaping exceptions to on_error") {
    async_scope scope;
    std::vector<std::string> errors;
    scope.on_error([&](std::exception_ptr e) {
        try {
            std::rethrow_exception(e);
        } catch (const std::runtime_error& err) {
            errors.emplace_back(err.what());
        }
    });
    manual_event later;
    step_log steps;

    scope.spawn(fail_after(nullptr, "at once"));
    CHECK(errors == std::vector<std::string>{"at once"});
    CHECK(scope.active() == 0);

    scope.spawn(fail_after(&later, "later"));
    CHECK(scope.active() == 1);
    driver joiner = join(scope, steps);

    later.set();
    CHECK(errors == std::vector<std::string>{"at once", "later"});
    CHECK(scope.active() == 0);
    CHECK(joiner.done());
}

TEST_CASE("async_scope destroys spawned task frames when they finish") {
    REQUIRE(tracked::live == 0);
    {
        async_scope scope;
        manual_event event;
        auto hold = [](tracked, manual_event& e) -> task<void> {
            tracked local;
            co_await e;
        };
        scope.spawn(hold(tracked{}, event));
        CHECK(tracked::live == 2);
        event.set();
        CHECK(scope.active() == 0);
    }
    CHECK(tracked::live == 0);
}
