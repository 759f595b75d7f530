// Lease expiry and bookmarks: the registry's own loop (registry::run).
#include "registry_impl.hpp"

#include <algorithm>

namespace registry {

task<void> registry::impl::expire_due() {
    const time_point now = clk.now();
    store_batch batch;
    std::uint64_t first = 0;
    for (auto due = leases.next_expiry(); due && due->deadline <= now; due = leases.next_expiry()) {
        const std::uint64_t lease_id = due->lease_id;
        leases.expiry.pop();
        auto lit = leases.by_id.find(lease_id);
        const bool by_session = lit->second.orphaned_at && *lit->second.orphaned_at <= lit->second.deadline;
        auto sit = lit->second.service;
        service_ptr gone = sit->second;
        services.erase(sit);
        leases.drop(lease_id);

        auto expired = detail::make_event(event_type::lease_expired, 0, gone, by_session ? "session_closed" : "ttl");
        auto deregistered = detail::make_event(event_type::service_deregistered, 0, gone, "lease_expired");
        const std::uint64_t rev = revisions.next_revision({expired, deregistered});
        if (first == 0) first = rev;
        batch.mutations.push_back({detail::service_key(gone->instance_id), std::nullopt});
    }
    if (first == 0) co_return;
    const std::uint64_t last = revisions.state_revision;
    batch.revision = last;
    co_await commit(std::move(batch), first, last);
}

task<void> registry::impl::write_unwritten() {
    while (!unwritten.empty() && !failed) {
        auto& next = unwritten.front();
        try {
            co_await st.commit(next.batch);  // a copy: the store may fail again
        } catch (const store_unreachable& e) {
            store_problem = e.what();
            co_return;
        } catch (const store_error& e) {
            failed = true;
            store_problem = e.what();
            co_return;
        }
        const std::uint64_t first = next.first;
        const std::uint64_t last = next.last;
        unwritten.pop_front();
        if (first != 0) revisions.mark_durable(first, last);
    }
    if (failed) co_return;
    // Back. The holders of leases that fell due meanwhile were refused their
    // renewals: each such lease gets its TTL again from now (in memory: the
    // stored deadline stays, so a restart before a renewal expires it).
    const time_point now = clk.now();
    for (auto& [lease_id, l] : leases.by_id) {
        if (l.deadline > now) continue;
        l.deadline = now + l.service->second->lease.ttl;
        leases.schedule(lease_id, l);
    }
    store_problem.clear();
}

task<void> registry::run(std::stop_token stop) {
    auto& m = *impl_;
    time_point next_bookmark = m.clk.now() + m.opt.bookmark_interval;
    while (!stop.stop_requested()) {
        // Nothing expires while the store cannot record it.
        if (!m.unwritten.empty()) co_await m.write_unwritten();
        const bool behind = !m.unwritten.empty();
        if (!behind && !m.replica) co_await m.expire_due();
        const time_point now = m.clk.now();
        if (now >= next_bookmark) {
            bookmark();
            next_bookmark = now + m.opt.bookmark_interval;
        }
        time_point until = std::min(next_bookmark, now + m.leases.max_sleep());
        if (behind) {
            until = std::min(until, now + m.opt.store_retry_interval);
        } else if (const auto next = m.leases.next_expiry()) {
            until = std::min(until, next->deadline);
        }
        co_await m.clk.sleep_until(until, stop);
    }
}

void registry::bookmark() {
    auto& m = *impl_;
    if (!m.revisions.watchers.empty()) {
        m.revisions.publish(detail::make_event(event_type::bookmark, m.revisions.published_revision, nullptr), false);
    }
}

}  // namespace registry
