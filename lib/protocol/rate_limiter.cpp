#include "rate_limiter.hpp"

#include <algorithm>
#include <cmath>

namespace registry::protocol {

namespace {

double capacity(const rate& r) { return std::max(r.burst, 1.0); }

// Refills are computed in floating point: a bucket refilled for exactly the
// wait it was told is admitted, not refused for a rounding error.
constexpr double token_epsilon = 1e-9;

}  // namespace

void rate_limiter::bucket::refill(const rate& r, time_point now) {
    if (!used) {
        tokens = capacity(r);
        used = true;
    } else if (now > updated) {
        const double elapsed = std::chrono::duration<double>(now - updated).count();
        tokens = std::min(capacity(r), tokens + elapsed * r.per_second);
    }
    updated = std::max(updated, now);
}

bool rate_limiter::bucket::full(const rate& r, time_point now) const {
    if (!used) return true;
    const double elapsed = now > updated ? std::chrono::duration<double>(now - updated).count() : 0.0;
    return tokens + elapsed * r.per_second >= capacity(r);
}

bool rate_limiter::caller_buckets::idle(const rate_limits& l, time_point now) const {
    if (l.requests.limited() && !requests.full(l.requests, now)) return false;
    for (std::size_t i = 0; i < families.size(); ++i) {
        if (l.families[i].limited() && !families[i].full(l.families[i], now)) return false;
    }
    return true;
}

rate_limiter::caller_buckets& rate_limiter::find_or_add(std::string_view caller, time_point now) {
    if (auto it = by_key_.find(caller); it != by_key_.end()) {
        order_.splice(order_.begin(), order_, it->second);
        return *it->second;
    }
    // Drop the least recently used callers whose buckets are full again,
    // and past the bound the least recently used one whatever its state.
    while (!order_.empty() && (order_.size() >= std::max<std::size_t>(limits_.max_callers, 1) ||
                               order_.back().idle(limits_, now))) {
        by_key_.erase(order_.back().key);
        order_.pop_back();
    }
    order_.emplace_front();
    order_.front().key = std::string(caller);
    by_key_.emplace(order_.front().key, order_.begin());
    return order_.front();
}

std::optional<milliseconds> rate_limiter::admit(std::string_view caller, permission_family f, time_point now) {
    const rate& all = limits_.requests;
    const rate& family = limits_.family(f);
    if (!all.limited() && !family.limited()) return std::nullopt;
    caller_buckets& c = find_or_add(caller, now);
    bucket& fb = c.families[static_cast<std::size_t>(f)];

    // The wait for one token, of every bucket that applies: the longest.
    double wait_seconds = 0;
    auto check = [&](bucket& b, const rate& r) {
        if (!r.limited()) return;
        b.refill(r, now);
        if (b.tokens < 1 - token_epsilon) wait_seconds = std::max(wait_seconds, (1 - b.tokens) / r.per_second);
    };
    check(c.requests, all);
    check(fb, family);
    if (wait_seconds > 0) return milliseconds(static_cast<milliseconds::rep>(std::ceil(wait_seconds * 1000)));
    if (all.limited()) c.requests.tokens -= 1;
    if (family.limited()) fb.tokens -= 1;
    return std::nullopt;
}

}  // namespace registry::protocol
