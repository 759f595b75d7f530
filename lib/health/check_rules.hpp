// The domain rules of a registration's health checks (docs/protocol.md,
// "Health checks"), reported like the registration's other fields, with
// paths relative to the registration ("service.checks[0].interval_ms").
#pragma once

#include <registry/error.hpp>
#include <registry/service.hpp>

#include <vector>

namespace registry::detail {

// script_checks: the deployer's registration (its package's health script).
void check_health_checks(const service_instance& s, bool script_checks, std::vector<field_error>& problems);

}  // namespace registry::detail
