#include "deploy/script_user.hpp"

#include <pwd.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <vector>

namespace registryd {

namespace {

std::string name_of(uid_t uid) {
    std::vector<char> buf(16384);
    passwd pw{};
    passwd* found = nullptr;
    if (::getpwuid_r(uid, &pw, buf.data(), buf.size(), &found) == 0 && found) return pw.pw_name;
    return "uid " + std::to_string(uid);
}

}  // namespace

bool valid_user_name(const std::string& name) {
    if (name.empty() || name.size() > 32) return false;
    const char first = name.front();
    if (!((first >= 'a' && first <= 'z') || first == '_')) return false;
    return std::all_of(name.begin(), name.end(), [](char c) {
        return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_' || c == '-';
    });
}

registry::result<script_user> resolve_script_user(const std::string& name) {
    std::vector<char> buf(16384);
    passwd pw{};
    passwd* found = nullptr;
    const int rc = ::getpwnam_r(name.c_str(), &pw, buf.data(), buf.size(), &found);
    if (rc != 0 || !found) {
        std::string why = rc != 0 ? std::string(": ") + std::strerror(rc) : std::string();
        return registry::fail(
            registry::errc::requirement_not_met,
            "package scripts run as the user '" + name + "' (deploy.run_as), which does not exist on this host" + why +
                ": create it (useradd --system --no-create-home --shell /usr/sbin/nologin " + name +
                ") or set deploy.run_as to an existing user (run_as: root runs them as root)");
    }
    script_user u{name, pw.pw_uid, pw.pw_gid, false};
    const uid_t self = ::geteuid();
    if (u.uid == self) return u;
    if (self != 0) {
        return registry::fail(registry::errc::requirement_not_met,
                              "package scripts run as the user '" + name + "' (deploy.run_as), but registryd runs as '" +
                                  name_of(self) + "', not root, and cannot switch users: run registryd as root or set "
                                  "deploy.run_as: " + name_of(self));
    }
    u.switch_to = true;
    return u;
}

}  // namespace registryd
