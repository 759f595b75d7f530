#include "deploy/manager_containers.hpp"

#include <algorithm>
#include <string>
#include <utility>

namespace registryd {

using registry::deploy::package_container_status;

namespace {

package_container_status status_of(const registry::managed_container& c) {
    package_container_status s;
    s.id = c.container_id;
    s.node = c.engine;
    s.running = c.state == registry::managed_state::running;
    s.status = std::string(registry::to_string(c.state));
    if (c.exit_code) s.status += " (" + std::to_string(*c.exit_code) + ")";
    return s;
}

}  // namespace

// The deployer's lease, within what the manager allows (containers.min/max_ttl_seconds).
registry::seconds manager_containers::within_ttl(registry::seconds ttl) const {
    return std::clamp(ttl, manager_.options().min_ttl, manager_.options().max_ttl);
}

manager_containers::manager_containers(registry::container_manager& manager,
                                       std::function<registry::container_engine*(std::string_view)> engine_of)
    : manager_(manager), engine_of_(std::move(engine_of)) {}

registry::task<registry::result<package_container_status>> manager_containers::run(registry::deploy::container_launch launch) {
    registry::container_request r;
    const auto& c = launch.spec;
    r.spec.image = c.image;
    r.spec.command = c.command;
    r.spec.env = c.env;
    r.spec.labels = c.labels;
    for (auto& [k, v] : launch.labels) r.spec.labels[k] = v;
    r.spec.limits.memory_bytes = c.memory_bytes;
    r.spec.limits.cpus = c.cpus;
    r.spec.limits.pids = c.pids;
    r.spec.network = registry::container_network::default_;  // its endpoints need an address
    r.preset = c.preset;
    r.ttl = within_ttl(launch.ttl);
    r.owner = launch.owner;
    auto created = co_await manager_.create(std::move(r));
    if (!created) co_return registry::unexpected{created.err()};
    package_container_status s = status_of(**created);
    if (auto* engine = engine_of_(s.node)) {
        auto info = co_await engine->inspect(s.id);
        if (info) {
            s.address = info->ip_address;
            s.running = info->state.running;
        }
    }
    co_return s;
}

registry::task<registry::result<package_container_status>> manager_containers::inspect(std::string id) {
    auto c = manager_.find(id);
    if (!c || c->state == registry::managed_state::removed || c->state == registry::managed_state::lost) {
        co_return registry::fail(registry::errc::not_found, "container " + id + " is gone");
    }
    co_return status_of(*c);
}

registry::task<registry::result<void>> manager_containers::renew(std::string id, registry::seconds ttl) {
    auto r = co_await manager_.extend(id, within_ttl(ttl));
    if (!r) co_return registry::unexpected{r.err()};
    co_return registry::result<void>{};
}

registry::task<registry::result<void>> manager_containers::stop(std::string id, registry::seconds grace) {
    auto r = co_await manager_.stop(id, grace);
    if (!r) co_return registry::unexpected{r.err()};
    co_return registry::result<void>{};
}

registry::task<registry::result<void>> manager_containers::remove(std::string id) {
    if (!manager_.find(id)) co_return registry::result<void>{};
    auto r = co_await manager_.remove(id, true);
    if (!r && r.err().code != registry::errc::not_found) co_return registry::unexpected{r.err()};
    co_return registry::result<void>{};
}

}  // namespace registryd
