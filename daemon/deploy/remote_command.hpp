// The command lines registryd sends to a remote host's exec channel, and the
// output of a sequence read back. sshd hands each line to the user's login
// shell; what runs there is a clean `env -i ... timeout ... /bin/sh -c`.
#pragma once

#include <registry/ports/deploy_target.hpp>

#include <cstddef>
#include <string>
#include <string_view>
#include <vector>

namespace registryd {

// What is kept (the tail) of a command's stdout and of its stderr.
inline constexpr std::size_t remote_output_cap = 64 * 1024;

// A single-quoted sh word.
std::string sh_quote(std::string_view s);

// How the host's package scripts run as its script user (run_as): the
// SSH user itself, or, when run_as is another user, through `runuser -u`
// (the SSH user is root) or `sudo -n -u` (it is not: sudo must allow it
// without a password).
struct remote_script_user {
    std::string host;      // the target's name, for messages
    std::string run_as;
    std::string ssh_user;
    bool switches() const { return run_as != ssh_user; }
};

// env -i NAME=VALUE ... timeout -k 2 SECONDS /bin/sh -c SCRIPT: a clean
// environment, and the command killed on the remote host after its timeout
// (exit 124/137). A package script (target_command::package_script) runs as
// `as.run_as`; when that user does not exist on the host it exits 126 saying
// how to create it.
std::string remote_command(const registry::target_command& c, const remote_script_user& as);

// Gives the uploaded tree `path` to the script user (chown -R, through sudo -n
// when the SSH user is not root), after the same check of the user (exit
// 126); empty when the SSH user is the script user.
std::string give_to_script_user(const remote_script_user& as, const std::string& path);

// One sh script that runs the commands as remote_command() would, each with
// its output in a file, and prints for each one that ran "EXIT OUT ERR\n"
// (its exit code, the byte counts of its stdout and stderr, each capped at
// remote_output_cap) and then both; it stops where
// deploy_target::run_sequence stops.
std::string sequence_script(const std::vector<registry::sequenced_command>& commands, const remote_script_user& as);

// The results sequence_script() printed (`ran`: its exec); a result that
// cannot be read, or a sequence that could not run, ends them with an error.
std::vector<registry::result<registry::command_result>> parse_sequence(
    const std::string& host, const registry::result<registry::command_result>& ran);

}  // namespace registryd
