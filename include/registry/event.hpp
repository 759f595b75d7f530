// Registry events, as delivered to watchers: the registry's changes, each at
// a revision of its line (service_*, lease_expired, deployment_*, and the
// changes companions record through it: container_*), the watch's own items
// (registry_loaded, bookmark, resync_required), and per-request stream items
// that reuse the envelope but are no change (container_log,
// image_pull_progress: no revision of their own).
//
// The registry's own data are fields; a companion's (the container manager's)
// is an event_detail the registry carries without knowing its type
// (container_events.hpp, in the containers part).
#pragma once

#include <registry/error.hpp>
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
    // Containers (container_manager.hpp; their data: container_events.hpp).
    // lease_expired above covers a container's lease too (reason "ttl").
    container_state_changed,  // created, running, exited, removed, lost (data: the container, previous state)
    container_reap_failed,    // the reaper gave up for this sweep (data: the container, reason); retried later
    container_log,            // output of a followed container (per request, not a change: no revision of its own)
    image_pull_progress,      // a progress line of an image_pull (per request, not a change)
    // Deployments (deploy/deployer.hpp): the course of one deploy_package,
    // for every subscriber (data: the deployment).
    deployment_started,      // the package is known and the target chosen
    deployment_stage,        // it entered a stage (checking_requirements, installing, starting, health_gating)
    deployment_succeeded,    // the new version is running and healthy
    deployment_failed,       // it failed (data: the stage, the error); nothing was rolled back
    deployment_rolled_back,  // the new version failed; the previous one was put back (data: the error, healthy)
};

std::string_view to_string(event_type t) noexcept;
std::optional<event_type> parse_event_type(std::string_view s) noexcept;

using service_ptr = std::shared_ptr<const service_instance>;

struct event;

namespace detail {
class json_writer;
}

// A companion's data in an event (container_events.hpp): the registry
// carries it, the protocol's event encoder has it write the members of the
// event's "data" (docs/protocol.md, "Events") after the envelope.
struct event_detail {
    virtual ~event_detail() = default;
    virtual void write_data(detail::json_writer& w, const event& e) const = 0;
};

// One deployment, as its deployment_* events describe it.
struct deployment_change {
    std::string instance_id;
    std::string package;
    std::string target;
    std::optional<std::string> from_version;  // the version running before, if any
    std::string to_version;                   // the version being deployed
    std::string stage;                        // deployment_stage, deployment_failed: where
    std::string message;
    std::optional<bool> restored_healthy;     // deployment_rolled_back: the previous version passed its gate
    // Who asked: the connection and the id of its request (until access
    // control gives clients an identity, that is all there is).
    std::optional<std::uint64_t> connection;
    std::optional<std::string> request_id;
};

struct event {
    event_type type = event_type::bookmark;
    std::uint64_t revision = 0;
    service_ptr service;                         // the instance concerned, if any
    std::optional<service_state> previous_state; // service_state_changed
    std::string reason;                          // deregistered / expired / resync / failed
    std::vector<service_ptr> snapshot;           // registry_loaded only
    std::uint64_t resync_from = 0;               // resync_required: the revision the watcher asked for
    std::uint64_t oldest_revision = 0;           // resync_required: the oldest revision history still has

    std::optional<error> failure;  // deployment_failed, _rolled_back; container_reap_failed; a stream's early end
    std::shared_ptr<const deployment_change> deployment;  // deployment_*
    std::shared_ptr<const event_detail> detail;           // a companion's: container events, lease_expired of a container
    std::shared_ptr<const check_change> check;            // health_check_result of a check (health_check.hpp)

    // The event as the embedder's transport sends it, when the registry has
    // an encoder (registry::set_event_encoder; the protocol's is
    // protocol/event_encoder): made once, on the registry's thread, as the
    // event is published to the first watcher that sends it
    // (watch_options::wire), and shared by every watcher. Null otherwise (no
    // such watcher took it; a snapshot or a resync made for one watcher; a
    // per-request stream item): a sender then encodes its own.
    std::shared_ptr<const std::string> wire;
};

using event_ptr = std::shared_ptr<const event>;

}  // namespace registry
