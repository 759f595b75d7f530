// Starting the new version: the old one stopped (if one runs), `current`
// switched to the new one, its start.sh run; the instance's state follows.
#include "deploy/deployment.hpp"
#include "deploy/target_scripts.hpp"

namespace registry::deploy {

task<result<command_result>> deployer::impl::start(deployment& d) {
    deploy_target& t = d.t;
    installed& at = *d.at;
    d.step(stage::starting, d.old ? "stopping " + d.old->dir + ", starting " + at.dir : "starting " + at.dir);
    co_await entered(d.c, d.p);
    const std::string deploying = "deploying version " + at.manifest.version;
    if (d.old) {
        if (d.previous) d.previous->checks_paused = true;
        co_await move_to(at.instance_id, service_state::stopping, deploying);
        auto stopped = co_await reported(*d.old, "scripts/stop.sh", "stop.sh of the previous version", d.p, d.report);
        if (!stopped) co_return d.failed(stopped.err());
        co_await move_to(at.instance_id, service_state::stopped, deploying);
    }
    auto switched = co_await switch_current(t, at.home, at.dir);
    if (!switched) co_return d.failed(switched.err());
    co_await move_to(at.instance_id, service_state::starting, deploying);
    auto started = co_await reported(at, "scripts/start.sh", "start.sh", d.p, d.report, &d.t);
    if (!started) co_return d.failed(started.err());
    co_return started;
}

task<result<void>> deployer::impl::switch_current(deploy_target& t, const std::string& home, const std::string& dir) {
    auto r = co_await must(t, switch_script(home, dir), "switching the current link");
    if (!r) co_return unexpected{r.err()};
    co_return result<void>{};
}

}  // namespace registry::deploy
