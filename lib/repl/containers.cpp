// The REPL executor: an execution's container, created (or taken warm); removing containers.
#include "executor_impl.hpp"
#include "driver.hpp"

#include <string>

namespace registry::repl {

container_spec executor::impl::spec_for(const language& lang, const limits& lim, std::string_view execution_id,
                                        time_point deadline) const {
    container_spec spec;
    spec.image = lang.image;
    spec.command = detail::driver_command();
    spec.env = {{"HOME", std::string(detail::work_dir)}, {"TMPDIR", "/tmp"}, {"LANG", "C.UTF-8"}};
    if (leases) spec.labels = leases->lease_labels(deadline);
    spec.labels.emplace(repl_labels::marker, "1");
    spec.labels.emplace(repl_labels::language, lang.name);
    if (!execution_id.empty()) spec.labels.emplace(repl_labels::execution, execution_id);
    spec.limits.memory_bytes = lim.memory_bytes;
    spec.limits.pids = lim.pids;
    spec.limits.cpus = lim.cpu_millicores / 1000.0;
    spec.network = lim.network ? container_network::default_ : container_network::none;
    spec.read_only_rootfs = true;
    spec.user = opts.user;
    spec.tmpfs = {{std::string(detail::work_dir),
                   "rw,nosuid,nodev,size=" + std::to_string(opts.work_dir_bytes) + ",mode=1777"},
                  {"/tmp", "rw,nosuid,nodev,size=16m,mode=1777"}};
    spec.drop_all_capabilities = true;
    spec.no_new_privileges = true;
    return spec;
}

// Creates a container, reports it to the lease sink and starts it (its
// command waits for its program: driver.hpp); the id, or the error (the
// container is already removed then). Not cancellable: a create cut short
// could leave a container nobody knows of.
task<result<std::string>> executor::impl::create(engine_state& eng, container_spec spec, time_point deadline) {
    auto id = co_await eng.slot.engine->create(std::move(spec));
    if (!id) co_return unexpected{id.err()};
    result<void> ready;
    if (leases) ready = co_await leases->container_created(eng.slot.name, *id, deadline);
    if (ready) ready = co_await eng.slot.engine->start(*id);
    if (!ready) {
        co_await discard(eng, *id);
        co_return unexpected{ready.err()};
    }
    co_return std::move(*id);
}

// Removes a container whatever happens (never cancelled: it must go). An
// engine may refuse while the container is still exiting: retried with
// a backoff, then by the housekeeping loop.
task<void> executor::impl::discard(engine_state& eng, std::string id) {
    bool gone = false;
    for (int attempt = 0; attempt < 4 && !gone; ++attempt) {
        if (attempt > 0) co_await clk.sleep_until(clk.now() + milliseconds(100 << attempt));
        try {
            auto removed = co_await eng.slot.engine->remove(id, true);
            gone = removed || removed.err().code == errc::not_found;
        } catch (...) {
        }
    }
    if (!gone) {
        eng.stranded.insert(std::move(id));
        co_return;
    }
    eng.stranded.erase(id);
    if (leases) {
        try {
            co_await leases->container_removed(eng.slot.name, id);
        } catch (...) {
        }
    }
}

task<result<std::string>> executor::impl::acquire(execution& ex, engine_state& eng) {
    if (ex.warm_eligible) {
        if (auto id = take_warm(eng, *ex.lang)) {
            fill_pools();
            co_return std::move(*id);
        }
    }
    const time_point deadline = clk.now() + ex.lim.timeout + opts.lease_grace;
    auto id = co_await create(eng, spec_for(*ex.lang, ex.lim, ex.id, deadline), deadline);
    if (!id && id.err().code == errc::not_found) {
        const std::string version = ex.lang->version.empty() ? "" : " version '" + ex.lang->version + "'";
        co_return fail(errc::not_found, "image '" + ex.lang->image + "' of language '" + ex.lang->name + "'" +
                                            version + " is not on engine '" + eng.slot.name +
                                            "' (build it: scripts/build-repl-images.sh): " + id.err().message);
    }
    co_return id;
}

}  // namespace registry::repl
