#include <registry/service.hpp>

namespace registry {

std::string_view to_string(service_state s) noexcept {
    switch (s) {
        case service_state::registered: return "registered";
        case service_state::starting: return "starting";
        case service_state::running: return "running";
        case service_state::stopping: return "stopping";
        case service_state::stopped: return "stopped";
        case service_state::failed: return "failed";
    }
    return "registered";
}

std::optional<service_state> parse_service_state(std::string_view s) noexcept {
    for (auto st : {service_state::registered, service_state::starting, service_state::running,
                    service_state::stopping, service_state::stopped, service_state::failed}) {
        if (to_string(st) == s) return st;
    }
    return std::nullopt;
}

bool is_allowed_transition(service_state from, service_state to) noexcept {
    using enum service_state;
    if (from == to) return false;
    switch (from) {
        case registered: return to == starting || to == running || to == stopped || to == failed;
        case starting: return to == running || to == stopping || to == failed;
        case running: return to == stopping || to == failed;
        case stopping: return to == stopped || to == failed;
        case stopped: return to == starting || to == failed;
        case failed: return to == starting || to == stopped;
    }
    return false;
}

std::string_view to_string(execution_kind k) noexcept {
    switch (k) {
        case execution_kind::managed_process: return "managed_process";
        case execution_kind::container: return "container";
        case execution_kind::systemd_unit: return "systemd_unit";
    }
    return "managed_process";
}

std::optional<execution_kind> parse_execution_kind(std::string_view s) noexcept {
    for (auto k : {execution_kind::managed_process, execution_kind::container, execution_kind::systemd_unit}) {
        if (to_string(k) == s) return k;
    }
    return std::nullopt;
}

std::string_view to_string(health_status h) noexcept {
    switch (h) {
        case health_status::healthy: return "healthy";
        case health_status::warning: return "warning";
        case health_status::critical: return "critical";
        case health_status::unknown: return "unknown";
    }
    return "unknown";
}

std::optional<health_status> parse_health_status(std::string_view s) noexcept {
    for (auto h : {health_status::healthy, health_status::warning, health_status::critical, health_status::unknown}) {
        if (to_string(h) == s) return h;
    }
    return std::nullopt;
}

}  // namespace registry
