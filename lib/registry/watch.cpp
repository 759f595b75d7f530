// The event stream (registry::watch): a snapshot or a replay from the
// history, then the live events the revision line hands each watcher.
#include "registry_impl.hpp"

#include <algorithm>
#include <stop_token>

namespace registry {

async_generator<event_ptr> registry::watch(watch_options options) {
    auto& m = *impl_;
    detail::watcher w;
    w.id = m.revisions.next_watcher_id++;
    w.types = std::move(options.types);
    w.services = std::move(options.services);
    w.wire = options.wire;

    // Registered before the first item is yielded: nothing published while
    // the consumer digests the snapshot or replay is missed.
    m.revisions.watchers.emplace(w.id, &w);
    struct unregister {
        impl& m;
        std::uint64_t id;
        ~unregister() { m.revisions.watchers.erase(id); }
    } guard{m, w.id};

    struct wake_on_stop {
        detail::watcher* w;
        void operator()() const noexcept {
            w->closed = true;
            if (w->waiting) std::exchange(w->waiting, {}).resume();
        }
    };
    std::stop_callback<wake_on_stop> on_stop(options.stop, wake_on_stop{&w});
    if (w.closed) co_return;

    auto resync_event = [&](std::uint64_t from, std::uint64_t oldest) {
        auto r = detail::make_event(event_type::resync_required, m.revisions.published_revision, nullptr);
        r->resync_from = from;
        r->oldest_revision = oldest;
        return r;
    };

    std::vector<event_ptr> initial;
    if (options.from_revision) {
        const std::uint64_t from = *options.from_revision;
        if (from > m.revisions.state_revision || from + 1 < m.revisions.first_retained) {
            initial.push_back(resync_event(from, m.revisions.first_retained));
            initial.push_back(m.snapshot_event(w.services));
            w.skip_through = m.revisions.state_revision;
        } else {
            for (const auto& e : m.revisions.history) {
                if (e->revision > from && w.wants(*e)) initial.push_back(e);
            }
            w.skip_through = std::max(from, m.revisions.published_revision);
        }
    } else if (options.snapshot) {
        initial.push_back(m.snapshot_event(w.services));
        w.skip_through = m.revisions.state_revision;
    } else {
        w.skip_through = m.revisions.state_revision;
    }

    for (auto& e : initial) {
        if (w.closed) co_return;
        w.delivered_through = std::max(w.delivered_through, e->revision);
        co_yield e;
    }

    struct next_event {
        detail::watcher& w;
        bool await_ready() const noexcept { return w.closed || w.overflowed || !w.queue.empty(); }
        void await_suspend(std::coroutine_handle<> h) noexcept { w.waiting = h; }
        void await_resume() const noexcept {}
    };

    while (true) {
        co_await next_event{w};
        if (w.closed) co_return;
        if (w.overflowed) {
            // Too far behind to keep queueing: say so, then start over from a snapshot.
            w.overflowed = false;
            w.queue.clear();
            event_ptr r = resync_event(w.delivered_through, m.revisions.published_revision + 1);
            event_ptr snap = m.snapshot_event(w.services);
            w.skip_through = m.revisions.state_revision;
            co_yield r;
            if (w.closed) co_return;
            w.delivered_through = snap->revision;
            co_yield snap;
            continue;
        }
        event_ptr e = std::move(w.queue.front());
        w.queue.pop_front();
        w.delivered_through = e->revision;
        co_yield e;
    }
}

}  // namespace registry
