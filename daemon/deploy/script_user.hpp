// The user a local target runs package scripts as (deploy.run_as): an
// unprivileged account by default, root only when the configuration says
// `run_as: root`. registryd running as root switches to it in the script's
// process (setpriv, before /bin/sh); registryd running as another user can
// only run scripts as itself, and refuses any other run_as.
#pragma once

#include <registry/result.hpp>

#include <sys/types.h>

#include <string>

namespace registryd {

// The dedicated account registryd expects when deploy.run_as is not set.
inline constexpr const char* default_script_user = "registry-run";

struct script_user {
    std::string name;
    uid_t uid = 0;
    gid_t gid = 0;
    bool switch_to = false;  // registryd is another user (root): drop to this one for each script
};

// Looks the user up now (a user created after start counts at once).
// requirement_not_met, saying how to fix it: no such user on this host, or
// registryd is not root and `name` is not its own user.
registry::result<script_user> resolve_script_user(const std::string& name);

// A user name as deploy.run_as accepts it: [a-z_][a-z0-9_-]*, at most 32.
bool valid_user_name(const std::string& name);

}  // namespace registryd
