// undeploy: stop, deregister, forget, remove every installed version.
#include "deploy/command_output.hpp"
#include "deploy/deployer_impl.hpp"
#include "deploy/target_scripts.hpp"

namespace registry::deploy {

task<result<void>> deployer::impl::undeploy(std::string id, progress_sink report, bool force, const identity& by) {
    auto it = installs.find(id);
    if (it == installs.end()) co_return fail(errc::not_found, "no deployed service '" + id + "'");
    std::shared_ptr<installed> at = it->second;
    if (auto refused = may_operate(by, *at, "undeploy")) co_return unexpected{std::move(*refused)};
    busy_guard guard;
    if (auto ok = acquire(guard, id); !ok) co_return unexpected{ok.err()};
    if (at->manifest.is_container()) {
        progress p;
        p.package = at->manifest.name;
        p.version = at->manifest.version;
        p.target = at->target_name();
        co_return co_await undeploy_container(at, p, report);
    }
    if (auto up = co_await reachable(*at->target); !up) co_return unexpected{up.err()};
    // The health loop (and the lease it renews) ends only once the service
    // is really stopped.
    at->checks_paused = true;
    progress p;
    p.package = at->manifest.name;
    p.version = at->manifest.version;
    p.target = at->target->name();
    co_await move_to(id, service_state::stopping, "undeploy");
    p.at = stage::starting;
    auto stopped = co_await reported(*at, "scripts/stop.sh", "stop.sh", p, report);
    if (!stopped) {
        co_await lost_during(*at, "undeploy", stopped.err());
        co_return unexpected{stopped.err()};
    }
    if (stopped->exit_code != 0 || stopped->timed_out) {
        auto handled = co_await stop_failed(at, *stopped, force, p, report);
        if (!handled) co_return unexpected{handled.err()};
    }
    stop_health_loop(*at);
    auto gone = co_await reg.deregister(id, "undeployed");
    (void)gone;  // an expired lease has removed it already
    installs.erase(id);
    auto forgotten = co_await persist(id, std::nullopt);
    if (!forgotten) co_return unexpected{forgotten.err()};
    const std::string prefix = at->target->prefix();
    auto removed = co_await must(*at->target, versions_removal_script(prefix, at->manifest.name, at->home),
                                 "removing the installed versions");
    if (!removed) co_return unexpected{removed.err()};
    p.at = stage::done;
    p.message = "undeployed";
    p.exit_code.reset();
    p.output.clear();
    report(p);
    co_return result<void>{};
}

// undeploy after a stop.sh that failed: the service may still run, so
// without `force` nothing is removed, and it stays registered (failed) and
// health-checked; with `force` its processes are killed.
task<result<void>> deployer::impl::stop_failed(std::shared_ptr<installed> at, const command_result& stop, bool force,
                                               progress& p, progress_sink& report) {
    const std::string how = stop.timed_out ? std::string("timed out") : "exited " + std::to_string(stop.exit_code);
    const std::string why = "stop.sh " + how + ": " + output_of(stop);
    if (force) {
        auto killed = co_await must(*at->target, kill_script(at->dir), "killing the processes of " + at->dir);
        if (killed) {
            p.message = why + "; force: killing the processes of " + at->dir;
            p.exit_code = killed->exit_code;
            p.output = output_of(*killed);
            report(p);
            co_return result<void>{};
        }
        co_await move_to(at->instance_id, service_state::failed, why);
        at->checks_paused = false;
        co_return unexpected{killed.err()};
    }
    co_await move_to(at->instance_id, service_state::failed, why);
    at->checks_paused = false;
    co_return fail(errc::deployment_failed, why + "; nothing was removed and '" + at->instance_id +
                                                "' stays registered (undeploy with force kills its processes)");
}

task<result<void>> deployer::impl::logged_undeploy(std::string id, progress_sink report, bool force,
                                                   const identity& by) {
    course c;
    c.change.instance_id = id;
    if (auto it = installs.find(id); it != installs.end()) {
        c.change.package = it->second->manifest.name;
        c.change.to_version = it->second->manifest.version;
        c.change.target = it->second->target_name();
    }
    auto r = co_await undeploy(std::move(id), std::move(report), force, by);
    log_outcome(c, "undeploy", r, "undeployed");
    co_return r;
}

}  // namespace registry::deploy
