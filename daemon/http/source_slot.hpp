// One connection's place in its source address's count
// (limits.max_connections_per_source): taken at accept, moved from the HTTP
// session to the WebSocket session, given back when the connection ends.
// (One pointer: it is part of every idle connection.)
#pragma once

#include <boost/asio/ip/address.hpp>

#include <cstddef>
#include <unordered_map>
#include <utility>

namespace registryd {

class source_slot {
public:
    struct count {
        std::size_t connections = 0;
        std::unordered_map<boost::asio::ip::address, count>* in = nullptr;  // to erase itself at 0
    };
    using counts = std::unordered_map<boost::asio::ip::address, count>;

    source_slot() = default;
    source_slot(counts& c, const boost::asio::ip::address& a) : entry_(&*c.try_emplace(a).first) {
        entry_->second.in = &c;
        ++entry_->second.connections;
    }
    source_slot(source_slot&& o) noexcept : entry_(std::exchange(o.entry_, nullptr)) {}
    source_slot& operator=(source_slot&& o) noexcept {
        if (this != &o) {
            give_back();
            entry_ = std::exchange(o.entry_, nullptr);
        }
        return *this;
    }
    ~source_slot() { give_back(); }

private:
    void give_back() noexcept {
        if (entry_ && --entry_->second.connections == 0) entry_->second.in->erase(entry_->first);
        entry_ = nullptr;
    }

    counts::value_type* entry_ = nullptr;  // unordered_map nodes never move
};

}  // namespace registryd
