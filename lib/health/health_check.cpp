// The health checks' small functions: their definition's identity, the
// order of badness, the discovery filter.
#include <registry/service.hpp>

namespace registry {

bool health_check::same_definition(const health_check& o) const {
    health_check a = *this;
    a.result = o.result;
    return a == o;
}

int severity(health_status s) noexcept {
    switch (s) {
        case health_status::healthy: return 0;
        case health_status::warning: return 1;
        case health_status::unknown: return 2;
        case health_status::critical: return 3;
    }
    return 3;
}

bool passes(health_filter f, const std::optional<health_result>& health, bool has_checks) noexcept {
    if (!health) return !has_checks;
    if (health->status == health_status::healthy) return true;
    return f == health_filter::passing_or_warning && health->status == health_status::warning;
}

}  // namespace registry
