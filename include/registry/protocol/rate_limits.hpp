// Request rates per caller (docs/protocol.md, "Rate limits"): a token bucket
// per identity, or per source address for the anonymous identity (access
// control off), for every request; and a tighter bucket per expensive family
// (repl, containers.write, deploy). A request takes a token from each bucket
// that applies to it; one that finds a bucket empty is refused with
// `rate_limited` and error::retry_after_ms, and takes nothing.
#pragma once

#include <registry/protocol/permission.hpp>

#include <array>
#include <cstddef>

namespace registry::protocol {

struct rate {
    double per_second = 0;  // tokens added a second; 0: this bucket does not apply
    double burst = 1;       // tokens a full bucket holds (at least 1)

    constexpr bool limited() const noexcept { return per_second > 0; }
};

struct rate_limits {
    rate requests;  // every request of one caller
    std::array<rate, permission_family_count> families{};  // by permission_family; each in addition to `requests`
    // Callers whose buckets are held at most. Buckets that have filled up
    // again are the same as new ones and go first; past the bound the least
    // recently used caller's buckets go (it starts again with full ones).
    std::size_t max_callers = 65536;

    rate& family(permission_family f) noexcept { return families[static_cast<std::size_t>(f)]; }
    const rate& family(permission_family f) const noexcept { return families[static_cast<std::size_t>(f)]; }
    bool any() const noexcept {
        if (requests.limited()) return true;
        for (const auto& r : families)
            if (r.limited()) return true;
        return false;
    }
};

}  // namespace registry::protocol
