#include <registry/sync_wait.hpp>
#include <registry/task.hpp>
#include <registry/when_all.hpp>

#include "coroutine_test_support.hpp"

#include <doctest/doctest.h>

#include <coroutine>
#include <exception>
#include <optional>
#include <stdexcept>
#include <string>
#include <tuple>
#include <utility>
#include <variant>
#include <vector>

using registry::sync_wait;
using registry::task;
using registry::when_all;

using registry::test::driver;
using registry::test::manual_event;
using registry::test::tracked;

namespace {

template <typename T>
driver drive(task<T> t, std::optional<T>& out) {
    out.emplace(co_await std::move(t));
}

driver drive(task<void> t) { co_await std::move(t); }

using step_log = std::vector<std::string>;

task<int> value(int v, step_log& steps, std::string name) {
    steps.push_back(name + " started");
    co_return v;
}

task<int> value_after(manual_event& event, int v, step_log& steps, std::string name) {
    steps.push_back(name + " started");
    co_await event;
    steps.push_back(name + " done");
    co_return v;
}

task<void> fail_after(manual_event* event, std::string what, step_log& steps) {
    steps.push_back(what + " started");
    if (event) co_await *event;
    steps.push_back(what + " throws");
    throw std::runtime_error(what);
}

task<void> no_op() { co_return; }

}  // namespace

TEST_CASE("when_all of synchronous tasks returns their results in argument order") {
    step_log steps;
    auto [a, b, c] = sync_wait(when_all(value(1, steps, "a"), no_op(), [](step_log& s) -> task<std::string> {
        s.push_back("c started");
        co_return "three";
    }(steps)));
    CHECK(a == 1);
    CHECK(b == std::monostate{});
    CHECK(c == "three");
    CHECK(steps == step_log{"a started", "c started"});
}

TEST_CASE("when_all with no tasks completes at once") {
    CHECK(sync_wait(when_all()) == std::tuple<>{});
    sync_wait(when_all(std::vector<task<void>>{}));
}

TEST_CASE("when_all passes references through") {
    int target = 0;
    auto ref = [](int& r) -> task<int&> { co_return r; };
    auto user = [](task<int&> t) -> task<int*> {
        auto [r] = co_await when_all(std::move(t));
        co_return &r;
    };
    CHECK(sync_wait(user(ref(target))) == &target);
}

TEST_CASE("when_all is lazy") {
    step_log steps;
    {
        auto all = when_all(value(1, steps, "a"), value(2, steps, "b"));
        CHECK(steps.empty());
    }
    CHECK(steps.empty());
}

TEST_CASE("when_all starts every task in order and completes after the last, synchronous or not") {
    step_log steps;
    manual_event first;
    manual_event third;
    std::optional<std::tuple<int, int, int>> out;
    driver d = drive(when_all(value_after(first, 1, steps, "first"), value(2, steps, "second"),
                              value_after(third, 3, steps, "third")),
                     out);

    // All started, in order, before any event is set.
    CHECK(steps == step_log{"first started", "second started", "third started"});
    CHECK_FALSE(d.done());

    third.set();
    CHECK_FALSE(d.done());
    first.set();
    REQUIRE(d.done());
    CHECK_FALSE(d.error());
    CHECK(out == std::tuple{1, 2, 3});  // argument order, not completion order
    CHECK(steps.back() == "first done");
}

TEST_CASE("when_all rethrows the first exception in argument order after all finish") {
    step_log steps;
    manual_event slow_failure;
    manual_event slow_success;
    std::optional<std::tuple<std::monostate, std::monostate, int>> out;
    driver d = drive(when_all(fail_after(&slow_failure, "first", steps), fail_after(nullptr, "second", steps),
                              value_after(slow_success, 3, steps, "third")),
                     out);
    CHECK(steps == step_log{"first started", "second started", "second throws", "third started"});

    slow_failure.set();  // fails after the second one did, but comes first in argument order
    CHECK_FALSE(d.done());  // the third is still running

    slow_success.set();
    REQUIRE(d.done());
    CHECK_FALSE(out);
    REQUIRE(d.error());
    CHECK_THROWS_WITH_AS(std::rethrow_exception(d.error()), "first", std::runtime_error);
}

TEST_CASE("when_all over a vector of task<void>") {
    step_log steps;
    manual_event e1;
    manual_event e3;
    auto body = [](manual_event* e, int i, step_log& s) -> task<void> {
        s.push_back("start " + std::to_string(i));
        if (e) co_await *e;
        s.push_back("end " + std::to_string(i));
    };

    SUBCASE("mixed completion") {
        std::vector<task<void>> tasks;
        tasks.push_back(body(nullptr, 0, steps));
        tasks.push_back(body(&e1, 1, steps));
        tasks.push_back(body(nullptr, 2, steps));
        tasks.push_back(body(&e3, 3, steps));
        driver d = drive(when_all(std::move(tasks)));
        CHECK(steps == step_log{"start 0", "end 0", "start 1", "start 2", "end 2", "start 3"});
        e3.set();
        CHECK_FALSE(d.done());
        e1.set();
        REQUIRE(d.done());
        CHECK_FALSE(d.error());
        CHECK(steps.back() == "end 1");
    }
    SUBCASE("first exception in order, after all finish") {
        std::vector<task<void>> tasks;
        tasks.push_back(body(nullptr, 0, steps));
        tasks.push_back(fail_after(&e1, "one", steps));
        tasks.push_back(fail_after(nullptr, "two", steps));
        tasks.push_back(body(&e3, 3, steps));
        driver d = drive(when_all(std::move(tasks)));
        e1.set();
        CHECK_FALSE(d.done());
        e3.set();
        REQUIRE(d.done());
        CHECK_THROWS_WITH_AS(std::rethrow_exception(d.error()), "one", std::runtime_error);
    }
    SUBCASE("many synchronous tasks") {
        std::vector<task<void>> tasks;
        for (int i = 0; i < 100'000; ++i) tasks.push_back(no_op());
        sync_wait(when_all(std::move(tasks)));
    }
}

TEST_CASE("when_all frames destroy what they hold") {
    auto hold = [](tracked, manual_event* e) -> task<int> {
        tracked local;
        if (e) co_await *e;
        co_return 1;
    };
    REQUIRE(tracked::live == 0);
    manual_event never_set;

    SUBCASE("completed") {
        CHECK(sync_wait(when_all(hold(tracked{}, nullptr), hold(tracked{}, nullptr))) == std::tuple{1, 1});
    }
    SUBCASE("never awaited") {
        auto all = when_all(hold(tracked{}, nullptr), hold(tracked{}, &never_set));
        CHECK(tracked::live == 2);
    }
    SUBCASE("abandoned while one task is suspended") {
        std::optional<std::tuple<int, int>> out;
        {
            driver d = drive(when_all(hold(tracked{}, nullptr), hold(tracked{}, &never_set)), out);
            CHECK(never_set.has_waiter());
            CHECK(tracked::live == 3);  // both parameters, and the suspended one's local
        }
        CHECK_FALSE(out);
    }
    CHECK(tracked::live == 0);
}
