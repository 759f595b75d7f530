// Where the container manager keeps its records in the store: the one place
// that names these keys (lease_book reads and writes them).
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

namespace registry::containers {

inline constexpr std::string_view lease_prefix = "ctr/";             // + lease id: the managed container's record
inline constexpr std::string_view next_lease_key = "ctr-next-lease";  // the next lease id to hand out
inline constexpr std::string_view lost_prefix = "ctr-lost/";          // + lease id: a lost lease's deadline (ms)
inline constexpr std::string_view store_prefix = "ctr";               // what the three keys above share

inline std::string lease_key(std::uint64_t lease_id) { return std::string(lease_prefix) + std::to_string(lease_id); }
inline std::string lost_key(std::uint64_t lease_id) { return std::string(lost_prefix) + std::to_string(lease_id); }

}  // namespace registry::containers
