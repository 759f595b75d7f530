// The periodic health checks of a deployed instance: its package's health
// script is the instance's check of kind script (script_check_of), run at
// the manifest's interval, with the thresholds of a registration's checks.
#include "deploy/command_output.hpp"
#include "deploy/deployer_impl.hpp"

namespace registry::deploy {

namespace {

constexpr std::size_t max_check_name = 128;

bool is_check_name_char(char c) noexcept {
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '.' || c == '_' ||
           c == '-';
}

const health_check* find_check(const service_instance& s, const std::string& name) {
    for (const auto& c : s.checks) {
        if (c.kind == check_kind::script && c.name == name) return &c;
    }
    return nullptr;
}

}  // namespace

health_check script_check_of(const package_health& h) {
    health_check c;
    const auto slash = h.script.rfind('/');
    c.name = h.script.substr(slash == std::string::npos ? 0 : slash + 1, max_check_name);
    for (char& ch : c.name) {
        if (!is_check_name_char(ch)) ch = '_';
    }
    if (c.name.empty()) c.name = "health";
    c.kind = check_kind::script;
    c.interval = h.interval;
    c.timeout = h.timeout;
    c.initial_delay = h.initial_delay;
    c.successes_before_passing = h.successes_before_passing;
    c.failures_before_critical = h.failures_before_critical;
    return c;
}

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

// Keeps the lease alive at the manifest's interval and runs the health
// script, from initial_delay after the loop starts. The script's check
// changes its status after failures_before_critical failing runs in a row
// (its status: warning, critical, or unknown when it could not run) or
// successes_before_passing passing ones; the registry takes a running
// instance to failed while the check is critical, and back. A failure of
// another making (a target lost mid-operation) ends once the check passes.
task<void> deployer::impl::health_loop(std::shared_ptr<installed> at, std::stop_token stop) {
    const milliseconds interval = at->manifest.health ? at->manifest.health->interval : milliseconds(10000);
    const time_point first_run = clk.now() + (at->manifest.health ? at->manifest.health->initial_delay : milliseconds(0));
    std::uint32_t failures = 0;  // consecutive
    std::uint32_t successes = 0;
    for (;;) {
        const bool slept = co_await clk.sleep_until(clk.now() + interval, stop);
        if (!slept || stop.stop_requested()) break;
        auto kept = co_await reg.keepalive(at->lease_id);
        if (!kept && kept.err().code == errc::lease_not_found) {
            // Lost (a stalled loop, a store hiccup): the service still runs, register it again.
            auto again = co_await register_instance(*at, std::nullopt);
            (void)again;
        }
        if (!at->manifest.health || at->checks_paused || clk.now() < first_run) continue;
        const package_health& h = *at->manifest.health;
        auto r = co_await script(*at, h.script, h.timeout);
        if (stop.stop_requested() || at->checks_paused) continue;
        const health_status status = r ? status_of(*r) : health_status::unknown;
        std::string output = r ? output_of(*r) : r.err().message;
        if (status == health_status::healthy) {
            ++successes;
            failures = 0;
        } else {
            ++failures;
            successes = 0;
        }

        const health_check mine = script_check_of(h);
        auto s = reg.find(at->instance_id);
        if (!s) continue;
        const health_check* current = find_check(*s, mine.name);
        if (!current) {
            // Registered before its health script was a check (a deployment
            // restored from an older registryd): registered again with it.
            auto again = co_await register_instance(*at, std::nullopt);
            (void)again;
            continue;
        }
        const bool passing = status == health_status::healthy;
        const std::uint32_t count = passing ? successes : failures;
        if (count < (passing ? h.successes_before_passing : h.failures_before_critical)) continue;
        if (current->result.status != status) {
            check_report report{mine.name, status, std::move(output), count, std::nullopt};
            auto recorded = co_await reg.record_check(at->instance_id, std::move(report));
            if (!recorded) continue;
            s = *recorded;
        }
        if (passing && s->state == service_state::failed && s->health &&
            s->health->status != health_status::critical) {
            auto starting = co_await reg.set_state(at->instance_id, service_state::starting, "health check passed");
            if (starting) {
                auto running = co_await reg.set_state(at->instance_id, service_state::running, "health check passed");
                (void)running;
            }
        }
    }
}

}  // namespace registry::deploy
