// Recovery on restart: the deployments kept in the store, controlled and
// health-checked again.
#include "deploy/deployer_impl.hpp"
#include "codec/deployment_record.hpp"
#include "codec/keyspace.hpp"

#include <registry/ports/store.hpp>

namespace registry::deploy {

task<result<std::size_t>> deployer::impl::open() {
    store_state state;
    try {
        state = co_await load_copy(st, std::string(detail::keyspace::deployments));
    } catch (const store_error& e) {
        co_return fail(errc::unavailable, std::string("store: ") + e.what());
    }
    std::size_t elsewhere = 0;
    for (const auto& [key, value] : state.entries) {
        auto decoded = detail::decode_deployment_record(value);
        if (!decoded) co_return fail(errc::internal, "stored record '" + key + "': " + decoded.err().message);
        const bool container = decoded->manifest.is_container();
        auto target = targets.find(decoded->target);
        if (container ? !containers : target == targets.end()) {
            ++elsewhere;
            continue;
        }
        auto at = std::make_shared<installed>();
        at->manifest = std::move(decoded->manifest);
        // A container package's container is adopted, not started again:
        // the container manager has reloaded its lease, and the health
        // loop renews it (a container that is gone shows as critical).
        at->target = container ? nullptr : target->second;
        at->container_id = std::move(decoded->container_id);
        at->node = std::move(decoded->node);
        at->address = std::move(decoded->address);
        at->instance_id = std::move(decoded->instance_id);
        at->home = std::move(decoded->home);
        at->dir = std::move(decoded->dir);
        at->owner = std::move(decoded->owner);
        // Its lease is the registry's (restored with it); an expired one is
        // registered again by the health loop.
        if (auto s = reg.find(at->instance_id)) {
            at->lease_id = s->lease.id;
            at->checks_paused = s->state == service_state::stopped;
            if (s->state == service_state::stopping || s->state == service_state::starting) {
                // An operation that the restart interrupted: nobody knows how
                // far it got. The health checks tell.
                co_await move_to(at->instance_id, service_state::failed,
                                 "registryd restarted during an operation on it");
            }
        }
        installs[at->instance_id] = at;
        start_health_loop(at);
    }
    co_return elsewhere;
}

}  // namespace registry::deploy
