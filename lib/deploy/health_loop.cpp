// The periodic health checks of a deployed instance.
#include "deploy/command_output.hpp"
#include "deploy/deployer_impl.hpp"

namespace registry::deploy {

void deployer::impl::start_health_loop(const std::shared_ptr<installed>& at) {
    at->health_stop.emplace();
    if (at->manifest.is_container()) {
        health_loops.spawn(container_health_loop(at, at->health_stop->get_token()));  // container_health.cpp
    } else {
        health_loops.spawn(health_loop(at, at->health_stop->get_token()));
    }
}

void deployer::impl::stop_health_loop(installed& at) {
    if (at.health_stop) at.health_stop->request_stop();
}

// Keeps the lease alive and records the health script's verdict at the
// manifest's interval; critical takes a running service to failed, and
// healthy brings a failed one back to running, each after the manifest's
// failures_before_critical / successes_before_passing results in a row.
task<void> deployer::impl::health_loop(std::shared_ptr<installed> at, std::stop_token stop) {
    const milliseconds interval = at->manifest.health ? at->manifest.health->interval : milliseconds(10000);
    std::uint32_t criticals = 0;  // consecutive
    std::uint32_t healthies = 0;
    for (;;) {
        const bool slept = co_await clk.sleep_until(clk.now() + interval, stop);
        if (!slept || stop.stop_requested()) break;
        auto kept = co_await reg.keepalive(at->lease_id);
        if (!kept && kept.err().code == errc::lease_not_found) {
            // Lost (a stalled loop, a store hiccup): the service still runs, register it again.
            auto again = co_await register_instance(*at, std::nullopt);
            (void)again;
        }
        if (!at->manifest.health || at->checks_paused) continue;
        auto r = co_await script(*at, at->manifest.health->script, at->manifest.health->timeout);
        if (stop.stop_requested() || at->checks_paused) continue;
        health_result h;
        h.checked_at = clk.now();
        if (r) {
            h.status = status_of(*r);
            h.output = output_of(*r);
        } else {
            h.status = health_status::unknown;
            h.output = r.err().message;
        }
        criticals = h.status == health_status::critical ? criticals + 1 : 0;
        healthies = h.status == health_status::healthy ? healthies + 1 : 0;
        auto recorded = co_await reg.record_health(at->instance_id, h);
        if (!recorded) continue;
        const service_state state = (*recorded)->state;
        const auto& thresholds = *at->manifest.health;
        if (h.status == health_status::critical && criticals >= thresholds.failures_before_critical &&
            state == service_state::running) {
            auto changed = co_await reg.set_state(at->instance_id, service_state::failed, "health check critical: " + h.output);
            (void)changed;
        } else if (h.status == health_status::healthy && healthies >= thresholds.successes_before_passing &&
                   state == service_state::failed) {
            auto starting = co_await reg.set_state(at->instance_id, service_state::starting, "health check passed");
            if (starting) {
                auto running = co_await reg.set_state(at->instance_id, service_state::running, "health check passed");
                (void)running;
            }
        }
    }
}

}  // namespace registry::deploy
