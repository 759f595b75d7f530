// Rollback after a failed gate: the new version stopped, the previous one
// put back and started (and gated, so the answer says whether it is back);
// a first version has nothing to go back to and is unlinked.
#include "deploy/command_output.hpp"
#include "deploy/deployment.hpp"

namespace registry::deploy {

task<result<void>> deployer::impl::roll_back(deployment& d, const std::string& why) {
    deploy_target& t = d.t;
    installed& at = *d.at;
    co_await move_to(at.instance_id, service_state::failed, why);
    auto stopped = co_await script(at, "scripts/stop.sh", opts.script_timeout);
    (void)stopped;
    if (!d.old) {
        auto unlinked = co_await shell(t, "rm -f " + quote(at.home + "/current"));
        (void)unlinked;
        co_return d.failed(error{errc::deployment_failed, why + "; no previous version to roll back to"});
    }
    const installed& old = *d.old;
    auto back = co_await switch_current(t, at.home, old.dir);
    if (!back) co_return d.failed(back.err());
    auto restarted = co_await script(old, "scripts/start.sh", opts.script_timeout);
    if (!restarted) co_return d.failed(restarted.err());
    progress r = d.p;
    r.at = stage::rolled_back;
    auto restored = co_await health_gate(old, d.report, r);
    d.restore_checks.paused = false;  // it was started again
    const bool back_healthy = restarted->exit_code == 0 && restored && restored->exit_code == 0;
    error e{errc::deployment_failed, why + "; rolled back to " + old.dir + (back_healthy ? "" : " (which is not healthy either)")};
    d.c.rolled_back = true;
    d.c.change.restored_healthy = back_healthy;
    if (back_healthy) {
        const std::string back_to = "rolled back to " + old.dir;
        co_await move_to(at.instance_id, service_state::starting, back_to);
        co_await move_to(at.instance_id, service_state::running, back_to);
    }
    r.message = e.message;
    r.exit_code = restarted->exit_code;
    r.output = output_of(*restarted);
    d.report(r);
    co_return unexpected{e};
}

}  // namespace registry::deploy
