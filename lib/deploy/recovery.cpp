// Recovery: the deployments kept in the store, controlled and health-checked
// again, on open() after a restart and by adopt_target for a target that
// appears later.
#include "deploy/deployer_impl.hpp"
#include "codec/deployment_record.hpp"
#include "codec/keyspace.hpp"

#include <registry/ports/store.hpp>

namespace registry::deploy {

task<result<std::vector<detail::deployment_record>>> deployer::impl::stored_deployments() {
    store_state state;
    try {
        state = co_await load_copy(st, std::string(detail::keyspace::deployments));
    } catch (const store_error& e) {
        co_return fail(errc::unavailable, std::string("store: ") + e.what());
    }
    std::vector<detail::deployment_record> records;
    records.reserve(state.entries.size());
    for (const auto& [key, value] : state.entries) {
        auto decoded = detail::decode_deployment_record(value);
        if (!decoded) co_return fail(errc::internal, "stored record '" + key + "': " + decoded.err().message);
        records.push_back(std::move(*decoded));
    }
    co_return records;
}

task<bool> deployer::impl::adopt(detail::deployment_record& r, deploy_target* target) {
    // Never two health loops for one instance (a second adopt_target, or a
    // deploy of it since the target appeared).
    if (installs.contains(r.instance_id)) co_return false;
    auto at = std::make_shared<installed>();
    const bool container = r.manifest.is_container();
    at->manifest = std::move(r.manifest);
    // A container package's container is adopted, not started again:
    // the container manager has reloaded its lease, and the health
    // loop renews it (a container that is gone shows as critical).
    at->target = container ? nullptr : target;
    at->container_id = std::move(r.container_id);
    at->node = std::move(r.node);
    at->address = std::move(r.address);
    at->instance_id = std::move(r.instance_id);
    at->home = std::move(r.home);
    at->dir = std::move(r.dir);
    at->owner = std::move(r.owner);
    // In installs, health-checked, before anything suspends: a concurrent
    // adoption skips it, and an operation on it sees it whole.
    installs[at->instance_id] = at;
    // Its lease is the registry's (restored with it); an expired one is
    // registered again by the health loop.
    auto s = reg.find(at->instance_id);
    if (s) {
        at->lease_id = s->lease.id;
        at->checks_paused = s->state == service_state::stopped;
    }
    start_health_loop(at);
    if (s && (s->state == service_state::stopping || s->state == service_state::starting)) {
        // An operation that the restart interrupted: nobody knows how far
        // it got. The health checks tell. Busy meanwhile: an operation
        // started now would race the move.
        busy_guard g;
        if (acquire(g, at->instance_id)) {
            co_await move_to(at->instance_id, service_state::failed, "registryd restarted during an operation on it");
        }
    }
    co_return true;
}

task<result<std::size_t>> deployer::impl::open() {
    // Before the load: an adopt_target while it runs loads too (adopt()
    // takes each instance once).
    opened = true;
    auto records = co_await stored_deployments();
    if (!records) co_return unexpected{records.err()};
    std::size_t elsewhere = 0;
    for (auto& r : *records) {
        const bool container = r.manifest.is_container();
        auto target = targets.find(r.target);
        if (container ? !containers : target == targets.end()) {
            ++elsewhere;
            continue;
        }
        co_await adopt(r, container ? nullptr : target->second);
    }
    co_return elsewhere;
}

task<result<std::size_t>> deployer::impl::adopt_target(deploy_target& target) {
    auto [known, added] = targets.try_emplace(target.name(), &target);
    // The same object again: a retry after a store that could not be read.
    if (!added && known->second != &target) {
        co_return fail(errc::conflict, "a target named '" + target.name() + "' is already present");
    }
    if (!opened) co_return std::size_t{0};  // open() adopts them
    auto records = co_await stored_deployments();
    if (!records) co_return unexpected{records.err()};
    std::size_t adopted = 0;
    for (auto& r : *records) {
        if (r.manifest.is_container() || r.target != target.name()) continue;
        if (co_await adopt(r, &target)) ++adopted;
    }
    co_return adopted;
}

}  // namespace registry::deploy
