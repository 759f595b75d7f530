// Warning lines limited per message, with a count of what was dropped.

#include "observability/log_throttle.hpp"

#include <doctest/doctest.h>

#include <chrono>
#include <optional>

using registryd::log::log_throttle;
using namespace std::chrono_literals;

TEST_CASE("log_throttle: a burst per message per window, then the count of what was dropped") {
    log_throttle t(3, 10s);
    const auto t0 = log_throttle::clock::time_point{} + 1h;
    for (int i = 0; i < 3; ++i) CHECK(t.admit("slow consumer", t0) == std::optional<std::uint64_t>{0});
    for (int i = 0; i < 5; ++i) CHECK_FALSE(t.admit("slow consumer", t0 + 1s).has_value());
    // Another message has its own budget.
    CHECK(t.admit("accept failed", t0 + 2s) == std::optional<std::uint64_t>{0});
    // Next window: the first line carries the count.
    CHECK(t.admit("slow consumer", t0 + 10s) == std::optional<std::uint64_t>{5});
    CHECK(t.admit("slow consumer", t0 + 10s) == std::optional<std::uint64_t>{0});
}

TEST_CASE("log_throttle: more distinct messages than it tracks share one budget") {
    log_throttle t(1, 10s, 2);
    const auto t0 = log_throttle::clock::time_point{} + 1h;
    CHECK(t.admit("a", t0).has_value());
    CHECK(t.admit("b", t0).has_value());
    CHECK(t.admit("c", t0).has_value());   // the shared budget's one line
    CHECK_FALSE(t.admit("d", t0).has_value());
    CHECK_FALSE(t.admit("a", t0).has_value());
    // The next window: each budget reports what it dropped.
    CHECK(t.admit("e", t0 + 11s) == std::optional<std::uint64_t>{1});  // shared: d
    CHECK_FALSE(t.admit("f", t0 + 11s).has_value());
    CHECK(t.admit("a", t0 + 11s) == std::optional<std::uint64_t>{1});
}
