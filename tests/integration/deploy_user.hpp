// The user deployed packages' scripts run as in the deployment tests
// (deploy.run_as). As root (CI): a system account of this test process's own,
// registry-it-PID, created on first use with useradd and removed with userdel
// when the process exits. One per process because ctest runs test processes
// side by side: a shared account removed by the first to exit broke the
// others' deploys. Accounts left by killed runs (their comment says so, and
// their process is gone) are removed on first use. Not root: the current
// user, the only one registryd can run scripts as.
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
