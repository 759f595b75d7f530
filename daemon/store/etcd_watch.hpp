// What etcd's JSON gateway streams for a watch (POST /v3/watch), turned into
// the registry's terms: the stream cut into its JSON objects, and each
// object's events grouped into the transactions (etcd revisions) they came
// from. The network side is etcd_store_port's (follow()).
//
// The gateway writes one object per message, {"result":{...}} or
// {"error":...}, but a read may end inside an object or hold several.
// A watch that starts in the past gets many revisions in one message; a
// revision's events always come in one message (etcd splits a message only
// when asked to fragment, which follow() does not).
#pragma once

#include <registry/ports/store.hpp>

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace simdjson::dom {
class parser;
}

namespace registryd {

// One etcd revision that changed keys under the store's prefix.
struct etcd_txn_seen {
    std::uint64_t revision = 0;  // etcd's revision of the transaction
    // Keys relative to the prefix, in etcd's order; meta/* keys left out.
    std::vector<registry::store_mutation> mutations;
};

// Cuts a byte stream into its top-level JSON objects, at most `max_bytes`
// buffered for an object not complete yet.
class json_object_splitter {
public:
    explicit json_object_splitter(std::size_t max_bytes) : max_(max_bytes) {}

    // Appends a piece of the stream; false (nothing appended) when the object
    // being read would grow beyond max_bytes.
    bool feed(std::string_view piece);
    // The next complete object, valid until the next feed(); nullopt when
    // none is complete yet. Throws registry::store_error on bytes between
    // objects that are not white space.
    std::optional<std::string_view> next();

private:
    std::size_t max_;
    std::string buf_;
    std::size_t consumed_ = 0;  // bytes of buf_ handed out by next()
    std::size_t scanned_ = 0;   // bytes of buf_ looked at
    std::size_t begin_ = 0;     // where the object being scanned begins
    int depth_ = 0;
    bool in_string_ = false;
    bool escaped_ = false;
};

// One message of a watch stream.
struct etcd_watch_message {
    std::optional<std::string> error;  // {"error":...}: the gateway's, the stream ends
    bool created = false;
    bool canceled = false;
    std::uint64_t compact_revision = 0;  // > 0: the start revision was compacted away
    std::string cancel_reason;
    // In revision order; a revision that changed only meta/* keys has no mutations.
    std::vector<etcd_txn_seen> revisions;
};

// Reads one object of the stream; keys outside `prefix` are ignored. Throws
// registry::store_error when it is not a watch message (not JSON, a key or
// value not base64, no mod_revision).
etcd_watch_message parse_watch_message(simdjson::dom::parser& parser, std::string_view object,
                                       std::string_view prefix);

}  // namespace registryd
