// The REPL executor: engine slots, the FIFO queue, cancellation.
#include "executor_impl.hpp"

#include <registry/ownership.hpp>

#include <algorithm>

namespace registry::repl {

// Without a sink every engine is; with one, the ones it calls online.
bool executor::impl::usable(const engine_state& e) const { return !leases || leases->online(e.slot.name); }

detail::engine_state* executor::impl::free_engine() {
    engine_state* best = nullptr;
    for (auto& e : engines) {
        if (e.active >= e.slot.max_concurrent || !usable(e)) continue;
        if (!best || e.active * best->slot.max_concurrent < best->active * e.slot.max_concurrent) best = &e;
    }
    return best;
}

result<void> executor::impl::add_engine(engine_slot slot) {
    if (!slot.engine) return fail(errc::invalid_request, "engine '" + slot.name + "': no client");
    if (slot.max_concurrent == 0) return fail(errc::invalid_request, "engine '" + slot.name + "': max_concurrent must be at least 1");
    const auto known = std::find_if(engines.begin(), engines.end(), [&](const engine_state& e) { return e.slot.name == slot.name; });
    if (known == engines.end()) {
        engines.emplace_back(std::move(slot));
    } else {
        known->slot = std::move(slot);
    }
    dispatch();
    return {};
}

void executor::impl::report_positions() {
    std::size_t position = 0;
    for (auto& ex : queue) {
        if (++position == ex->last_position) continue;
        ex->last_position = position;
        for (auto& l : ex->listeners) l->on_queued(ex->id, position);
    }
}

void executor::impl::dispatch() {
    bool moved = false;
    while (!queue.empty()) {
        engine_state* eng = free_engine();
        if (!eng) break;
        execution_ptr ex = std::move(queue.front());
        queue.pop_front();
        start(ex, *eng);
        moved = true;
    }
    if (moved) report_positions();
}

void executor::impl::start(const execution_ptr& ex, engine_state& eng) {
    ex->state = phase::running;
    ++eng.active;
    ++running_count;
    tasks.spawn(run_execution(ex, eng));
}

void executor::impl::finish(execution& ex) {
    ex.state = phase::finished;
    if (ex.counted) {
        ex.counted = false;
        auto it = active_by_owner.find(ex.owner);
        if (it != active_by_owner.end() && --it->second == 0) active_by_owner.erase(it);
    }
    ex.finished_at = clk.now();
    ex.result.finished_at = ex.finished_at;
    auto listeners = std::move(ex.listeners);
    ex.listeners.clear();
    for (auto& l : listeners) l->on_finished(ex.result);
    if (opts.on_finished) opts.on_finished(ex.result);
}

result<void> executor::impl::cancel(std::string_view id, const identity& by) {
    auto it = executions.find(id);
    if (it == executions.end()) return fail(errc::not_found, "no execution '" + std::string(id) + "'");
    execution_ptr ex = it->second;
    if (auto refused = check_owner(by, ex->owner, "cancel", "execution", ex->id)) {
        return unexpected{std::move(*refused)};
    }
    if (ex->state == phase::queued) {
        queue.erase(std::find(queue.begin(), queue.end(), ex));
        ex->result.cancelled = true;
        finish(*ex);
        report_positions();
    } else if (ex->state == phase::running && !ex->cancel_requested) {
        ex->cancel_requested = true;
        ex->cancel->request_stop();
    }
    return {};
}

}  // namespace registry::repl
