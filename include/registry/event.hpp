// Registry events, as delivered to watchers.
#pragma once

#include <registry/service.hpp>

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace registry {

enum class event_type {
    service_registered,     // a new instance (data: the instance)
    service_deregistered,   // an instance is gone (data: the instance as it was, reason)
    service_state_changed,  // state machine moved (data: instance, previous state)
    endpoint_updated,       // re-registration changed the endpoints (data: instance)
    health_check_result,    // a new health result (data: instance)
    lease_expired,          // a lease ran out; followed by service_deregistered
    registry_loaded,        // the snapshot a watch starts with (data: every matching instance)
    bookmark,               // periodic: the current revision, nothing changed
    resync_required,        // the watcher missed events it cannot replay; a snapshot follows
};

std::string_view to_string(event_type t) noexcept;
std::optional<event_type> parse_event_type(std::string_view s) noexcept;

using service_ptr = std::shared_ptr<const service_instance>;

struct event {
    event_type type = event_type::bookmark;
    std::uint64_t revision = 0;
    service_ptr service;                         // the instance concerned, if any
    std::optional<service_state> previous_state; // service_state_changed
    std::string reason;                          // deregistered / expired / resync / failed
    std::vector<service_ptr> snapshot;           // registry_loaded only
    std::uint64_t resync_from = 0;               // resync_required: the revision the watcher asked for
    std::uint64_t oldest_revision = 0;           // resync_required: the oldest revision history still has

    // The protocol layer encodes an event once and shares the bytes with
    // every subscriber; it parks them here. Events are immutable otherwise
    // and only touched on the registry's own thread.
    mutable std::shared_ptr<const std::string> encoded;
};

using event_ptr = std::shared_ptr<const event>;

}  // namespace registry
