// A registry that follows another process's writes (registry::become_replica):
// the writer's transactions come in through apply(), reads may wait on the
// embedder's barrier.
#include "registry_impl.hpp"

#include <algorithm>

namespace registry {

void registry::become_replica(std::string writer) {
    auto& m = *impl_;
    m.replica = true;
    m.writer = std::move(writer);
    m.leases.clear();  // the writer expires them; the lease entries would point at records apply() replaces
}

bool registry::is_replica() const noexcept { return impl_->replica; }

result<void> registry::apply(const std::vector<store_mutation>& txn) {
    auto& m = *impl_;
    // Everything is decoded before anything changes.
    std::vector<std::pair<std::string_view, service_ptr>> records;  // null: erased
    std::vector<std::pair<std::uint64_t, std::vector<std::shared_ptr<event>>>> logged;
    for (const auto& mu : txn) {
        if (mu.key.starts_with(detail::keyspace::services)) {
            const std::string_view id = std::string_view(mu.key).substr(detail::keyspace::services.size());
            if (!mu.value) {
                records.emplace_back(id, nullptr);
                continue;
            }
            auto decoded = detail::decode_service_record(*mu.value);
            if (!decoded) return fail(errc::internal, "replicated record '" + mu.key + "': " + decoded.err().message);
            records.emplace_back(id, std::make_shared<const service_instance>(std::move(decoded.value())));
        } else if (const auto r = detail::event_log_revision(mu.key)) {
            if (!mu.value) continue;  // trimmed from the log: the history trims itself
            auto events = detail::decode_event_log(*mu.value, *r);
            if (!events) return fail(errc::internal, "replicated event log entry '" + mu.key + "': " + events.err().message);
            logged.emplace_back(*r, std::move(events.value()));
        }
        // Other keys are companions' (containers, deployments): the writer's own.
    }
    std::sort(logged.begin(), logged.end(), [](const auto& a, const auto& b) { return a.first < b.first; });
    // One transaction may carry several revisions (the writer's store commits
    // the batches queued meanwhile together): each follows the one before.
    for (std::uint64_t last = m.revisions.published_revision; const auto& [r, events] : logged) {
        if (r > last + 1) {
            return fail(errc::internal, "replicated revision " + std::to_string(r) + " does not follow revision " +
                                            std::to_string(last));
        }
        last = std::max(last, r);
    }

    for (auto& [id, s] : records) {
        if (s) {
            m.services.insert_or_assign(std::string(id), std::move(s));
        } else if (auto it = m.services.find(id); it != m.services.end()) {
            m.services.erase(it);
        }
    }
    for (auto& [r, events] : logged) {
        if (r <= m.revisions.published_revision) continue;  // seen already (a log entry rewritten by a retry)
        m.revisions.state_revision = m.revisions.published_revision = r;
        for (auto& e : events) m.revisions.publish(std::move(e), true);
    }
    return result<void>{};
}

void registry::set_read_barrier(read_barrier_fn barrier) { impl_->barrier = std::move(barrier); }

bool registry::has_read_barrier() const noexcept { return static_cast<bool>(impl_->barrier); }

task<result<void>> registry::read_barrier() {
    if (!impl_->barrier) co_return result<void>{};
    co_return co_await impl_->barrier();
}

}  // namespace registry
