// The domain rules a registration must satisfy (names, lengths, counts,
// ports). Every problem is reported, each with the path of the field it
// concerns, relative to the registration ("service.endpoints[1].port").
#pragma once

#include <registry/registry.hpp>

#include <string>
#include <vector>

namespace registry::detail {

std::vector<field_error> check_registration(const registration& reg, const registry_options& options);

// [A-Za-z0-9._-], 1-128 characters: service names, instance ids, endpoint names.
bool is_valid_name(std::string_view s) noexcept;

}  // namespace registry::detail
