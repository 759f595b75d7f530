#include <registry/async_generator.hpp>
#include <registry/sync_wait.hpp>
#include <registry/task.hpp>

#include "coroutine_test_support.hpp"

#include <doctest/doctest.h>

#include <coroutine>
#include <exception>
#include <memory>
#include <stdexcept>
#include <string>
#include <utility>
#include <vector>

using registry::async_generator;
using registry::sync_wait;
using registry::task;

using registry::test::driver;
using registry::test::manual_event;
using registry::test::tracked;

namespace {

// A while loop: GCC 12 rejects co_await in a for-increment inside a template.
template <typename T>
task<std::vector<T>> collect(async_generator<T> gen) {
    std::vector<T> out;
    auto it = co_await gen.begin();
    while (it != gen.end()) {
        out.push_back(*it);
        co_await ++it;
    }
    co_return out;
}

// The same, started eagerly and appending as values arrive.
driver drive_collect(async_generator<int> gen, std::vector<int>& out) {
    for (auto it = co_await gen.begin(); it != gen.end(); co_await ++it) out.push_back(*it);
}

async_generator<int> count_to(int n) {
    for (int i = 1; i <= n; ++i) co_yield i;
}

async_generator<int> empty() { co_return; }

task<int> doubled(int v) { co_return 2 * v; }

// Waits for the event before each value.
async_generator<int> on_event(manual_event& event, int n) {
    for (int i = 1; i <= n; ++i) {
        co_await event;
        event.reset();
        co_yield i;
    }
}

struct test_error {};

// Records its own cleanup, the way a subscription unsubscribes.
struct guard {
    bool& released;
    ~guard() { released = true; }
};

}  // namespace

TEST_CASE("async_generator yields values in order") {
    CHECK(sync_wait(collect(count_to(5))) == std::vector<int>{1, 2, 3, 4, 5});
}

TEST_CASE("async_generator with no values: begin() == end()") {
    CHECK(sync_wait(collect(empty())).empty());
    CHECK(sync_wait(collect(async_generator<int>{})).empty());
}

TEST_CASE("async_generator yields lvalues by reference and rvalues") {
    auto gen = [](int& seen) -> async_generator<int> {
        int x = 1;
        co_yield x;
        seen = x;  // the consumer wrote through *it
        co_yield 100;
    };
    auto consume = [](async_generator<int> g) -> task<int> {
        auto it = co_await g.begin();
        *it = 7;
        co_await ++it;
        co_return *it;
    };
    int seen = 0;
    CHECK(sync_wait(consume(gen(seen))) == 100);
    CHECK(seen == 7);
}

TEST_CASE("async_generator of move-only values") {
    auto gen = []() -> async_generator<std::unique_ptr<std::string>> {
        co_yield std::make_unique<std::string>("a");
        auto b = std::make_unique<std::string>("b");
        co_yield b;
    };
    auto consume = [](async_generator<std::unique_ptr<std::string>> g) -> task<std::string> {
        std::string joined;
        for (auto it = co_await g.begin(); it != g.end(); co_await ++it) {
            std::unique_ptr<std::string> taken = std::move(*it);
            joined += *taken;
        }
        co_return joined;
    };
    CHECK(sync_wait(consume(gen())) == "ab");
}

TEST_CASE("async_generator producer may co_await tasks between yields") {
    auto gen = []() -> async_generator<int> {
        for (int i = 1; i <= 3; ++i) co_yield co_await doubled(i);
    };
    CHECK(sync_wait(collect(gen())) == std::vector<int>{2, 4, 6});
}

TEST_CASE("async_generator producer suspended on an event resumes the consumer when set") {
    manual_event event;
    std::vector<int> got;
    driver d = drive_collect(on_event(event, 3), got);

    CHECK_FALSE(d.done());
    CHECK(got.empty());
    CHECK(event.has_waiter());

    event.set();
    CHECK(got == std::vector<int>{1});
    CHECK_FALSE(d.done());

    event.set();
    event.set();
    CHECK(got == std::vector<int>{1, 2, 3});
    REQUIRE(d.done());
    CHECK_FALSE(d.error());
}

TEST_CASE("a million synchronously yielded values run in constant stack") {
    auto sum = [](async_generator<int> g) -> task<long> {
        long total = 0;
        for (auto it = co_await g.begin(); it != g.end(); co_await ++it) total += *it;
        co_return total;
    };
    CHECK(sync_wait(sum(count_to(1'000'000))) == 500'000'500'000L);
}

TEST_CASE("async_generator exceptions are rethrown to the consumer") {
    SUBCASE("before the first value: from begin()") {
        auto gen = []() -> async_generator<int> {
            throw std::runtime_error("no start");
            co_return;
        };
        CHECK_THROWS_WITH_AS(sync_wait(collect(gen())), "no start", std::runtime_error);
    }
    SUBCASE("after a value: from ++, leaving the iterator at end()") {
        auto gen = []() -> async_generator<int> {
            co_yield 1;
            throw std::runtime_error("mid");
        };
        auto consume = [](async_generator<int> g) -> task<bool> {
            auto it = co_await g.begin();
            CHECK(*it == 1);
            try {
                co_await ++it;
            } catch (const std::runtime_error& e) {
                CHECK(std::string(e.what()) == "mid");
                co_return it == g.end();
            }
            co_return false;
        };
        CHECK(sync_wait(consume(gen())));
    }
    SUBCASE("after an asynchronous wait: to the consumer resumed by the event") {
        manual_event event;
        auto gen = [](manual_event& e) -> async_generator<int> {
            co_await e;
            throw test_error{};
            co_return;
        };
        std::vector<int> got;
        driver d = drive_collect(gen(event), got);
        CHECK_FALSE(d.done());
        event.set();
        REQUIRE(d.done());
        CHECK_THROWS_AS(std::rethrow_exception(d.error()), test_error);
        CHECK(got.empty());
    }
}

TEST_CASE("destroying an async_generator destroys the producer and runs its cleanup") {
    REQUIRE(tracked::live == 0);
    bool released = false;

    SUBCASE("never started") {
        auto gen = [](tracked, bool& r) -> async_generator<int> {
            guard g{r};
            co_yield 1;
        };
        {
            auto g = gen(tracked{}, released);
            CHECK(tracked::live == 1);
        }
        CHECK_FALSE(released);  // the body never ran, so the guard never existed
    }
    SUBCASE("suspended at a co_yield, consumer stopped early") {
        auto gen = [](tracked, bool& r) -> async_generator<int> {
            guard g{r};
            tracked local;
            for (int i = 0;; ++i) co_yield i;
        };
        auto first_two = [](async_generator<int> g) -> task<int> {
            auto it = co_await g.begin();
            co_await ++it;
            co_return *it;
        };
        CHECK(sync_wait(first_two(gen(tracked{}, released))) == 1);
        CHECK(released);
    }
    SUBCASE("suspended on an awaitable nobody will resume") {
        manual_event never_set;
        auto gen = [](tracked, bool& r, manual_event& e) -> async_generator<int> {
            guard g{r};
            tracked local;
            co_yield 1;
            co_await e;
            co_yield 2;
        };
        std::vector<int> got;
        {
            driver d = drive_collect(gen(tracked{}, released, never_set), got);
            CHECK(got == std::vector<int>{1});
            CHECK(never_set.has_waiter());
            CHECK(tracked::live == 2);
            CHECK_FALSE(released);
        }
        CHECK(released);
    }
    SUBCASE("run to completion") {
        auto gen = [](tracked, bool& r) -> async_generator<tracked> {
            guard g{r};
            co_yield tracked{};
            tracked local;
            co_yield local;
        };
        CHECK(sync_wait(collect(gen(tracked{}, released))).size() == 2);
        CHECK(released);
    }
    CHECK(tracked::live == 0);
}

TEST_CASE("async_generator is movable") {
    async_generator<int> a = count_to(3);
    async_generator<int> b = std::move(a);
    CHECK(sync_wait(collect(std::move(a))).empty());  // moved-from: empty
    async_generator<int> c;
    c = std::move(b);
    CHECK(sync_wait(collect(std::move(c))) == std::vector<int>{1, 2, 3});
}
