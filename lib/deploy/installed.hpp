// One package installed on one target: what the deployer keeps of each
// deployment (and stores, codec/deployment_record.hpp), and the state of its
// health checks.
#pragma once

#include <registry/deploy/package_manifest.hpp>
#include <registry/ports/deploy_target.hpp>

#include <cstdint>
#include <optional>
#include <stop_token>
#include <string>

namespace registry::deploy {

struct installed {
    package_manifest manifest;
    deploy_target* target = nullptr;
    std::string instance_id;
    std::string home;  // {prefix}/{sanitized-name}
    std::string dir;   // {prefix}/{sanitized-name}-{version}
    std::uint64_t lease_id = 0;
    // Health checks pause (the lease is still renewed) while the service is
    // stopped by service_action, or being replaced by a deploy.
    bool checks_paused = false;
    std::optional<std::stop_source> health_stop;
    // The identity that first deployed it (identity.hpp): only it, or an
    // admin, may redeploy, undeploy or control it; it holds the lease.
    std::string owner = "anonymous";
    // A container package (target nullptr: the container manager's nodes):
    // its container, where it runs, and its address there; the id is empty
    // while service_action has it stopped and removed.
    std::string container_id;
    std::string node;
    std::string address;

    std::string target_name() const { return target ? target->name() : "containers"; }
};

}  // namespace registry::deploy
