// The one memory budget every WebSocket connection's variable buffers draw
// from (limits.memory_budget_bytes, docs/protocol.md "Limits"): a partial
// message being assembled, requests in flight, bytes read while a connection
// is paused, the outbound queue. A charge that does not fit is refused; the
// server then sheds the most expensive connections (server.cpp). Only the io
// thread touches it (no atomics).
#pragma once

#include <cstdint>

namespace registryd {

class memory_budget {
public:
    explicit memory_budget(std::uint64_t limit) noexcept : limit_(limit) {}

    memory_budget(const memory_budget&) = delete;
    memory_budget& operator=(const memory_budget&) = delete;

    // Takes `n` bytes if they fit; false (nothing taken) otherwise.
    bool try_charge(std::uint64_t n) noexcept {
        if (n > limit_ - used_) return false;
        used_ += n;
        if (used_ > peak_) peak_ = used_;
        return true;
    }

    void release(std::uint64_t n) noexcept { used_ -= n; }

    std::uint64_t limit() const noexcept { return limit_; }
    std::uint64_t used() const noexcept { return used_; }
    std::uint64_t peak() const noexcept { return peak_; }

private:
    const std::uint64_t limit_;
    std::uint64_t used_ = 0;
    std::uint64_t peak_ = 0;
};

}  // namespace registryd
