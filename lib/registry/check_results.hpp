// An instance's checks and its health (record_check.cpp): what a
// registration carries over, and the worst of the checks.
#pragma once

#include <registry/service.hpp>

namespace registry::detail {

// A (re-)registration's checks: those defined as before keep their result,
// the others start unknown; with checks, the instance's health is their
// worst (without, a re-registration keeps the health it had).
void carry_check_results(service_instance& next, const service_instance* previous, time_point now);

// The worst of `s`'s checks, as its health.
health_result aggregate_health(const service_instance& s, time_point now);

}  // namespace registry::detail
