// Repeated warnings and errors, limited per message: at most `burst` lines of
// one message per `window`. The others are counted, and the next line of that
// message that is written says how many were dropped before it:
// "<msg> (N similar suppressed)". One client must not fill the disk with
// warnings about itself.
#pragma once

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>

namespace registryd::log {

class log_throttle {
public:
    using clock = std::chrono::steady_clock;

    explicit log_throttle(std::size_t burst = 10, clock::duration window = std::chrono::seconds(10),
                          std::size_t max_keys = 1024)
        : burst_(burst), window_(window), max_keys_(max_keys) {}

    // nullopt: drop this line. Otherwise write it; the value is how many lines
    // of this message were dropped since the last one written.
    std::optional<std::uint64_t> admit(std::string_view msg, clock::time_point now) {
        auto it = keys_.find(msg);
        if (it == keys_.end()) {
            if (keys_.size() >= max_keys_) forget_quiet(now);
            // Still full: every further message shares one budget.
            const std::string_view key = keys_.size() < max_keys_ ? msg : std::string_view{};
            it = keys_.find(key);
            if (it == keys_.end()) it = keys_.emplace(std::string(key), state{now, 0, 0}).first;
        }
        state& s = it->second;
        if (now - s.window_start >= window_) {
            s.window_start = now;
            s.written = 0;
        }
        if (s.written >= burst_) {
            ++s.suppressed;
            return std::nullopt;
        }
        ++s.written;
        const std::uint64_t suppressed = s.suppressed;
        s.suppressed = 0;
        return suppressed;
    }

private:
    struct state {
        clock::time_point window_start;
        std::size_t written = 0;
        std::uint64_t suppressed = 0;
    };
    struct hash {
        using is_transparent = void;
        std::size_t operator()(std::string_view s) const noexcept { return std::hash<std::string_view>{}(s); }
    };

    // Messages whose window has passed with nothing left to report.
    void forget_quiet(clock::time_point now) {
        std::erase_if(keys_, [&](const auto& kv) {
            return kv.second.suppressed == 0 && now - kv.second.window_start >= window_;
        });
    }

    std::size_t burst_;
    clock::duration window_;
    std::size_t max_keys_;
    std::unordered_map<std::string, state, hash, std::equal_to<>> keys_;
};

}  // namespace registryd::log
