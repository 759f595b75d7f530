#include <registry/cancellation.hpp>
#include <registry/sync_wait.hpp>
#include <registry/task.hpp>

#include "coroutine_test_support.hpp"

#include <doctest/doctest.h>

#include <coroutine>
#include <exception>
#include <future>
#include <memory>
#include <optional>
#include <stdexcept>
#include <string>
#include <thread>
#include <utility>
#include <vector>

using registry::sync_wait;
using registry::task;

using registry::test::driver;
using registry::test::manual_event;
using registry::test::tracked;

namespace {

template <typename T>
driver drive(task<T> t, std::optional<T>& out) {
    out.emplace(co_await std::move(t));
}

task<int> forty_two() { co_return 42; }

task<void> nothing() { co_return; }

task<int> add_one(task<int> inner) { co_return co_await std::move(inner) + 1; }

task<int> throws_at_depth(int depth) {
    if (depth == 0) throw std::runtime_error("deep failure");
    co_return co_await throws_at_depth(depth - 1);
}

task<int> cancelled() {
    throw registry::operation_cancelled{};
    co_return 0;
}

task<int> wait_then(manual_event& event, int value) {
    co_await event;
    co_return value;
}

}  // namespace

TEST_CASE("task returns its value") {
    CHECK(sync_wait(forty_two()) == 42);
    CHECK(sync_wait(add_one(add_one(forty_two()))) == 44);
}

TEST_CASE("task<void> completes") {
    bool ran = false;
    auto body = [](bool& flag) -> task<void> {
        flag = true;
        co_return;
    };
    sync_wait(body(ran));
    CHECK(ran);
}

TEST_CASE("task returns move-only values") {
    auto make = [](int v) -> task<std::unique_ptr<int>> { co_return std::make_unique<int>(v); };
    std::unique_ptr<int> p = sync_wait(make(7));
    REQUIRE(p);
    CHECK(*p == 7);
}

TEST_CASE("task<T&> returns a reference to the same object") {
    int target = 1;
    auto ref = [](int& r) -> task<int&> { co_return r; };
    auto user = [](task<int&> t) -> task<int*> {
        int& r = co_await std::move(t);
        r = 5;
        co_return &r;
    };
    CHECK(sync_wait(user(ref(target))) == &target);
    CHECK(target == 5);
}

TEST_CASE("awaiting a task as an lvalue leaves the result in it") {
    auto user = []() -> task<std::string> {
        auto t = []() -> task<std::string> { co_return std::string(100, 'x'); }();
        std::string& first = co_await t;  // runs it
        std::string& again = co_await t;  // already done: same stored value
        CHECK(&first == &again);
        co_return first;
    };
    CHECK(sync_wait(user()) == std::string(100, 'x'));
}

TEST_CASE("exceptions propagate through nested tasks") {
    CHECK_THROWS_WITH_AS(sync_wait(throws_at_depth(5)), "deep failure", std::runtime_error);

    auto catcher = []() -> task<std::string> {
        try {
            co_await throws_at_depth(3);
        } catch (const std::runtime_error& e) {
            co_return e.what();
        }
        co_return "not thrown";
    };
    CHECK(sync_wait(catcher()) == "deep failure");
}

TEST_CASE("operation_cancelled propagates like any exception") {
    CHECK_THROWS_AS(sync_wait(add_one(add_one(cancelled()))), registry::operation_cancelled);

    auto observe = []() -> task<std::string> {
        try {
            co_await add_one(cancelled());
        } catch (const std::exception& e) {  // caught as a plain std::exception too
            co_return e.what();
        }
        co_return "not thrown";
    };
    CHECK(sync_wait(observe()) == "operation cancelled");
}

TEST_CASE("awaiting a task without a coroutine throws broken_promise") {
    task<int> empty;
    CHECK(empty.is_ready());
    CHECK_THROWS_AS(sync_wait(std::move(empty)), registry::broken_promise);

    task<int> source = forty_two();
    task<int> target = std::move(source);
    CHECK_THROWS_AS(sync_wait(std::move(source)), registry::broken_promise);  // NOLINT(bugprone-use-after-move)
    CHECK(sync_wait(std::move(target)) == 42);

    task<void> no_void;
    CHECK_THROWS_AS(sync_wait(std::move(no_void)), registry::broken_promise);
    auto awaits_lvalue = [](task<int>& t) -> task<int> { co_return co_await t; };
    task<int> lvalue;
    CHECK_THROWS_AS(sync_wait(awaits_lvalue(lvalue)), registry::broken_promise);
}

TEST_CASE("task is lazy: the body runs only when awaited") {
    int runs = 0;
    auto body = [](int& count) -> task<int> {
        ++count;
        co_return count;
    };
    task<int> t = body(runs);
    CHECK(runs == 0);
    CHECK_FALSE(t.is_ready());
    CHECK(sync_wait(std::move(t)) == 1);
    CHECK(runs == 1);

    { task<int> never = body(runs); }
    CHECK(runs == 1);
}

TEST_CASE("a million synchronously completing co_awaits run in constant stack") {
    auto loop = []() -> task<long> {
        long sum = 0;
        for (int i = 0; i < 1'000'000; ++i) {
            sum += co_await forty_two();
            co_await nothing();
        }
        co_return sum;
    };
    CHECK(sync_wait(loop()) == 42'000'000L);
}

TEST_CASE("a task suspended on an event completes when the event is set") {
    manual_event event;
    std::optional<int> out;
    driver d = drive(add_one(wait_then(event, 9)), out);
    CHECK_FALSE(d.done());
    CHECK(event.has_waiter());
    event.set();
    REQUIRE(d.done());
    CHECK_FALSE(d.error());
    CHECK(out == 10);
}

TEST_CASE("sync_wait returns a task resumed on another thread") {
    std::promise<std::coroutine_handle<>> suspended;
    std::future<std::coroutine_handle<>> handle = suspended.get_future();
    // Resumes the task from its own thread once the task has suspended.
    std::thread resumer([&] { handle.get().resume(); });

    struct publish_handle {
        std::promise<std::coroutine_handle<>>& to;
        bool await_ready() const noexcept { return false; }
        void await_suspend(std::coroutine_handle<> h) { to.set_value(h); }
        void await_resume() const noexcept {}
    };
    auto body = [](std::promise<std::coroutine_handle<>>& to) -> task<std::thread::id> {
        co_await publish_handle{to};
        co_return std::this_thread::get_id();
    };
    std::thread::id resumed_on = sync_wait(body(suspended));
    resumer.join();
    CHECK(resumed_on != std::this_thread::get_id());
}

TEST_CASE("task frames destroy what they hold") {
    auto hold = [](tracked) -> task<int> {
        tracked local;
        co_return co_await forty_two();
    };
    auto hold_and_wait = [](tracked, manual_event& event) -> task<int> {
        tracked local;
        co_return co_await wait_then(event, 1);
    };
    REQUIRE(tracked::live == 0);

    SUBCASE("completed") {
        CHECK(sync_wait(hold(tracked{})) == 42);
    }
    SUBCASE("never started") {
        task<int> t = hold(tracked{});
        CHECK(tracked::live == 1);  // the parameter copy in the frame
    }
    SUBCASE("failed") {
        auto failing = [](tracked) -> task<void> {
            tracked local;
            throw std::runtime_error("x");
            co_return;
        };
        CHECK_THROWS(sync_wait(failing(tracked{})));
    }
    SUBCASE("abandoned while suspended") {
        manual_event never_set;
        std::optional<int> out;
        {
            driver d = drive(add_one(hold_and_wait(tracked{}, never_set)), out);
            CHECK(never_set.has_waiter());
            CHECK(tracked::live == 2);
        }
        CHECK_FALSE(out);
    }
    CHECK(tracked::live == 0);
}
