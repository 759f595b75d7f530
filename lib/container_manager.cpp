#include <registry/container_manager.hpp>

#include "codec/container_record.hpp"
#include "codec/keyspace.hpp"
#include "codec/time.hpp"
#include "event_relay.hpp"

#include <registry/async_scope.hpp>
#include <registry/cancellation.hpp>
#include <registry/registry.hpp>

#include <algorithm>
#include <charconv>
#include <map>
#include <set>

namespace registry {

namespace {

constexpr std::string_view key_prefix = detail::keyspace::containers;
constexpr std::string_view next_lease_key = detail::keyspace::next_container_lease;
constexpr std::string_view lost_prefix = detail::keyspace::lost_containers;
constexpr std::string_view store_prefix = detail::keyspace::containers_all;  // what the three keys above share

std::string store_key(std::uint64_t lease_id) { return std::string(key_prefix) + std::to_string(lease_id); }
std::string lost_key(std::uint64_t lease_id) { return std::string(lost_prefix) + std::to_string(lease_id); }

using detail::ms;

template <typename Int>
std::optional<Int> parse_number(std::string_view s) {
    Int v{};
    auto [end, ec] = std::from_chars(s.data(), s.data() + s.size(), v);
    if (ec != std::errc{} || end != s.data() + s.size()) return std::nullopt;
    return v;
}

std::shared_ptr<event> container_event(event_type type, container_ptr c, std::string reason = {}) {
    auto e = std::make_shared<event>();
    e->type = type;
    e->container = std::move(c);
    e->reason = std::move(reason);
    return e;
}

// `previous` is absent for a container that has just been created.
std::shared_ptr<event> state_changed(container_ptr c, std::optional<managed_state> previous, std::string reason = {}) {
    auto e = container_event(event_type::container_state_changed, std::move(c), std::move(reason));
    e->previous_container_state = previous;
    return e;
}

managed_state from_engine(container_status s) {
    switch (s) {
        case container_status::created: return managed_state::created;
        case container_status::running:
        case container_status::paused:
        case container_status::restarting: return managed_state::running;
        default: return managed_state::exited;
    }
}

// A placeholder for a result a try block is about to assign. (A string
// literal in a coroutine's local initializer trips GCC 12.)
unexpected not_yet() { return fail(errc::internal, std::string("no result yet")); }

// One event as the list record() takes. (Temporaries in a co_await
// expression trip GCC 12: callers bind the list to a local first.)
std::vector<std::shared_ptr<event>> only(std::shared_ptr<event> e) {
    std::vector<std::shared_ptr<event>> events;
    events.push_back(std::move(e));
    return events;
}

// The engine's account of the container's run (its inspect's State).
void take_run_state(managed_container& c, const container_state& s) {
    if (s.started_at) c.started_at = s.started_at;
    if (s.finished_at) c.finished_at = s.finished_at;
    c.error = s.error;
}

// What an adopted container without a stored record runs, from its inspect.
void take_spec(managed_container& c, const container_info& info) {
    c.command = info.command;
    c.limits = info.limits;
    c.labels.clear();
    for (const auto& [key, value] : info.labels) {
        if (!key.starts_with(container_labels::reserved_prefix)) c.labels.emplace(key, value);
    }
}

bool occupies(managed_state s) { return s == managed_state::created || s == managed_state::running; }

error not_managed(std::string_view id) {
    return error{errc::not_found, "no managed container '" + std::string(id) + "'"};
}

}  // namespace

struct container_manager::impl {
    impl(class registry& r, class clock& c, class store& s, std::vector<container_node> n,
         container_manager_options o)
        : reg(r), clk(c), st(s), opt(std::move(o)) {
        for (auto& cfg : n) nodes.push_back(std::make_shared<node>(std::move(cfg), nullptr));
    }

    struct stop_requester {
        std::stop_source* source;
        void operator()() const noexcept { source->request_stop(); }
    };

    // Shared by the tasks working on it: a node that leaves (remove_node)
    // stays alive, with its engine, until the last of them has finished.
    struct node {
        node(container_node c, std::shared_ptr<container_engine> e) : cfg(std::move(c)), owned(std::move(e)) {
            if (owned) cfg.engine = owned.get();
        }
        container_node cfg;
        std::shared_ptr<container_engine> owned;  // added with add_node: its engine client
        bool online = false;
        bool left = false;  // remove_node
        std::optional<time_point> last_heartbeat;
        // Requested when the node leaves or the manager stops: ends its
        // heartbeat, exit waiters and log follows.
        std::stop_source leaving;
        std::optional<std::stop_callback<stop_requester>> stop_with_manager;

        std::stop_token token() const { return leaving.get_token(); }
    };
    using node_ptr = std::shared_ptr<node>;

    struct lease_slot {
        container_ptr c;
        bool reaping = false;
        bool expiry_announced = false;
        time_point retry_at{};  // after a failed sweep
    };

    class registry& reg;
    class clock& clk;
    class store& st;
    container_manager_options opt;
    std::vector<node_ptr> nodes;  // configured ones first, then as added
    std::map<std::uint64_t, lease_slot> leases;
    std::map<std::string, std::uint64_t, std::less<>> by_container;
    std::uint64_t next_lease_id = 1;
    // The deadlines of leases lost with their node, extensions included: a
    // container's labels only have its deadline at create, so re-adoption
    // takes the later of the two. Kept (durably) until they pass.
    std::map<std::uint64_t, time_point> lost_deadlines;

    // Held containers (hold()): in memory only, their labels are the durable copy.
    struct held_slot {
        time_point expires_at{};
        bool reaping = false;
        time_point retry_at{};  // after a failed sweep
    };
    using held_key = std::pair<std::string, std::string>;  // node name, container id
    std::map<held_key, held_slot> held;

    std::stop_token stopping;  // run()'s: ends the work below
    bool running = false;      // run() has started the nodes
    async_scope work;          // heartbeats, reaper, waiters, reaps, stream producers

    node_ptr find_node(std::string_view name) const {
        for (const auto& n : nodes) {
            if (n->cfg.name == name) return n;
        }
        return nullptr;
    }

    // Its heartbeat (which brings it online), and its work ending with the manager's.
    void start_node(const node_ptr& n) {
        n->stop_with_manager.emplace(stopping, stop_requester{&n->leaving});
        if (!stopping.stop_requested()) work.spawn(heartbeat(n));
    }

    // A managed container and its node. A lease whose engine the configuration
    // no longer names is kept (open()), but nothing can be done to it.
    result<std::pair<container_ptr, node_ptr>> locate(std::string_view container_id) {
        auto it = by_container.find(container_id);
        auto c = it == by_container.end() ? nullptr : current(it->second);
        if (!c) return unexpected{not_managed(container_id)};
        node_ptr n = find_node(c->engine);
        if (!n) {
            return fail(errc::unavailable,
                        "container '" + c->container_id + "' is on engine '" + c->engine + "', which is not configured");
        }
        return std::pair{std::move(c), n};
    }

    std::size_t load(const node& n) const {
        std::size_t count = 0;
        for (const auto& [id, slot] : leases) {
            if (slot.c->engine == n.cfg.name && occupies(slot.c->state)) ++count;
        }
        return count;
    }

    // The lowest load relative to capacity wins; ties go to the first configured.
    result<node_ptr> schedule(const std::optional<std::string>& wanted) {
        if (wanted) {
            node_ptr n = find_node(*wanted);
            if (!n) return fail(errc::not_found, "no engine '" + *wanted + "'");
            if (!n->online) return fail(errc::unavailable, "engine '" + *wanted + "' is offline");
            if (load(*n) >= n->cfg.capacity) {
                return fail(errc::limit_exceeded, "engine '" + *wanted + "' is at its capacity of " +
                                                      std::to_string(n->cfg.capacity) + " containers");
            }
            return n;
        }
        node_ptr best;
        double best_ratio = 0;
        bool any_online = false;
        for (const auto& n : nodes) {
            if (!n->online) continue;
            any_online = true;
            const std::size_t used = load(*n);
            if (used >= n->cfg.capacity) continue;
            const double ratio = static_cast<double>(used) / static_cast<double>(n->cfg.capacity);
            if (!best || ratio < best_ratio) {
                best = n;
                best_ratio = ratio;
            }
        }
        if (!best) {
            return any_online ? fail(errc::limit_exceeded, "every online engine is at its capacity")
                              : fail(errc::unavailable, "no container engine is online");
        }
        return best;
    }

    // ---- persistence: every change goes through the registry -------------------

    task<result<std::uint64_t>> put(container_ptr next, std::vector<std::shared_ptr<event>> events,
                                    std::string_view what) {
        auto& slot = leases[next->lease_id];
        slot.c = next;
        by_container.insert_or_assign(next->container_id, next->lease_id);
        std::vector<store_mutation> mutations;
        mutations.push_back({store_key(next->lease_id), detail::encode_container_record(*next)});
        co_return co_await reg.record(std::move(events), std::move(mutations), what);
    }

    // Forgets the lease; `events` get the container in its final state.
    task<result<std::uint64_t>> drop(std::uint64_t lease_id, std::vector<std::shared_ptr<event>> events,
                                     std::string_view what) {
        auto it = leases.find(lease_id);
        if (it != leases.end()) {
            by_container.erase(it->second.c->container_id);
            leases.erase(it);
        }
        std::vector<store_mutation> mutations;
        mutations.push_back({store_key(lease_id), std::nullopt});
        co_return co_await reg.record(std::move(events), std::move(mutations), what);
    }

    container_ptr with_state(const container_ptr& c, managed_state s) {
        auto next = std::make_shared<managed_container>(*c);
        next->state = s;
        return next;
    }

    // The lease's current container, if it is still the one `c` was.
    container_ptr current(std::uint64_t lease_id) const {
        auto it = leases.find(lease_id);
        return it == leases.end() ? nullptr : it->second.c;
    }

    // ---- waiting for exits --------------------------------------------------------

    void watch_exit(container_ptr c) {
        node_ptr n = find_node(c->engine);
        if (n && !stopping.stop_requested()) work.spawn(wait_for_exit(n, c->lease_id, c->container_id));
    }

    task<void> wait_for_exit(node_ptr n, std::uint64_t lease_id, std::string container_id) {
        result<int> code = not_yet();
        try {
            code = co_await n->cfg.engine->wait(container_id, n->token());
        } catch (const operation_cancelled&) {
            co_return;
        }
        // An engine gone is the heartbeat's business; a container removed meanwhile is no news.
        if (!code || n->left) co_return;
        result<container_info> info = not_yet();
        try {
            info = co_await n->cfg.engine->inspect(container_id, n->token());
        } catch (const operation_cancelled&) {
            co_return;
        }
        if (n->left) co_return;
        auto c = current(lease_id);
        if (!c || c->container_id != container_id || c->state != managed_state::running) co_return;
        auto next = std::make_shared<managed_container>(*c);
        next->state = managed_state::exited;
        next->exit_code = *code;
        if (info) take_run_state(*next, info->state);
        auto events = only(state_changed(next, c->state));
        auto done = co_await put(next, std::move(events), "container exit");
        (void)done;  // a failed store makes the registry unavailable; nothing more to do here
    }

    // ---- nodes ----------------------------------------------------------------------

    task<void> heartbeat(node_ptr np) {
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

    // Adopts the node's containers that carry our instance label, forgets the
    // leases whose container is gone; the reaper takes the expired ones.
    task<void> come_online(node& n) {
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
                if (adopt_held(n, s)) held_found.insert(s.id);
                continue;
            }
            auto lease_label = s.labels.find(std::string(container_labels::lease));
            auto expires_label = s.labels.find(std::string(container_labels::expires));
            if (lease_label == s.labels.end() || expires_label == s.labels.end()) continue;
            auto lease_id = parse_number<std::uint64_t>(lease_label->second);
            auto expires = parse_number<std::int64_t>(expires_label->second);
            if (!lease_id || !expires) continue;
            found.emplace(*lease_id, &s);
            next_lease_id = std::max(next_lease_id, *lease_id + 1);

            const managed_state state = from_engine(s.status);
            container_ptr known = current(*lease_id);
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
                if (current(*lease_id) != known) continue;  // changed meanwhile: not ours to overwrite
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
                auto extended = lost_deadlines.find(*lease_id);
                if (extended != lost_deadlines.end()) next->expires_at = std::max(next->expires_at, extended->second);
                if (inspected) take_spec(*next, *inspected);
            }
            next->state = state;
            if (inspected) {
                take_run_state(*next, inspected->state);
                if (state == managed_state::exited) next->exit_code = inspected->state.exit_code;
            }
            std::vector<std::shared_ptr<event>> none;
            auto written = co_await put(next, std::move(none), "adopted container");
            if (!written || n.left) co_return;
            if (state == managed_state::running) watch_exit(next);
        }
        // Leases of this node whose container no longer exists.
        std::vector<std::uint64_t> gone;
        for (const auto& [id, slot] : leases) {
            if (slot.c->engine == n.cfg.name && !found.contains(id)) gone.push_back(id);
        }
        for (std::uint64_t id : gone) {
            auto c = current(id);
            if (!c) continue;
            auto removed = with_state(c, managed_state::removed);
            auto events = only(state_changed(removed, c->state, "gone"));
            auto dropped = co_await drop(id, std::move(events), "vanished container");
            if (!dropped || n.left) co_return;
        }
        // Held containers of this node that no longer exist.
        std::erase_if(held, [&](const auto& h) {
            return h.first.first == n.cfg.name && !held_found.contains(h.first.second);
        });
        n.online = true;
    }

    // A held container found at reconciliation keeps its lease (the one in
    // memory if it is held already, else its label's); false for one whose
    // expiry label is unreadable: not ours to touch.
    bool adopt_held(const node& n, const container_summary& s) {
        auto label = s.labels.find(std::string(container_labels::expires));
        if (label == s.labels.end()) return false;
        auto expires = parse_number<std::int64_t>(label->second);
        if (!expires) return false;
        held.try_emplace(held_key{n.cfg.name, s.id}, held_slot{time_point{milliseconds{*expires}}});
        return true;
    }

    // Every container of the node is lost: its lease is dropped (a node that
    // comes back is reconciled: its containers are adopted or reaped then).
    task<void> go_offline(node& n, std::string reason) {
        n.online = false;
        std::vector<std::shared_ptr<event>> events;
        std::vector<store_mutation> mutations;
        const time_point now = clk.now();
        for (auto it = leases.begin(); it != leases.end();) {
            if (it->second.c->engine != n.cfg.name) {
                ++it;
                continue;
            }
            auto lost = with_state(it->second.c, managed_state::lost);
            events.push_back(state_changed(lost, it->second.c->state, reason));
            mutations.push_back({store_key(it->first), std::nullopt});
            if (lost->expires_at > now) {
                lost_deadlines[it->first] = lost->expires_at;
                mutations.push_back({lost_key(it->first), std::to_string(ms(lost->expires_at))});
            }
            by_container.erase(it->second.c->container_id);
            it = leases.erase(it);
        }
        if (events.empty()) co_return;
        auto written = co_await reg.record(std::move(events), std::move(mutations), "lost containers");
        (void)written;
    }

    // ---- the reaper ---------------------------------------------------------------

    // A lease set while the reaper sleeps is at least min_ttl away, so it
    // never needs waking early. (A held container's may be nearer: it is
    // reaped up to this much late.)
    milliseconds max_sleep() const {
        return std::max(milliseconds{1}, std::min<milliseconds>(opt.min_ttl, opt.sweep_interval));
    }

    task<void> reaper() {
        while (!stopping.stop_requested()) {
            const time_point now = clk.now();
            time_point next = now + max_sleep();
            std::vector<std::uint64_t> due;
            for (auto& [id, slot] : leases) {
                if (slot.reaping) continue;
                const node_ptr n = find_node(slot.c->engine);
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
            for (auto& [key, slot] : held) {
                if (slot.reaping) continue;
                const node_ptr n = find_node(key.first);
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
            co_await forget_past_lost_deadlines(now);
            const bool slept = co_await clk.sleep_until(next, stopping);
            if (!slept) break;
        }
    }

    task<void> forget_past_lost_deadlines(time_point now) {
        std::vector<store_mutation> mutations;
        for (auto it = lost_deadlines.begin(); it != lost_deadlines.end();) {
            if (it->second > now) {
                ++it;
                continue;
            }
            mutations.push_back({lost_key(it->first), std::nullopt});
            it = lost_deadlines.erase(it);
        }
        if (mutations.empty()) co_return;
        std::vector<std::shared_ptr<event>> none;
        auto written = co_await reg.record(std::move(none), std::move(mutations), "past lost deadlines");
        (void)written;
    }

    task<result<void>> stop_and_remove(container_engine& engine, const std::string& id) {
        auto stopped = co_await engine.stop(id, opt.stop_grace, stopping);
        if (!stopped && stopped.err().code != errc::not_found) co_return unexpected{stopped.err()};
        auto removed = co_await engine.remove(id, true, stopping);
        if (!removed && removed.err().code != errc::not_found) co_return unexpected{removed.err()};
        co_return result<void>{};
    }

    task<void> reap(std::uint64_t lease_id) {
        try {
            co_await reap_attempts(lease_id);
        } catch (const operation_cancelled&) {
        }
    }

    task<void> reap_attempts(std::uint64_t lease_id) {
        auto c = current(lease_id);
        if (!c) co_return;
        if (!leases[lease_id].expiry_announced) {
            leases[lease_id].expiry_announced = true;
            auto events = only(container_event(event_type::lease_expired, c, "ttl"));
            std::vector<store_mutation> none;
            auto announced = co_await reg.record(std::move(events), std::move(none), "lease expiry");
            if (!announced) co_return;
        }
        error last;
        const reap_result reaped = co_await remove_with_retries(
            [&]() -> node_ptr {
                auto now_c = current(lease_id);
                return now_c ? find_node(now_c->engine) : nullptr;  // none: lost meanwhile
            },
            c->container_id, last);
        c = current(lease_id);
        if (!c || reaped == reap_result::given_up) co_return;
        report_reap(c->engine, c->container_id, lease_id, reaped, last);
        if (reaped == reap_result::removed) {
            auto gone = with_state(c, managed_state::removed);
            auto events = only(state_changed(gone, c->state, "lease_expired"));
            auto dropped = co_await drop(lease_id, std::move(events), "reaped container");
            (void)dropped;
            co_return;
        }
        auto& slot = leases[lease_id];
        slot.reaping = false;
        slot.retry_at = clk.now() + opt.sweep_interval;
        co_await report_reap_failure(std::move(c), last);
    }

    // A held container is reaped without events (it is nobody's business but
    // its holder's, which is gone), with the same retries; only a sweep whose
    // every attempt failed is reported, as for a lease, since an operator must
    // hear of a container that stays behind.
    task<void> reap_held(held_key key) {
        try {
            co_await reap_held_attempts(std::move(key));
        } catch (const operation_cancelled&) {
        }
    }

    task<void> reap_held_attempts(held_key key) {
        error last;
        const reap_result reaped = co_await remove_with_retries(
            [&]() -> node_ptr { return held.contains(key) ? find_node(key.first) : nullptr; },  // none: released
            key.second, last);
        auto it = held.find(key);
        if (it == held.end() || reaped == reap_result::given_up) co_return;
        report_reap(key.first, key.second, 0, reaped, last);
        if (reaped == reap_result::removed) {
            held.erase(it);
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

    // Stops and removes a container in up to reap_attempts tries, with
    // exponential backoff between them. Before each try `node_of()` names the
    // node it is on, or nullptr when it is no longer ours to reap (given_up,
    // as on stop). `last` is the last try's failure when every try failed.
    enum class reap_result { removed, failed, given_up };
    template <typename NodeOf>
    task<reap_result> remove_with_retries(NodeOf node_of, const std::string& container_id, error& last) {
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

    void report_reap(const std::string& engine, const std::string& container_id, std::uint64_t lease_id,
                     reap_result reaped, const error& last) const {
        if (!opt.on_reap) return;
        const bool removed = reaped == reap_result::removed;
        opt.on_reap(reap_report{engine, container_id, lease_id, removed, clk.now(), removed ? std::string() : last.message});
    }

    task<void> report_reap_failure(container_ptr c, const error& last) {
        auto e = container_event(event_type::container_reap_failed, std::move(c), last.message);
        e->failure = last;
        e->attempts = opt.reap_attempts;
        auto events = only(std::move(e));
        std::vector<store_mutation> none;
        auto reported = co_await reg.record(std::move(events), std::move(none), "reap failure");
        (void)reported;
    }

    // ---- streams ------------------------------------------------------------------

    // Relays every element of an engine stream as an event, until it ends or
    // the consumer is gone; yields the stream's failure (opening it included).
    template <typename T, typename ToEvent>
    task<std::optional<error>> relay_stream(task<result<engine_stream<T>>> opening, detail::event_relay& relay,
                                            ToEvent to_event) {
        auto opened = co_await std::move(opening);
        if (!opened) co_return opened.err();
        auto& stream = *opened;
        auto it = co_await stream.begin();
        while (it != stream.end() && !relay.closed()) {
            auto& item = *it;
            if (!item) co_return item.err();
            relay.push(to_event(std::move(*item)));
            co_await ++it;
        }
        co_return std::nullopt;
    }

    task<void> produce_logs(detail::event_relay_ptr relay, node_ptr n, container_ptr c,
                            std::optional<std::size_t> tail) {
        std::stop_callback on_stop(n->token(), [relay] { relay->stop_producer(); });
        const log_options following{tail, true, true, true};
        auto log_event = [&](output_chunk chunk) {
            auto e = container_event(event_type::container_log, c);
            e->revision = reg.revision();
            e->output = std::move(chunk);
            return e;
        };
        std::optional<error> failure;
        try {
            auto opening = n->cfg.engine->logs(c->container_id, following, relay->producer_token());
            failure = co_await relay_stream(std::move(opening), *relay, log_event);
        } catch (const operation_cancelled&) {
        }
        auto last = container_event(event_type::container_log, c);
        last->revision = reg.revision();
        last->end = true;
        last->failure = std::move(failure);
        relay->push(std::move(last));
        relay->finish();
    }

    task<void> produce_pulls(detail::event_relay_ptr relay, std::string reference, std::vector<node_ptr> targets) {
        std::stop_callback on_stop(stopping, [relay] { relay->stop_producer(); });
        for (const node_ptr& n : targets) {
            auto progress_event = [&](pull_progress p) { return pull_event(*n, reference, std::move(p), {}); };
            std::optional<error> failure;
            try {
                auto opening = n->cfg.engine->pull_image(reference, relay->producer_token());
                failure = co_await relay_stream(std::move(opening), *relay, progress_event);
            } catch (const operation_cancelled&) {
                break;
            }
            if (relay->closed()) break;
            relay->push(pull_event(*n, reference, std::nullopt, std::move(failure)));
        }
        relay->finish();
    }

    std::shared_ptr<event> pull_event(const node& n, const std::string& reference,
                                      std::optional<pull_progress> progress, std::optional<error> failure) {
        auto e = std::make_shared<event>();
        e->type = event_type::image_pull_progress;
        e->revision = reg.revision();
        e->engine = n.cfg.name;
        e->reference = reference;
        e->end = !progress;
        e->progress = std::move(progress);
        e->failure = std::move(failure);
        return e;
    }
};

container_manager::container_manager(class registry& reg, class clock& clk, class store& st,
                                     std::vector<container_node> nodes, container_manager_options options)
    : impl_(std::make_unique<impl>(reg, clk, st, std::move(nodes), std::move(options))) {}

container_manager::~container_manager() = default;

const container_manager_options& container_manager::options() const noexcept { return impl_->opt; }

std::map<std::string, std::string> container_manager::hold_labels(std::string_view holder, time_point deadline) const {
    return {{std::string(container_labels::instance), impl_->opt.instance_id},
            {std::string(container_labels::holder), std::string(holder)},
            {std::string(container_labels::expires), std::to_string(ms(deadline))}};
}

result<void> container_manager::hold(std::string_view engine, std::string_view container_id, time_point deadline) {
    auto& m = *impl_;
    const impl::node_ptr n = m.find_node(engine);
    if (!n) return fail(errc::not_found, "no engine '" + std::string(engine) + "'");
    if (!n->online) return fail(errc::unavailable, "engine '" + std::string(engine) + "' is offline");
    m.held.insert_or_assign(impl::held_key{engine, container_id}, impl::held_slot{deadline});
    return {};
}

void container_manager::release(std::string_view engine, std::string_view container_id) {
    impl_->held.erase(impl::held_key{engine, container_id});
}

std::vector<held_container> container_manager::held() const {
    std::vector<held_container> out;
    for (const auto& [key, slot] : impl_->held) out.push_back({key.first, key.second, slot.expires_at});
    return out;
}

bool container_manager::online(std::string_view engine) const {
    const impl::node_ptr n = impl_->find_node(engine);
    return n && n->online;
}

task<result<void>> container_manager::open() {
    auto& m = *impl_;
    store_state state;
    try {
        state = co_await load_copy(m.st, std::string(store_prefix));
    } catch (const store_error& e) {
        co_return fail(errc::unavailable, std::string("store: ") + e.what());
    }
    for (auto& [key, value] : state.entries) {
        if (key == next_lease_key) {
            auto n = parse_number<std::uint64_t>(value);
            if (!n) co_return fail(errc::internal, "stored record '" + key + "': not a number");
            m.next_lease_id = std::max(m.next_lease_id, *n);
            continue;
        }
        if (key.starts_with(lost_prefix)) {
            auto id = parse_number<std::uint64_t>(std::string_view(key).substr(lost_prefix.size()));
            auto at = parse_number<std::int64_t>(value);
            if (!id || !at) co_return fail(errc::internal, "stored record '" + key + "': not a number");
            m.lost_deadlines[*id] = time_point{milliseconds{*at}};
            continue;
        }
        if (!key.starts_with(key_prefix)) continue;
        auto decoded = detail::decode_container_record(value);
        if (!decoded) co_return fail(errc::internal, "stored record '" + key + "': " + decoded.err().message);
        auto c = std::make_shared<managed_container>(std::move(decoded.value()));
        m.next_lease_id = std::max(m.next_lease_id, c->lease_id + 1);
        m.by_container.emplace(c->container_id, c->lease_id);
        m.leases[c->lease_id].c = std::move(c);
    }
    co_return result<void>{};
}

task<void> container_manager::run(std::stop_token stop) {
    auto& m = *impl_;
    m.stopping = stop;
    m.running = true;
    for (const auto& n : m.nodes) m.start_node(n);
    m.work.spawn(m.reaper());
    co_await m.work.join();
}

result<void> container_manager::apply_preset(container_request& request) const {
    if (request.preset) {
        auto it = impl_->opt.presets.find(*request.preset);
        if (it == impl_->opt.presets.end()) {
            std::string known;
            for (const auto& [name, p] : impl_->opt.presets) known += (known.empty() ? "" : ", ") + name;
            return fail(errc::invalid_request, "preset: no preset '" + *request.preset + "' (configured: " +
                                                   (known.empty() ? std::string("none") : known) + ")");
        }
        const container_preset& p = it->second;
        auto& spec = request.spec;
        if (spec.image.empty()) spec.image = p.image;
        if (spec.command.empty()) spec.command = p.command;
        if (!spec.limits.memory_bytes) spec.limits.memory_bytes = p.limits.memory_bytes;
        if (!spec.limits.cpus) spec.limits.cpus = p.limits.cpus;
        if (!spec.limits.pids) spec.limits.pids = p.limits.pids;
        request.preset.reset();
    }
    if (request.spec.image.empty()) return fail(errc::invalid_request, "image: is required (or a preset)");
    return {};
}

task<result<container_ptr>> container_manager::create(container_request request) {
    auto& m = *impl_;
    auto preset = apply_preset(request);
    if (!preset) co_return unexpected{preset.err()};
    const seconds ttl = request.ttl.value_or(m.opt.default_ttl);
    if (ttl < m.opt.min_ttl || ttl > m.opt.max_ttl) {
        co_return fail(errc::invalid_request, "ttl_seconds: must be " + std::to_string(m.opt.min_ttl.count()) + "-" +
                                                  std::to_string(m.opt.max_ttl.count()));
    }
    for (const auto& [key, value] : request.spec.labels) {
        if (key.starts_with(container_labels::reserved_prefix)) {
            co_return fail(errc::invalid_request, "labels." + key + ": the prefix '" +
                                                      std::string(container_labels::reserved_prefix) +
                                                      "' is reserved for the registry");
        }
    }
    auto chosen = m.schedule(request.engine);
    if (!chosen) co_return unexpected{chosen.err()};
    const impl::node_ptr np = std::move(*chosen);  // alive until create is done, even if the node leaves
    impl::node& n = *np;

    // The lease id is durable before any container carries it.
    const std::uint64_t lease_id = m.next_lease_id++;
    std::vector<store_mutation> counter;
    counter.push_back({std::string(next_lease_key), std::to_string(m.next_lease_id)});
    std::vector<std::shared_ptr<event>> no_events;
    auto reserved = co_await m.reg.record(std::move(no_events), std::move(counter), "lease id");
    if (!reserved) co_return unexpected{reserved.err()};

    const time_point now = m.clk.now();
    const time_point expires = now + ttl;
    container_spec spec = std::move(request.spec);
    auto user_labels = spec.labels;
    spec.labels[std::string(container_labels::instance)] = m.opt.instance_id;
    spec.labels[std::string(container_labels::lease)] = std::to_string(lease_id);
    spec.labels[std::string(container_labels::expires)] = std::to_string(ms(expires));
    auto c = std::make_shared<managed_container>();
    c->lease_id = lease_id;
    c->engine = n.cfg.name;
    c->name = spec.name;
    c->image = spec.image;
    c->ttl = ttl;
    c->created_at = now;
    c->expires_at = expires;
    c->state = managed_state::created;
    c->command = spec.command;
    c->limits = spec.limits;
    c->labels = std::move(user_labels);

    auto created = co_await n.cfg.engine->create(std::move(spec), m.stopping);
    if (!created) co_return unexpected{created.err()};
    if (n.left) {  // its labels get it adopted if the engine comes back
        co_return fail(errc::unavailable, "engine '" + n.cfg.name + "' left while the container was created");
    }
    c->container_id = std::move(*created);
    if (c->name.empty()) {
        auto info = co_await n.cfg.engine->inspect(c->container_id, m.stopping);
        if (info) c->name = info->name;
    }
    auto created_events = only(state_changed(c, std::nullopt));
    auto recorded = co_await m.put(c, std::move(created_events), "container");
    if (!recorded) co_return unexpected{recorded.err()};

    auto started = co_await n.cfg.engine->start(c->container_id, m.stopping);
    std::optional<time_point> started_at;
    if (started) {
        auto info = co_await n.cfg.engine->inspect(c->container_id, m.stopping);
        if (info) started_at = info->state.started_at;
    }
    auto now_c = m.current(lease_id);
    if (!now_c) co_return fail(errc::unavailable, "engine '" + n.cfg.name + "' went offline");
    if (!started) {
        // Not left behind half made: the lease ends with the failed start.
        auto removed = co_await n.cfg.engine->remove(c->container_id, true, m.stopping);
        (void)removed;
        auto gone = m.with_state(now_c, managed_state::removed);
        auto events = only(state_changed(gone, now_c->state, "start failed"));
        auto dropped = co_await m.drop(lease_id, std::move(events), "container");
        (void)dropped;
        co_return unexpected{started.err()};
    }
    if (now_c->state != managed_state::created) co_return now_c;  // exited or removed already
    auto running = std::make_shared<managed_container>(*now_c);
    running->state = managed_state::running;
    running->started_at = started_at;
    auto running_events = only(state_changed(running, managed_state::created));
    auto written = co_await m.put(running, std::move(running_events), "container");
    if (!written) co_return unexpected{written.err()};
    m.watch_exit(running);
    co_return container_ptr(running);
}

container_ptr container_manager::find(std::string_view container_id) const {
    auto it = impl_->by_container.find(container_id);
    return it == impl_->by_container.end() ? nullptr : impl_->current(it->second);
}

std::vector<container_ptr> container_manager::list() const {
    std::vector<container_ptr> out;
    for (const auto& [id, slot] : impl_->leases) out.push_back(slot.c);
    return out;
}

std::vector<node_status> container_manager::nodes() const {
    std::vector<node_status> out;
    for (const auto& n : impl_->nodes) {
        out.push_back(node_status{n->cfg.name, n->cfg.endpoint, n->cfg.capacity, n->online, impl_->load(*n),
                                  n->last_heartbeat});
    }
    return out;
}

result<void> container_manager::add_node(container_node node, std::shared_ptr<container_engine> engine) {
    auto& m = *impl_;
    if (m.find_node(node.name)) return fail(errc::conflict, "an engine named '" + node.name + "' exists already");
    if (!engine && !node.engine) return fail(errc::invalid_request, "engine '" + node.name + "': no engine client");
    auto n = std::make_shared<impl::node>(std::move(node), std::move(engine));
    m.nodes.push_back(n);
    if (m.running) m.start_node(n);
    return {};
}

task<result<void>> container_manager::remove_node(std::string name, std::string reason) {
    auto& m = *impl_;
    const impl::node_ptr n = m.find_node(name);
    if (!n) co_return fail(errc::not_found, "no engine '" + name + "'");
    std::erase(m.nodes, n);
    n->left = true;
    n->leaving.request_stop();
    co_await m.go_offline(*n, std::move(reason));
    co_return result<void>{};
}

result<void> container_manager::set_capacity(std::string_view name, std::size_t capacity) {
    const impl::node_ptr n = impl_->find_node(name);
    if (!n) return fail(errc::not_found, "no engine '" + std::string(name) + "'");
    if (capacity == 0) return fail(errc::invalid_request, "capacity: must be at least 1");
    n->cfg.capacity = capacity;
    return {};
}

task<result<container_ptr>> container_manager::stop(std::string_view container_id, seconds grace) {
    auto& m = *impl_;
    auto located = m.locate(container_id);
    if (!located) co_return unexpected{located.err()};
    const container_ptr c = located->first;
    const auto n = located->second;
    auto stopped = co_await n->cfg.engine->stop(c->container_id, grace, m.stopping);
    if (!stopped) co_return unexpected{stopped.err()};
    auto now_c = m.current(c->lease_id);
    if (!now_c) co_return fail(errc::not_found, "container '" + c->container_id + "' is no longer managed");
    if (now_c->state != managed_state::running && now_c->state != managed_state::created) co_return now_c;
    // The waiter records the exit code; if it has not yet, ask.
    auto info = co_await n->cfg.engine->inspect(now_c->container_id, m.stopping);
    now_c = m.current(c->lease_id);
    if (!now_c) co_return fail(errc::not_found, "container '" + c->container_id + "' is no longer managed");
    if (!info || now_c->state == managed_state::exited) co_return now_c;
    auto next = std::make_shared<managed_container>(*now_c);
    next->state = managed_state::exited;
    next->exit_code = info->state.exit_code;
    take_run_state(*next, info->state);
    auto events = only(state_changed(next, now_c->state, "stopped"));
    auto written = co_await m.put(next, std::move(events), "container stop");
    if (!written) co_return unexpected{written.err()};
    co_return container_ptr(next);
}

task<result<container_ptr>> container_manager::remove(std::string_view container_id, bool force) {
    auto& m = *impl_;
    auto located = m.locate(container_id);
    if (!located) co_return unexpected{located.err()};
    const container_ptr c = located->first;
    const auto n = located->second;
    auto removed = co_await n->cfg.engine->remove(c->container_id, force, m.stopping);
    if (!removed && removed.err().code != errc::not_found) co_return unexpected{removed.err()};
    auto now_c = m.current(c->lease_id);
    if (!now_c) co_return fail(errc::not_found, "container '" + c->container_id + "' is no longer managed");
    auto gone = m.with_state(now_c, managed_state::removed);
    auto events = only(state_changed(gone, now_c->state, "removed"));
    auto dropped = co_await m.drop(c->lease_id, std::move(events), "container removal");
    if (!dropped) co_return unexpected{dropped.err()};
    co_return container_ptr(gone);
}

task<result<container_ptr>> container_manager::extend(std::string_view container_id, std::optional<seconds> ttl) {
    auto& m = *impl_;
    auto c = find(container_id);
    if (!c) co_return unexpected{not_managed(container_id)};
    const seconds t = ttl.value_or(c->ttl);
    if (t < m.opt.min_ttl || t > m.opt.max_ttl) {
        co_return fail(errc::invalid_request, "ttl_seconds: must be " + std::to_string(m.opt.min_ttl.count()) + "-" +
                                                  std::to_string(m.opt.max_ttl.count()));
    }
    if (m.leases[c->lease_id].reaping || c->expires_at <= m.clk.now()) {
        co_return fail(errc::lease_not_found, "the lease of container '" + c->container_id + "' has expired");
    }
    auto next = std::make_shared<managed_container>(*c);
    next->ttl = t;
    next->expires_at = m.clk.now() + t;
    std::vector<std::shared_ptr<event>> no_events;
    auto written = co_await m.put(next, std::move(no_events), "lease renewal");
    if (!written) co_return unexpected{written.err()};
    co_return container_ptr(next);
}

task<result<std::vector<output_chunk>>> container_manager::logs(std::string_view container_id,
                                                                std::optional<std::size_t> tail) {
    auto& m = *impl_;
    auto located = m.locate(container_id);
    if (!located) co_return unexpected{located.err()};
    const container_ptr c = located->first;
    const auto n = located->second;
    const log_options tail_only{tail, false, true, true};
    auto opened = co_await n->cfg.engine->logs(c->container_id, tail_only, m.stopping);
    if (!opened) co_return unexpected{opened.err()};
    std::vector<output_chunk> out;
    auto& stream = *opened;
    for (auto it = co_await stream.begin(); it != stream.end(); co_await ++it) {
        auto& item = *it;
        if (!item) co_return unexpected{item.err()};
        out.push_back(std::move(*item));
    }
    co_return out;
}

async_generator<event_ptr> container_manager::follow_logs(std::string container_id, std::optional<std::size_t> tail,
                                                          std::stop_token stop) {
    auto& m = *impl_;
    auto relay = std::make_shared<detail::event_relay>();
    auto located = m.locate(container_id);
    if (located && !m.stopping.stop_requested()) {
        m.work.spawn(m.produce_logs(relay, located->second, located->first, tail));
    } else {
        relay->finish();
    }
    return detail::relay_events(detail::relay_ref{std::move(relay)}, std::move(stop));
}

async_generator<event_ptr> container_manager::pull_image(std::string reference, std::optional<std::string> engine,
                                                         std::stop_token stop) {
    auto& m = *impl_;
    auto relay = std::make_shared<detail::event_relay>();
    std::vector<impl::node_ptr> targets;
    for (const auto& n : m.nodes) {
        if (engine ? n->cfg.name == *engine : n->online) targets.push_back(n);
    }
    if (!m.stopping.stop_requested()) {
        m.work.spawn(m.produce_pulls(relay, std::move(reference), std::move(targets)));
    } else {
        relay->finish();
    }
    return detail::relay_events(detail::relay_ref{std::move(relay)}, std::move(stop));
}

}  // namespace registry
