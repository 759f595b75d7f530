// The names of the enumerations on the wire and in the store: one table per
// enumeration, indexed by value, behind both its to_string (what the writers
// use) and its parse (what the readers use, with the "must be one of" list).
#pragma once

#include <registry/event.hpp>
#include <registry/service.hpp>

#include <cstddef>
#include <iterator>
#include <optional>
#include <string>
#include <string_view>

namespace registry::detail {

// Specialised per enumeration: `names`, in the order of the enumerators.
template <typename Enum>
struct enum_names;

template <>
struct enum_names<service_state> {
    static constexpr std::string_view names[] = {"registered", "starting", "running", "stopping", "stopped", "failed"};
};

template <>
struct enum_names<execution_kind> {
    static constexpr std::string_view names[] = {"managed_process", "container", "systemd_unit"};
};

template <>
struct enum_names<health_status> {
    static constexpr std::string_view names[] = {"healthy", "warning", "critical", "unknown"};
};

template <>
struct enum_names<check_kind> {
    static constexpr std::string_view names[] = {"http", "tcp", "ttl", "script"};
};

template <>
struct enum_names<health_filter> {
    static constexpr std::string_view names[] = {"passing", "passing_or_warning"};
};

template <>
struct enum_names<event_type> {
    static constexpr std::string_view names[] = {
        "service_registered",      "service_deregistered",  "service_state_changed", "endpoint_updated",
        "health_check_result",     "lease_expired",         "registry_loaded",       "bookmark",
        "resync_required",         "container_state_changed", "container_reap_failed", "container_log",
        "image_pull_progress",     "deployment_started",    "deployment_stage",      "deployment_succeeded",
        "deployment_failed",       "deployment_rolled_back"};
};

// Empty for a value outside the enumeration.
template <typename Enum>
constexpr std::string_view name_of(Enum value) noexcept {
    const auto i = static_cast<std::size_t>(value);
    return i < std::size(enum_names<Enum>::names) ? enum_names<Enum>::names[i] : std::string_view{};
}

template <typename Enum>
constexpr std::optional<Enum> enum_of(std::string_view name) noexcept {
    for (std::size_t i = 0; i < std::size(enum_names<Enum>::names); ++i) {
        if (enum_names<Enum>::names[i] == name) return static_cast<Enum>(i);
    }
    return std::nullopt;
}

// "a, b, c": what a reader's error message lists.
template <typename Enum>
std::string enum_name_list() {
    std::string out;
    for (std::string_view name : enum_names<Enum>::names) {
        if (!out.empty()) out += ", ";
        out += name;
    }
    return out;
}

}  // namespace registry::detail
