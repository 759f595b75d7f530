#include <registry/event.hpp>

namespace registry {

namespace {
constexpr event_type all_event_types[] = {
    event_type::service_registered, event_type::service_deregistered, event_type::service_state_changed,
    event_type::endpoint_updated,   event_type::health_check_result,  event_type::lease_expired,
    event_type::registry_loaded,    event_type::bookmark,             event_type::resync_required,
};
}  // namespace

std::string_view to_string(event_type t) noexcept {
    switch (t) {
        case event_type::service_registered: return "service_registered";
        case event_type::service_deregistered: return "service_deregistered";
        case event_type::service_state_changed: return "service_state_changed";
        case event_type::endpoint_updated: return "endpoint_updated";
        case event_type::health_check_result: return "health_check_result";
        case event_type::lease_expired: return "lease_expired";
        case event_type::registry_loaded: return "registry_loaded";
        case event_type::bookmark: return "bookmark";
        case event_type::resync_required: return "resync_required";
    }
    return "bookmark";
}

std::optional<event_type> parse_event_type(std::string_view s) noexcept {
    for (auto t : all_event_types) {
        if (to_string(t) == s) return t;
    }
    return std::nullopt;
}

}  // namespace registry
