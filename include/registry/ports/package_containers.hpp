// The package containers port: how the deployer runs a container package
// (service.type container) on the container manager's nodes, without the
// deploy part depending on the containers part. The embedder implements it
// over its container manager (registryd: daemon/deploy/manager_containers.*),
// so the container policy, the presets and the leases are the manager's;
// the deployer only asks for a container, renews its lease at each health
// check and removes it.
#pragma once

#include <registry/deploy/package_manifest.hpp>
#include <registry/ports/clock.hpp>
#include <registry/result.hpp>
#include <registry/task.hpp>

#include <map>
#include <string>
#include <string_view>

namespace registry::deploy {

struct container_launch {
    package_container spec;                     // from the manifest
    std::map<std::string, std::string> labels;  // the deployer's, beside the manifest's (instance, version)
    seconds ttl{300};                           // the lease, renewed by the deployer
    std::string owner = "anonymous";            // who deployed it: the container is its
};

// A package's container as the manager has it.
struct package_container_status {
    std::string id;       // the engine's id
    std::string node;     // the container manager's node
    std::string address;  // its IP address on the node's network (its endpoints'); empty: none
    bool running = false;
    std::string status;   // "running", "exited (1)", ...
};

class package_containers {
public:
    virtual ~package_containers() = default;

    // Creates and starts a container under a new lease. Errors: the
    // manager's (invalid_request naming the field the policy refuses,
    // not_found for an image or preset, unavailable, limit_exceeded).
    virtual task<result<package_container_status>> run(container_launch launch) = 0;

    // not_found once the container is gone (removed, reaped, its node lost).
    virtual task<result<package_container_status>> inspect(std::string id) = 0;

    // The lease to now + ttl.
    virtual task<result<void>> renew(std::string id, seconds ttl) = 0;

    // Stops it (SIGKILL after `grace`); it stays, under its lease.
    virtual task<result<void>> stop(std::string id, seconds grace) = 0;

    // Stops and removes it, ending its lease; a container already gone is
    // success.
    virtual task<result<void>> remove(std::string id) = 0;
};

}  // namespace registry::deploy
