// What container_create may ask of an engine (config: containers.policy).
//
// Every container the manager creates for a client is held to it: its image
// must match one of the allowed patterns (when any are given), and each
// resource limit is capped by its ceiling; a limit the request leaves out
// gets the ceiling, so no container runs unlimited under a policy that has
// one. Whatever the policy, a managed container drops every capability and
// runs with no-new-privileges; container_spec has no way to ask for a
// privileged container, the host's network or namespaces, bind mounts or
// added capabilities, so none of those can be requested at all. The lease's
// ceiling is container_manager_options::max_ttl.
#pragma once

#include <registry/identity.hpp>  // glob_match

#include <registry/container.hpp>
#include <registry/error.hpp>

#include <string>
#include <string_view>
#include <vector>

namespace registry {

struct container_policy {
    // Glob patterns over the image reference as the request writes it:
    // '*' matches any run of characters ('/' and ':' included), '?' any one.
    // Empty: any image.
    std::vector<std::string> images;
    // Ceilings; an empty optional sets none.
    container_limits max_limits;
};

// Holds `spec` to the policy: fills absent limits with their ceilings and
// sets the hardening every managed container gets. The fields at fault
// ("image", "limits.memory_bytes", ...), relative to the spec; none when it
// complies.
std::vector<field_error> enforce(const container_policy& policy, container_spec& spec);

}  // namespace registry
