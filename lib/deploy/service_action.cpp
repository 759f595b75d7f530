// service_action: stop.sh / start.sh of the installed version, the
// instance's state following.
#include "deploy/command_output.hpp"
#include "deploy/deployer_impl.hpp"

namespace registry::deploy {

task<result<service_ptr>> deployer::impl::control(std::string id, service_command command, progress_sink report,
                                                  const identity& by) {
    auto it = installs.find(id);
    if (it == installs.end()) co_return fail(errc::not_found, "no deployed service '" + id + "'");
    std::shared_ptr<installed> at = it->second;
    if (auto refused = may_operate(by, *at, "run a service action on")) co_return unexpected{std::move(*refused)};
    busy_guard guard;
    if (auto ok = acquire(guard, id); !ok) co_return unexpected{ok.err()};
    progress p;
    p.package = at->manifest.name;
    p.version = at->manifest.version;
    p.target = at->target_name();
    if (at->manifest.is_container()) co_return co_await control_container(at, command, p, report);
    if (auto up = co_await reachable(*at->target); !up) co_return unexpected{up.err()};
    if (command != service_command::start) {
        co_await move_to(id, service_state::stopping, "service_action");
        p.at = stage::starting;
        auto r = co_await reported(*at, "scripts/stop.sh", "stop.sh", p, report);
        if (!r) {
            co_await lost_during(*at, "service_action", r.err());
            co_return unexpected{r.err()};
        }
        at->checks_paused = true;
        if (r->exit_code != 0) {
            co_await move_to(id, service_state::failed, "stop.sh exited " + std::to_string(r->exit_code));
            co_return fail(errc::deployment_failed, "stop.sh exited " + std::to_string(r->exit_code) + ": " + p.output);
        }
        co_await move_to(id, service_state::stopped, "service_action");
    }
    if (command != service_command::stop) {
        co_await move_to(id, service_state::starting, "service_action");
        p.at = stage::starting;
        auto r = co_await reported(*at, "scripts/start.sh", "start.sh", p, report);
        if (!r) {
            co_await lost_during(*at, "service_action", r.err());
            co_return unexpected{r.err()};
        }
        std::string why;
        if (r->exit_code != 0) {
            why = "start.sh exited " + std::to_string(r->exit_code) + ": " + p.output;
        } else {
            p.at = stage::health_gating;
            auto gate = co_await health_gate(*at, report, p);
            if (!gate) co_return unexpected{gate.err()};
            if (gate->exit_code != 0) why = "health check did not pass: " + output_of(*gate);
        }
        if (!why.empty()) {
            co_await move_to(id, service_state::failed, why);
            co_return fail(errc::deployment_failed, why);
        }
        at->checks_paused = false;
        co_await move_to(id, service_state::running, "service_action");
    }
    auto s = reg.find(id);
    if (!s) co_return fail(errc::not_found, "no instance '" + id + "'");
    co_return s;
}

}  // namespace registry::deploy
