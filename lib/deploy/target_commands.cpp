// Running package scripts and shell commands on a target.
#include "deploy/command_output.hpp"
#include "deploy/deployer_impl.hpp"

namespace registry::deploy {

namespace {

std::string port_variable(std::string_view port_name) {
    std::string v = "PORT_";
    for (char c : port_name) {
        if (c >= 'a' && c <= 'z') c = static_cast<char>(c - 'a' + 'A');
        v += ((c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9')) ? c : '_';
    }
    return v;
}

}  // namespace

std::map<std::string, std::string> deployer::impl::environment(const package_manifest& m, const std::string& dir) const {
    std::map<std::string, std::string> env{
        {"PATH", "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"},
        {"HOME", "/"},
        {"LC_ALL", "C"},
        {"PACKAGE_NAME", m.name},
        {"PACKAGE_VERSION", m.version},
        {"PACKAGE_DIR", dir},
    };
    for (const auto& p : m.ports) env[port_variable(p.name)] = std::to_string(p.port);
    return env;
}

target_command deployer::impl::script_command(const installed& at, std::string_view relative, milliseconds timeout) const {
    return {"cd " + quote(at.dir) + " && exec /bin/sh " + quote(relative), environment(at.manifest, at.dir), timeout,
            true};
}

task<result<command_result>> deployer::impl::script(const installed& at, std::string_view relative, milliseconds timeout,
                                                    deploy_target* via) {
    return (via ? *via : *at.target).run(script_command(at, relative, timeout));
}

task<result<command_result>> deployer::impl::reported(const installed& at, std::string_view relative, std::string label,
                                                      progress& p, progress_sink& report, deploy_target* via) {
    auto r = co_await script(at, relative, opts.script_timeout, via);
    if (!r) co_return r;
    p.message = std::move(label);
    p.exit_code = r->exit_code;
    p.output = output_of(*r);
    report(p);
    co_return r;
}

target_command deployer::impl::shell_command(std::string text) const {
    return {std::move(text), {{"PATH", "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"}, {"LC_ALL", "C"}},
            opts.script_timeout};
}

task<result<command_result>> deployer::impl::shell(deploy_target& t, std::string text) {
    return t.run(shell_command(std::move(text)));
}

task<result<command_result>> deployer::impl::must(deploy_target& t, std::string text, std::string_view what) {
    auto r = co_await shell(t, std::move(text));
    if (!r) co_return unexpected{r.err()};
    if (r->exit_code != 0) {
        co_return fail(errc::deployment_failed, std::string(what) + " failed on '" + t.name() + "': " + output_of(*r));
    }
    co_return r;
}

task<result<void>> deployer::impl::reachable(deploy_target& t) {
    auto r = co_await shell(t, "true");
    if (!r) co_return unexpected{r.err()};
    co_return result<void>{};
}

}  // namespace registry::deploy
