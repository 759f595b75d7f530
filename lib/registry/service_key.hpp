// Where the registry keeps a service instance in the store (the prefix is
// codec/keyspace.hpp's): "svc/" + its instance id.
#pragma once

#include "codec/keyspace.hpp"

#include <string>
#include <string_view>

namespace registry::detail {

inline std::string service_key(std::string_view instance_id) {
    std::string key(keyspace::services);
    key += instance_id;
    return key;
}

}  // namespace registry::detail
