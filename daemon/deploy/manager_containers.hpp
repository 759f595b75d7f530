// The deployer's package_containers port over registryd's container manager:
// a container package's container is a managed container like any
// container_create's (its policy, presets, lease, reaper and events), on
// the engine's default network so that its endpoints have an address; that
// address is the engine's inspect's (the manager does not keep one).
#pragma once

#include <registry/container_manager.hpp>
#include <registry/ports/package_containers.hpp>

#include <functional>
#include <string_view>

namespace registryd {

class manager_containers final : public registry::deploy::package_containers {
public:
    // `engine_of`: a node's engine by name (nullptr: unknown), for the address.
    manager_containers(registry::container_manager& manager,
                       std::function<registry::container_engine*(std::string_view)> engine_of);

    registry::task<registry::result<registry::deploy::package_container_status>> run(
        registry::deploy::container_launch launch) override;
    registry::task<registry::result<registry::deploy::package_container_status>> inspect(std::string id) override;
    registry::task<registry::result<void>> renew(std::string id, registry::seconds ttl) override;
    registry::task<registry::result<void>> stop(std::string id, registry::seconds grace) override;
    registry::task<registry::result<void>> remove(std::string id) override;

private:
    registry::seconds within_ttl(registry::seconds ttl) const;

    registry::container_manager& manager_;
    std::function<registry::container_engine*(std::string_view)> engine_of_;
};

}  // namespace registryd
