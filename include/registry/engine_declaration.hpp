// How a registered service declares itself a container engine (a node of
// container_manager, see registered_engines.hpp):
//
//   metadata "kind": "container_engine"   the declaration itself
//   instance_id                           required: the node's name
//   endpoint "engine", protocol "tcp"     the Docker Engine API address
//     (or "http")                         (tcp://address:port)
//   metadata "capacity": "<1-10000>"      optional, default 8
//
// Only TCP: a unix socket names a file on registryd's own host (its Docker
// socket, say), which a client must not be able to point registryd at; local
// engines are configured in the YAML.
#pragma once

#include <registry/result.hpp>
#include <registry/service.hpp>

#include <cstddef>
#include <optional>
#include <string>
#include <string_view>

namespace registry {

namespace engine_declaration_keys {
inline constexpr std::string_view kind = "kind";                  // metadata key
inline constexpr std::string_view container_engine = "container_engine";  // its value
inline constexpr std::string_view endpoint = "engine";            // endpoint name
inline constexpr std::string_view capacity = "capacity";          // metadata key
}  // namespace engine_declaration_keys

inline constexpr std::size_t default_engine_capacity = 8;
inline constexpr std::size_t max_engine_capacity = 10000;

struct engine_declaration {
    std::string name;      // the instance id
    std::string endpoint;  // "tcp://host:port" ("tcp://[v6]:port")
    std::size_t capacity = default_engine_capacity;

    friend bool operator==(const engine_declaration&, const engine_declaration&) = default;
};

// nullopt when the service does not declare itself an engine; invalid_request
// naming the field (relative to register's params, like the registration
// rules) when it does but the declaration is malformed.
result<std::optional<engine_declaration>> read_engine_declaration(const service_instance& s);

}  // namespace registry
