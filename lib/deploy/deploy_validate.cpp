// The first stage of a deploy: the archive admitted and unpacked, the
// deployment's identity (instance id, paths) and whether another operation
// or package holds it; then deployment_started.
#include "deploy/deployment.hpp"

namespace registry::deploy {

task<result<void>> deployer::impl::validate(deployment& d, deploy_request& req) {
    deploy_target& t = d.t;
    if (!req.uploaded) {
        auto admitted = unpacker.admit(req.archive);
        if (!admitted) co_return d.failed(admitted.err());
        req.archive = std::move(*admitted);
    }

    // Refused before any work when the request names the package already.
    if (req.name) {
        if (auto refused = check_service_scope(req.by, *req.name, "deploy")) co_return d.failed(*refused);
    }
    d.step(stage::validating, "unpacking " + req.archive.filename().string());
    const std::filesystem::path staging = opts.work_dir / ("staging-" + std::to_string(++stagings));
    // A named request: GCC 12 destroys a braced temporary inside a co_await
    // expression twice.
    unpack_request what{req.archive, staging, req.name, req.version, opts.limits};
    auto unpacked = co_await unpacker.unpack(std::move(what));
    if (!unpacked) co_return d.failed(unpacked.err());
    d.staged.unpacker = &unpacker;
    d.staged.path = staging;
    d.bytes = unpacked->bytes;

    d.at = std::make_shared<installed>();
    installed& at = *d.at;
    at.manifest = unpacked->manifest;
    at.target = &d.t.underlying();
    const package_manifest& m = at.manifest;
    if (m.is_container()) {
        co_return d.failed(error{errc::invalid_request, "'" + m.name + "' is a container package: deploy it with target '" +
                                                            std::string(container_target) + "'"});
    }
    at.instance_id = sanitize_package_name(m.name) + "." + t.name();
    at.home = t.prefix() + "/" + sanitize_package_name(m.name);
    at.dir = t.prefix() + "/" + install_dir_name(m);
    d.p.package = m.name;
    d.p.version = m.version;
    if (auto refused = check_service_scope(req.by, m.name, "deploy")) co_return d.failed(*refused);
    if (auto it = installs.find(at.instance_id); it != installs.end()) {
        if (auto refused = check_owner(req.by, it->second->owner, "redeploy", "deployment", at.instance_id)) {
            co_return d.failed(*refused);
        }
    }
    if (auto ok = acquire(d.busy, at.instance_id); !ok) co_return d.failed(ok.err());
    if (auto it = installs.find(at.instance_id); it != installs.end()) {
        d.previous = it->second;
        at.lease_id = d.previous->lease_id;
    }
    at.owner = d.previous ? d.previous->owner : req.by.name;
    if (d.previous && d.previous->manifest.name != m.name) {
        co_return d.failed(error{errc::conflict, "'" + m.name + "' cannot be deployed on '" + t.name() + "': its instance id '" +
                                                     at.instance_id + "' is package '" + d.previous->manifest.name + "''s"});
    }
    d.restore_checks.at = d.previous;
    d.restore_checks.paused = d.previous && d.previous->checks_paused;
    course& c = d.c;
    c.change.instance_id = at.instance_id;
    c.change.package = m.name;
    c.change.to_version = m.version;
    if (d.previous) c.change.from_version = d.previous->manifest.version;
    c.change.message = "deploying " + m.name + " " + m.version + " on '" + t.name() + "'";
    c.started = true;
    co_await publish(event_type::deployment_started, c);
    co_return result<void>{};
}

}  // namespace registry::deploy
