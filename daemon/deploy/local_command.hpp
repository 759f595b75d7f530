// Runs a shell command on this host and waits for it (blocking; registryd
// calls it through blocking_runner): /bin/sh -c with exactly the given
// environment, stdin from /dev/null, stdout and stderr captured (the last
// 64 KiB of each), in a process group of its own that is SIGKILLed when the
// timeout passes. Once the shell has exited, output still arriving from
// children it left running in the background (a started daemon that kept the
// pipes) is not waited for. With `as` (a user to switch to), the shell runs
// as that user: setpriv sets its uid, gid and supplementary groups before
// exec'ing /bin/sh (registryd must be root).
#pragma once

#include "deploy/script_user.hpp"

#include <registry/ports/deploy_target.hpp>

namespace registryd {

registry::result<registry::command_result> run_local_command(const registry::target_command& command,
                                                             const script_user* as = nullptr);

}  // namespace registryd
