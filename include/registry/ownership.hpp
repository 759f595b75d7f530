// The checks behind ownership and service scopes (identity.hpp), as the
// errors every domain object answers with: `forbidden`, naming the caller and
// the kind of thing it may not touch, never the thing's secrets (a lease id)
// nor who else owns it.
#pragma once

#include <registry/error.hpp>
#include <registry/identity.hpp>

#include <optional>
#include <string_view>

namespace registry {

// The identity that owns what was created before owners were recorded (a
// stored record without one), and everything while access control is off.
inline constexpr std::string_view anonymous_owner = "anonymous";

// `by` may `action` the `kind` `name` ("container", "abc123") owned by
// `owner`: nullopt, or forbidden "'bob' may not stop container 'abc123': it
// belongs to another identity".
std::optional<error> check_owner(const identity& by, std::string_view owner, std::string_view action,
                                 std::string_view kind, std::string_view name);

// `by` may `action` service `service`: nullopt, or forbidden "'ci' may not
// register service 'payments': it is outside the services of 'ci'".
std::optional<error> check_service_scope(const identity& by, std::string_view service, std::string_view action);

}  // namespace registry
