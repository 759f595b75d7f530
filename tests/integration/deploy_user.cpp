#include "deploy_user.hpp"

#include "harness.hpp"

#include <pwd.h>
#include <unistd.h>

#include <cstdlib>
#include <optional>
#include <vector>

namespace it::deploy {

namespace {

constexpr const char* account_name = "registry-it-run";
constexpr const char* account_comment = "registry integration tests (removed after each run)";

std::optional<passwd> look_up(const std::string& name, std::vector<char>& buf) {
    passwd pw{};
    passwd* found = nullptr;
    if (::getpwnam_r(name.c_str(), &pw, buf.data(), buf.size(), &found) != 0 || !found) return std::nullopt;
    return pw;
}

struct account_owner {
    script_account account;
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
        auto pw = look_up(account_name, buf);
        if (!pw) {
            const std::string cmd = std::string("useradd --system --no-create-home --shell /usr/sbin/nologin --comment '") +
                                    account_comment + "' " + account_name;
            // Another test process may have created it meanwhile: then look it up again.
            const int rc = std::system(cmd.c_str());
            pw = look_up(account_name, buf);
            if (!pw) throw failure("useradd " + std::string(account_name) + " failed (" + std::to_string(rc) + ")");
        }
        remove_at_exit = pw->pw_gecos && std::string(pw->pw_gecos) == account_comment;
        account = {pw->pw_name, pw->pw_uid, pw->pw_gid};
    }

    ~account_owner() {
        if (remove_at_exit) {
            const std::string cmd = std::string("userdel ") + account_name + " >/dev/null 2>&1";
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
