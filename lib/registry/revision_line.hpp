// The registry's revision line: every change gets the next revision, its
// events wait until it is durable and then go out strictly in revision order,
// into the history (resume-from-revision) and to every watcher that wants
// them.
//
// Header-only on purpose: every write assigns a revision and publishes, and
// these stay inlined into the operations that use them.
#pragma once

#include <registry/event.hpp>
#include <registry/registry.hpp>

#include <coroutine>
#include <cstdint>
#include <deque>
#include <map>
#include <memory>
#include <set>
#include <string>
#include <unordered_map>
#include <utility>
#include <vector>

namespace registry::detail {

// Events are built mutable, then frozen (event_ptr) once they are published:
// their revision set, their wire bytes encoded.
inline std::shared_ptr<event> make_event(event_type type, std::uint64_t revision, service_ptr service,
                                         std::string reason = {}) {
    auto e = std::make_shared<event>();
    e->type = type;
    e->revision = revision;
    e->service = std::move(service);
    e->reason = std::move(reason);
    return e;
}

// One watch() stream's state, owned by the generator's frame.
struct watcher {
    std::uint64_t id = 0;
    std::set<event_type> types;
    std::set<std::string> services;
    std::deque<event_ptr> queue;
    std::coroutine_handle<> waiting;  // the generator, suspended for the next event
    std::uint64_t skip_through = 0;   // live events at or below this revision were covered by the snapshot/replay
    std::uint64_t delivered_through = 0;
    bool wire = false;  // watch_options::wire
    bool overflowed = false;
    bool closed = false;

    bool wants(const event& e) const {
        if (e.type != event_type::bookmark && !types.empty() && !types.contains(e.type)) return false;
        if (!services.empty() && e.service && !services.contains(e.service->name)) return false;
        if (!services.empty() && e.deployment && !services.contains(e.deployment->package)) return false;
        return true;
    }
};

struct revision_line {
    explicit revision_line(const registry_options& o) : opt(o) {}

    const registry_options& opt;
    event_encoder encode = nullptr;  // registry::set_event_encoder

    std::uint64_t state_revision = 0;      // last revision assigned to a change
    std::uint64_t published_revision = 0;  // last revision whose events went out
    std::map<std::uint64_t, std::vector<std::shared_ptr<event>>> unpublished;  // revision -> events, until durable
    std::set<std::uint64_t> durable;                              // durable but waiting for an earlier revision

    std::deque<event_ptr> history;
    std::uint64_t first_retained = 1;  // every event with revision >= this is in history

    std::unordered_map<std::uint64_t, watcher*> watchers;
    std::uint64_t next_watcher_id = 1;

    // Assigns the next revision to a change and queues its events; they go
    // out once it is durable. The caller must start the store commit before
    // anything else can run (no suspension, no schedule() in between), so
    // that commits are started in revision order.
    std::uint64_t next_revision(std::vector<std::shared_ptr<event>> events) {
        const std::uint64_t rev = ++state_revision;
        auto& queued = unpublished[rev];
        for (auto& e : events) {
            e->revision = rev;
            queued.push_back(std::move(e));
        }
        return rev;
    }

    // Marks revisions durable and publishes, strictly in revision order,
    // whatever order the resumptions happen in.
    void mark_durable(std::uint64_t first, std::uint64_t last) {
        for (std::uint64_t r = first; r <= last; ++r) durable.insert(r);
        while (!durable.empty() && *durable.begin() == published_revision + 1) {
            const std::uint64_t rev = *durable.begin();
            durable.erase(durable.begin());
            auto node = unpublished.extract(rev);
            published_revision = rev;
            if (!node.empty()) {
                for (auto& e : node.mapped()) publish(std::move(e), true);
            }
        }
    }

    void remember(const event_ptr& e) {
        history.push_back(e);
        if (history.size() <= opt.history_limit) return;
        // Trim whole revisions only, so a replay never gets half a change.
        std::uint64_t trimmed = 0;
        while (history.size() > opt.history_limit) {
            trimmed = history.front()->revision;
            history.pop_front();
        }
        while (!history.empty() && history.front()->revision == trimmed) history.pop_front();
        first_retained = trimmed + 1;
    }

    // Never throws into the write that publishes: out of memory, the event
    // goes without its bytes (a subscriber then encodes its own).
    std::shared_ptr<const std::string> wire_of(const event& e) const noexcept {
        try {
            return encode(e);
        } catch (...) {
            return nullptr;
        }
    }

    // Encodes the event's wire bytes for the first watcher that sends them
    // (watch_options::wire), before any such watcher has it: every one then
    // shares them.
    void publish(std::shared_ptr<event> e, bool keep) {
        std::vector<std::uint64_t> to_wake;
        for (auto& [id, w] : watchers) {
            if (w->closed || w->overflowed || e->revision <= w->skip_through || !w->wants(*e)) continue;
            if (w->wire && encode && !e->wire) e->wire = wire_of(*e);
            if (w->queue.size() >= opt.watch_queue_limit) {
                w->overflowed = true;
                w->queue.clear();
            } else {
                w->queue.push_back(e);
            }
            if (w->waiting) to_wake.push_back(id);
        }
        if (keep) remember(e);
        // Resuming a consumer may end other watches, or record a change whose
        // publish (nested in this one) already woke and drained them: look
        // each one up again, and wake it only if it has something to read.
        for (std::uint64_t id : to_wake) {
            auto it = watchers.find(id);
            if (it == watchers.end() || !it->second->waiting) continue;
            watcher& w = *it->second;
            if (w.closed || w.overflowed || !w.queue.empty()) std::exchange(w.waiting, {}).resume();
        }
    }
};

}  // namespace registry::detail
