#include <registry/event.hpp>

namespace registry {

namespace {
constexpr event_type all_event_types[] = {
    event_type::service_registered, event_type::service_deregistered, event_type::service_state_changed,
    event_type::endpoint_updated,   event_type::health_check_result,  event_type::lease_expired,
    event_type::registry_loaded,    event_type::bookmark,             event_type::resync_required,
    event_type::container_state_changed, event_type::container_reap_failed, event_type::container_log,
    event_type::image_pull_progress,     event_type::deployment_started,    event_type::deployment_stage,
    event_type::deployment_succeeded,    event_type::deployment_failed,     event_type::deployment_rolled_back,
};
constexpr managed_state all_managed_states[] = {managed_state::created, managed_state::running, managed_state::exited,
                                                managed_state::removed, managed_state::lost};
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
        case event_type::container_state_changed: return "container_state_changed";
        case event_type::container_reap_failed: return "container_reap_failed";
        case event_type::container_log: return "container_log";
        case event_type::image_pull_progress: return "image_pull_progress";
        case event_type::deployment_started: return "deployment_started";
        case event_type::deployment_stage: return "deployment_stage";
        case event_type::deployment_succeeded: return "deployment_succeeded";
        case event_type::deployment_failed: return "deployment_failed";
        case event_type::deployment_rolled_back: return "deployment_rolled_back";
    }
    return "bookmark";
}

std::optional<event_type> parse_event_type(std::string_view s) noexcept {
    for (auto t : all_event_types) {
        if (to_string(t) == s) return t;
    }
    return std::nullopt;
}

std::string_view to_string(managed_state s) noexcept {
    switch (s) {
        case managed_state::created: return "created";
        case managed_state::running: return "running";
        case managed_state::exited: return "exited";
        case managed_state::removed: return "removed";
        case managed_state::lost: return "lost";
    }
    return "lost";
}

std::optional<managed_state> parse_managed_state(std::string_view s) noexcept {
    for (auto m : all_managed_states) {
        if (to_string(m) == s) return m;
    }
    return std::nullopt;
}

}  // namespace registry
