// Runs a shell command on this host and waits for it (blocking; registryd
// calls it through blocking_runner): /bin/sh -c with exactly the given
// environment, stdin from /dev/null, stdout and stderr captured (the last
// 64 KiB of each), in a process group of its own that is SIGKILLed when the
// timeout passes. Once the shell has exited, output still arriving from
// children it left running in the background (a started daemon that kept the
// pipes) is not waited for.
#pragma once

#include <registry/ports/deploy_target.hpp>

namespace registryd {

registry::result<registry::command_result> run_local_command(const registry::target_command& command);

}  // namespace registryd
