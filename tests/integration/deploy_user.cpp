#include "deploy_user.hpp"

#include "harness.hpp"

#include <pwd.h>
#include <signal.h>
#include <unistd.h>

#include <cerrno>
#include <string_view>

#include <cstdlib>
#include <optional>
#include <vector>

namespace it::deploy {

namespace {

constexpr std::string_view account_prefix = "registry-it-";
constexpr const char* account_comment = "registry integration tests (removed after each run)";

// Accounts of ours whose test process is gone (killed before its exit).
void remove_stale_accounts() {
    std::vector<std::string> stale;
    ::setpwent();
    while (const passwd* pw = ::getpwent()) {
        const std::string_view name = pw->pw_name;
        if (!name.starts_with(account_prefix) || !pw->pw_gecos || std::string_view(pw->pw_gecos) != account_comment) {
            continue;
        }
        const std::string pid(name.substr(account_prefix.size()));
        if (pid.empty() || pid.find_first_not_of("0123456789") != std::string::npos) continue;
        if (::kill(static_cast<pid_t>(std::stol(pid)), 0) != 0 && errno == ESRCH) stale.emplace_back(name);
    }
    ::endpwent();
    for (const auto& name : stale) {
        [[maybe_unused]] const int rc = std::system(("userdel " + name + " >/dev/null 2>&1").c_str());
    }
}

std::optional<passwd> look_up(const std::string& name, std::vector<char>& buf) {
    passwd pw{};
    passwd* found = nullptr;
    if (::getpwnam_r(name.c_str(), &pw, buf.data(), buf.size(), &found) != 0 || !found) return std::nullopt;
    return pw;
}

struct account_owner {
    script_account account;
    std::string name;
    bool remove_at_exit = false;

    account_owner() {
        std::vector<char> buf(16384);
        if (::geteuid() != 0) {
            passwd pw{};
            passwd* found = nullptr;
            if (::getpwuid_r(::geteuid(), &pw, buf.data(), buf.size(), &found) != 0 || !found) {
                throw failure("the current user has no passwd entry");
            }
            account = {pw.pw_name, pw.pw_uid, pw.pw_gid};
            return;
        }
        remove_stale_accounts();
        name = std::string(account_prefix) + std::to_string(::getpid());
        auto pw = look_up(name, buf);
        if (!pw) {
            const std::string cmd = std::string("useradd --system --no-create-home --shell /usr/sbin/nologin --comment '") +
                                    account_comment + "' " + name;
            const int rc = std::system(cmd.c_str());
            pw = look_up(name, buf);
            if (!pw) throw failure("useradd " + name + " failed (" + std::to_string(rc) + ")");
        }
        remove_at_exit = pw->pw_gecos && std::string(pw->pw_gecos) == account_comment;
        account = {pw->pw_name, pw->pw_uid, pw->pw_gid};
    }

    ~account_owner() {
        if (remove_at_exit) {
            const std::string cmd = "userdel " + name + " >/dev/null 2>&1";
            [[maybe_unused]] const int rc = std::system(cmd.c_str());
        }
    }
};

}  // namespace

const script_account& script_user() {
    static account_owner owner;  // created on first use, removed at exit
    return owner.account;
}

std::string run_as_yaml(const std::filesystem::path& work) {
    std::filesystem::permissions(work, std::filesystem::perms::owner_all | std::filesystem::perms::group_exec |
                                           std::filesystem::perms::others_exec);
    return "  run_as: " + script_user().name + "\n";
}

}  // namespace it::deploy
