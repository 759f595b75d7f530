// The reaper: a sweep driven by the clock that stops and removes the
// containers whose lease has expired (managed and held ones) on online
// nodes, with retries and backoff, and reports what it could not remove.
#include "container_events.hpp"
#include "manager_impl.hpp"

#include <registry/cancellation.hpp>
#include <registry/registry.hpp>

#include <algorithm>

namespace registry {

using namespace containers;

// A lease set while the reaper sleeps is at least min_ttl away, so it
// never needs waking early. (A held container's may be nearer: it is
// reaped up to this much late.)
milliseconds container_manager::impl::max_sleep() const {
    return std::max(milliseconds{1}, std::min<milliseconds>(opt.min_ttl, opt.sweep_interval));
}

task<void> container_manager::impl::reaper() {
    while (!stopping.stop_requested()) {
        const time_point now = clk.now();
        time_point next = now + max_sleep();
        std::vector<std::uint64_t> due;
        for (auto& [id, slot] : book.slots()) {
            if (slot.reaping) continue;
            const node_ptr n = pool.find(slot.c->engine);
            if (!n || !n->online) continue;
            const time_point at = std::max(slot.c->expires_at, slot.retry_at);
            if (at <= now) {
                slot.reaping = true;
                due.push_back(id);
            } else {
                next = std::min(next, at);
            }
        }
        std::vector<held_key> held_due;
        for (auto& [key, slot] : book.held()) {
            if (slot.reaping) continue;
            const node_ptr n = pool.find(key.first);
            if (!n || !n->online) continue;
            const time_point at = std::max(slot.expires_at, slot.retry_at);
            if (at <= now) {
                slot.reaping = true;
                held_due.push_back(key);
            } else {
                next = std::min(next, at);
            }
        }
        for (std::uint64_t id : due) work.spawn(reap(id));
        for (auto& key : held_due) work.spawn(reap_held(std::move(key)));
        co_await book.forget_past_lost_deadlines(now);
        const bool slept = co_await clk.sleep_until(next, stopping);
        if (!slept) break;
    }
}

task<result<void>> container_manager::impl::stop_and_remove(container_engine& engine, const std::string& id) {
    auto stopped = co_await engine.stop(id, opt.stop_grace, stopping);
    if (!stopped && stopped.err().code != errc::not_found) co_return unexpected{stopped.err()};
    auto removed = co_await engine.remove(id, true, stopping);
    if (!removed && removed.err().code != errc::not_found) co_return unexpected{removed.err()};
    co_return result<void>{};
}

// Stops and removes a container in up to reap_attempts tries, with
// exponential backoff between them. Before each try `node_of()` names the
// node it is on, or nullptr when it is no longer ours to reap (given_up,
// as on stop). `last` is the last try's failure when every try failed.
template <typename NodeOf>
task<container_manager::impl::reap_result> container_manager::impl::remove_with_retries(
    NodeOf node_of, const std::string& container_id, error& last) {
    for (unsigned attempt = 0; attempt < opt.reap_attempts; ++attempt) {
        if (attempt > 0) {
            const bool slept = co_await clk.sleep_until(clk.now() + opt.reap_backoff * (1 << (attempt - 1)),
                                                       stopping);
            if (!slept) co_return reap_result::given_up;
        }
        const node_ptr n = node_of();
        if (!n) co_return reap_result::given_up;
        auto done = co_await stop_and_remove(*n->cfg.engine, container_id);
        if (done) co_return reap_result::removed;
        last = done.err();
    }
    co_return reap_result::failed;
}

task<void> container_manager::impl::reap(std::uint64_t lease_id) {
    try {
        co_await reap_attempts(lease_id);
    } catch (const operation_cancelled&) {
    }
}

task<void> container_manager::impl::reap_attempts(std::uint64_t lease_id) {
    auto c = book.current(lease_id);
    if (!c) co_return;
    if (!book.slots()[lease_id].expiry_announced) {
        book.slots()[lease_id].expiry_announced = true;
        auto events = only(container_event(event_type::lease_expired, c, "ttl"));
        std::vector<store_mutation> none;
        auto announced = co_await reg.record(std::move(events), std::move(none), "lease expiry");
        if (!announced) co_return;
    }
    resource_usage usage = c->usage;
    if (const node_ptr n = pool.find(c->engine)) usage = co_await sampled(*n, c);  // before its figures go
    error last;
    const reap_result reaped = co_await remove_with_retries(
        [&]() -> node_ptr {
            auto now_c = book.current(lease_id);
            return now_c ? pool.find(now_c->engine) : nullptr;  // none: lost meanwhile
        },
        c->container_id, last);
    c = book.current(lease_id);
    if (!c || reaped == reap_result::given_up) co_return;
    report_reap(c->engine, c->container_id, lease_id, reaped, last);
    if (reaped == reap_result::removed) {
        auto gone = containers::with_usage_of(containers::with_state(c, managed_state::removed), usage);
        auto events = only(state_changed(gone, c->state, "lease_expired"));
        auto dropped = co_await book.drop(lease_id, std::move(events), "reaped container");
        (void)dropped;
        co_return;
    }
    auto& slot = book.slots()[lease_id];
    slot.reaping = false;
    slot.retry_at = clk.now() + opt.sweep_interval;
    co_await report_reap_failure(std::move(c), last);
}

// A held container is reaped without events (it is nobody's business but
// its holder's, which is gone), with the same retries; only a sweep whose
// every attempt failed is reported, as for a lease, since an operator must
// hear of a container that stays behind.
task<void> container_manager::impl::reap_held(held_key key) {
    try {
        co_await reap_held_attempts(std::move(key));
    } catch (const operation_cancelled&) {
    }
}

task<void> container_manager::impl::reap_held_attempts(held_key key) {
    error last;
    const reap_result reaped = co_await remove_with_retries(
        [&]() -> node_ptr { return book.held().contains(key) ? pool.find(key.first) : nullptr; },  // none: released
        key.second, last);
    auto it = book.held().find(key);
    if (it == book.held().end() || reaped == reap_result::given_up) co_return;
    report_reap(key.first, key.second, 0, reaped, last);
    if (reaped == reap_result::removed) {
        book.held().erase(it);
        co_return;
    }
    it->second.reaping = false;
    it->second.retry_at = clk.now() + opt.sweep_interval;
    auto c = std::make_shared<managed_container>();  // lease_id 0: held, not leased
    c->engine = key.first;
    c->container_id = key.second;
    c->expires_at = it->second.expires_at;
    c->state = managed_state::running;
    co_await report_reap_failure(std::move(c), last);
}

void container_manager::impl::report_reap(const std::string& engine, const std::string& container_id,
                                          std::uint64_t lease_id, reap_result reaped, const error& last) const {
    if (!opt.on_reap) return;
    const bool removed = reaped == reap_result::removed;
    opt.on_reap(reap_report{engine, container_id, lease_id, removed, clk.now(), removed ? std::string() : last.message});
}

task<void> container_manager::impl::report_reap_failure(container_ptr c, const error& last) {
    auto e = container_event(event_type::container_reap_failed, std::move(c), last.message, std::nullopt,
                             opt.reap_attempts);
    e->failure = last;
    auto events = only(std::move(e));
    std::vector<store_mutation> none;
    auto reported = co_await reg.record(std::move(events), std::move(none), "reap failure");
    (void)reported;
}

}  // namespace registry
