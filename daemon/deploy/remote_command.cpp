#include "deploy/remote_command.hpp"

#include <algorithm>
#include <cstdio>

namespace registryd {

std::string sh_quote(std::string_view s) {
    std::string out = "'";
    for (char c : s) out += c == '\'' ? std::string("'\\''") : std::string(1, c);
    return out + "'";
}

namespace {

// Exit 126, with what to do, when the script user does not exist on the host.
std::string user_check(const remote_script_user& as) {
    const std::string why = "package scripts run as the user '" + as.run_as + "' (run_as of remote host " + as.host +
                            "), which does not exist on this host: create it (useradd --system --no-create-home "
                            "--shell /usr/sbin/nologin " + as.run_as + ") or set run_as to an existing user";
    return "id -u " + sh_quote(as.run_as) + " >/dev/null 2>&1 || { echo " + sh_quote(why) + " >&2; exit 126; }; ";
}

}  // namespace

std::string give_to_script_user(const remote_script_user& as, const std::string& path) {
    if (!as.switches()) return {};
    return user_check(as) + (as.ssh_user == "root" ? "" : "sudo -n ") + "chown -hR " + sh_quote(as.run_as) + ": " +
           sh_quote(path);
}

std::string remote_command(const registry::target_command& c, const remote_script_user& as) {
    std::string s = "exec env -i";
    if (c.package_script && as.switches()) {
        s = user_check(as) + "exec " + (as.ssh_user == "root" ? "runuser -u " : "sudo -n -u ") + sh_quote(as.run_as) +
            " -- env -i";
    }
    for (const auto& [k, v] : c.env) s += " " + sh_quote(k + "=" + v);
    const auto secs = std::max<long long>(1, (c.timeout.count() + 999) / 1000);
    s += " timeout -k 2 " + std::to_string(secs) + " /bin/sh -c " + sh_quote(c.script);
    return s;
}

std::string sequence_script(const std::vector<registry::sequenced_command>& commands, const remote_script_user& as) {
    const std::string cap = std::to_string(remote_output_cap);
    std::string s =
        "t=$(mktemp -d) || exit 1\n"
        "trap 'rm -rf \"$t\"' EXIT\n"
        "ran() {\n"
        "  tail -c " + cap + " \"$t/o\" >\"$t/O\"; tail -c " + cap + " \"$t/e\" >\"$t/E\"\n"
        "  printf '%s %s %s\\n' \"$1\" $(wc -c <\"$t/O\") $(wc -c <\"$t/E\")\n"
        "  cat \"$t/O\" \"$t/E\"\n"
        "  [ \"$1\" -eq 0 ] && { [ \"$2\" = 0 ] || [ ! -s \"$t/o\" ]; }\n"
        "}\n";
    for (const auto& c : commands) {
        s += "(" + remote_command(c.command, as) + ") >\"$t/o\" 2>\"$t/e\"; ran $? " + (c.then_only_if_silent ? "1" : "0") +
             " || exit 0\n";
    }
    return s;
}

std::vector<registry::result<registry::command_result>> parse_sequence(
    const std::string& host, const registry::result<registry::command_result>& ran) {
    std::vector<registry::result<registry::command_result>> out;
    if (!ran) {
        out.emplace_back(registry::unexpected{ran.err()});
        return out;
    }
    const registry::command_result& all = *ran;
    std::string_view rest = all.stdout_text;
    while (!rest.empty()) {
        const auto eol = rest.find('\n');
        int exit_code = 0;
        std::size_t out_bytes = 0, err_bytes = 0;
        char tail = 0;
        if (eol == std::string_view::npos ||
            std::sscanf(std::string(rest.substr(0, eol)).c_str(), "%d %zu %zu%c", &exit_code, &out_bytes, &err_bytes, &tail) != 3 ||
            rest.size() - eol - 1 < out_bytes + err_bytes) {
            break;
        }
        rest.remove_prefix(eol + 1);
        registry::command_result r;
        r.exit_code = exit_code;
        r.timed_out = exit_code == 124 || exit_code == 137;  // as run() tells them
        r.stdout_text = std::string(rest.substr(0, out_bytes));
        r.stderr_text = std::string(rest.substr(out_bytes, err_bytes));
        rest.remove_prefix(out_bytes + err_bytes);
        out.push_back(std::move(r));
    }
    if (!rest.empty() || out.empty()) {
        std::string why = all.stderr_text;
        if (why.empty()) why = "exit " + std::to_string(all.exit_code);
        out.emplace_back(registry::fail(registry::errc::deployment_failed, "ssh " + host + ": running a sequence of commands: " + why));
    }
    return out;
}

}  // namespace registryd
