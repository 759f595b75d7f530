// The stage before the upload: the package's requirements (depends_on here,
// requires.* on the target), then the claim of its paths on the target.
// The check, the claim and the upload's preparation run ahead as one
// sequence (commands_ahead).
#include "deploy/command_output.hpp"
#include "deploy/deployment.hpp"
#include "deploy/target_scripts.hpp"

#include <algorithm>

namespace registry::deploy {

task<result<void>> deployer::impl::claim_paths(deployment& d) {
    deploy_target& t = d.t;
    const installed& at = *d.at;
    const package_manifest& m = at.manifest;
    d.step(stage::checking_requirements, "checking requirements on '" + t.name() + "'");
    co_await entered(d.c, d.p);
    d.upload_to = t.prefix() + "/.staging-" + install_dir_name(m) + "-" + std::to_string(stagings);
    std::vector<std::string> missing = missing_dependencies(m);
    {
        // The claim only when nothing is missing.
        std::vector<sequenced_command> ahead;
        if (auto check = requirement_script(m)) ahead.push_back({shell_command(std::move(*check)), true});
        if (missing.empty()) {
            ahead.push_back({shell_command(claim_script(t.prefix(), at, d.previous != nullptr)), false});
            ahead.push_back({shell_command(prepare_script(t.prefix(), d.upload_to)), false});
        }
        if (!ahead.empty()) co_await d.t.run_ahead(std::move(ahead));
    }
    auto requirements = co_await check_requirements(t, m, std::move(missing));
    if (!requirements) co_return d.failed(requirements.err());

    d.step(stage::installing, "installing into " + at.dir, d.bytes);
    co_await entered(d.c, d.p);
    auto claimed = co_await claim(t, at, d.previous != nullptr);
    if (!claimed) co_return d.failed(claimed.err());
    co_return result<void>{};
}

std::vector<std::string> deployer::impl::missing_dependencies(const package_manifest& m) const {
    std::vector<std::string> missing;
    for (const auto& dep : m.depends_on) {
        service_filter f;
        f.name = dep;
        auto found = reg.list(f);
        const bool running = std::any_of(found.begin(), found.end(),
                                         [](const service_ptr& s) { return s->state == service_state::running; });
        if (found.empty()) {
            missing.push_back("depends_on: service '" + dep + "' is not registered");
        } else if (!running) {
            missing.push_back("depends_on: service '" + dep + "' is not running");
        }
    }
    return missing;
}

// `missing`: missing_dependencies(m), taken before the check on the target.
task<result<void>> deployer::impl::check_requirements(deploy_target& t, const package_manifest& m,
                                                      std::vector<std::string> missing) {
    if (auto s = requirement_script(m)) {
        auto r = co_await must(t, std::move(*s), "the requirement check");
        if (!r) co_return unexpected{r.err()};
        for (auto& line : lines_of(r->stdout_text)) missing.push_back(std::move(line));
    }
    if (missing.empty()) co_return result<void>{};
    std::string message = "'" + m.name + "' cannot be installed on '" + t.name() + "': ";
    for (std::size_t i = 0; i < missing.size(); ++i) message += (i ? "; " : "") + missing[i];
    co_return fail(errc::requirement_not_met, std::move(message));
}

// Writes the claims of the deployment's paths (target_scripts.hpp):
// conflict when another package holds one.
task<result<void>> deployer::impl::claim(deploy_target& t, const installed& at, bool known) {
    auto r = co_await shell(t, claim_script(t.prefix(), at, known));
    if (!r) co_return unexpected{r.err()};
    const std::string what = "'" + at.manifest.name + "' " + at.manifest.version;
    if (r->exit_code == 4) {
        co_return fail(errc::conflict, what + " cannot be installed on '" + t.name() + "': " + output_of(*r));
    }
    if (r->exit_code != 0) {
        co_return fail(errc::deployment_failed, "claiming the paths of " + what + " failed on '" + t.name() +
                                                    "': " + output_of(*r));
    }
    co_return result<void>{};
}

}  // namespace registry::deploy
