// Where the registry keeps a service instance in the store (the prefix is
// codec/keyspace.hpp's): "svc/" + its instance id; and a revision's events
// (registry_options::event_log): "log/" + the revision in 20 digits.
#pragma once

#include "codec/keyspace.hpp"

#include <charconv>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace registry::detail {

inline std::string service_key(std::string_view instance_id) {
    std::string key(keyspace::services);
    key += instance_id;
    return key;
}

inline std::string event_log_key(std::uint64_t revision) {
    std::string key(keyspace::event_log);
    char digits[20];
    auto end = std::to_chars(digits, digits + sizeof digits, revision).ptr;
    key.append(sizeof digits - static_cast<std::size_t>(end - digits), '0').append(digits, end);
    return key;
}

// The revision an event log key names; nullopt for any other key.
inline std::optional<std::uint64_t> event_log_revision(std::string_view key) {
    if (!key.starts_with(keyspace::event_log)) return std::nullopt;
    key.remove_prefix(keyspace::event_log.size());
    std::uint64_t r = 0;
    auto [p, ec] = std::from_chars(key.data(), key.data() + key.size(), r);
    if (ec != std::errc{} || p != key.data() + key.size() || key.size() != 20) return std::nullopt;
    return r;
}

}  // namespace registry::detail
