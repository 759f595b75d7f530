// The deployer: installs a package archive on a target, health-gates it,
// rolls back to the previous version when the gate fails, registers the
// service, and keeps checking its health. It runs the scripts and moves the
// directories through the deploy_target port (ports/deploy_target.hpp) and
// unpacks through package_unpacker; it never blocks and never spawns a thread.
//
// On the target, a package lives in
//   {prefix}/{sanitized-name}-{version}/   one directory per version (kept)
//   {prefix}/{sanitized-name}/current      symlink to the running version,
//                                          switched by rename(2)
//   {prefix}/.owner/{directory}            the package name each of those
//                                          belongs to: a deploy whose paths
//                                          or instance id are another
//                                          package's is a conflict
// Scripts run with /bin/sh, in the version's directory, with only this
// environment: PATH, HOME=/, PACKAGE_NAME, PACKAGE_VERSION, PACKAGE_DIR and
// PORT_<NAME> for each manifest port (name upper-cased, [^A-Z0-9] -> '_').
//
// A first deploy that fails (no earlier deployment of the package on the
// target) removes what it installed: nothing is left that no undeploy reaches.
//
// Operations on one package (deploy, start/stop/restart, undeploy) do not
// overlap: a second one while the first runs is a conflict.
//
// A container package (service.type container) deploys with the target
// "containers": its image runs on the container manager's nodes through the
// package_containers port (ports/package_containers.hpp), under a lease the
// health checks renew, with endpoints at the container's address; a new
// version's container starts beside the running one and replaces it only
// once it passes its gate (docs/protocol.md, "Container packages").
//
// Each deployment is kept in the store (key "dep/{instance_id}"), so a
// restarted embedder that calls open() controls and health-checks the
// packages installed before the restart.
#pragma once

#include <registry/async_scope.hpp>
#include <registry/identity.hpp>
#include <registry/deploy/package_archive.hpp>
#include <registry/ports/clock.hpp>
#include <registry/ports/deploy_target.hpp>
#include <registry/ports/health_prober.hpp>
#include <registry/ports/package_containers.hpp>
#include <registry/ports/package_unpacker.hpp>
#include <registry/ports/store.hpp>
#include <registry/registry.hpp>
#include <registry/result.hpp>
#include <registry/task.hpp>

#include <cstdint>
#include <filesystem>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <stop_token>
#include <string>
#include <string_view>

namespace registry::deploy {

enum class stage {
    uploading,
    validating,
    checking_requirements,
    installing,
    starting,
    health_gating,
    done,
    rolled_back,
    failed,
};

std::string_view to_string(stage s) noexcept;

struct progress {
    stage at = stage::validating;
    std::string package;  // empty until the manifest has been read
    std::string version;
    std::string target;
    std::string message;
    std::optional<std::uint64_t> bytes;
    std::optional<std::uint64_t> bytes_total;  // uploading: the declared size
    std::optional<int> exit_code;  // when a script ran
    std::string output;            // its stdout and stderr
};

using progress_sink = std::function<void(const progress&)>;

struct deploy_request {
    std::filesystem::path archive;  // on the daemon's host
    // An upload's file (trusted location); otherwise a client-named path,
    // which must pass package_unpacker::admit.
    bool uploaded = false;
    std::string target = "local";
    std::optional<std::string> name;     // the manifest must agree
    std::optional<std::string> version;
    // Who asked, for the deployment_* events (deployment_change).
    std::optional<std::uint64_t> connection;
    std::optional<std::string> request_id;
    // Who deploys: the package's name must be in its scope, and a deployment
    // another identity owns is forbidden unless it is an admin. A new
    // deployment (and its instance's lease) is its.
    identity by = identity::anonymous();
};

struct deploy_outcome {
    std::string instance_id;
    std::string name;
    std::string version;
    std::string install_dir;
    std::optional<std::string> previous_version;
    std::uint64_t revision = 0;
    std::string container_id;  // a container package: its container, and the node it runs on
    std::string node;
};

enum class service_command { start, stop, restart };

// The outcome of a deploy or an undeploy, for the embedder's log.
struct operation_record {
    std::string operation;  // "deploy", "undeploy"
    std::string outcome;    // "succeeded", "failed", "rolled_back"
    std::string instance_id;  // empty when the package was never read
    std::string package;
    std::string version;
    std::optional<std::string> from_version;
    std::string target;
    std::string message;        // what happened, or the error
    std::optional<errc> error;  // failed, rolled_back
};

struct deployer_options {
    std::filesystem::path work_dir;  // local scratch space for unpacking (staging)
    archive_limits limits;
    milliseconds script_timeout{60000};  // start.sh, stop.sh and the requirement checks
    std::function<void(const operation_record&)> log;  // optional
};

class deployer {
public:
    deployer(class registry& reg, clock& clk, store& st, package_unpacker& unpacker, deployer_options options);
    ~deployer();
    deployer(const deployer&) = delete;
    deployer& operator=(const deployer&) = delete;

    // Targets must outlive the deployer. Names are unique.
    void add_target(deploy_target& target);
    // A deploy request may name `target` by `alias` too; what is recorded
    // (the deployment's target, its instance id) is the target's own name.
    // (registryd on etcd: "local" is this registryd's host, whose target is
    // named after it, so that a deployment recorded by one registryd of a
    // cluster is never taken for another host's after a failover.)
    void add_alias(std::string alias, deploy_target& target);
    bool has_target(std::string_view name) const;

    // The target "containers", for container packages: `containers` runs
    // them, `prober` checks the http and tcp health of their endpoints
    // (without one, only `running` checks pass). Both must outlive the
    // deployer. Before open().
    void use_containers(package_containers& containers, health_prober* prober);

    // Loads the deployments kept in the store (after registry::open() and
    // add_target) and resumes their health checks. Deployments on a target
    // that is not configured stay stored, untouched, until adopt_target
    // adds it; the count of those is the result.
    task<result<std::size_t>> open();

    // A target that appears after open() (registryd on etcd: a host another
    // member of the cluster offers): added as add_target() does, then the
    // deployments stored for it are controlled and health-checked as open()
    // does for the targets it knows. Their count, or unavailable when the
    // store cannot be read (the target is added all the same: a later call
    // with the same target adopts what it could not). Before open(), the
    // same as add_target() (open() adopts them). Another target of the same
    // name already present: conflict.
    task<result<std::size_t>> adopt_target(deploy_target& target);

    task<result<deploy_outcome>> deploy(deploy_request request, progress_sink report);

    // Runs stop.sh / start.sh of the installed version; the registered
    // instance follows (stopping, stopped, starting, running).
    // `by`: as for deploy_request::by (forbidden: not its deployment, or the
    // service outside its scope).
    task<result<service_ptr>> control(std::string instance_id, service_command command, progress_sink report,
                                      const identity& by = identity::anonymous());

    // Stops the service, deregisters it and removes every installed version.
    // A stop.sh that fails (non-zero exit, timeout) is errc::deployment_failed
    // with its exit code and output, and nothing is removed (the instance
    // stays registered, failed, and health-checked) unless `force`: then the
    // version's processes (working directory inside its directory, or its
    // PACKAGE_DIR in their environment) are killed with SIGKILL first.
    task<result<void>> undeploy(std::string instance_id, progress_sink report, bool force = false,
                                const identity& by = identity::anonymous());

    // Ends the periodic health checks; completes once they have.
    task<void> shutdown();

    struct impl;

private:
    std::unique_ptr<impl> impl_;
};

}  // namespace registry::deploy
