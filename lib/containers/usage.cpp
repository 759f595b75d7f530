// A managed container's resource usage: a stats sample of its engine, taken
// for container_get and before registryd stops or removes it (once the
// container is gone, so are its figures).
#include "manager_impl.hpp"

#include <registry/cancellation.hpp>

namespace registry {

task<resource_usage> container_manager::impl::sampled(containers::node& n, const container_ptr& c) {
    resource_usage usage = c->usage;
    if (!n.online || c->state != managed_state::running) co_return usage;
    try {
        auto sample = co_await n.cfg.engine->stats(c->container_id, stopping);
        if (sample) usage.add(*sample);  // figures are informational: a failed sample changes nothing
    } catch (const operation_cancelled&) {
    }
    co_return usage;
}

task<container_ptr> container_manager::with_usage(container_ptr c) {
    auto& m = *impl_;
    const containers::node_ptr n = c ? m.pool.find(c->engine) : nullptr;
    if (!n || c->state != managed_state::running) co_return c;
    const resource_usage usage = co_await m.sampled(*n, c);
    if (usage == c->usage) co_return c;
    auto next = std::make_shared<managed_container>(*c);
    next->usage = usage;
    co_return next;
}

}  // namespace registry
