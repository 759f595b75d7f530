#include "subsystem_options.hpp"

#include "observability/log.hpp"

#include <boost/asio/io_context.hpp>

#include <chrono>
#include <filesystem>
#include <stdexcept>
#include <string>
#include <system_error>
#include <utility>

namespace registryd {

registry::registry_options registry_options_from(const config& cfg) {
    registry::registry_options o;
    o.default_ttl = cfg.registry.default_ttl;
    o.min_ttl = cfg.registry.min_ttl;
    o.max_ttl = cfg.registry.max_ttl;
    o.session_grace = std::chrono::duration_cast<std::chrono::milliseconds>(cfg.registry.session_grace);
    o.history_limit = cfg.registry.history_limit;
    o.bookmark_interval = std::chrono::duration_cast<std::chrono::milliseconds>(cfg.registry.bookmark_interval);
    o.max_services_per_origin = cfg.quotas.registrations_per_address;
    o.max_services_per_session = cfg.quotas.registrations_per_connection;
    // Several registryd on one etcd: standbys publish what the writer logged,
    // and a new writer replays it (store/etcd_store_port.hpp).
    o.event_log = cfg.store.type == config::store_section::kind::etcd;
    return o;
}

docker_engine_options engine_options_from(const config& cfg) {
    docker_engine_options options;
    options.ping_timeout = std::chrono::duration_cast<std::chrono::milliseconds>(cfg.containers.heartbeat_timeout);
    return options;
}

std::vector<std::unique_ptr<docker_engine>> make_engines(boost::asio::io_context& ioc,
                                                                   const config& cfg) {
    std::vector<std::unique_ptr<docker_engine>> out;
    for (const auto& e : cfg.containers.engines) {
        auto endpoint = engine_endpoint::parse(e.endpoint);
        if (!endpoint) throw std::runtime_error("engine '" + e.name + "': " + endpoint.err().message);
        out.push_back(std::make_unique<docker_engine>(ioc, std::move(endpoint).value(),
                                                                 engine_options_from(cfg)));
    }
    return out;
}

std::unique_ptr<registry::container_manager> make_container_manager(
    registry::registry& reg, registry::clock& clk, registry::store& st, const config& cfg,
    const std::vector<std::unique_ptr<docker_engine>>& engines, metrics& m) {
    // On etcd, the writer runs containers on what the other registryd offer
    // (cluster/member_engines.hpp) even with no engine of its own.
    const bool member_engines = cfg.store.type == config::store_section::kind::etcd && cfg.store.etcd.share_engines;
    if (engines.empty() && !cfg.containers.accept_registered_engines && !member_engines) return nullptr;
    const auto& C = cfg.containers;
    std::vector<registry::container_node> nodes;
    for (std::size_t i = 0; i < engines.size(); ++i) {
        nodes.push_back({C.engines[i].name, C.engines[i].endpoint, engines[i].get(), C.engines[i].capacity});
    }
    registry::container_manager_options o;
    o.instance_id = C.instance_id;
    o.default_ttl = C.default_ttl;
    o.max_ttl = C.max_ttl;
    o.heartbeat_interval = C.heartbeat_interval;
    o.heartbeat_timeout = C.heartbeat_timeout;
    o.reap_attempts = static_cast<unsigned>(C.reap_attempts);
    o.reap_backoff = C.reap_backoff;
    o.sweep_interval = C.sweep_interval;
    o.stop_grace = C.stop_grace;
    o.presets = C.presets;
    o.policy = C.policy;
    o.max_queued = C.max_queued;
    o.max_queued_per_identity = C.max_queued_per_identity;
    // Its requester's connection is gone with the registryd that queued it.
    o.on_queue_dropped = [](const registry::queued_create& q) {
        log::warn("queued container create dropped",
                  {{"queue_id", q.queue_id}, {"owner", q.owner}, {"image", q.image},
                   {"engine", q.engine.value_or("")}, {"queued_at_ms", static_cast<std::int64_t>(q.queued_at.time_since_epoch().count())},
                   {"reason", "registryd restarted"}});
    };
    // Every reaping leaves a line, besides its events: an operator reading
    // the log sees who reaped what, when, and how it went.
    o.on_reap = [&m](const registry::reap_report& r) {
        m.container_reaped(r.removed);
        const std::int64_t timestamp = r.at.time_since_epoch().count();
        if (r.removed) {
            log::info("container reaped", {{"container_id", r.container_id}, {"action", "reap"}, {"status", "removed"},
                                           {"timestamp", timestamp}, {"engine", r.engine}, {"lease_id", r.lease_id}});
        } else {
            log::warn("container reap failed",
                      {{"container_id", r.container_id}, {"action", "reap"}, {"status", "failed"},
                       {"timestamp", timestamp}, {"engine", r.engine}, {"lease_id", r.lease_id}, {"error", r.error}});
        }
    };
    o.on_node_change = [](const registry::node_change& c) {
        if (c.online) {
            log::info("container engine online", {{"engine", c.engine}});
        } else {
            log::info("container engine offline", {{"engine", c.engine}, {"reason", log::clip(c.reason)}});
        }
    };
    return std::make_unique<registry::container_manager>(reg, clk, st, std::move(nodes), o);
}

registry::deploy::deployer_options deployer_options_from(const config& cfg, metrics& m) {
    registry::deploy::deployer_options o;
    o.work_dir = deploy_work_dir(cfg);
    o.script_timeout = std::chrono::duration_cast<std::chrono::milliseconds>(cfg.deploy.script_timeout);
    o.limits.max_total_bytes = cfg.deploy.max_package_bytes;
    // {"msg":"deploy","outcome":"rolled_back","package":...,"version":...,"target":...}
    o.log = [&m](const registry::deploy::operation_record& r) {
        m.deploy_finished(r.operation, r.outcome);
        const std::string_view code = r.error ? registry::to_string(*r.error) : std::string_view{};
        log::info(r.operation, {{"outcome", r.outcome},
                                {"package", r.package},
                                {"version", r.version},
                                {"from_version", r.from_version.value_or("")},
                                {"target", r.target},
                                {"instance_id", r.instance_id},
                                {"code", code},
                                {"message", r.message}});
    };
    std::error_code ec;
    std::filesystem::create_directories(o.work_dir, ec);
    if (ec) throw std::runtime_error("cannot create deploy.work_dir " + o.work_dir.string() + ": " + ec.message());
    // Staging directories left by a previous run are of no use now.
    for (const auto& e : std::filesystem::directory_iterator(o.work_dir, ec)) {
        if (e.path().filename().string().rfind("staging-", 0) == 0) std::filesystem::remove_all(e.path(), ec);
    }
    return o;
}

registry::deploy::upload_options upload_options_from(const config& cfg) {
    registry::deploy::upload_options o;
    o.max_bytes = cfg.deploy.max_upload_bytes;
    o.max_chunk_bytes = cfg.deploy.upload_chunk_bytes;
    o.max_uploads = cfg.deploy.max_uploads;
    o.max_per_identity = cfg.deploy.max_uploads_per_identity;
    o.idle_timeout = std::chrono::duration_cast<std::chrono::milliseconds>(cfg.deploy.upload_idle_timeout);
    return o;
}

}  // namespace registryd
