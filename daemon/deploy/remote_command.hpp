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

// env -i NAME=VALUE ... timeout -k 2 SECONDS /bin/sh -c SCRIPT: a clean
// environment, and the command killed on the remote host after its timeout
// (exit 124/137).
std::string remote_command(const registry::target_command& c);

// One sh script that runs the commands as remote_command() would, each with
// its output in a file, and prints for each one that ran "EXIT OUT ERR\n"
// (its exit code, the byte counts of its stdout and stderr, each capped at
// remote_output_cap) and then both; it stops where
// deploy_target::run_sequence stops.
std::string sequence_script(const std::vector<registry::sequenced_command>& commands);

// The results sequence_script() printed (`ran`: its exec); a result that
// cannot be read, or a sequence that could not run, ends them with an error.
std::vector<registry::result<registry::command_result>> parse_sequence(
    const std::string& host, const registry::result<registry::command_result>& ran);

}  // namespace registryd
