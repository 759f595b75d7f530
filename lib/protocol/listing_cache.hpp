// The listings that list_services, list_endpoints and get_service (by name)
// hand out in pages (docs/protocol.md, "Limits"). A listing keeps what its
// first page found — pointers to the immutable service instances of that
// revision — so every page of one listing is of one revision, whatever
// changed since.
//
// Bounded: at most `max_open` listings in all and `max_per_session` per
// connection; a new one evicts the least recently used listing of its
// connection when that connection is at its bound, else the least recently
// used of all. A listing also ends with its last page and with its
// connection. A continue token whose listing is gone gets `continue_expired`.
#pragma once

#include <registry/registry.hpp>

#include <cstddef>
#include <cstdint>
#include <list>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>
#include <variant>
#include <vector>

namespace registry::protocol {

class listing_cache {
public:
    using items = std::variant<std::vector<service_ptr>, std::vector<endpoint_view>>;

    struct listing {
        std::uint64_t id = 0;
        session_id owner = 0;
        std::string_view action;  // the request's action name (a static string)
        std::uint64_t revision = 0;
        items found;
    };

    // What a continue token names: a listing and the offset of a page in it.
    struct position {
        std::uint64_t id = 0;
        std::uint64_t revision = 0;
        std::size_t offset = 0;
    };

    listing_cache(std::size_t max_open, std::size_t max_per_session) noexcept
        : max_open_(max_open), max_per_session_(max_per_session) {}

    // Keeps a listing whose first page has been answered; returns its id.
    std::uint64_t open(session_id owner, std::string_view action, std::uint64_t revision, items found);

    // The listing a token of `owner` names, marked as just used; null when
    // it is gone (or belongs to another connection).
    listing* find(const position& at, session_id owner);

    void close(std::uint64_t id);            // after its last page
    void close_session(session_id owner);    // the connection is gone

    static std::string token(std::uint64_t id, std::uint64_t revision, std::size_t offset);
    static std::optional<position> parse(std::string_view token);

    std::size_t size() const noexcept { return lru_.size(); }

private:
    using entry = std::list<listing>::iterator;
    void erase(entry it);

    std::size_t max_open_;
    std::size_t max_per_session_;
    std::uint64_t next_id_ = 1;
    std::list<listing> lru_;  // most recently used first
    std::unordered_map<std::uint64_t, entry> by_id_;
    std::unordered_map<session_id, std::size_t> per_session_;
};

}  // namespace registry::protocol
