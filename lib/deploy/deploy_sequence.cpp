// deploy: its stages in order, each in its own file (deployer_impl.hpp),
// then go-live (registered, stored, health-checked); a failed first deploy
// is removed again, and every deploy ends with its event and its log line.
#include "deploy/deployment.hpp"

namespace registry::deploy {

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
    if (req.target == container_target) co_return co_await run_container_deploy(std::move(req), report, c);
    auto target_it = targets.find(req.target);
    if (target_it == targets.end()) {
        progress f;
        f.target = req.target;
        f.at = stage::failed;
        f.message = "no deploy target '" + req.target + "'";
        report(f);
        co_return fail(errc::not_found, f.message);
    }
    deployment d(*target_it->second, report, c);
    d.p.target = req.target;
    if (auto ok = co_await validate(d, req); !ok) co_return unexpected{ok.err()};
    if (auto ok = co_await claim_paths(d); !ok) co_return unexpected{ok.err()};
    if (auto ok = co_await upload(d); !ok) co_return unexpected{ok.err()};
    if (auto ok = co_await install(d, fresh); !ok) co_return unexpected{ok.err()};
    auto started = co_await start(d);
    if (!started) co_return unexpected{started.err()};
    auto verdict = co_await gate(d, *started);
    if (!verdict) co_return unexpected{verdict.err()};
    if (!verdict->why.empty()) {
        auto back = co_await roll_back(d, verdict->why);
        co_return unexpected{back.err()};
    }
    co_return co_await go_live(d, verdict->health, fresh);
}

task<result<deploy_outcome>> deployer::impl::go_live(deployment& d, const std::optional<health_result>& health,
                                                     std::shared_ptr<installed>& fresh) {
    const std::shared_ptr<installed>& at = d.at;
    const package_manifest& m = at->manifest;
    auto grant = co_await register_instance(*at, health);
    if (!grant) co_return d.failed(grant.err());
    fresh.reset();
    auto kept = co_await persist(at->instance_id, record_of(*at));
    if (!kept) co_return d.failed(kept.err());
    if (d.previous) stop_health_loop(*d.previous);
    installs[at->instance_id] = at;
    start_health_loop(at);
    d.step(stage::done, "version " + m.version + " is running");
    deploy_outcome out{at->instance_id, m.name, m.version, at->dir, std::nullopt, grant->revision, {}, {}};
    if (d.old) out.previous_version = d.old->manifest.version;
    co_return out;
}

}  // namespace registry::deploy
