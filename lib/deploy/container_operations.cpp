// service_action and undeploy of a container package. A container manager
// cannot start a container again once stopped, so `stop` removes the
// container (the deployment stays, registered and stopped) and `start`
// runs a new one of the same manifest through the gate.
#include "deploy/deployer_impl.hpp"

namespace registry::deploy {

task<result<service_ptr>> deployer::impl::control_container(std::shared_ptr<installed> at, service_command command,
                                                            progress p, progress_sink& report) {
    const std::string id = at->instance_id;
    p.at = stage::starting;
    if (command != service_command::start && !at->container_id.empty()) {
        co_await move_to(id, service_state::stopping, "service_action");
        p.message = "removing container " + at->container_id;
        report(p);
        at->checks_paused = true;
        auto removed = co_await containers->remove(at->container_id);
        if (!removed) {
            co_await lost_during(*at, "service_action", removed.err());
            co_return unexpected{removed.err()};
        }
        at->container_id.clear();
        at->address.clear();
        auto kept = co_await persist(id, record_of(*at));
        if (!kept) co_return unexpected{kept.err()};
        co_await move_to(id, service_state::stopped, "service_action");
    }
    if (command != service_command::stop) {
        if (!at->container_id.empty()) co_return fail(errc::conflict, "'" + id + "' is running (container " + at->container_id + ")");
        co_await move_to(id, service_state::starting, "service_action");
        p.message = "starting a container";
        report(p);
        auto started = co_await start_container(*at);
        if (!started) {
            co_await move_to(id, service_state::failed, started.err().message);
            co_return unexpected{started.err()};
        }
        auto kept = co_await persist(id, record_of(*at));
        if (!kept) co_return unexpected{kept.err()};
        auto gate = co_await container_gate(*at, report, p);
        if (!gate) co_return unexpected{gate.err()};
        if (!gate->why.empty()) {
            // Kept (and its health checks resumed): a container that comes
            // up late turns the instance running again.
            at->checks_paused = false;
            co_await move_to(id, service_state::failed, gate->why);
            co_return fail(errc::deployment_failed, gate->why);
        }
        // The endpoints follow the new container's address.
        auto registered = co_await register_instance(*at, gate->health);
        if (!registered) co_return unexpected{registered.err()};
        at->checks_paused = false;
    }
    auto s = reg.find(id);
    if (!s) co_return fail(errc::not_found, "no instance '" + id + "'");
    co_return s;
}

task<result<void>> deployer::impl::undeploy_container(std::shared_ptr<installed> at, progress p, progress_sink& report) {
    const std::string id = at->instance_id;
    at->checks_paused = true;
    co_await move_to(id, service_state::stopping, "undeploy");
    if (!at->container_id.empty()) {
        p.at = stage::starting;
        p.message = "removing container " + at->container_id;
        report(p);
        auto removed = co_await containers->remove(at->container_id);
        if (!removed) {
            co_await lost_during(*at, "undeploy", removed.err());
            co_return unexpected{removed.err()};
        }
    }
    stop_health_loop(*at);
    auto gone = co_await reg.deregister(id, "undeployed");
    (void)gone;
    installs.erase(id);
    auto forgotten = co_await persist(id, std::nullopt);
    if (!forgotten) co_return unexpected{forgotten.err()};
    p.at = stage::done;
    p.message = "undeployed";
    report(p);
    co_return result<void>{};
}

}  // namespace registry::deploy
