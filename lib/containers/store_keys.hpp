// The container manager's store keys (codec/keyspace.hpp names the
// prefixes); lease_book reads and writes them.
#pragma once

#include "codec/keyspace.hpp"

#include <cstdint>
#include <string>
#include <string_view>

namespace registry::containers {

inline constexpr std::string_view lease_prefix = detail::keyspace::containers;
inline constexpr std::string_view next_lease_key = detail::keyspace::next_container_lease;
inline constexpr std::string_view lost_prefix = detail::keyspace::lost_containers;
inline constexpr std::string_view store_prefix = detail::keyspace::containers_all;
inline constexpr std::string_view queue_prefix = detail::keyspace::container_queue;

inline std::string lease_key(std::uint64_t lease_id) { return std::string(lease_prefix) + std::to_string(lease_id); }
inline std::string queue_key(std::string_view queue_id) { return std::string(queue_prefix) + std::string(queue_id); }
inline std::string lost_key(std::uint64_t lease_id) { return std::string(lost_prefix) + std::to_string(lease_id); }

}  // namespace registry::containers
