// The deploy-target port: a machine packages are installed on. registryd has
// two: the local host (daemon/local_target) and remote hosts over SSH
// (daemon/ssh_target). The deployer does everything through these two
// operations; directory moves and the `current` link switch are shell
// commands, so both targets behave the same.
//
// Completions are delivered on the embedder's event loop, never on a new
// thread. The target object must outlive every task it returned.
#pragma once

#include <registry/ports/clock.hpp>
#include <registry/result.hpp>
#include <registry/service.hpp>
#include <registry/task.hpp>

#include <filesystem>
#include <map>
#include <string>
#include <utility>
#include <vector>

namespace registry {

struct target_command {
    std::string script;                      // run by /bin/sh -c
    std::map<std::string, std::string> env;  // the whole environment: nothing is inherited
    milliseconds timeout{60000};             // then the command is killed (and reported timed_out)
    // A package's own script (start, stop, health, service actions): the
    // target runs it as its unprivileged script user (registryd:
    // deploy.run_as), not as itself; the deployer's own bookkeeping
    // (claims, moves, links, removals) runs as the target's user.
    bool package_script = false;
};

struct command_result {
    int exit_code = -1;     // -1 when killed or timed out
    bool timed_out = false;
    std::string stdout_text;  // both capped (the tail is kept)
    std::string stderr_text;
};

// One command of a sequence (deploy_target::run_sequence).
struct sequenced_command {
    target_command command;
    // The commands after this one run only if it exited 0 and, when this is
    // set, printed nothing on stdout.
    bool then_only_if_silent = false;
};

class deploy_target {
public:
    virtual ~deploy_target() = default;

    // "local", or the configured name of a remote host.
    virtual const std::string& name() const = 0;
    // Where services installed here run (for their registration).
    virtual location where() const = 0;
    // The address their endpoints are reached at ("127.0.0.1", the host's name).
    virtual std::string endpoint_address() const = 0;
    // The directory packages are installed under ({prefix}/{name}-{version}).
    virtual std::string prefix() const = 0;

    // errc::unavailable when the target cannot be reached; a command that
    // runs and fails is a successful result with its exit code.
    virtual task<result<command_result>> run(target_command command) = 0;

    // Runs the commands in order, each as run() would, and stops after the
    // first that exits non-zero (or prints on stdout where that stops it) or
    // cannot be run: one result per command that ran, the last one perhaps
    // an error. A target where each command costs a round trip (SSH: a
    // channel, and the login shell's start-up on the host) overrides this to
    // run them all as one.
    virtual task<std::vector<result<command_result>>> run_sequence(std::vector<sequenced_command> commands) {
        std::vector<result<command_result>> out;
        for (auto& c : commands) {
            const bool only_if_silent = c.then_only_if_silent;
            auto r = co_await run(std::move(c.command));
            const bool go_on = r && r->exit_code == 0 && !(only_if_silent && !r->stdout_text.empty());
            out.push_back(std::move(r));
            if (!go_on) break;
        }
        co_return out;
    }

    // Copies the local directory tree `from` (regular files, directories and
    // symlinks, with their permission bits) to `to` on the target, which must
    // not exist yet; its parent must.
    virtual task<result<void>> upload(std::filesystem::path from, std::string to) = 0;
};

}  // namespace registry
