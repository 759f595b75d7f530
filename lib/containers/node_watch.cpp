// A node's online state: its heartbeat pings the engine; a node that answers
// comes online once reconciled with what the engine runs, one that does not
// answer for heartbeat_timeout goes offline and its containers are lost.
#include "container_events.hpp"
#include "manager_impl.hpp"

#include <registry/cancellation.hpp>

#include <map>
#include <set>

namespace registry {

using namespace containers;

void container_manager::impl::start_node(const node_ptr& n) {
    n->stop_with_manager.emplace(stopping, stop_requester{&n->leaving});
    if (!stopping.stop_requested()) work.spawn(heartbeat(n));
}

task<void> container_manager::impl::heartbeat(node_ptr np) {
    node& n = *np;
    const std::stop_token stop = n.token();
    while (!stop.stop_requested()) {
        result<void> pinged = not_yet();
        try {
            pinged = co_await n.cfg.engine->ping(stop);
        } catch (const operation_cancelled&) {
            break;
        }
        if (n.left) break;
        const time_point now = clk.now();
        if (pinged) {
            n.last_heartbeat = now;
            if (!n.online) co_await come_online(n);
        } else if (n.online && (!n.last_heartbeat || now - *n.last_heartbeat >= opt.heartbeat_timeout)) {
            co_await go_offline(n, "engine offline: " + pinged.err().message);
        }
        const bool slept = co_await clk.sleep_until(now + opt.heartbeat_interval, stop);
        if (!slept) break;
    }
}

task<void> container_manager::impl::come_online(node& n) {
    label_selector ours;
    ours.equals(std::string(container_labels::instance), opt.instance_id);
    result<std::vector<container_summary>> listed = not_yet();
    try {
        listed = co_await n.cfg.engine->list(ours, n.token());
    } catch (const operation_cancelled&) {
        co_return;
    }
    if (!listed || n.left) co_return;  // stays offline; the next heartbeat tries again
    std::map<std::uint64_t, const container_summary*> found;
    std::set<std::string> held_found;
    for (const auto& s : *listed) {
        if (s.labels.contains(std::string(container_labels::holder))) {
            if (book.adopt_held(n.cfg.name, s)) held_found.insert(s.id);
            continue;
        }
        auto lease_label = s.labels.find(std::string(container_labels::lease));
        auto expires_label = s.labels.find(std::string(container_labels::expires));
        if (lease_label == s.labels.end() || expires_label == s.labels.end()) continue;
        auto lease_id = parse_number<std::uint64_t>(lease_label->second);
        auto expires = parse_number<std::int64_t>(expires_label->second);
        if (!lease_id || !expires) continue;
        found.emplace(*lease_id, &s);
        book.note_lease_id(*lease_id);

        const managed_state state = from_engine(s.status);
        container_ptr known = book.current(*lease_id);
        if (known && (known->engine != n.cfg.name || known->container_id != s.id)) continue;
        // What the listing does not say: times, error, exit code (and
        // without a record, what it runs).
        std::optional<container_info> inspected;
        if (!known || known->state != state) {
            result<container_info> info = not_yet();
            try {
                info = co_await n.cfg.engine->inspect(s.id, n.token());
            } catch (const operation_cancelled&) {
                co_return;
            }
            if (n.left) co_return;
            if (info) inspected = std::move(*info);
            if (book.current(*lease_id) != known) continue;  // changed meanwhile: not ours to overwrite
        }
        auto next = std::make_shared<managed_container>();
        if (known) {
            *next = *known;  // the stored lease, extensions included
        } else {
            next->lease_id = *lease_id;
            next->engine = n.cfg.name;
            next->container_id = s.id;
            next->name = s.name;
            next->image = s.image;
            next->created_at = s.created.value_or(clk.now());
            next->expires_at = time_point{milliseconds{*expires}};
            next->ttl = std::chrono::duration_cast<seconds>(next->expires_at - next->created_at);
            if (auto extended = book.lost_deadline(*lease_id)) next->expires_at = std::max(next->expires_at, *extended);
            if (inspected) take_spec(*next, *inspected);
        }
        next->state = state;
        if (inspected) {
            take_run_state(*next, inspected->state);
            if (state == managed_state::exited) next->exit_code = inspected->state.exit_code;
        }
        std::vector<std::shared_ptr<event>> none;
        auto written = co_await book.put(next, std::move(none), "adopted container");
        if (!written || n.left) co_return;
        if (state == managed_state::running) watch_exit(next);
    }
    // Leases of this node whose container no longer exists.
    std::vector<std::uint64_t> gone;
    for (const auto& [id, slot] : book.slots()) {
        if (slot.c->engine == n.cfg.name && !found.contains(id)) gone.push_back(id);
    }
    for (std::uint64_t id : gone) {
        auto c = book.current(id);
        if (!c) continue;
        auto removed = with_state(c, managed_state::removed);
        auto events = only(state_changed(removed, c->state, "gone"));
        auto dropped = co_await book.drop(id, std::move(events), "vanished container");
        if (!dropped || n.left) co_return;
    }
    // Held containers of this node that no longer exist.
    book.forget_held_missing(n.cfg.name, held_found);
    n.online = true;
    if (opt.on_node_change) opt.on_node_change(node_change{n.cfg.name, true, {}});
    queue.wake();
}

task<void> container_manager::impl::go_offline(node& n, std::string reason) {
    const bool was_online = n.online;
    n.online = false;
    if (was_online && opt.on_node_change) opt.on_node_change(node_change{n.cfg.name, false, reason});
    co_await book.lose_node(n.cfg.name, reason, clk.now());
}

}  // namespace registry
