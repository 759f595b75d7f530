// The deployer's state and the steps its operations share. Each operation,
// and each stage of a deploy, is defined in its own file beside this one:
//   deploy_sequence.cpp   deploy: the stages in order, and go-live
//   deploy_validate.cpp   unpacking, the deployment's identity, conflicts
//   deploy_claim.cpp      requirements, the claim of the paths, the prefix
//   deploy_upload.cpp     the upload to the target
//   deploy_install.cpp    the install (and the removal of a failed first one)
//   deploy_start.cpp      stopping the old version, the switch, start.sh
//   health_gate.cpp       the health gate
//   rollback.cpp          putting the previous version back
//   undeploy.cpp, service_action.cpp, recovery.cpp (open after a restart,
//                         adopt_target)
//   target_commands.cpp, registration.cpp, deployment_events.cpp,
//   health_loop.cpp       what those share
//   container_deploy.cpp, container_health.cpp, container_operations.cpp
//                         the same for a container package (target "containers")
#pragma once

#include "deploy/installed.hpp"

#include <registry/async_scope.hpp>
#include <registry/deploy/deployer.hpp>
#include <registry/ownership.hpp>

#include <map>
#include <memory>
#include <optional>
#include <set>
#include <stop_token>
#include <string>
#include <string_view>
#include <vector>

namespace registry::detail {
struct deployment_record;
}

namespace registry::deploy {

struct deployment;

// One deploy or undeploy as its deployment_* events and its log line tell it.
struct course {
    deployment_change change;
    bool started = false;  // deployment_started was published
    bool rolled_back = false;
};

// What the health gate of a deploy found: `why` it failed (empty when it
// passed), the health to record when it passed.
struct gate_verdict {
    std::string why;
    std::optional<health_result> health;
};

struct deployer::impl {
    impl(class registry& r, clock& c, store& s, package_unpacker& u, deployer_options o)
        : reg(r), clk(c), st(s), unpacker(u), opts(std::move(o)) {}

    // `by` may `action` the deployment: its service in scope, and its own
    // (or `by` is an admin).
    static std::optional<error> may_operate(const identity& by, const installed& at, std::string_view action) {
        if (auto refused = check_service_scope(by, at.manifest.name, action)) return refused;
        return check_owner(by, at.owner, action, "deployment", at.instance_id);
    }

    class registry& reg;
    clock& clk;
    store& st;
    package_unpacker& unpacker;
    deployer_options opts;
    std::map<std::string, deploy_target*, std::less<>> targets;
    std::map<std::string, deploy_target*, std::less<>> aliases;  // requests only
    package_containers* containers = nullptr;  // use_containers
    health_prober* prober = nullptr;
    std::map<std::string, std::shared_ptr<installed>, std::less<>> installs;  // by instance id
    std::set<std::string, std::less<>> busy;                                 // instance ids
    std::uint64_t stagings = 0;
    bool opened = false;  // open() has run: adopt_target adopts, not open()
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

    // Commands on a target (target_commands.cpp). `via`: the target as a
    // deploy sees it (commands_ahead) instead of the installed one's.
    std::map<std::string, std::string> environment(const package_manifest& m, const std::string& dir) const;
    target_command script_command(const installed& at, std::string_view relative, milliseconds timeout) const;
    task<result<command_result>> script(const installed& at, std::string_view relative, milliseconds timeout,
                                        deploy_target* via = nullptr);
    // Runs a package script and reports it (exit code, output) as progress.
    task<result<command_result>> reported(const installed& at, std::string_view relative, std::string label, progress& p,
                                          progress_sink& report, deploy_target* via = nullptr);
    target_command shell_command(std::string text) const;
    task<result<command_result>> shell(deploy_target& t, std::string text);
    // A shell command that must succeed.
    task<result<command_result>> must(deploy_target& t, std::string text, std::string_view what);
    // A target that cannot be reached changes nothing: checked before an
    // operation moves the instance's state.
    task<result<void>> reachable(deploy_target& t);

    // The instance in the registry and the deployment in the store (registration.cpp).
    task<void> move_to(const std::string& id, service_state to, std::string reason);
    task<void> lost_during(installed& at, std::string_view operation, const error& e);
    task<result<lease_grant>> register_instance(installed& at, const std::optional<health_result>& health);
    task<result<void>> persist(const std::string& instance_id, std::optional<std::string> record);
    static std::string record_of(const installed& at);

    // Events and the log (deployment_events.cpp).
    task<void> publish(event_type type, const course& c, std::optional<error> failure = std::nullopt);
    task<void> entered(course& c, const progress& p);
    void log_outcome(const course& c, std::string operation, const result<void>& r, std::string message) const;

    // Health (health_gate.cpp, health_loop.cpp).
    task<result<command_result>> health_gate(const installed& at, progress_sink& report, progress p,
                                             deploy_target* via = nullptr);
    void start_health_loop(const std::shared_ptr<installed>& at);
    static void stop_health_loop(installed& at);
    task<void> health_loop(std::shared_ptr<installed> at, std::stop_token stop);

    // deploy: the stages in order (deploy_sequence.cpp). A stage that fails
    // has reported it; its error is the deploy's.
    task<result<deploy_outcome>> deploy(deploy_request req, progress_sink report);
    task<result<deploy_outcome>> run_deploy(deploy_request req, progress_sink& report, course& c,
                                            std::shared_ptr<installed>& fresh);
    task<result<void>> validate(deployment& d, deploy_request& req);
    task<result<void>> claim_paths(deployment& d);
    std::vector<std::string> missing_dependencies(const package_manifest& m) const;
    task<result<void>> check_requirements(deploy_target& t, const package_manifest& m, std::vector<std::string> missing);
    task<result<void>> claim(deploy_target& t, const installed& at, bool known);
    task<result<void>> upload(deployment& d);
    task<result<void>> install(deployment& d, std::shared_ptr<installed>& fresh);
    task<void> remove_first_install(const installed& at);
    task<result<command_result>> start(deployment& d);
    task<result<void>> switch_current(deploy_target& t, const std::string& home, const std::string& dir);
    task<result<gate_verdict>> gate(deployment& d, const command_result& started);
    task<result<void>> roll_back(deployment& d, const std::string& why);
    task<result<deploy_outcome>> go_live(deployment& d, const std::optional<health_result>& health,
                                         std::shared_ptr<installed>& fresh);

    // The other operations.
    task<result<service_ptr>> control(std::string id, service_command command, progress_sink report,
                                      const identity& by);
    task<result<void>> undeploy(std::string id, progress_sink report, bool force, const identity& by);
    task<result<void>> logged_undeploy(std::string id, progress_sink report, bool force, const identity& by);
    task<result<void>> stop_failed(std::shared_ptr<installed> at, const command_result& stop, bool force, progress& p,
                                   progress_sink& report);
    // Recovery (recovery.cpp). adopt: one stored deployment controlled and
    // health-checked again; false when its instance already is.
    task<result<std::vector<detail::deployment_record>>> stored_deployments();
    task<bool> adopt(detail::deployment_record& r, deploy_target* target);
    task<result<std::size_t>> open();
    task<result<std::size_t>> adopt_target(deploy_target& target);

    // Container packages (container_*.cpp).
    static constexpr std::string_view container_target = "containers";
    task<result<deploy_outcome>> run_container_deploy(deploy_request req, progress_sink& report, course& c);
    task<result<void>> start_container(installed& at);
    task<result<gate_verdict>> container_gate(const installed& at, progress_sink& report, progress p);
    task<health_result> container_running(const installed& at);
    task<health_result> container_check(const installed& at, std::stop_token stop = {});
    task<void> container_health_loop(std::shared_ptr<installed> at, std::stop_token stop);
    seconds container_ttl(const installed& at) const;
    task<result<service_ptr>> control_container(std::shared_ptr<installed> at, service_command command, progress p,
                                                progress_sink& report);
    task<result<void>> undeploy_container(std::shared_ptr<installed> at, progress p, progress_sink& report);
};

}  // namespace registry::deploy
