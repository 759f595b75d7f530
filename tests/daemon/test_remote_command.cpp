// The one-exec-channel form of a command sequence (ssh_target::run_sequence):
// the script runs here under /bin/sh as sshd's shell would run it, and its
// output is read back into one result per command that ran.
#include "deploy/remote_command.hpp"

#include <doctest/doctest.h>

#include <pwd.h>
#include <unistd.h>

#include <cstdio>
#include <string>
#include <vector>

namespace {

using registry::sequenced_command;
using registry::target_command;

target_command command(std::string script) { return {std::move(script), {{"PATH", "/usr/bin:/bin"}}, registry::milliseconds(10000)}; }

// Runs the sequence's script locally: its stdout and exit code, as the exec channel would give them.
registry::result<registry::command_result> run_locally_as(const std::vector<sequenced_command>& commands,
                                                          const registryd::remote_script_user& as) {
    const std::string line = "/bin/sh -c " + registryd::sh_quote(registryd::sequence_script(commands, as));
    FILE* f = ::popen(line.c_str(), "r");
    REQUIRE(f != nullptr);
    registry::command_result r;
    char buf[4096];
    for (std::size_t n; (n = std::fread(buf, 1, sizeof buf, f)) > 0;) r.stdout_text.append(buf, n);
    const int status = ::pclose(f);
    r.exit_code = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
    return r;
}

registry::result<registry::command_result> run_locally(const std::vector<sequenced_command>& commands) {
    return run_locally_as(commands, {"box", "me", "me"});
}

}  // namespace

TEST_CASE("remote sequence: each command's exit code and output, stopping after the first that fails") {
    std::vector<sequenced_command> commands{
        {command("echo one; echo err-one >&2"), false},
        {command("printf 'no newline'; exit 3"), false},
        {command("echo never"), false},
    };
    auto results = registryd::parse_sequence("box", run_locally(commands));
    REQUIRE(results.size() == 2);
    REQUIRE(results[0]);
    CHECK(results[0]->exit_code == 0);
    CHECK(results[0]->stdout_text == "one\n");
    CHECK(results[0]->stderr_text == "err-one\n");
    REQUIRE(results[1]);
    CHECK(results[1]->exit_code == 3);
    CHECK(results[1]->stdout_text == "no newline");
    CHECK(results[1]->stderr_text.empty());
}

TEST_CASE("remote sequence: a command that must be silent stops it when it prints, and the environment is only its own") {
    std::vector<sequenced_command> commands{
        {command("[ -z \"$HOME\" ] && echo \"$PATH\""), true},
        {command("echo never"), false},
    };
    auto results = registryd::parse_sequence("box", run_locally(commands));
    REQUIRE(results.size() == 1);
    REQUIRE(results[0]);
    CHECK(results[0]->exit_code == 0);
    CHECK(results[0]->stdout_text == "/usr/bin:/bin\n");

    commands[0].command.script = "true";
    results = registryd::parse_sequence("box", run_locally(commands));
    REQUIRE(results.size() == 2);
    CHECK(results[1]->stdout_text == "never\n");
}

TEST_CASE("remote sequence: a timed-out command is told as run() tells it") {
    std::vector<sequenced_command> commands{{{"sleep 5", {{"PATH", "/usr/bin:/bin"}}, registry::milliseconds(1000)}, false}};
    auto results = registryd::parse_sequence("box", run_locally(commands));
    REQUIRE(results.size() == 1);
    REQUIRE(results[0]);
    CHECK(results[0]->exit_code == 124);
    CHECK(results[0]->timed_out);
}

TEST_CASE("remote sequence: output that is not the sequence's ends the results with an error") {
    registry::command_result garbage{0, false, "0 3 0\nabc2 x\n", "sh: oops"};
    auto results = registryd::parse_sequence("box", garbage);
    REQUIRE(results.size() == 2);
    CHECK(results[0]->stdout_text == "abc");
    REQUIRE_FALSE(results[1]);
    CHECK(results[1].err().code == registry::errc::deployment_failed);
    CHECK(results[1].err().message == "ssh box: running a sequence of commands: sh: oops");

    results = registryd::parse_sequence("box", registry::result<registry::command_result>(registry::fail(registry::errc::unavailable, "gone")));
    REQUIRE(results.size() == 1);
    CHECK(results[0].err().code == registry::errc::unavailable);
}

TEST_CASE("remote sequence: package scripts run as the script user, the deployer's own commands as the SSH user") {
    if (::geteuid() != 0) {
        MESSAGE("skipped: runuser needs root, as over SSH with User root");
        return;
    }
    target_command script = command("id -u");
    script.package_script = true;
    std::vector<sequenced_command> commands{{command("id -u"), false}, {script, false}};
    auto results = registryd::parse_sequence("box", run_locally_as(commands, {"box", "nobody", "root"}));
    REQUIRE(results.size() == 2);
    REQUIRE(results[0]);
    REQUIRE(results[1]);
    CHECK(results[0]->stdout_text == "0\n");
    CHECK(results[1]->stdout_text == std::to_string(::getpwnam("nobody")->pw_uid) + "\n");

    // A user the host does not have: exit 126 and what to do, nothing run.
    auto missing = registryd::parse_sequence(
        "box", run_locally_as({{script, false}}, {"box", "registry-no-such-user", "root"}));
    REQUIRE(missing.size() == 1);
    REQUIRE(missing[0]);
    CHECK(missing[0]->exit_code == 126);
    CHECK(missing[0]->stdout_text.empty());
    CHECK(missing[0]->stderr_text.find("the user 'registry-no-such-user' (run_as of remote host box), which does not "
                                       "exist on this host: create it (useradd") != std::string::npos);
}

TEST_CASE("remote commands: the script user's wrapper: none, runuser for root, sudo -n otherwise, uploads given to it") {
    target_command script = command("true");
    script.package_script = true;
    CHECK(registryd::remote_command(script, {"box", "svc", "svc"}).starts_with("exec env -i "));
    CHECK(registryd::remote_command(command("true"), {"box", "svc", "root"}).starts_with("exec env -i "));
    CHECK(registryd::remote_command(script, {"box", "svc", "root"}).find("; exec runuser -u 'svc' -- env -i ") !=
          std::string::npos);
    CHECK(registryd::remote_command(script, {"box", "svc", "deployer"}).find("; exec sudo -n -u 'svc' -- env -i ") !=
          std::string::npos);
    CHECK(registryd::give_to_script_user({"box", "svc", "svc"}, "/opt/x").empty());
    CHECK(registryd::give_to_script_user({"box", "svc", "root"}, "/opt/x").ends_with("; chown -hR 'svc': '/opt/x'"));
    CHECK(registryd::give_to_script_user({"box", "svc", "deployer"}, "/opt/x")
              .ends_with("; sudo -n chown -hR 'svc': '/opt/x'"));
}
