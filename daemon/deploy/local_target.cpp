#include "deploy/local_target.hpp"

#include "deploy/local_command.hpp"

#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <filesystem>
#include <system_error>

namespace registryd {

namespace {

// The copied package becomes the script user's: start.sh writes its pid
// file, logs and state into its own directory. lchown: a symlink is changed,
// never what it points at.
registry::result<void> give_to(const script_user& u, const std::filesystem::path& tree) {
    namespace fs = std::filesystem;
    auto give = [&](const fs::path& p) -> registry::result<void> {
        if (::lchown(p.c_str(), u.uid, u.gid) != 0) {
            return registry::fail(registry::errc::deployment_failed, "giving " + p.string() + " to " + u.name +
                                                                         " (deploy.run_as): " + std::strerror(errno));
        }
        return {};
    };
    if (auto r = give(tree); !r) return r;
    std::error_code ec;
    for (fs::recursive_directory_iterator it(tree, fs::directory_options::none, ec), end; !ec && it != end;
         it.increment(ec)) {
        if (auto r = give(it->path()); !r) return r;
    }
    if (ec) return registry::fail(registry::errc::deployment_failed, "listing " + tree.string() + ": " + ec.message());
    return {};
}

}  // namespace

local_target::local_target(blocking_runner& runner, std::string prefix, std::string run_as, std::string name)
    : runner_(runner), name_(std::move(name)), prefix_(std::move(prefix)), run_as_(std::move(run_as)) {}

// Not coroutines: the jobs capture the arguments here, outside any coroutine
// frame (GCC 12 mishandles init-captures of a coroutine's parameters).
registry::task<registry::result<registry::command_result>> local_target::run(registry::target_command command) {
    std::function<registry::result<registry::command_result>()> job =
        [c = std::move(command), run_as = run_as_]() -> registry::result<registry::command_result> {
        // Every command checks the user, so a target without it refuses a
        // deploy at its first step, before anything is written.
        auto user = resolve_script_user(run_as);
        if (!user) return registry::unexpected{user.err()};
        return run_local_command(c, c.package_script ? &*user : nullptr);
    };
    return runner_.run(std::move(job));
}

registry::task<registry::result<void>> local_target::upload(std::filesystem::path from, std::string to) {
    std::function<registry::result<void>()> job = [from = std::move(from), to = std::move(to),
                                                   run_as = run_as_]() -> registry::result<void> {
        namespace fs = std::filesystem;
        auto user = resolve_script_user(run_as);
        if (!user) return registry::unexpected{user.err()};
        std::error_code ec;
        if (fs::exists(fs::symlink_status(to))) {
            return registry::fail(registry::errc::conflict, to + " already exists");
        }
        fs::copy(from, to, fs::copy_options::recursive | fs::copy_options::copy_symlinks, ec);
        if (ec) return registry::fail(registry::errc::deployment_failed, "copying to " + to + ": " + ec.message());
        if (user->switch_to) return give_to(*user, to);
        return {};
    };
    return runner_.run(std::move(job));
}

}  // namespace registryd
