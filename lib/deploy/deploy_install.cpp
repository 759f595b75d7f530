// The install: the uploaded tree moved into the version's directory on the
// target; and the removal of what a first deploy that failed installed.
#include "deploy/command_output.hpp"
#include "deploy/deployment.hpp"
#include "deploy/target_scripts.hpp"

namespace registry::deploy {

task<result<void>> deployer::impl::install(deployment& d, std::shared_ptr<installed>& fresh) {
    deploy_target& t = d.t;
    const std::shared_ptr<installed>& at = d.at;
    const package_manifest& m = at->manifest;
    const std::string install = install_script(*at, d.upload_to);
    {
        // A first install (nothing current: the install prints nothing) goes
        // on to switch, start and the gate's first health check.
        std::vector<sequenced_command> ahead;
        ahead.push_back({shell_command(install), true});
        ahead.push_back({shell_command(switch_script(at->home, at->dir)), false});
        ahead.push_back({script_command(*at, "scripts/start.sh", opts.script_timeout), false});
        if (m.health) ahead.push_back({script_command(*at, m.health->script, m.health->timeout), false});
        co_await d.t.run_ahead(std::move(ahead));
    }
    auto moved = co_await shell(t, install);
    if (!moved) co_return d.failed(moved.err());
    if (moved->exit_code == 3) {
        co_return d.failed(error{errc::conflict, "version " + m.version + " of '" + m.name +
                                                     "' is already the current one on '" + t.name() + "'"});
    }
    if (moved->exit_code != 0) co_return d.failed(error{errc::deployment_failed, "installing failed: " + output_of(*moved)});
    const std::string previous_dir = trimmed(moved->stdout_text);
    if (!d.previous) fresh = at;  // removed again if this first deploy fails

    // The running version's scripts and environment, if it is ours.
    d.old = d.previous && d.previous->dir == previous_dir ? d.previous : nullptr;
    if (!d.old && !previous_dir.empty()) {
        d.old = std::make_shared<installed>(*at);
        d.old->dir = previous_dir;
    }
    co_return result<void>{};
}

// Stopped if it is current, then removed, so that nothing is left that no
// deployment (and no undeploy) reaches.
task<void> deployer::impl::remove_first_install(const installed& at) {
    auto current = co_await shell(*at.target, "readlink " + quote(at.home + "/current") + " || true");
    if (current && trimmed(current->stdout_text) == at.dir) {
        auto stopped = co_await script(at, "scripts/stop.sh", opts.script_timeout);
        (void)stopped;
    }
    auto removed = co_await shell(*at.target, first_install_removal_script(at.target->prefix(), at.home, at.dir));
    (void)removed;
}

}  // namespace registry::deploy
