// One deploy in progress, as its stages (deployer_impl.hpp) share it.
#pragma once

#include "deploy/commands_ahead.hpp"
#include "deploy/deployer_impl.hpp"
#include "deploy/installed.hpp"

#include <cstdint>
#include <filesystem>
#include <memory>
#include <optional>
#include <string>

namespace registry::deploy {

struct deployment {
    deployment(deploy_target& target, progress_sink& sink, course& of) : t(target), report(sink), c(of) {}
    deployment(const deployment&) = delete;
    deployment& operator=(const deployment&) = delete;

    // These three end with the deploy, in this order: the running version's
    // checks resume as they were (a failed deploy must not leave its health
    // unwatched), the instance is no longer busy, the unpacked package is
    // discarded.
    struct staging_guard {
        package_unpacker* unpacker = nullptr;  // set once unpacked
        std::filesystem::path path;
        ~staging_guard() {
            if (unpacker) unpacker->discard(path);
        }
    } staged;
    deployer::impl::busy_guard busy;
    struct checks_restore {
        std::shared_ptr<installed> at;
        bool paused = false;
        ~checks_restore() {
            if (at) at->checks_paused = paused;
        }
    } restore_checks;

    // Each stage runs its commands one at a time through `t`; where the next
    // few commands are known, they run ahead as one sequence.
    commands_ahead t;
    progress_sink& report;
    course& c;
    progress p;
    std::shared_ptr<installed> at;        // the version being deployed
    std::shared_ptr<installed> previous;  // the deployment it replaces, if any
    std::shared_ptr<installed> old;       // the version running before it (ours, or an earlier registryd's)
    std::uint64_t bytes = 0;              // the unpacked package's size
    std::string upload_to;                // its staging directory on the target

    // Reports the failure; the deploy's error.
    unexpected failed(const error& e) const {
        progress f = p;
        f.at = stage::failed;
        f.message = e.message;
        report(f);
        return unexpected{e};
    }

    void step(stage s, std::string message, std::optional<std::uint64_t> of_bytes = std::nullopt) {
        p.at = s;
        p.message = std::move(message);
        p.exit_code.reset();
        p.output.clear();
        p.bytes = of_bytes;
        report(p);
    }
};

}  // namespace registry::deploy
