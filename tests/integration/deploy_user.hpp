// The user deployed packages' scripts run as in the deployment tests
// (deploy.run_as). As root (CI): a dedicated system account,
// registry-it-run, created on first use with useradd and removed with
// userdel when the test process exits; an account of that name left by a
// killed run (its comment says so) is taken over and removed the same way,
// one that is not ours is used but never removed. Not root: the current user,
// the only one registryd can run scripts as.
#pragma once

#include <sys/types.h>

#include <filesystem>
#include <string>

namespace it::deploy {

struct script_account {
    std::string name;
    uid_t uid = 0;
    gid_t gid = 0;
};

const script_account& script_user();

// "  run_as: NAME\n" for registryd's deploy section; makes `work` (a temp
// dir, 0700) traversable (0711), so that the user reaches the prefix and the
// packages under it.
std::string run_as_yaml(const std::filesystem::path& work);

}  // namespace it::deploy
