// The health gate: a started version's health script run until it passes
// or the manifest's deadline is over.
#include "deploy/command_output.hpp"
#include "deploy/deployment.hpp"

namespace registry::deploy {

namespace {

constexpr milliseconds first_gate_retry{100};

}  // namespace

// Runs the health script until it passes or the deadline is over; the
// last result either way. A service is usually up a moment after
// start.sh: the first retries come soon (100 ms, doubling up to the
// interval), and the last check runs at the deadline.
task<result<command_result>> deployer::impl::health_gate(const installed& at, progress_sink& report, progress p,
                                                         deploy_target* via) {
    const auto& h = at.manifest.health;
    if (!h) co_return command_result{0, false, {}, {}};
    const time_point deadline = clk.now() + h->deadline;
    milliseconds backoff = std::min(first_gate_retry, h->interval);
    for (;;) {
        auto r = co_await script(at, h->script, h->timeout, via);
        if (!r) co_return r;
        p.exit_code = r->exit_code;
        p.output = output_of(*r);
        p.message = r->exit_code == 0 ? "health check passed" : "health check did not pass yet";
        report(p);
        if (r->exit_code == 0 || clk.now() >= deadline) co_return r;
        const bool slept = co_await clk.sleep_until(std::min(clk.now() + backoff, deadline));
        (void)slept;
        backoff = std::min(backoff * 2, h->interval);
    }
}

// A deploy's gate: why the new version failed (start.sh did, or its health
// did not pass in time), or the health it passed with.
task<result<gate_verdict>> deployer::impl::gate(deployment& d, const command_result& started) {
    const package_manifest& m = d.at->manifest;
    gate_verdict v;
    if (started.exit_code != 0 || started.timed_out) {
        v.why = "start.sh " + (started.timed_out ? std::string("timed out") : "exited " + std::to_string(started.exit_code)) +
                ": " + output_of(started);
        co_return v;
    }
    d.step(stage::health_gating, m.health ? "waiting up to " + seconds_text(m.health->deadline) + " for " +
                                                m.health->script + " to pass"
                                          : "no health script");
    co_await entered(d.c, d.p);
    auto checked = co_await health_gate(*d.at, d.report, d.p, &d.t);
    if (!checked) co_return d.failed(checked.err());
    if (checked->exit_code == 0) {
        v.health = health_result{health_status::healthy, output_of(*checked), clk.now()};
    } else {
        v.why = "health check did not pass within " + seconds_text(m.health->deadline) + ": " + output_of(*checked);
    }
    co_return v;
}

}  // namespace registry::deploy
