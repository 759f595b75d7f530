// Registry events, as delivered to watchers.
#pragma once

#include <registry/container.hpp>
#include <registry/managed_container.hpp>
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
    // Containers (container_manager.hpp). lease_expired above covers a
    // container's lease too (data: the container, reason "ttl").
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

    container_ptr container;                                // container events, lease_expired of a container
    std::optional<managed_state> previous_container_state;  // container_state_changed
    std::optional<output_chunk> output;                     // container_log (absent on the last one)
    std::string engine;                                     // image_pull_progress: the node pulling
    std::string reference;                                  // image_pull_progress: the image
    std::optional<pull_progress> progress;                  // image_pull_progress (absent on the last one)
    bool end = false;                                       // container_log, image_pull_progress: the stream's last
    std::optional<error> failure;                           // container_reap_failed; a last image_pull_progress
    unsigned attempts = 0;                                  // container_reap_failed
    std::shared_ptr<const deployment_change> deployment;    // deployment_* (failure: _failed, _rolled_back)
    std::shared_ptr<const check_change> check;              // health_check_result of a check (health_check.hpp)

    // The protocol layer encodes an event once and shares the bytes with
    // every subscriber; it parks them here. Events are immutable otherwise
    // and only touched on the registry's own thread.
    mutable std::shared_ptr<const std::string> encoded;
};

using event_ptr = std::shared_ptr<const event>;

}  // namespace registry
