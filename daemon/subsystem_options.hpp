// What each subsystem registryd wires together is made of, from the
// configuration: the options of the registry, the container manager, the
// engines, the deployer and the uploads (main.cpp wires and runs them).
#pragma once

#include "config/config.hpp"
#include "engine/docker_engine.hpp"
#include "observability/metrics.hpp"

#include <registry/container_manager.hpp>
#include <registry/deploy/deployer.hpp>
#include <registry/deploy/package_uploads.hpp>
#include <registry/registry.hpp>

#include <memory>
#include <vector>

namespace boost::asio {
class io_context;
}

namespace registryd {

registry::registry_options registry_options_from(const config& cfg);

// The same for configured and registered engines.
docker_engine_options engine_options_from(const config& cfg);

// One Docker Engine API client per configured engine (config validated the endpoints).
std::vector<std::unique_ptr<docker_engine>> make_engines(boost::asio::io_context& ioc, const config& cfg);

// Null when no engine is configured, none may register and none may be
// offered by the cluster's other registryd (store.etcd.share_engines): the
// container actions are then unavailable. Reaps and engines going offline and back are
// logged; reaps are counted in `m` (which must outlive the manager).
std::unique_ptr<registry::container_manager> make_container_manager(
    registry::registry& reg, registry::clock& clk, registry::store& st, const config& cfg,
    const std::vector<std::unique_ptr<docker_engine>>& engines, metrics& m);

// Creates deploy.work_dir and clears the staging directories a previous run
// left. Every operation is logged and counted in `m` (which must outlive the
// deployer).
registry::deploy::deployer_options deployer_options_from(const config& cfg, metrics& m);

registry::deploy::upload_options upload_options_from(const config& cfg);

}  // namespace registryd
