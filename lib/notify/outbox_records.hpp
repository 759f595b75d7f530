// The notifier's records in the store (notifier.cpp), under notify/:
//   notify/outbox/<webhook>/<revision:20>.<n:4>  "<event type>\n<body>"
//   notify/dead/<webhook>/<revision:20>.<n:4>    "<event type>\n<reason>\n<attempts>\n<failed_at ms>\n<last error>\n<body>"
//   notify/hooks/<webhook>                        an identity's webhook (encode_hook)
// Zero-padded so that the store's key order is revision order. A record's
// id, as headers and actions show it, is "<revision>.<n>".
#pragma once

#include <registry/identity.hpp>
#include <registry/notifier.hpp>

#include <compare>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <utility>

namespace registry::notify {

inline constexpr std::string_view prefix = "notify/";

// An event's place: its revision, and which of that revision's events.
struct entry_key {
    std::uint64_t revision = 0;
    std::uint32_t n = 0;
    auto operator<=>(const entry_key&) const = default;
};

std::string to_id(entry_key k);
std::optional<entry_key> parse_id(std::string_view id);

std::string outbox_key(std::string_view webhook, entry_key k);
std::string dead_key(std::string_view webhook, entry_key k);

struct parsed_key {
    std::string webhook;
    bool dead = false;
    entry_key key;
};
std::optional<parsed_key> parse_key(std::string_view key);

struct outbox_record {
    std::string event;
    std::shared_ptr<const std::string> body;
};
std::string encode_outbox(std::string_view event, std::string_view body);
std::optional<outbox_record> decode_outbox(std::string_view value);

// An identity's webhook: its owner's identity as it was when it was made
// (its scope), one line each, lists tab-separated, the secret last.
std::string hook_key(std::string_view webhook);
inline constexpr std::string_view hooks_prefix = "notify/hooks/";
std::string encode_hook(const webhook& w, const identity& owner);
std::optional<std::pair<webhook, identity>> decode_hook(std::string_view name, std::string_view value);

// A dead letter's value (webhook, id and revision are its key's).
std::string encode_dead(const dead_letter& d);
std::optional<dead_letter> decode_dead(std::string_view value);

}  // namespace registry::notify
