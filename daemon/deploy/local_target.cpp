#include "deploy/local_target.hpp"

#include "deploy/local_command.hpp"

#include <filesystem>
#include <system_error>

namespace registryd {

local_target::local_target(blocking_runner& runner, std::string prefix) : runner_(runner), prefix_(std::move(prefix)) {}

// Not coroutines: the jobs capture the arguments here, outside any coroutine
// frame (GCC 12 mishandles init-captures of a coroutine's parameters).
registry::task<registry::result<registry::command_result>> local_target::run(registry::target_command command) {
    std::function<registry::result<registry::command_result>()> job = [c = std::move(command)] {
        return run_local_command(c);
    };
    return runner_.run(std::move(job));
}

registry::task<registry::result<void>> local_target::upload(std::filesystem::path from, std::string to) {
    std::function<registry::result<void>()> job = [from = std::move(from), to = std::move(to)]() -> registry::result<void> {
        namespace fs = std::filesystem;
        std::error_code ec;
        if (fs::exists(fs::symlink_status(to))) {
            return registry::fail(registry::errc::conflict, to + " already exists");
        }
        fs::copy(from, to, fs::copy_options::recursive | fs::copy_options::copy_symlinks, ec);
        if (ec) return registry::fail(registry::errc::deployment_failed, "copying to " + to + ": " + ec.message());
        return {};
    };
    return runner_.run(std::move(job));
}

}  // namespace registryd
