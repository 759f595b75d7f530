// The health of a container package: its container running, and the
// manifest's http or tcp check on one of its ports at the container's
// address (a health script would run on the host, not in the container).
// The gate of a new container, and the periodic checks that also renew the
// container's lease and the instance's.
#include "deploy/command_output.hpp"
#include "deploy/deployer_impl.hpp"

#include <algorithm>

namespace registry::deploy {

namespace {

constexpr milliseconds first_gate_retry{100};
// A `running` check (the default, also without a health section) passes
// once the container has run this long (or health.deadline, if shorter):
// an image whose command fails at once has exited by then.
constexpr milliseconds running_settle{3000};

// The port the check probes; none for a `running` check.
const package_port* checked_port(const package_manifest& m) {
    if (m.container->check == container_check::running) return nullptr;
    for (const auto& p : m.ports) {
        if (p.name == m.container->check_port) return &p;
    }
    return nullptr;
}

}  // namespace

// Whether the container runs: healthy if it does, critical when it has
// stopped or is gone, unknown when the manager cannot tell.
task<health_result> deployer::impl::container_running(const installed& at) {
    health_result h;
    auto seen = co_await containers->inspect(at.container_id);
    h.checked_at = clk.now();
    if (!seen) {
        const bool gone = seen.err().code == errc::not_found;
        h.status = gone ? health_status::critical : health_status::unknown;
        h.output = gone ? "container " + at.container_id + " is gone" : seen.err().message;
    } else if (!seen->running) {
        h.status = health_status::critical;
        h.output = "container " + at.container_id + " is " + seen->status;
    } else {
        h.status = health_status::healthy;
        h.output = "container " + at.container_id + " is running";
    }
    co_return h;
}

// One check: the container must run; then the probe, if the manifest has one.
task<health_result> deployer::impl::container_check(const installed& at, std::stop_token stop) {
    health_result h = co_await container_running(at);
    const package_port* port = checked_port(at.manifest);
    if (h.status != health_status::healthy || !port) co_return h;
    if (!prober) {
        h.status = health_status::unknown;
        h.output = "registryd has no health prober for an " + std::string(to_string(at.manifest.container->check)) + " check";
        co_return h;
    }
    probe_request r;
    r.kind = at.manifest.container->check == container_check::http ? check_kind::http : check_kind::tcp;
    r.host = at.address;
    r.port = port->port;
    r.tls = port->protocol == "https";
    r.tls_verify = false;  // the container's own address: no name a certificate could carry
    r.target = at.manifest.container->check_path;
    if (at.manifest.health) r.timeout = at.manifest.health->timeout;
    auto probed = co_await prober->probe(std::move(r), stop);
    h.status = probed.status;
    h.output = std::move(probed.output);
    h.checked_at = clk.now();
    co_return h;
}

// Until the check passes or the deadline is over (retries at 100 ms,
// doubling up to the interval, and a last one at the deadline); a
// container that stops fails the gate at once. A `running` check passes
// once the container has kept running for a moment.
task<result<gate_verdict>> deployer::impl::container_gate(const installed& at, progress_sink& report, progress p) {
    const package_health h = at.manifest.health.value_or(package_health{});
    const package_container& c = *at.manifest.container;
    const bool probing = c.check != container_check::running;
    const milliseconds deadline_after = probing ? h.deadline : std::min(h.deadline, running_settle);
    p.at = stage::health_gating;
    p.exit_code.reset();
    p.output.clear();
    p.message = probing ? "waiting up to " + seconds_text(h.deadline) + " for the " +
                              std::string(to_string(c.check)) + " check of port '" + c.check_port + "' to pass"
                        : "checking that the container keeps running for " + seconds_text(deadline_after);
    report(p);
    const time_point deadline = clk.now() + deadline_after;
    milliseconds backoff = std::min(first_gate_retry, h.interval);
    gate_verdict v;
    for (;;) {
        if (!probing) {
            const bool slept = co_await clk.sleep_until(deadline);
            (void)slept;
        }
        health_result up = co_await container_running(at);
        const bool exited = up.status == health_status::critical;
        health_result r = up;
        if (up.status == health_status::healthy) r = co_await container_check(at);
        p.message = r.status == health_status::healthy ? "health check passed" : "health check did not pass yet";
        p.output = r.output;
        report(p);
        if (r.status == health_status::healthy) {
            v.health = r;
            co_return v;
        }
        if (exited || clk.now() >= deadline) {
            v.why = exited ? r.output : "health check did not pass within " + seconds_text(deadline_after) + ": " + r.output;
            co_return v;
        }
        const bool slept = co_await clk.sleep_until(std::min(clk.now() + backoff, deadline));
        (void)slept;
        backoff = std::min(backoff * 2, h.interval);
    }
}

// At the interval: the container's lease and the instance's renewed, and
// the check's verdict recorded, with the manifest's thresholds (as for a
// process package, health_loop.cpp).
task<void> deployer::impl::container_health_loop(std::shared_ptr<installed> at, std::stop_token stop) {
    const milliseconds interval = at->manifest.health ? at->manifest.health->interval : milliseconds(10000);
    const std::uint32_t failures = at->manifest.health ? at->manifest.health->failures_before_critical : 1;
    const std::uint32_t successes = at->manifest.health ? at->manifest.health->successes_before_passing : 1;
    std::uint32_t criticals = 0;
    std::uint32_t healthies = 0;
    for (;;) {
        const bool slept = co_await clk.sleep_until(clk.now() + interval, stop);
        if (!slept || stop.stop_requested()) break;
        if (!at->container_id.empty()) {
            auto renewed = co_await containers->renew(at->container_id, container_ttl(*at));
            (void)renewed;  // a container that is gone shows in the check below
        }
        if (stop.stop_requested()) break;
        auto kept = co_await reg.keepalive(at->lease_id);
        if (!kept && kept.err().code == errc::lease_not_found) {
            auto again = co_await register_instance(*at, std::nullopt);
            (void)again;
        }
        if (at->checks_paused || at->container_id.empty()) continue;
        health_result h = co_await container_check(*at, stop);
        if (stop.stop_requested() || at->checks_paused) continue;
        criticals = h.status == health_status::critical ? criticals + 1 : 0;
        healthies = h.status == health_status::healthy ? healthies + 1 : 0;
        auto recorded = co_await reg.record_health(at->instance_id, h);
        if (!recorded) continue;
        const service_state state = (*recorded)->state;
        if (h.status == health_status::critical && criticals >= failures && state == service_state::running) {
            auto changed = co_await reg.set_state(at->instance_id, service_state::failed, "health check critical: " + h.output);
            (void)changed;
        } else if (h.status == health_status::healthy && healthies >= successes && state == service_state::failed) {
            auto starting = co_await reg.set_state(at->instance_id, service_state::starting, "health check passed");
            if (starting) {
                auto running = co_await reg.set_state(at->instance_id, service_state::running, "health check passed");
                (void)running;
            }
        }
    }
}

}  // namespace registry::deploy
