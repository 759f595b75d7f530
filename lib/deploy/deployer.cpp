#include <registry/deploy/deployer.hpp>

#include "codec/deployment_record.hpp"
#include "codec/keyspace.hpp"

#include <algorithm>
#include <set>
#include <sstream>
#include <utility>
#include <vector>

namespace registry::deploy {

namespace {

constexpr std::size_t max_output = 4096;
constexpr milliseconds first_gate_retry{100};

// A single-quoted sh word.
std::string quote(std::string_view s) {
    std::string out = "'";
    for (char c : s) {
        if (c == '\'') {
            out += "'\\''";
        } else {
            out += c;
        }
    }
    out += '\'';
    return out;
}

std::string port_variable(std::string_view port_name) {
    std::string v = "PORT_";
    for (char c : port_name) {
        if (c >= 'a' && c <= 'z') c = static_cast<char>(c - 'a' + 'A');
        v += ((c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9')) ? c : '_';
    }
    return v;
}

std::string trimmed(std::string s) {
    while (!s.empty() && (s.back() == '\n' || s.back() == '\r' || s.back() == ' ')) s.pop_back();
    return s;
}

std::string output_of(const command_result& r) {
    std::string out = trimmed(r.stdout_text);
    std::string err = trimmed(r.stderr_text);
    if (!err.empty()) out += (out.empty() ? "" : "\n") + err;
    if (r.timed_out) out += (out.empty() ? "" : "\n") + std::string("(timed out)");
    if (out.size() > max_output) out.erase(0, out.size() - max_output);
    return out;
}

// Habitat's health hook convention.
health_status status_of(const command_result& r) {
    if (r.timed_out) return health_status::critical;
    switch (r.exit_code) {
        case 0: return health_status::healthy;
        case 1: return health_status::warning;
        case 2: return health_status::critical;
        default: return health_status::unknown;
    }
}

std::vector<std::string> lines_of(const std::string& text) {
    std::vector<std::string> out;
    std::istringstream in(text);
    for (std::string line; std::getline(in, line);) {
        if (!line.empty()) out.push_back(line);
    }
    return out;
}

std::string seconds_text(milliseconds d) {
    std::ostringstream s;
    s << static_cast<double>(d.count()) / 1000.0 << "s";
    return s.str();
}

// Kills (SIGKILL) the processes of a version: those whose working directory
// is inside `dir` or whose environment has its PACKAGE_DIR (what start.sh
// started inherits it). Fails, naming them, if any is left.
std::string kill_script(const std::string& dir) {
    return "d=" + quote(dir) + "\n"
           "scan() {\n"
           "  for p in /proc/[0-9]*; do\n"
           "    pid=${p#/proc/}\n"
           "    [ \"$pid\" = \"$$\" ] && continue\n"
           "    case \"$(readlink \"$p/cwd\" 2>/dev/null)\" in \"$d\"|\"$d\"/*) echo \"$pid\"; continue;; esac\n"
           "    tr '\\0' '\\n' < \"$p/environ\" 2>/dev/null | grep -qxF \"PACKAGE_DIR=$d\" && echo \"$pid\"\n"
           "  done\n"
           "}\n"
           "pids=$(scan)\n"
           "[ -n \"$pids\" ] || { echo \"no process of $d was running\"; exit 0; }\n"
           "kill -9 $pids 2>/dev/null\n"
           "echo \"killed\" $pids\n"
           "i=0\n"
           "while left=$(scan); [ -n \"$left\" ] && [ $i -lt 50 ]; do sleep 0.1; i=$((i + 1)); done\n"
           "[ -z \"$left\" ] || { echo \"still running after SIGKILL:\" $left; exit 1; }\n";
}

}  // namespace

std::string_view to_string(stage s) noexcept {
    switch (s) {
        case stage::uploading: return "uploading";
        case stage::validating: return "validating";
        case stage::checking_requirements: return "checking_requirements";
        case stage::installing: return "installing";
        case stage::starting: return "starting";
        case stage::health_gating: return "health_gating";
        case stage::done: return "done";
        case stage::rolled_back: return "rolled_back";
        case stage::failed: return "failed";
    }
    return "failed";
}

std::optional<service_command> parse_service_command(std::string_view s) noexcept {
    if (s == "start") return service_command::start;
    if (s == "stop") return service_command::stop;
    if (s == "restart") return service_command::restart;
    return std::nullopt;
}

// One package installed on one target.
struct installed {
    package_manifest manifest;
    deploy_target* target = nullptr;
    std::string instance_id;
    std::string home;  // {prefix}/{sanitized-name}
    std::string dir;   // {prefix}/{sanitized-name}-{version}
    std::uint64_t lease_id = 0;
    // Health checks pause (the lease is still renewed) while the service is
    // stopped by service_action, or being replaced by a deploy.
    bool checks_paused = false;
    std::optional<std::stop_source> health_stop;
};

struct deployer::impl {
    impl(class registry& r, clock& c, store& s, package_unpacker& u, deployer_options o)
        : reg(r), clk(c), st(s), unpacker(u), opts(std::move(o)) {}

    class registry& reg;
    clock& clk;
    store& st;
    package_unpacker& unpacker;
    deployer_options opts;
    std::map<std::string, deploy_target*, std::less<>> targets;
    std::map<std::string, std::shared_ptr<installed>, std::less<>> installs;  // by instance id
    std::set<std::string, std::less<>> busy;                                 // instance ids
    std::uint64_t stagings = 0;
    async_scope health_loops;

    // Marks an instance busy for the lifetime of the guard.
    struct busy_guard {
        std::set<std::string, std::less<>>* set = nullptr;
        std::string id;
        busy_guard() = default;
        busy_guard(const busy_guard&) = delete;
        busy_guard& operator=(const busy_guard&) = delete;
        ~busy_guard() {
            if (set) set->erase(id);
        }
    };

    result<void> acquire(busy_guard& g, const std::string& id) {
        if (!busy.insert(id).second) return fail(errc::conflict, "an operation on '" + id + "' is in progress");
        g.set = &busy;
        g.id = id;
        return {};
    }

    std::map<std::string, std::string> environment(const package_manifest& m, const std::string& dir) const {
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

    task<result<command_result>> script(const installed& at, std::string_view relative, milliseconds timeout) {
        target_command c{"cd " + quote(at.dir) + " && exec /bin/sh " + quote(relative), environment(at.manifest, at.dir),
                         timeout};
        return at.target->run(std::move(c));
    }

    // Runs a package script and reports it (exit code, output) as progress.
    task<result<command_result>> reported(const installed& at, std::string_view relative, std::string label, progress& p,
                                          progress_sink& report) {
        auto r = co_await script(at, relative, opts.script_timeout);
        if (!r) co_return r;
        p.message = std::move(label);
        p.exit_code = r->exit_code;
        p.output = output_of(*r);
        report(p);
        co_return r;
    }

    task<result<command_result>> shell(deploy_target& t, std::string text) {
        target_command c{std::move(text), {{"PATH", "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"},
                                           {"LC_ALL", "C"}},
                         opts.script_timeout};
        return t.run(std::move(c));
    }

    // A shell command that must succeed.
    task<result<command_result>> must(deploy_target& t, std::string text, std::string_view what) {
        auto r = co_await shell(t, std::move(text));
        if (!r) co_return unexpected{r.err()};
        if (r->exit_code != 0) {
            co_return fail(errc::deployment_failed, std::string(what) + " failed on '" + t.name() + "': " + output_of(*r));
        }
        co_return r;
    }

    task<result<void>> check_requirements(deploy_target& t, const package_manifest& m) {
        std::vector<std::string> missing;
        for (const auto& dep : m.depends_on) {
            service_filter f;
            f.name = dep;
            auto found = reg.list(f);
            const bool running = std::any_of(found.begin(), found.end(),
                                             [](const service_ptr& s) { return s->state == service_state::running; });
            if (found.empty()) {
                missing.push_back("depends_on: service '" + dep + "' is not registered");
            } else if (!running) {
                missing.push_back("depends_on: service '" + dep + "' is not running");
            }
        }
        if (!m.required_commands.empty() || !m.required_libraries.empty()) {
            std::string s = "for c in";
            for (const auto& c : m.required_commands) s += " " + quote(c);
            s += "; do command -v \"$c\" >/dev/null 2>&1 || echo \"requires.commands: '$c' not found\"; done\n"
                 "for l in";
            for (const auto& l : m.required_libraries) s += " " + quote(l);
            s += "; do\n"
                 "  ldconfig -p 2>/dev/null | awk -v l=\"$l\" '$1 == l {f = 1} END {exit !f}' && continue\n"
                 "  found=\n"
                 "  for d in /lib /lib64 /usr/lib /usr/lib64 /usr/local/lib /lib/*-linux-gnu /usr/lib/*-linux-gnu; do\n"
                 "    [ -e \"$d/$l\" ] && found=1\n"
                 "  done\n"
                 "  [ -n \"$found\" ] || echo \"requires.libraries: '$l' not found\"\n"
                 "done\n";
            auto r = co_await must(t, std::move(s), "the requirement check");
            if (!r) co_return unexpected{r.err()};
            for (auto& line : lines_of(r->stdout_text)) missing.push_back(std::move(line));
        }
        if (missing.empty()) co_return result<void>{};
        std::string message = "'" + m.name + "' cannot be installed on '" + t.name() + "': ";
        for (std::size_t i = 0; i < missing.size(); ++i) message += (i ? "; " : "") + missing[i];
        co_return fail(errc::requirement_not_met, std::move(message));
    }

    // Runs the health script until it passes or the deadline is over; the
    // last result either way. A service is usually up a moment after
    // start.sh: the first retries come soon (100 ms, doubling up to the
    // interval), and the last check runs at the deadline.
    task<result<command_result>> health_gate(const installed& at, progress_sink& report, progress p) {
        const auto& h = at.manifest.health;
        if (!h) co_return command_result{0, false, {}, {}};
        const time_point deadline = clk.now() + h->deadline;
        milliseconds backoff = std::min(first_gate_retry, h->interval);
        for (;;) {
            auto r = co_await script(at, h->script, h->timeout);
            if (!r) co_return r;
            p.exit_code = r->exit_code;
            p.output = output_of(*r);
            p.message = r->exit_code == 0 ? "health check passed" : "health check did not pass yet";
            report(p);
            if (r->exit_code == 0 || clk.now() >= deadline) co_return r;
            const bool slept = co_await clk.sleep_until(std::min(clk.now() + backoff, deadline));
            (void)slept;
            backoff = std::min(backoff * 2, h->interval);
        }
    }

    task<result<void>> switch_current(deploy_target& t, const std::string& home, const std::string& dir) {
        auto r = co_await must(t,
                               "ln -sfn " + quote(dir) + " " + quote(home + "/current.new") + " && mv -T " +
                                   quote(home + "/current.new") + " " + quote(home + "/current"),
                               "switching the current link");
        if (!r) co_return unexpected{r.err()};
        co_return result<void>{};
    }

    void start_health_loop(const std::shared_ptr<installed>& at) {
        at->health_stop.emplace();
        health_loops.spawn(health_loop(at, at->health_stop->get_token()));
    }

    static void stop_health_loop(installed& at) {
        if (at.health_stop) at.health_stop->request_stop();
    }

    // Keeps the lease alive and records the health script's verdict at the
    // manifest's interval; critical takes a running service to failed, and
    // healthy brings a failed one back to running.
    task<void> health_loop(std::shared_ptr<installed> at, std::stop_token stop) {
        const milliseconds interval = at->manifest.health ? at->manifest.health->interval : milliseconds(10000);
        for (;;) {
            const bool slept = co_await clk.sleep_until(clk.now() + interval, stop);
            if (!slept || stop.stop_requested()) break;
            auto kept = co_await reg.keepalive(at->lease_id);
            if (!kept && kept.err().code == errc::lease_not_found) {
                // Lost (a stalled loop, a store hiccup): the service still runs, register it again.
                auto again = co_await register_instance(*at, std::nullopt);
                (void)again;
            }
            if (!at->manifest.health || at->checks_paused) continue;
            auto r = co_await script(*at, at->manifest.health->script, at->manifest.health->timeout);
            if (stop.stop_requested() || at->checks_paused) continue;
            health_result h;
            h.checked_at = clk.now();
            if (r) {
                h.status = status_of(*r);
                h.output = output_of(*r);
            } else {
                h.status = health_status::unknown;
                h.output = r.err().message;
            }
            auto recorded = co_await reg.record_health(at->instance_id, h);
            if (!recorded) continue;
            const service_state state = (*recorded)->state;
            if (h.status == health_status::critical && state == service_state::running) {
                auto changed = co_await reg.set_state(at->instance_id, service_state::failed, "health check critical: " + h.output);
                (void)changed;
            } else if (h.status == health_status::healthy && state == service_state::failed) {
                auto starting = co_await reg.set_state(at->instance_id, service_state::starting, "health check passed");
                if (starting) {
                    auto running = co_await reg.set_state(at->instance_id, service_state::running, "health check passed");
                    (void)running;
                }
            }
        }
    }

    // A target that cannot be reached changes nothing: checked before an
    // operation moves the instance's state.
    task<result<void>> reachable(deploy_target& t) {
        auto r = co_await shell(t, "true");
        if (!r) co_return unexpected{r.err()};
        co_return result<void>{};
    }

    // The target was lost in the middle of an operation: what the service
    // does is unknown, so it is failed (with the reason), and its health
    // checks carry on, renewing its lease and bringing it back to running
    // once the host answers healthy again.
    task<void> lost_during(installed& at, std::string_view operation, const error& e) {
        at.checks_paused = false;
        co_await move_to(at.instance_id, service_state::failed, std::string(operation) + ": " + e.message);
    }

    // Moves the instance to `to` when the state machine allows it.
    task<void> move_to(const std::string& id, service_state to, std::string reason) {
        auto s = reg.find(id);
        if (!s || !is_allowed_transition(s->state, to)) co_return;
        auto r = co_await reg.set_state(id, to, std::move(reason));
        (void)r;
    }

    task<result<lease_grant>> register_instance(installed& at, const std::optional<health_result>& health) {
        registration r;
        service_instance& s = r.service;
        s.name = at.manifest.name;
        s.instance_id = at.instance_id;
        s.version = at.manifest.version;
        s.execution.kind = execution_kind::managed_process;
        s.execution.command = at.dir + "/scripts/start.sh";
        s.where = at.target->where();
        for (const auto& p : at.manifest.ports) {
            s.endpoints.push_back(endpoint{p.name, at.target->endpoint_address(), p.port, p.protocol});
        }
        s.depends_on = at.manifest.depends_on;
        s.metadata = {{"deployed_by", "registryd"}, {"install_dir", at.dir}, {"target", at.target->name()}};
        // Renewed once per interval plus a health run; a margin for slow hosts.
        const milliseconds interval = at.manifest.health ? at.manifest.health->interval : milliseconds(10000);
        const milliseconds run = at.manifest.health ? at.manifest.health->timeout : milliseconds(0);
        const auto ttl = std::chrono::duration_cast<seconds>(2 * (interval + run)) + seconds(30);
        r.ttl = std::clamp(ttl, reg.options().min_ttl, reg.options().max_ttl);
        if (reg.find(at.instance_id)) r.lease_id = at.lease_id ? std::optional(at.lease_id) : std::nullopt;
        auto grant = co_await reg.register_service(r);
        if (!grant && r.lease_id) {
            // The old registration belongs to a lease we no longer hold: replace it.
            auto gone = co_await reg.deregister(at.instance_id, "redeployed");
            (void)gone;
            r.lease_id.reset();
            grant = co_await reg.register_service(r);
        }
        if (!grant) co_return grant;
        at.lease_id = grant->lease_id;
        co_await move_to(at.instance_id, service_state::running, "deployed version " + at.manifest.version);
        if (health) {
            auto recorded = co_await reg.record_health(at.instance_id, *health);
            (void)recorded;
        }
        co_return grant;
    }

    static std::string store_key(const std::string& instance_id) {
        return std::string(detail::keyspace::deployments) + instance_id;
    }

    // Writes (or, with nullopt, erases) the instance's stored record.
    task<result<void>> persist(const std::string& instance_id, std::optional<std::string> record) {
        std::vector<store_mutation> mutations;
        mutations.push_back({store_key(instance_id), std::move(record)});
        std::vector<std::shared_ptr<event>> no_events;
        auto written = co_await reg.record(std::move(no_events), std::move(mutations), "deployment");
        if (!written) co_return unexpected{written.err()};
        co_return result<void>{};
    }

    static std::string record_of(const installed& at) {
        return detail::encode_deployment_record({at.instance_id, at.target->name(), at.home, at.dir, at.manifest});
    }

    // undeploy after a stop.sh that failed: the service may still run, so
    // without `force` nothing is removed, and it stays registered (failed) and
    // health-checked; with `force` its processes are killed.
    task<result<void>> stop_failed(std::shared_ptr<installed> at, const command_result& stop, bool force, progress& p,
                                   progress_sink& report) {
        const std::string how = stop.timed_out ? std::string("timed out") : "exited " + std::to_string(stop.exit_code);
        const std::string why = "stop.sh " + how + ": " + output_of(stop);
        if (force) {
            auto killed = co_await must(*at->target, kill_script(at->dir), "killing the processes of " + at->dir);
            if (killed) {
                p.message = why + "; force: killing the processes of " + at->dir;
                p.exit_code = killed->exit_code;
                p.output = output_of(*killed);
                report(p);
                co_return result<void>{};
            }
            co_await move_to(at->instance_id, service_state::failed, why);
            at->checks_paused = false;
            co_return unexpected{killed.err()};
        }
        co_await move_to(at->instance_id, service_state::failed, why);
        at->checks_paused = false;
        co_return fail(errc::deployment_failed, why + "; nothing was removed and '" + at->instance_id +
                                                    "' stays registered (undeploy with force kills its processes)");
    }

    // Each home and version directory under a prefix belongs to one package
    // name, written in {prefix}/.owner/{directory} (no sanitized name starts
    // with '.'): names that sanitize alike ("a.b", "a_b") or that meet a
    // version at a '-' ("app-1" and "app" 1) cannot share a path, so no
    // package installs into or removes another's. An entry that exists
    // unclaimed (an earlier registryd's) is adopted only by the deployment
    // that knows it. Writes the claims; conflict when a path is taken.
    task<result<void>> claim(deploy_target& t, const installed& at, bool known) {
        const std::string home = entry_of(at.home);
        const std::string dir = entry_of(at.dir);
        auto r = co_await shell(
            t,
            "p=" + quote(t.prefix()) + "; n=" + quote(at.manifest.name) + "; h=" + quote(home) + "; v=" + quote(dir) +
            "\n"
            "taken() {\n"
            "  if [ -f \"$p/.owner/$1\" ]; then\n"
            "    [ \"$(cat \"$p/.owner/$1\")\" = \"$n\" ] && return 1\n"
            "    echo \"$p/$1 belongs to package '$(cat \"$p/.owner/$1\")'\"; return 0\n"
            "  fi\n"
            "  if [ -e \"$p/$1\" ] || [ -L \"$p/$1\" ]; then\n"
            "    [ \"$2\" = 1 ] && return 1\n"
            "    echo \"$p/$1 exists and does not belong to package '$n'\"; return 0\n"
            "  fi\n"
            "  return 1\n"
            "}\n"
            "known=" + std::string(known ? "1" : "0") + "\n"
            "taken \"$h\" \"$known\" && exit 4\n"
            "listed=0; [ \"$known\" = 1 ] && grep -qxF \"$v\" \"$p/$h/installed\" 2>/dev/null && listed=1\n"
            "taken \"$v\" \"$listed\" && exit 4\n"
            "mkdir -p \"$p/.owner\" || exit 1\n"
            "for e in \"$h\" \"$v\"; do\n"
            "  [ -f \"$p/.owner/$e\" ] || (set -C; printf '%s\\n' \"$n\" > \"$p/.owner/$e\") 2>/dev/null\n"
            "  [ \"$(cat \"$p/.owner/$e\" 2>/dev/null)\" = \"$n\" ] && continue\n"
            "  echo \"$p/$e belongs to package '$(cat \"$p/.owner/$e\")'\"; exit 4\n"
            "done\n");
        if (!r) co_return unexpected{r.err()};
        const std::string what = "'" + at.manifest.name + "' " + at.manifest.version;
        if (r->exit_code == 4) {
            co_return fail(errc::conflict, what + " cannot be installed on '" + t.name() + "': " + output_of(*r));
        }
        if (r->exit_code != 0) {
            co_return fail(errc::deployment_failed, "claiming the paths of " + what + " failed on '" + t.name() +
                                                        "': " + output_of(*r));
        }
        co_return result<void>{};
    }

    static std::string entry_of(const std::string& path) { return std::filesystem::path(path).filename().string(); }

    // What a first deploy that failed installed: stopped if it is current,
    // its directory, its line in `installed`, and the home if that was all,
    // so that nothing is left that no deployment (and no undeploy) reaches.
    task<void> remove_first_install(const installed& at) {
        auto current = co_await shell(*at.target, "readlink " + quote(at.home + "/current") + " || true");
        if (current && trimmed(current->stdout_text) == at.dir) {
            auto stopped = co_await script(at, "scripts/stop.sh", opts.script_timeout);
            (void)stopped;
        }
        auto removed = co_await shell(
            *at.target,
            "p=" + quote(at.target->prefix()) + "; h=" + quote(entry_of(at.home)) + "; v=" + quote(entry_of(at.dir)) + "\n"
            "rm -rf -- \"$p/$v\" && rm -f \"$p/.owner/$v\"\n"
            "[ \"$(readlink \"$p/$h/current\")\" = \"$p/$v\" ] && rm -f \"$p/$h/current\"\n"
            "if [ -f \"$p/$h/installed\" ]; then\n"
            "  grep -vxF \"$v\" \"$p/$h/installed\" > \"$p/$h/installed.new\"\n"
            "  mv -f \"$p/$h/installed.new\" \"$p/$h/installed\"\n"
            "fi\n"
            "if [ ! -s \"$p/$h/installed\" ] && [ ! -L \"$p/$h/current\" ]; then rm -rf -- \"$p/$h\" && rm -f \"$p/.owner/$h\"; fi\n");
        (void)removed;
    }

    // One deploy as its deployment_* events tell it.
    struct course {
        deployment_change change;
        bool started = false;      // deployment_started was published
        bool rolled_back = false;
    };

    // Publishes a deployment_* event (best effort: a store that fails has
    // failed the deploy already).
    task<void> publish(event_type type, const course& c, std::optional<error> failure = std::nullopt) {
        auto e = std::make_shared<event>();
        e->type = type;
        e->deployment = std::make_shared<const deployment_change>(c.change);
        e->failure = std::move(failure);
        std::vector<std::shared_ptr<event>> events{std::move(e)};
        std::vector<store_mutation> none;
        auto r = co_await reg.record(std::move(events), std::move(none), "deployment event");
        (void)r;
    }

    task<void> entered(course& c, const progress& p) {
        c.change.stage = std::string(to_string(p.at));
        c.change.message = p.message;
        if (c.started) co_await publish(event_type::deployment_stage, c);
    }

    void log_outcome(const course& c, std::string operation, const result<void>& r, std::string message) const {
        if (!opts.log) return;
        operation_record o;
        o.operation = std::move(operation);
        o.outcome = r ? "succeeded" : c.rolled_back ? "rolled_back" : "failed";
        o.instance_id = c.change.instance_id;
        o.package = c.change.package;
        o.version = c.change.to_version;
        o.from_version = c.change.from_version;
        o.target = c.change.target;
        o.message = r ? std::move(message) : r.err().message;
        if (!r) o.error = r.err().code;
        opts.log(o);
    }

    task<result<std::size_t>> open();
    task<result<deploy_outcome>> deploy(deploy_request req, progress_sink report);
    task<result<deploy_outcome>> run_deploy(deploy_request req, progress_sink& report, course& c,
                                            std::shared_ptr<installed>& fresh);
    task<result<service_ptr>> control(std::string id, service_command command, progress_sink report);
    task<result<void>> undeploy(std::string id, progress_sink report, bool force);

    task<result<void>> logged_undeploy(std::string id, progress_sink report, bool force) {
        course c;
        c.change.instance_id = id;
        if (auto it = installs.find(id); it != installs.end()) {
            c.change.package = it->second->manifest.name;
            c.change.to_version = it->second->manifest.version;
            c.change.target = it->second->target->name();
        }
        auto r = co_await undeploy(std::move(id), std::move(report), force);
        log_outcome(c, "undeploy", r, "undeployed");
        co_return r;
    }
};

task<result<deploy_outcome>> deployer::impl::deploy(deploy_request req, progress_sink report) {
    course c;
    c.change.target = req.target;
    c.change.connection = req.connection;
    c.change.request_id = req.request_id;
    std::shared_ptr<installed> fresh;
    auto out = co_await run_deploy(std::move(req), report, c, fresh);
    if (!out && fresh) {
        // No suspension since run_deploy released it: nothing else can hold it.
        busy_guard guard;
        if (acquire(guard, fresh->instance_id)) co_await remove_first_install(*fresh);
    }
    if (c.started) {
        if (out) {
            c.change.message = "version " + out->version + " is running";
            co_await publish(event_type::deployment_succeeded, c);
        } else {
            c.change.message = out.err().message;
            co_await publish(c.rolled_back ? event_type::deployment_rolled_back : event_type::deployment_failed, c, out.err());
        }
    }
    const result<void> status = out ? result<void>{} : result<void>(unexpected{out.err()});
    log_outcome(c, "deploy", status, out ? "version " + out->version + " is running" : "");
    co_return out;
}

task<result<deploy_outcome>> deployer::impl::run_deploy(deploy_request req, progress_sink& report, course& c,
                                                        std::shared_ptr<installed>& fresh) {
    progress p;
    p.target = req.target;
    auto failed = [&](const error& e) {
        progress f = p;
        f.at = stage::failed;
        f.message = e.message;
        report(f);
        return unexpected{e};
    };
    auto step = [&](stage s, std::string message, std::optional<std::uint64_t> bytes = std::nullopt) {
        p.at = s;
        p.message = std::move(message);
        p.exit_code.reset();
        p.output.clear();
        p.bytes = bytes;
        report(p);
    };
    auto target_it = targets.find(req.target);
    if (target_it == targets.end()) co_return failed(error{errc::not_found, "no deploy target '" + req.target + "'"});
    deploy_target& t = *target_it->second;

    if (!req.uploaded) {
        auto admitted = unpacker.admit(req.archive);
        if (!admitted) co_return failed(admitted.err());
        req.archive = std::move(*admitted);
    }

    step(stage::validating, "unpacking " + req.archive.filename().string());
    const std::filesystem::path staging = opts.work_dir / ("staging-" + std::to_string(++stagings));
    // A named request: GCC 12 destroys a braced temporary inside a co_await
    // expression twice.
    unpack_request what{req.archive, staging, req.name, req.version, opts.limits};
    auto unpacked = co_await unpacker.unpack(std::move(what));
    if (!unpacked) co_return failed(unpacked.err());
    struct staging_guard {
        package_unpacker& u;
        std::filesystem::path path;
        ~staging_guard() { u.discard(path); }
    } staged{unpacker, staging};

    auto at = std::make_shared<installed>();
    at->manifest = unpacked->manifest;
    at->target = &t;
    const package_manifest& m = at->manifest;
    at->instance_id = sanitize_package_name(m.name) + "." + t.name();
    at->home = t.prefix() + "/" + sanitize_package_name(m.name);
    at->dir = t.prefix() + "/" + install_dir_name(m);
    p.package = m.name;
    p.version = m.version;
    busy_guard guard;
    if (auto ok = acquire(guard, at->instance_id); !ok) co_return failed(ok.err());
    std::shared_ptr<installed> previous;
    if (auto it = installs.find(at->instance_id); it != installs.end()) {
        previous = it->second;
        at->lease_id = previous->lease_id;
    }
    if (previous && previous->manifest.name != m.name) {
        co_return failed(error{errc::conflict, "'" + m.name + "' cannot be deployed on '" + t.name() + "': its instance id '" +
                                                   at->instance_id + "' is package '" + previous->manifest.name + "''s"});
    }
    // However this ends, the running version's checks resume as they were
    // (a failed deploy must not leave its health unwatched).
    struct checks_restore {
        std::shared_ptr<installed> at;
        bool paused = false;
        ~checks_restore() {
            if (at) at->checks_paused = paused;
        }
    } restore_checks{previous, previous && previous->checks_paused};
    c.change.instance_id = at->instance_id;
    c.change.package = m.name;
    c.change.to_version = m.version;
    if (previous) c.change.from_version = previous->manifest.version;
    c.change.message = "deploying " + m.name + " " + m.version + " on '" + t.name() + "'";
    c.started = true;
    co_await publish(event_type::deployment_started, c);

    step(stage::checking_requirements, "checking requirements on '" + t.name() + "'");
    co_await entered(c, p);
    auto requirements = co_await check_requirements(t, m);
    if (!requirements) co_return failed(requirements.err());

    step(stage::installing, "installing into " + at->dir, unpacked->bytes);
    co_await entered(c, p);
    auto claimed = co_await claim(t, *at, previous != nullptr);
    if (!claimed) co_return failed(claimed.err());
    const std::string upload_to = t.prefix() + "/.staging-" + install_dir_name(m) + "-" + std::to_string(stagings);
    auto prepared = co_await must(t, "mkdir -p " + quote(t.prefix()) + " && rm -rf " + quote(upload_to), "preparing the prefix");
    if (!prepared) co_return failed(prepared.err());
    auto uploaded = co_await t.upload(staging, upload_to);
    if (!uploaded) {
        // What arrived before the failure is nobody's: remove it (best effort,
        // the target may be what failed).
        auto cleaned = co_await shell(t, "rm -rf -- " + quote(upload_to));
        (void)cleaned;
        co_return failed(uploaded.err());
    }
    // Exit 3: this very version is the running one; replacing its directory
    // under it is not a deploy.
    const std::string install =
        "if [ -e " + quote(at->dir) + " ]; then\n"
        "  if [ \"$(readlink " + quote(at->home + "/current") + ")\" = " + quote(at->dir) + " ]; then rm -rf " +
        quote(upload_to) + "; exit 3; fi\n"
        "  rm -rf " + quote(at->dir) + "\n"
        "fi\n"
        "mv -T " + quote(upload_to) + " " + quote(at->dir) + " || { rm -rf -- " + quote(upload_to) + "; exit 1; }\n"
        "mkdir -p " + quote(at->home) + " || exit 1\n"
        "grep -qxF " + quote(install_dir_name(m)) + " " + quote(at->home + "/installed") + " 2>/dev/null || echo " +
        quote(install_dir_name(m)) + " >> " + quote(at->home + "/installed") + "\n"
        "readlink " + quote(at->home + "/current") + " || true\n";
    auto moved = co_await shell(t, install);
    if (!moved) co_return failed(moved.err());
    if (moved->exit_code == 3) {
        co_return failed(error{errc::conflict, "version " + m.version + " of '" + m.name + "' is already the current one on '" +
                                                   t.name() + "'"});
    }
    if (moved->exit_code != 0) co_return failed(error{errc::deployment_failed, "installing failed: " + output_of(*moved)});
    const std::string previous_dir = trimmed(moved->stdout_text);
    if (!previous) fresh = at;  // removed again if this first deploy fails

    // The running version's scripts and environment, if it is ours.
    std::shared_ptr<installed> old = previous && previous->dir == previous_dir ? previous : nullptr;
    if (!old && !previous_dir.empty()) {
        old = std::make_shared<installed>(*at);
        old->dir = previous_dir;
    }

    step(stage::starting, old ? "stopping " + old->dir + ", starting " + at->dir : "starting " + at->dir);
    co_await entered(c, p);
    const std::string deploying = "deploying version " + m.version;
    if (old) {
        if (previous) previous->checks_paused = true;
        co_await move_to(at->instance_id, service_state::stopping, deploying);
        auto stopped = co_await reported(*old, "scripts/stop.sh", "stop.sh of the previous version", p, report);
        if (!stopped) co_return failed(stopped.err());
        co_await move_to(at->instance_id, service_state::stopped, deploying);
    }
    auto switched = co_await switch_current(t, at->home, at->dir);
    if (!switched) co_return failed(switched.err());
    co_await move_to(at->instance_id, service_state::starting, deploying);
    auto started = co_await reported(*at, "scripts/start.sh", "start.sh", p, report);
    if (!started) co_return failed(started.err());

    std::string why;
    std::optional<health_result> health;
    if (started->exit_code != 0 || started->timed_out) {
        why = "start.sh " + (started->timed_out ? std::string("timed out") : "exited " + std::to_string(started->exit_code)) +
              ": " + output_of(*started);
    } else {
        step(stage::health_gating,
             m.health ? "waiting up to " + seconds_text(m.health->deadline) + " for " + m.health->script + " to pass"
                      : "no health script");
        co_await entered(c, p);
        auto gate = co_await health_gate(*at, report, p);
        if (!gate) co_return failed(gate.err());
        if (gate->exit_code == 0) {
            health = health_result{health_status::healthy, output_of(*gate), clk.now()};
        } else {
            why = "health check did not pass within " + seconds_text(m.health->deadline) + ": " + output_of(*gate);
        }
    }

    if (!why.empty()) {
        co_await move_to(at->instance_id, service_state::failed, why);
        // Roll back: stop the new version, put the previous one back.
        auto stopped = co_await script(*at, "scripts/stop.sh", opts.script_timeout);
        (void)stopped;
        if (!old) {
            auto unlinked = co_await shell(t, "rm -f " + quote(at->home + "/current"));
            (void)unlinked;
            co_return failed(error{errc::deployment_failed, why + "; no previous version to roll back to"});
        }
        auto back = co_await switch_current(t, at->home, old->dir);
        if (!back) co_return failed(back.err());
        auto restarted = co_await script(*old, "scripts/start.sh", opts.script_timeout);
        if (!restarted) co_return failed(restarted.err());
        // The restored version is gated too, so the answer says whether it is back.
        progress r = p;
        r.at = stage::rolled_back;
        auto restored = co_await health_gate(*old, report, r);
        restore_checks.paused = false;  // it was started again
        const bool back_healthy = restarted->exit_code == 0 && restored && restored->exit_code == 0;
        error e{errc::deployment_failed,
                why + "; rolled back to " + old->dir + (back_healthy ? "" : " (which is not healthy either)")};
        c.rolled_back = true;
        c.change.restored_healthy = back_healthy;
        if (back_healthy) {
            const std::string back_to = "rolled back to " + old->dir;
            co_await move_to(at->instance_id, service_state::starting, back_to);
            co_await move_to(at->instance_id, service_state::running, back_to);
        }
        r.message = e.message;
        r.exit_code = restarted->exit_code;
        r.output = output_of(*restarted);
        report(r);
        co_return unexpected{e};
    }

    auto grant = co_await register_instance(*at, health);
    if (!grant) co_return failed(grant.err());
    fresh.reset();
    auto kept = co_await persist(at->instance_id, record_of(*at));
    if (!kept) co_return failed(kept.err());
    if (previous) stop_health_loop(*previous);
    installs[at->instance_id] = at;
    start_health_loop(at);
    step(stage::done, "version " + m.version + " is running");
    deploy_outcome out{at->instance_id, m.name, m.version, at->dir, std::nullopt, grant->revision};
    if (old) out.previous_version = old->manifest.version;
    co_return out;
}

task<result<service_ptr>> deployer::impl::control(std::string id, service_command command, progress_sink report) {
    auto it = installs.find(id);
    if (it == installs.end()) co_return fail(errc::not_found, "no deployed service '" + id + "'");
    std::shared_ptr<installed> at = it->second;
    busy_guard guard;
    if (auto ok = acquire(guard, id); !ok) co_return unexpected{ok.err()};
    progress p;
    p.package = at->manifest.name;
    p.version = at->manifest.version;
    p.target = at->target->name();
    if (auto up = co_await reachable(*at->target); !up) co_return unexpected{up.err()};
    if (command != service_command::start) {
        co_await move_to(id, service_state::stopping, "service_action");
        p.at = stage::starting;
        auto r = co_await reported(*at, "scripts/stop.sh", "stop.sh", p, report);
        if (!r) {
            co_await lost_during(*at, "service_action", r.err());
            co_return unexpected{r.err()};
        }
        at->checks_paused = true;
        if (r->exit_code != 0) {
            co_await move_to(id, service_state::failed, "stop.sh exited " + std::to_string(r->exit_code));
            co_return fail(errc::deployment_failed, "stop.sh exited " + std::to_string(r->exit_code) + ": " + p.output);
        }
        co_await move_to(id, service_state::stopped, "service_action");
    }
    if (command != service_command::stop) {
        co_await move_to(id, service_state::starting, "service_action");
        p.at = stage::starting;
        auto r = co_await reported(*at, "scripts/start.sh", "start.sh", p, report);
        if (!r) {
            co_await lost_during(*at, "service_action", r.err());
            co_return unexpected{r.err()};
        }
        std::string why;
        if (r->exit_code != 0) {
            why = "start.sh exited " + std::to_string(r->exit_code) + ": " + p.output;
        } else {
            p.at = stage::health_gating;
            auto gate = co_await health_gate(*at, report, p);
            if (!gate) co_return unexpected{gate.err()};
            if (gate->exit_code != 0) why = "health check did not pass: " + output_of(*gate);
        }
        if (!why.empty()) {
            co_await move_to(id, service_state::failed, why);
            co_return fail(errc::deployment_failed, why);
        }
        at->checks_paused = false;
        co_await move_to(id, service_state::running, "service_action");
    }
    auto s = reg.find(id);
    if (!s) co_return fail(errc::not_found, "no instance '" + id + "'");
    co_return s;
}

task<result<void>> deployer::impl::undeploy(std::string id, progress_sink report, bool force) {
    auto it = installs.find(id);
    if (it == installs.end()) co_return fail(errc::not_found, "no deployed service '" + id + "'");
    std::shared_ptr<installed> at = it->second;
    busy_guard guard;
    if (auto ok = acquire(guard, id); !ok) co_return unexpected{ok.err()};
    if (auto up = co_await reachable(*at->target); !up) co_return unexpected{up.err()};
    // The health loop (and the lease it renews) ends only once the service
    // is really stopped.
    at->checks_paused = true;
    progress p;
    p.package = at->manifest.name;
    p.version = at->manifest.version;
    p.target = at->target->name();
    co_await move_to(id, service_state::stopping, "undeploy");
    p.at = stage::starting;
    auto stopped = co_await reported(*at, "scripts/stop.sh", "stop.sh", p, report);
    if (!stopped) {
        co_await lost_during(*at, "undeploy", stopped.err());
        co_return unexpected{stopped.err()};
    }
    if (stopped->exit_code != 0 || stopped->timed_out) {
        auto handled = co_await stop_failed(at, *stopped, force, p, report);
        if (!handled) co_return unexpected{handled.err()};
    }
    stop_health_loop(*at);
    auto gone = co_await reg.deregister(id, "undeployed");
    (void)gone;  // an expired lease has removed it already
    installs.erase(id);
    auto forgotten = co_await persist(id, std::nullopt);
    if (!forgotten) co_return unexpected{forgotten.err()};
    const std::string prefix = at->target->prefix();
    // Only what this package claimed (or nobody did: an earlier registryd's).
    auto removed = co_await must(*at->target,
                                 "p=" + quote(prefix) + "; n=" + quote(at->manifest.name) + "\n"
                                 "ours() { [ ! -e \"$p/.owner/$1\" ] || [ \"$(cat \"$p/.owner/$1\")\" = \"$n\" ]; }\n"
                                 "drop() { if ours \"$1\"; then rm -rf -- \"$p/$1\" && rm -f \"$p/.owner/$1\"; fi; }\n"
                                 "if [ -f " + quote(at->home + "/installed") + " ]; then\n"
                                 "  while IFS= read -r v; do case \"$v\" in ''|*/*|.*) ;; *) drop \"$v\" || exit 1;; esac; done < " +
                                     quote(at->home + "/installed") + "\n"
                                 "fi\n"
                                 "drop " + quote(entry_of(at->home)),
                                 "removing the installed versions");
    if (!removed) co_return unexpected{removed.err()};
    p.at = stage::done;
    p.message = "undeployed";
    p.exit_code.reset();
    p.output.clear();
    report(p);
    co_return result<void>{};
}

task<result<std::size_t>> deployer::impl::open() {
    store_state state;
    try {
        state = co_await load_copy(st, std::string(detail::keyspace::deployments));
    } catch (const store_error& e) {
        co_return fail(errc::unavailable, std::string("store: ") + e.what());
    }
    std::size_t elsewhere = 0;
    for (const auto& [key, value] : state.entries) {
        auto decoded = detail::decode_deployment_record(value);
        if (!decoded) co_return fail(errc::internal, "stored record '" + key + "': " + decoded.err().message);
        auto target = targets.find(decoded->target);
        if (target == targets.end()) {
            ++elsewhere;
            continue;
        }
        auto at = std::make_shared<installed>();
        at->manifest = std::move(decoded->manifest);
        at->target = target->second;
        at->instance_id = std::move(decoded->instance_id);
        at->home = std::move(decoded->home);
        at->dir = std::move(decoded->dir);
        // Its lease is the registry's (restored with it); an expired one is
        // registered again by the health loop.
        if (auto s = reg.find(at->instance_id)) {
            at->lease_id = s->lease.id;
            at->checks_paused = s->state == service_state::stopped;
            if (s->state == service_state::stopping || s->state == service_state::starting) {
                // An operation that the restart interrupted: nobody knows how
                // far it got. The health checks tell.
                co_await move_to(at->instance_id, service_state::failed,
                                 "registryd restarted during an operation on it");
            }
        }
        installs[at->instance_id] = at;
        start_health_loop(at);
    }
    co_return elsewhere;
}

deployer::deployer(class registry& reg, clock& clk, store& st, package_unpacker& unpacker, deployer_options options)
    : impl_(std::make_unique<impl>(reg, clk, st, unpacker, std::move(options))) {}

task<result<std::size_t>> deployer::open() { return impl_->open(); }

deployer::~deployer() = default;

void deployer::add_target(deploy_target& target) { impl_->targets[target.name()] = &target; }

bool deployer::has_target(std::string_view name) const { return impl_->targets.find(name) != impl_->targets.end(); }

task<result<deploy_outcome>> deployer::deploy(deploy_request request, progress_sink report) {
    if (!report) report = [](const progress&) {};
    return impl_->deploy(std::move(request), std::move(report));
}

task<result<service_ptr>> deployer::control(std::string instance_id, service_command command, progress_sink report) {
    if (!report) report = [](const progress&) {};
    return impl_->control(std::move(instance_id), command, std::move(report));
}

task<result<void>> deployer::undeploy(std::string instance_id, progress_sink report, bool force) {
    if (!report) report = [](const progress&) {};
    return impl_->logged_undeploy(std::move(instance_id), std::move(report), force);
}

task<void> deployer::shutdown() {
    for (auto& [id, at] : impl_->installs) impl::stop_health_loop(*at);
    co_await impl_->health_loops.join();
}

}  // namespace registry::deploy
