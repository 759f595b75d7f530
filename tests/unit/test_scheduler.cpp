#include <registry/ports/scheduler.hpp>
#include <registry/sync_wait.hpp>
#include <registry/task.hpp>
#include <registry/testing/manual_scheduler.hpp>

#include "coroutine_test_support.hpp"

#include <doctest/doctest.h>

#include <coroutine>
#include <optional>
#include <stdexcept>
#include <string>
#include <vector>

using registry::scheduler;
using registry::sync_wait;
using registry::task;
using registry::test::driver;
using registry::testing::manual_scheduler;

namespace {

template <typename T>
driver drive(task<T> t, std::optional<T>& out) {
    out.emplace(co_await std::move(t));
}

driver drive(task<void> t, bool& done) {
    co_await std::move(t);
    done = true;
}

std::string where(const manual_scheduler& s) { return s.running() ? "on the scheduler" : "elsewhere"; }

task<int> hop(manual_scheduler& s, std::vector<std::string>& steps, int value) {
    steps.push_back("before: " + where(s));
    co_await s.schedule();
    steps.push_back("after: " + where(s));
    co_return value;
}

task<void> hop_twice(manual_scheduler& s, std::vector<std::string>& steps, std::string name) {
    co_await s.schedule();
    steps.push_back(name + "1");
    co_await s.schedule();
    steps.push_back(name + "2");
}

// Refuses every coroutine, as a loop that has shut down would.
class closed_scheduler final : public scheduler {
public:
    void post(std::coroutine_handle<>) override { throw std::runtime_error("the loop has stopped"); }
};

// Resumes the coroutine before post() returns.
class inline_scheduler final : public scheduler {
public:
    void post(std::coroutine_handle<> h) override { h.resume(); }
};

}  // namespace

TEST_CASE("scheduler: schedule() resumes the awaiter on the scheduler, and only when the scheduler runs it") {
    manual_scheduler sched;
    std::vector<std::string> steps;
    std::optional<int> out;
    driver d = drive(hop(sched, steps, 7), out);

    CHECK(steps == std::vector<std::string>{"before: elsewhere"});
    CHECK(sched.pending() == 1);
    CHECK_FALSE(out);
    CHECK_FALSE(d.done());

    CHECK(sched.run_one());
    CHECK(steps == std::vector<std::string>{"before: elsewhere", "after: on the scheduler"});
    REQUIRE(out);
    CHECK(*out == 7);
    CHECK(d.done());
    CHECK(sched.pending() == 0);
    CHECK_FALSE(sched.run_one());
}

TEST_CASE("scheduler: coroutines resume in the order they were posted, hop after hop") {
    manual_scheduler sched;
    std::vector<std::string> steps;
    bool a = false, b = false, c = false;
    driver da = drive(hop_twice(sched, steps, "a"), a);
    driver db = drive(hop_twice(sched, steps, "b"), b);
    driver dc = drive(hop_twice(sched, steps, "c"), c);
    CHECK(steps.empty());
    CHECK(sched.pending() == 3);

    CHECK(sched.run() == 6);  // the second hops were posted while the first ones ran
    CHECK(steps == std::vector<std::string>{"a1", "b1", "c1", "a2", "b2", "c2"});
    CHECK((a && b && c));
}

TEST_CASE("scheduler: a coroutine moves from one scheduler to another") {
    manual_scheduler first, second;
    std::vector<std::string> steps;
    auto move_across = [&]() -> task<void> {
        co_await first.schedule();
        steps.push_back(std::string("first: ") + (first.running() ? "on first" : "not on first"));
        co_await second.schedule();
        steps.push_back(std::string("second: ") + (second.running() && !first.running() ? "on second only" : "wrong"));
    };
    bool done = false;
    driver d = drive(move_across(), done);

    CHECK(second.pending() == 0);
    CHECK(first.run() == 1);
    CHECK(steps == std::vector<std::string>{"first: on first"});
    CHECK(second.pending() == 1);
    CHECK_FALSE(done);

    CHECK(second.run() == 1);
    CHECK(steps == std::vector<std::string>{"first: on first", "second: on second only"});
    CHECK(done);
}

TEST_CASE("scheduler: an awaiting task continues on the scheduler its inner task hopped to") {
    manual_scheduler sched;
    std::vector<std::string> steps;
    auto outer = [&]() -> task<int> {
        const int inner = co_await hop(sched, steps, 20);
        steps.push_back("outer: " + where(sched));
        co_return inner + 1;
    };
    std::optional<int> out;
    driver d = drive(outer(), out);
    CHECK(sched.run() == 1);
    CHECK(steps == std::vector<std::string>{"before: elsewhere", "after: on the scheduler", "outer: on the scheduler"});
    REQUIRE(out);
    CHECK(*out == 21);
}

TEST_CASE("scheduler: a post() that refuses throws from the co_await, the coroutine continues where it was") {
    closed_scheduler closed;
    auto try_hop = [&]() -> task<std::string> {
        try {
            co_await closed.schedule();
        } catch (const std::runtime_error& e) {
            co_return std::string("refused: ") + e.what();
        }
        co_return "hopped";
    };
    CHECK(sync_wait(try_hop()) == "refused: the loop has stopped");
}

TEST_CASE("scheduler: a post() that resumes the coroutine before returning is allowed") {
    inline_scheduler now;
    auto hops = [&]() -> task<int> {
        int n = 0;
        for (int i = 0; i < 3; ++i) {
            co_await now.schedule();
            ++n;
        }
        co_return n;
    };
    CHECK(sync_wait(hops()) == 3);
}

TEST_CASE("scheduler: a loop of hops is one resumption per hop, each from the scheduler's own loop") {
    manual_scheduler sched;
    constexpr int hops = 10'000;
    int on_scheduler = 0;
    auto loop = [&]() -> task<int> {
        for (int i = 0; i < hops; ++i) {
            co_await sched.schedule();
            if (sched.running()) ++on_scheduler;
        }
        co_return hops;
    };
    std::optional<int> out;
    driver d = drive(loop(), out);
    CHECK(sched.pending() == 1);  // never more: each hop posts the next one only once it has run
    CHECK(sched.run() == static_cast<std::size_t>(hops));
    CHECK(on_scheduler == hops);
    REQUIRE(out);
    CHECK(*out == hops);
}
