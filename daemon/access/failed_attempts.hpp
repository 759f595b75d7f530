// Failed authentications per source address: after `max` of them within a
// window (which starts at a source's first failure), the source is refused
// before its token is even looked at, until the window ends (429 with
// Retry-After). Bounded: at most `max_sources` addresses are tracked; a new
// one past that takes the place of expired entries, or of an arbitrary one.
#pragma once

#include <boost/asio/ip/address.hpp>

#include <chrono>
#include <cstddef>
#include <optional>
#include <unordered_map>

namespace registryd::access {

class failed_attempts {
public:
    using clock = std::chrono::steady_clock;

    failed_attempts(std::size_t max, std::chrono::seconds window, std::size_t max_sources = 65536)
        : max_(max), window_(window), max_sources_(max_sources) {}

    // How long `source` must wait, while it is over the limit.
    std::optional<std::chrono::seconds> blocked(const boost::asio::ip::address& source, clock::time_point now) const {
        const auto it = sources_.find(source);
        if (it == sources_.end() || it->second.count < max_) return std::nullopt;
        const auto ends = it->second.start + window_;
        if (now >= ends) return std::nullopt;
        return std::chrono::ceil<std::chrono::seconds>(ends - now);
    }

    void record(const boost::asio::ip::address& source, clock::time_point now) {
        auto it = sources_.find(source);
        if (it == sources_.end()) {
            if (sources_.size() >= max_sources_) make_room(now);
            it = sources_.emplace(source, entry{now, 0}).first;
        } else if (now >= it->second.start + window_) {
            it->second = entry{now, 0};
        }
        ++it->second.count;
    }

    std::size_t tracked() const noexcept { return sources_.size(); }

private:
    struct entry {
        clock::time_point start;
        std::size_t count;
    };

    // Expired entries are swept at most once a second (a sweep walks them
    // all: many new sources must not make every failure cost that much).
    void make_room(clock::time_point now) {
        if (now - last_sweep_ >= std::chrono::seconds(1)) {
            last_sweep_ = now;
            std::erase_if(sources_, [&](const auto& kv) { return now >= kv.second.start + window_; });
        }
        if (sources_.size() >= max_sources_) sources_.erase(sources_.begin());
    }

    std::size_t max_;
    std::chrono::seconds window_;
    std::size_t max_sources_;
    std::unordered_map<boost::asio::ip::address, entry> sources_;
    clock::time_point last_sweep_{};
};

}  // namespace registryd::access
