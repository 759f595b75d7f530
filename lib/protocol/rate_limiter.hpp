// The token buckets of protocol::rate_limits, by caller key, bounded in
// number: least recently used first, and buckets that have filled up again
// (no different from new ones) are dropped as they are passed.
#pragma once

#include <registry/ports/clock.hpp>
#include <registry/protocol/rate_limits.hpp>

#include <array>
#include <chrono>
#include <cstddef>
#include <list>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>

namespace registry::protocol {

class rate_limiter {
public:
    explicit rate_limiter(const rate_limits& limits) : limits_(limits) {}
    rate_limiter(const rate_limiter&) = delete;
    rate_limiter& operator=(const rate_limiter&) = delete;

    // Admits one request of family `f` from `caller` at `now` (taking its
    // tokens), or says how long until it would be admitted (taking none).
    std::optional<milliseconds> admit(std::string_view caller, permission_family f, time_point now);

    std::size_t callers() const noexcept { return by_key_.size(); }

private:
    struct bucket {
        double tokens = 0;
        time_point updated{};
        bool used = false;  // false: full, never taken from

        void refill(const rate& r, time_point now);
        bool full(const rate& r, time_point now) const;
    };
    struct caller_buckets {
        std::string key;
        bucket requests;
        std::array<bucket, permission_family_count> families;
        bool idle(const rate_limits& l, time_point now) const;
    };
    using lru = std::list<caller_buckets>;  // most recently used first

    caller_buckets& find_or_add(std::string_view caller, time_point now);

    rate_limits limits_;
    lru order_;
    std::unordered_map<std::string_view, lru::iterator> by_key_;  // keys point into order_'s entries
};

}  // namespace registry::protocol
