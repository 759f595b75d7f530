// The deployed instance in the registry (its state and registration) and
// the deployment in the store.
#include "deploy/deployer_impl.hpp"
#include "codec/deployment_record.hpp"
#include "codec/keyspace.hpp"

#include <algorithm>

namespace registry::deploy {

namespace {

std::string store_key(const std::string& instance_id) { return std::string(detail::keyspace::deployments) + instance_id; }

}  // namespace

// Moves the instance to `to` when the state machine allows it.
task<void> deployer::impl::move_to(const std::string& id, service_state to, std::string reason) {
    auto s = reg.find(id);
    if (!s || !is_allowed_transition(s->state, to)) co_return;
    auto r = co_await reg.set_state(id, to, std::move(reason));
    (void)r;
}

// The target was lost in the middle of an operation: what the service
// does is unknown, so it is failed (with the reason), and its health
// checks carry on, renewing its lease and bringing it back to running
// once the host answers healthy again.
task<void> deployer::impl::lost_during(installed& at, std::string_view operation, const error& e) {
    at.checks_paused = false;
    co_await move_to(at.instance_id, service_state::failed, std::string(operation) + ": " + e.message);
}

task<result<lease_grant>> deployer::impl::register_instance(installed& at, const std::optional<health_result>& health) {
    registration r;
    service_instance& s = r.service;
    s.name = at.manifest.name;
    s.instance_id = at.instance_id;
    s.version = at.manifest.version;
    if (at.manifest.is_container()) {
        // Its endpoints at the container's own address on its node.
        s.execution.kind = execution_kind::container;
        s.execution.container_id = at.container_id;
        s.execution.image = at.manifest.container->image.empty() ? "preset:" + at.manifest.container->preset.value_or("")
                                                                 : at.manifest.container->image;
        if (!at.address.empty()) {
            for (const auto& p : at.manifest.ports) s.endpoints.push_back(endpoint{p.name, at.address, p.port, p.protocol});
        }
        s.metadata = {{"deployed_by", "registryd"}, {"target", at.target_name()}, {"node", at.node}};
    } else {
        s.execution.kind = execution_kind::managed_process;
        s.execution.command = at.dir + "/scripts/start.sh";
        s.where = at.target->where();
        for (const auto& p : at.manifest.ports) {
            s.endpoints.push_back(endpoint{p.name, at.target->endpoint_address(), p.port, p.protocol});
        }
        s.metadata = {{"deployed_by", "registryd"}, {"install_dir", at.dir}, {"target", at.target->name()}};
    }
    s.depends_on = at.manifest.depends_on;
    if (at.manifest.health && !at.manifest.is_container()) {
        s.checks.push_back(script_check_of(*at.manifest.health));  // health_loop.cpp
    }
    r.script_checks = true;
    // Renewed once per interval plus a health run; a margin for slow hosts.
    const milliseconds interval = at.manifest.health ? at.manifest.health->interval : milliseconds(10000);
    const milliseconds run = at.manifest.health ? at.manifest.health->timeout : milliseconds(0);
    const auto ttl = std::chrono::duration_cast<seconds>(2 * (interval + run)) + seconds(30);
    r.ttl = std::clamp(ttl, reg.options().min_ttl, reg.options().max_ttl);
    r.holder = at.owner;  // the deployer renews it; its owner may act on it too
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
    if (health && at.manifest.health && !at.manifest.is_container()) {
        // The gate's verdict is the script check's first result.
        check_report first{script_check_of(*at.manifest.health).name, health->status, health->output, 1, std::nullopt};
        auto recorded = co_await reg.record_check(at.instance_id, std::move(first));
        (void)recorded;
    } else if (health) {
        auto recorded = co_await reg.record_health(at.instance_id, *health);
        (void)recorded;
    }
    co_return grant;
}

// Writes (or, with nullopt, erases) the instance's stored record.
task<result<void>> deployer::impl::persist(const std::string& instance_id, std::optional<std::string> record) {
    std::vector<store_mutation> mutations;
    mutations.push_back({store_key(instance_id), std::move(record)});
    std::vector<std::shared_ptr<event>> no_events;
    auto written = co_await reg.record(std::move(no_events), std::move(mutations), "deployment");
    if (!written) co_return unexpected{written.err()};
    co_return result<void>{};
}

std::string deployer::impl::record_of(const installed& at) {
    return detail::encode_deployment_record({at.instance_id, at.target_name(), at.home, at.dir, at.manifest, at.owner,
                                             at.container_id, at.node, at.address});
}

}  // namespace registry::deploy
