#include "listing_cache.hpp"

#include <charconv>

namespace registry::protocol {

std::uint64_t listing_cache::open(session_id owner, std::string_view action, std::uint64_t revision, items found) {
    auto oldest_of = [&](session_id who) {
        for (auto it = lru_.end(); it != lru_.begin();) {
            --it;
            if (it->owner == who) return it;
        }
        return lru_.end();
    };
    if (max_per_session_ != 0) {
        while (per_session_[owner] >= max_per_session_) erase(oldest_of(owner));
    }
    while (!lru_.empty() && lru_.size() >= max_open_) erase(std::prev(lru_.end()));
    const std::uint64_t id = next_id_++;
    lru_.push_front(listing{id, owner, action, revision, std::move(found)});
    by_id_.emplace(id, lru_.begin());
    ++per_session_[owner];
    return id;
}

listing_cache::listing* listing_cache::find(const position& at, session_id owner) {
    auto it = by_id_.find(at.id);
    if (it == by_id_.end() || it->second->owner != owner || it->second->revision != at.revision) return nullptr;
    lru_.splice(lru_.begin(), lru_, it->second);
    return &*it->second;
}

void listing_cache::close(std::uint64_t id) {
    if (auto it = by_id_.find(id); it != by_id_.end()) erase(it->second);
}

void listing_cache::close_session(session_id owner) {
    if (!per_session_.contains(owner)) return;
    for (auto it = lru_.begin(); it != lru_.end();) {
        auto here = it++;
        if (here->owner == owner) erase(here);
    }
}

void listing_cache::erase(entry it) {
    if (auto n = per_session_.find(it->owner); n != per_session_.end() && --n->second == 0) per_session_.erase(n);
    by_id_.erase(it->id);
    lru_.erase(it);
}

// "<listing>.<revision>.<offset>": opaque to clients (docs/protocol.md).
std::string listing_cache::token(std::uint64_t id, std::uint64_t revision, std::size_t offset) {
    return std::to_string(id) + "." + std::to_string(revision) + "." + std::to_string(offset);
}

std::optional<listing_cache::position> listing_cache::parse(std::string_view token) {
    position p;
    const char* at = token.data();
    const char* end = token.data() + token.size();
    auto number = [&](auto& out, bool last) {
        auto [next, ec] = std::from_chars(at, end, out);
        if (ec != std::errc{} || next == at) return false;
        at = next;
        if (last) return at == end;
        if (at == end || *at != '.') return false;
        ++at;
        return true;
    };
    if (!number(p.id, false) || !number(p.revision, false) || !number(p.offset, true)) return std::nullopt;
    return p;
}

}  // namespace registry::protocol
