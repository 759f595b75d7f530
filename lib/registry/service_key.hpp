// Where the registry keeps a service instance in the store: "svc/" + its
// instance id. Companions sharing the store (registry::record) use other
// prefixes.
#pragma once

#include <string>
#include <string_view>

namespace registry::detail {

inline constexpr std::string_view service_key_prefix = "svc/";

inline std::string service_key(std::string_view instance_id) {
    std::string key(service_key_prefix);
    key += instance_id;
    return key;
}

}  // namespace registry::detail
