// deploy of a container package (target "containers"): the archive read for
// its manifest, the dependencies checked, a container of the new version
// started beside the running one, gated, then registered in its place (the
// old container removed); a new version that fails its gate is removed and
// the running one was never touched.
#include "deploy/command_output.hpp"
#include "deploy/deployer_impl.hpp"

namespace registry::deploy {

namespace {

// The unpacked package is only read for its manifest.
struct discard_staging {
    package_unpacker* unpacker = nullptr;
    std::filesystem::path path;
    ~discard_staging() {
        if (unpacker) unpacker->discard(path);
    }
};

}  // namespace

// Renewed at every health check: twice the interval plus the check, and a
// margin, but never under five minutes, so that a registryd restarting (or
// stalled for a moment) finds its containers still there to adopt.
seconds deployer::impl::container_ttl(const installed& at) const {
    const milliseconds interval = at.manifest.health ? at.manifest.health->interval : milliseconds(10000);
    const milliseconds run = at.manifest.health ? at.manifest.health->timeout : milliseconds(0);
    return std::max(std::chrono::duration_cast<seconds>(2 * (interval + run)) + seconds(30), seconds(300));
}

task<result<void>> deployer::impl::start_container(installed& at) {
    container_launch launch;
    launch.spec = *at.manifest.container;
    launch.labels = {{"registryd.deploy.instance", at.instance_id},
                     {"registryd.deploy.version", at.manifest.version}};
    launch.ttl = container_ttl(at);
    launch.owner = at.owner;
    auto run = co_await containers->run(std::move(launch));
    if (!run) co_return unexpected{run.err()};
    at.container_id = run->id;
    at.node = run->node;
    at.address = run->address;
    co_return result<void>{};
}

task<result<deploy_outcome>> deployer::impl::run_container_deploy(deploy_request req, progress_sink& report, course& c) {
    progress p;
    p.target = std::string(container_target);
    auto failed = [&](const error& e) {
        progress f = p;
        f.at = stage::failed;
        f.message = e.message;
        report(f);
        return unexpected{e};
    };
    auto step = [&](stage s, std::string message) {
        p.at = s;
        p.message = std::move(message);
        p.exit_code.reset();
        p.output.clear();
        report(p);
    };
    if (!containers) {
        co_return failed(error{errc::unavailable, "container packages cannot be deployed here: registryd has no "
                                                  "container engine (containers.engines)"});
    }
    if (!req.uploaded) {
        auto admitted = unpacker.admit(req.archive);
        if (!admitted) co_return failed(admitted.err());
        req.archive = std::move(*admitted);
    }
    if (req.name) {
        if (auto refused = check_service_scope(req.by, *req.name, "deploy")) co_return failed(*refused);
    }
    step(stage::validating, "unpacking " + req.archive.filename().string());
    discard_staging staged;
    staged.path = opts.work_dir / ("staging-" + std::to_string(++stagings));
    unpack_request what{req.archive, staged.path, req.name, req.version, opts.limits};
    auto unpacked = co_await unpacker.unpack(std::move(what));
    if (!unpacked) co_return failed(unpacked.err());
    staged.unpacker = &unpacker;

    auto at = std::make_shared<installed>();
    at->manifest = std::move(unpacked->manifest);
    const package_manifest& m = at->manifest;
    if (!m.is_container()) {
        co_return failed(error{errc::invalid_request, "target 'containers' runs container packages (service.type "
                                                      "container); '" + m.name + "' is " + m.service_type +
                                                      ": deploy it to 'local' or a remote host"});
    }
    at->instance_id = sanitize_package_name(m.name) + "." + std::string(container_target);
    p.package = m.name;
    p.version = m.version;
    if (auto refused = check_service_scope(req.by, m.name, "deploy")) co_return failed(*refused);
    std::shared_ptr<installed> previous;
    if (auto it = installs.find(at->instance_id); it != installs.end()) {
        previous = it->second;
        if (auto refused = check_owner(req.by, previous->owner, "redeploy", "deployment", at->instance_id)) {
            co_return failed(*refused);
        }
    }
    busy_guard busy;
    if (auto ok = acquire(busy, at->instance_id); !ok) co_return failed(ok.err());
    if (previous && previous->manifest.name != m.name) {
        co_return failed(error{errc::conflict, "'" + m.name + "' cannot be deployed on 'containers': its instance id '" +
                                                   at->instance_id + "' is package '" + previous->manifest.name + "''s"});
    }
    if (previous && previous->manifest.version == m.version && !previous->container_id.empty()) {
        co_return failed(error{errc::conflict, "version " + m.version + " of '" + m.name +
                                                   "' is already the current one on 'containers'"});
    }
    at->owner = previous ? previous->owner : req.by.name;
    at->lease_id = previous ? previous->lease_id : 0;
    c.change.instance_id = at->instance_id;
    c.change.package = m.name;
    c.change.to_version = m.version;
    if (previous) c.change.from_version = previous->manifest.version;
    c.change.message = "deploying " + m.name + " " + m.version + " on 'containers'";
    c.started = true;
    co_await publish(event_type::deployment_started, c);

    step(stage::checking_requirements, "checking requirements on 'containers'");
    co_await entered(c, p);
    if (auto missing = missing_dependencies(m); !missing.empty()) {
        std::string message = "'" + m.name + "' cannot be deployed on 'containers': ";
        for (std::size_t i = 0; i < missing.size(); ++i) message += (i ? "; " : "") + missing[i];
        co_return failed(error{errc::requirement_not_met, message});
    }

    const std::string image = m.container->image.empty() ? "preset " + m.container->preset.value_or("") : m.container->image;
    step(stage::starting, previous && !previous->container_id.empty()
                              ? "starting a container of " + image + " beside version " + previous->manifest.version + "'s"
                              : "starting a container of " + image);
    co_await entered(c, p);
    if (auto started = co_await start_container(*at); !started) co_return failed(started.err());
    p.message = "container " + at->container_id + " on node '" + at->node + "'" +
                (at->address.empty() ? "" : " at " + at->address);
    report(p);

    {
        progress gating = p;
        gating.at = stage::health_gating;
        gating.message = "gating container " + at->container_id;
        co_await entered(c, gating);
    }
    auto verdict = co_await container_gate(*at, report, p);
    if (!verdict) {
        auto removed = co_await containers->remove(at->container_id);
        (void)removed;
        co_return failed(verdict.err());
    }
    if (!verdict->why.empty()) {
        // The new container goes; the running version was never touched.
        auto removed = co_await containers->remove(at->container_id);
        (void)removed;
        if (!previous || previous->container_id.empty()) {
            co_return failed(error{errc::deployment_failed, verdict->why + "; its container was removed"});
        }
        auto kept = co_await containers->inspect(previous->container_id);
        const bool healthy = kept && kept->running;
        error e{errc::deployment_failed, verdict->why + "; rolled back: version " + previous->manifest.version +
                                             "'s container " + previous->container_id +
                                             (healthy ? " kept running" : " is not running either")};
        c.rolled_back = true;
        c.change.restored_healthy = healthy;
        progress r = p;
        r.at = stage::rolled_back;
        r.message = e.message;
        r.exit_code.reset();
        r.output.clear();
        report(r);
        co_return unexpected{e};
    }

    // Go live: the instance now names the new container, then the old one
    // goes. An instance that was stopped or failed comes back through starting.
    co_await move_to(at->instance_id, service_state::starting, "deploying version " + m.version);
    auto grant = co_await register_instance(*at, verdict->health);
    if (!grant) {
        auto removed = co_await containers->remove(at->container_id);
        (void)removed;
        co_return failed(grant.err());
    }
    auto kept = co_await persist(at->instance_id, record_of(*at));
    if (!kept) co_return failed(kept.err());
    if (previous) {
        stop_health_loop(*previous);
        if (!previous->container_id.empty()) {
            step(stage::done, "removing version " + previous->manifest.version + "'s container " + previous->container_id);
            auto removed = co_await containers->remove(previous->container_id);
            (void)removed;  // its lease ends it anyway
        }
    }
    installs[at->instance_id] = at;
    start_health_loop(at);
    step(stage::done, "version " + m.version + " is running");
    deploy_outcome out{at->instance_id, m.name, m.version, "", std::nullopt, grant->revision, at->container_id, at->node};
    if (previous) out.previous_version = previous->manifest.version;
    co_return out;
}

}  // namespace registry::deploy
