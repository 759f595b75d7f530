#include <registry/registry.hpp>

#include "codec/keyspace.hpp"
#include "codec/service_record.hpp"
#include "expiry_queue.hpp"
#include "registration_rules.hpp"

#include <registry/cancellation.hpp>

#include <algorithm>
#include <cassert>
#include <deque>
#include <list>
#include <map>
#include <set>
#include <unordered_map>
#include <unordered_set>

namespace registry {

namespace {

constexpr std::string_view key_prefix = detail::keyspace::services;

std::string store_key(std::string_view instance_id) {
    std::string key(key_prefix);
    key += instance_id;
    return key;
}

// Events are built mutable, then frozen (event_ptr) once their revision is set.
std::shared_ptr<event> make_event(event_type type, std::uint64_t revision, service_ptr service,
                                  std::string reason = {}) {
    auto e = std::make_shared<event>();
    e->type = type;
    e->revision = revision;
    e->service = std::move(service);
    e->reason = std::move(reason);
    return e;
}

std::string join(const std::vector<std::string>& parts) {
    std::string out;
    for (const auto& p : parts) {
        if (!out.empty()) out += "; ";
        out += p;
    }
    return out;
}

}  // namespace

bool service_filter::matches(const service_instance& s) const {
    if (name && s.name != *name) return false;
    if (version && s.version != *version) return false;
    if (state && s.state != *state) return false;
    if (host) {
        if (*host == "local") {
            if (s.where.remote) return false;
        } else if (!s.where.remote || s.where.host != *host) {
            return false;
        }
    }
    for (const auto& [k, v] : metadata) {
        auto it = s.metadata.find(k);
        if (it == s.metadata.end() || it->second != v) return false;
    }
    return true;
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
    bool overflowed = false;
    bool closed = false;

    bool wants(const event& e) const {
        if (e.type != event_type::bookmark && !types.empty() && !types.contains(e.type)) return false;
        if (!services.empty() && e.service && !services.contains(e.service->name)) return false;
        if (!services.empty() && e.deployment && !services.contains(e.deployment->package)) return false;
        return true;
    }
};

using service_map = std::map<std::string, service_ptr, std::less<>>;  // by instance id

struct lease_entry {
    // Its instance's entry: map iterators stay valid until that entry is
    // erased, which drops the lease too. Saves a copy of the instance id.
    service_map::iterator service;
    time_point deadline{};                  // the persisted one: renewed by keepalive
    std::optional<time_point> orphaned_at;  // session-bound and its session is gone: deadline capped by grace
    session_id owner = 0;
    bool session_bound = false;
    // Who created it, for the quotas (registry_options::max_services_per_*).
    std::string origin;
    session_id creator = 0;
};

struct registry::impl {
    impl(class clock& c, class store& s, registry_options o) : clk(c), st(s), opt(std::move(o)) {}

    class clock& clk;
    class store& st;
    registry_options opt;

    service_map services;
    std::unordered_map<std::uint64_t, lease_entry> leases;
    detail::expiry_queue expiry;  // effective deadlines, with stale entries (see is_current)
    std::unordered_map<session_id, std::unordered_set<std::uint64_t>> sessions;
    std::unordered_map<std::string, std::size_t> by_origin;  // live leases per origin (non-empty ones)
    std::unordered_map<session_id, std::size_t> by_creator;  // live leases per creating session (non-zero)

    std::uint64_t state_revision = 0;      // last revision assigned to a change
    std::uint64_t published_revision = 0;  // last revision whose events went out
    std::map<std::uint64_t, std::vector<event_ptr>> unpublished;  // revision -> events, until durable
    std::set<std::uint64_t> durable;                              // durable but waiting for an earlier revision

    std::deque<event_ptr> history;
    std::uint64_t first_retained = 1;  // every event with revision >= this is in history

    std::unordered_map<std::uint64_t, watcher*> watchers;
    std::uint64_t next_watcher_id = 1;

    std::vector<registration_rule> rules;  // add_registration_rule()

    bool failed = false;
    bool opened = false;


    // ---- leases -------------------------------------------------------------

    static time_point effective_deadline(const lease_entry& l) {
        return l.orphaned_at ? std::min(l.deadline, *l.orphaned_at) : l.deadline;
    }

    // A lease is scheduled again whenever its effective deadline changes;
    // the entry for the old deadline stays queued, stale.
    void schedule(std::uint64_t lease_id, const lease_entry& l) {
        expiry.push(effective_deadline(l), lease_id);
        if (expiry.size() > 2 * leases.size() + 64) {
            std::vector<detail::expiry_queue::entry> current;
            current.reserve(leases.size());
            for (const auto& [id, live] : leases) current.push_back({effective_deadline(live), id});
            expiry.rebuild(std::move(current));
        }
    }

    // An expiry entry still stands for its lease's deadline.
    bool is_current(const detail::expiry_queue::entry& e) const {
        auto it = leases.find(e.lease_id);
        return it != leases.end() && effective_deadline(it->second) == e.deadline;
    }

    std::optional<detail::expiry_queue::entry> next_expiry() {
        return expiry.next([this](const detail::expiry_queue::entry& e) { return is_current(e); });
    }

    // How long the reaper may sleep without looking again. A deadline set
    // while it sleeps is at least min_ttl (or the session grace) away, so it
    // never needs waking early: no re-entrant wake-ups, at the price of one
    // idle wake-up per min_ttl.
    milliseconds max_sleep() const {
        return std::max(milliseconds{1}, std::min<milliseconds>(opt.min_ttl, opt.session_grace));
    }

    // Removes a lease from its session, if it has one.
    void detach(std::uint64_t lease_id, lease_entry& l) {
        if (l.owner != 0) {
            auto it = sessions.find(l.owner);
            if (it != sessions.end()) {
                it->second.erase(lease_id);
                if (it->second.empty()) sessions.erase(it);
            }
        }
        l.owner = 0;
        l.orphaned_at.reset();
    }

    // Ties a session-bound lease to a (new) live session; owner 0, an
    // embedder without sessions, leaves it governed by its TTL alone.
    void bind(std::uint64_t lease_id, lease_entry& l, session_id owner) {
        detach(lease_id, l);
        l.owner = owner;
        if (owner != 0) sessions[owner].insert(lease_id);
    }

    void drop_lease(std::uint64_t lease_id) {
        auto it = leases.find(lease_id);
        if (it == leases.end()) return;
        detach(lease_id, it->second);
        uncount(it->second);
        leases.erase(it);
    }

    // ---- quotas ---------------------------------------------------------------

    template <typename Map, typename Key>
    static void decrement(Map& counts, const Key& key) {
        auto it = counts.find(key);
        if (it != counts.end() && --it->second == 0) counts.erase(it);
    }

    template <typename Map, typename Key>
    static std::size_t count_of(const Map& counts, const Key& key) {
        auto it = counts.find(key);
        return it == counts.end() ? 0 : it->second;
    }

    void count(const lease_entry& l) {
        if (!l.origin.empty()) ++by_origin[l.origin];
        if (l.creator != 0) ++by_creator[l.creator];
    }

    void uncount(const lease_entry& l) {
        if (!l.origin.empty()) decrement(by_origin, l.origin);
        if (l.creator != 0) decrement(by_creator, l.creator);
    }

    // A new registration from `origin` over session `creator`, if a quota allows it.
    std::optional<error> over_quota(const std::string& origin, session_id creator) const {
        if (opt.max_services_per_origin != 0 && !origin.empty() &&
            count_of(by_origin, origin) >= opt.max_services_per_origin) {
            return error{errc::limit_exceeded, "quota registrations_per_address: " + origin + " holds its maximum of " +
                                                   std::to_string(opt.max_services_per_origin) + " registrations"};
        }
        if (opt.max_services_per_session != 0 && creator != 0 &&
            count_of(by_creator, creator) >= opt.max_services_per_session) {
            return error{errc::limit_exceeded, "quota registrations_per_connection: this connection holds its maximum of " +
                                                   std::to_string(opt.max_services_per_session) + " registrations"};
        }
        return std::nullopt;
    }

    // ---- changes ------------------------------------------------------------

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

    // Writes a batch; on failure the registry stops accepting writes, because
    // what reached the disk is unknown.
    task<bool> commit(store_batch batch) {
        if (failed) co_return false;
        try {
            co_await st.commit(std::move(batch));
            co_return true;
        } catch (const store_error&) {
            failed = true;
            co_return false;
        }
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

    void publish(event_ptr e, bool keep) {
        if (keep) remember(e);
        std::vector<std::uint64_t> to_wake;
        for (auto& [id, w] : watchers) {
            if (w->closed || w->overflowed || e->revision <= w->skip_through || !w->wants(*e)) continue;
            if (w->queue.size() >= opt.watch_queue_limit) {
                w->overflowed = true;
                w->queue.clear();
            } else {
                w->queue.push_back(e);
            }
            if (w->waiting) to_wake.push_back(id);
        }
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

    event_ptr snapshot_event(const std::set<std::string>& names) const {
        auto e = make_event(event_type::registry_loaded, state_revision, nullptr);
        for (const auto& [id, s] : services) {
            if (names.empty() || names.contains(s->name)) e->snapshot.push_back(s);
        }
        return e;
    }

    // Makes `next` the instance's current version under a new revision that
    // carries `e`, and completes once that is durable.
    task<result<service_ptr>> replace(std::shared_ptr<service_instance> next, std::shared_ptr<event> e,
                                      std::string_view what) {
        const std::uint64_t rev = next_revision({std::move(e)});
        next->modified_revision = rev;
        services.insert_or_assign(next->instance_id, next);

        store_batch batch{rev, {}};
        batch.mutations.push_back({store_key(next->instance_id), detail::encode_service_record(*next)});
        const bool written = co_await commit(std::move(batch));
        if (!written) co_return fail(errc::unavailable, "the store failed to persist the " + std::string(what));
        mark_durable(rev, rev);
        co_return service_ptr(std::move(next));
    }

    // ---- expiry ---------------------------------------------------------------

    task<void> expire_due() {
        const time_point now = clk.now();
        store_batch batch;
        std::uint64_t first = 0;
        for (auto due = next_expiry(); due && due->deadline <= now; due = next_expiry()) {
            const std::uint64_t lease_id = due->lease_id;
            expiry.pop();
            auto lit = leases.find(lease_id);
            const bool by_session = lit->second.orphaned_at && *lit->second.orphaned_at <= lit->second.deadline;
            auto sit = lit->second.service;
            service_ptr gone = sit->second;
            services.erase(sit);
            drop_lease(lease_id);

            auto expired = make_event(event_type::lease_expired, 0, gone, by_session ? "session_closed" : "ttl");
            auto deregistered = make_event(event_type::service_deregistered, 0, gone, "lease_expired");
            const std::uint64_t rev = next_revision({expired, deregistered});
            if (first == 0) first = rev;
            batch.mutations.push_back({store_key(gone->instance_id), std::nullopt});
        }
        if (first == 0) co_return;
        const std::uint64_t last = state_revision;
        batch.revision = last;
        const bool durable_now = co_await commit(std::move(batch));
        if (durable_now) mark_durable(first, last);
    }
};

registry::registry(class clock& clk, class store& st, registry_options options)
    : impl_(std::make_unique<impl>(clk, st, std::move(options))) {}

// Every watch() generator must be destroyed before its registry.
registry::~registry() { assert(impl_->watchers.empty()); }

task<result<void>> registry::open() {
    auto& m = *impl_;
    const time_point now = m.clk.now();
    std::optional<error> bad;  // the first stored record that does not decode
    // Each record is decoded where the store keeps it: no copy of the
    // encoded state is made on the way.
    const std::string prefix(key_prefix);
    store_visitor restore = [&m, &bad, now](std::string_view key, std::string_view value) {
        if (bad) return;
        auto decoded = detail::decode_service_record(value);
        if (!decoded) {
            bad = error{errc::internal, "stored record '" + std::string(key) + "': " + decoded.err().message};
            return;
        }
        auto s = std::make_shared<service_instance>(std::move(decoded.value()));
        const std::uint64_t lease_id = s->lease.id;
        const time_point expires_at = s->lease.expires_at;
        const bool session_bound = s->lease.session_bound;
        const auto entry = m.services.emplace_hint(m.services.end(), s->instance_id, std::move(s));  // keys come in order
        lease_entry l{entry, expires_at, std::nullopt, 0, session_bound, {}, 0};  // counted toward no quota
        // Its session died with the previous process: the grace starts now.
        if (l.session_bound) l.orphaned_at = now + m.opt.session_grace;
        m.leases.emplace(lease_id, l);
        m.expiry.push(impl::effective_deadline(l), lease_id);
    };
    std::uint64_t revision = 0;
    try {
        revision = co_await m.st.load(prefix, restore);
    } catch (const store_error& e) {
        m.failed = true;
        co_return fail(errc::unavailable, std::string("store: ") + e.what());
    }
    if (bad) co_return unexpected{std::move(*bad)};
    m.state_revision = m.published_revision = revision;
    m.first_retained = revision + 1;
    m.opened = true;
    co_return result<void>{};
}

task<void> registry::run(std::stop_token stop) {
    auto& m = *impl_;
    time_point next_bookmark = m.clk.now() + m.opt.bookmark_interval;
    while (!stop.stop_requested()) {
        co_await m.expire_due();
        const time_point now = m.clk.now();
        if (now >= next_bookmark) {
            bookmark();
            next_bookmark = now + m.opt.bookmark_interval;
        }
        time_point until = std::min(next_bookmark, now + m.max_sleep());
        if (const auto next = m.next_expiry()) until = std::min(until, next->deadline);
        co_await m.clk.sleep_until(until, stop);
    }
}

void registry::bookmark() {
    auto& m = *impl_;
    if (!m.watchers.empty()) m.publish(make_event(event_type::bookmark, m.published_revision, nullptr), false);
}

task<result<lease_grant>> registry::register_service(registration reg, session_id owner) {
    auto& m = *impl_;
    if (m.failed) co_return fail(errc::unavailable, "the store has failed; the registry accepts no writes");
    if (auto problems = detail::check_registration(reg, m.opt); !problems.empty()) {
        co_return fail(errc::invalid_request, join(problems));
    }
    for (const auto& rule : m.rules) {
        if (auto refused = rule(reg)) co_return unexpected{std::move(*refused)};
    }
    const seconds ttl = reg.ttl.value_or(m.opt.default_ttl);
    const time_point now = m.clk.now();
    const time_point deadline = now + ttl;

    service_ptr previous;
    if (!reg.service.instance_id.empty()) {
        if (auto it = m.services.find(reg.service.instance_id); it != m.services.end()) previous = it->second;
    }
    if (previous) {
        if (!reg.lease_id) {
            co_return fail(errc::conflict, "instance '" + previous->instance_id + "' is registered under another lease");
        }
        if (*reg.lease_id != previous->lease.id) {
            co_return fail(errc::lease_not_found, "instance '" + previous->instance_id + "' is not held by lease " +
                                                      std::to_string(*reg.lease_id));
        }
    } else if (reg.lease_id) {
        co_return fail(errc::lease_not_found,
                       "lease " + std::to_string(*reg.lease_id) + " does not exist (it may have expired)");
    } else if (m.services.size() >= m.opt.max_services) {
        co_return fail(errc::limit_exceeded, "the registry holds its maximum of " +
                                                 std::to_string(m.opt.max_services) + " services");
    } else if (auto refused = m.over_quota(reg.origin, owner)) {
        co_return unexpected{std::move(*refused)};
    }

    auto next = std::make_shared<service_instance>(std::move(reg.service));
    std::vector<std::shared_ptr<event>> events;
    std::uint64_t lease_id = 0;
    if (previous) {
        lease_id = previous->lease.id;
        next->instance_id = previous->instance_id;
        next->state = previous->state;
        next->failure_reason = previous->failure_reason;
        next->health = previous->health;
        next->registered_at = previous->registered_at;
        next->created_revision = previous->created_revision;
        next->modified_revision = previous->modified_revision;
        next->lease = previous->lease;
        const bool endpoints_changed = next->endpoints != previous->endpoints;
        const bool other_changed = next->name != previous->name || next->version != previous->version ||
                                   next->execution != previous->execution || next->where != previous->where ||
                                   next->depends_on != previous->depends_on || next->metadata != previous->metadata;
        // One event per change: endpoint_updated carries the whole new
        // instance, so a client following it misses nothing else.
        if (endpoints_changed) {
            events.push_back(make_event(event_type::endpoint_updated, 0, next));
        } else if (other_changed) {
            events.push_back(make_event(event_type::service_registered, 0, next));
        }
    } else {
        lease_id = m.state_revision + 1;  // the revision this registration is about to get: unique, persisted
        if (next->instance_id.empty()) {
            next->instance_id = next->name + "-" + std::to_string(lease_id);
            for (int k = 2; m.services.contains(next->instance_id); ++k) {
                next->instance_id = next->name + "-" + std::to_string(lease_id) + "-" + std::to_string(k);
            }
        }
        next->state = service_state::registered;
        next->failure_reason.clear();
        next->health.reset();
        next->registered_at = now;
        events.push_back(make_event(event_type::service_registered, 0, next));
    }
    next->lease = lease{lease_id, ttl, deadline, reg.session_bound};
    const auto entry = m.services.insert_or_assign(next->instance_id, next).first;

    // Lease bookkeeping.
    if (previous) {
        auto& l = m.leases.at(lease_id);
        l.deadline = deadline;
        l.session_bound = reg.session_bound;
        if (reg.session_bound) {
            m.bind(lease_id, l, owner);
        } else {
            m.detach(lease_id, l);
        }
        m.schedule(lease_id, l);
    } else {
        auto& l = m.leases
                      .emplace(lease_id, lease_entry{entry, deadline, std::nullopt, 0, reg.session_bound,
                                                     std::move(reg.origin), owner})
                      .first->second;
        m.count(l);
        if (reg.session_bound) m.bind(lease_id, l, owner);
        m.schedule(lease_id, l);
    }

    std::uint64_t rev = m.state_revision;
    const bool changed = !events.empty();
    if (changed) {
        rev = m.next_revision(std::move(events));
        if (!previous) next->created_revision = rev;
        next->modified_revision = rev;
    }

    store_batch batch{rev, {}};
    batch.mutations.push_back({store_key(next->instance_id), detail::encode_service_record(*next)});
    const bool written = co_await m.commit(std::move(batch));
    if (!written) {
        co_return fail(errc::unavailable, "the store failed to persist the registration");
    }
    if (changed) m.mark_durable(rev, rev);
    co_return lease_grant{lease_id, next->instance_id, ttl, deadline, rev, previous == nullptr};
}

task<result<lease_grant>> registry::keepalive(std::uint64_t lease_id, session_id owner) {
    auto& m = *impl_;
    if (m.failed) co_return fail(errc::unavailable, "the store has failed; the registry accepts no writes");
    auto lit = m.leases.find(lease_id);
    if (lit == m.leases.end()) {
        co_return fail(errc::lease_not_found, "lease " + std::to_string(lease_id) + " does not exist (it may have expired)");
    }
    auto& l = lit->second;
    auto current = l.service->second;
    const time_point deadline = m.clk.now() + current->lease.ttl;

    l.deadline = deadline;
    if (l.session_bound && owner != 0) m.bind(lease_id, l, owner);
    m.schedule(lease_id, l);

    auto next = std::make_shared<service_instance>(*current);
    next->lease.expires_at = deadline;
    m.services.insert_or_assign(next->instance_id, next);

    // A renewal is not a change others need to hear about: it keeps the
    // current revision, but it is durable so a restart keeps the deadline.
    store_batch batch{m.state_revision, {}};
    batch.mutations.push_back({store_key(next->instance_id), detail::encode_service_record(*next)});
    const bool written = co_await m.commit(std::move(batch));
    if (!written) {
        co_return fail(errc::unavailable, "the store failed to persist the renewal");
    }
    co_return lease_grant{lease_id, next->instance_id, next->lease.ttl, deadline, m.state_revision, false};
}

task<result<deregistration>> registry::deregister(std::string_view instance_id, std::string reason) {
    auto& m = *impl_;
    if (m.failed) co_return fail(errc::unavailable, "the store has failed; the registry accepts no writes");
    auto it = m.services.find(instance_id);
    if (it == m.services.end()) co_return fail(errc::not_found, "no instance '" + std::string(instance_id) + "'");
    service_ptr gone = it->second;
    m.services.erase(it);
    m.drop_lease(gone->lease.id);

    const std::uint64_t rev =
        m.next_revision({make_event(event_type::service_deregistered, 0, gone, std::move(reason))});
    store_batch batch{rev, {}};
    batch.mutations.push_back({store_key(gone->instance_id), std::nullopt});
    const bool written = co_await m.commit(std::move(batch));
    if (!written) {
        co_return fail(errc::unavailable, "the store failed to persist the deregistration");
    }
    m.mark_durable(rev, rev);
    co_return deregistration{std::move(gone), rev};
}

task<result<service_ptr>> registry::set_state(std::string_view instance_id, service_state to, std::string reason) {
    auto& m = *impl_;
    if (m.failed) co_return fail(errc::unavailable, "the store has failed; the registry accepts no writes");
    auto it = m.services.find(instance_id);
    if (it == m.services.end()) co_return fail(errc::not_found, "no instance '" + std::string(instance_id) + "'");
    service_ptr current = it->second;
    if (current->state == to) co_return current;
    if (!is_allowed_transition(current->state, to)) {
        co_return fail(errc::invalid_transition, "instance '" + current->instance_id + "' cannot go from " +
                                                     std::string(to_string(current->state)) + " to " +
                                                     std::string(to_string(to)));
    }
    auto next = std::make_shared<service_instance>(*current);
    next->state = to;
    next->failure_reason = to == service_state::failed ? reason : std::string{};
    auto e = make_event(event_type::service_state_changed, 0, next, std::move(reason));
    e->previous_state = current->state;
    co_return co_await m.replace(std::move(next), std::move(e), "state change");
}

task<result<service_ptr>> registry::record_health(std::string_view instance_id, health_result health) {
    auto& m = *impl_;
    if (m.failed) co_return fail(errc::unavailable, "the store has failed; the registry accepts no writes");
    auto it = m.services.find(instance_id);
    if (it == m.services.end()) co_return fail(errc::not_found, "no instance '" + std::string(instance_id) + "'");
    auto next = std::make_shared<service_instance>(*it->second);
    next->health = std::move(health);
    auto e = make_event(event_type::health_check_result, 0, next);
    co_return co_await m.replace(std::move(next), std::move(e), "health result");
}

service_ptr registry::find(std::string_view instance_id) const {
    auto it = impl_->services.find(instance_id);
    return it == impl_->services.end() ? nullptr : it->second;
}

std::vector<service_ptr> registry::list(const service_filter& filter) const {
    std::vector<service_ptr> out;
    for (const auto& [id, s] : impl_->services) {
        if (filter.matches(*s)) out.push_back(s);
    }
    return out;
}

std::vector<endpoint_view> registry::endpoints(const endpoint_filter& filter) const {
    std::vector<endpoint_view> out;
    for (const auto& [id, s] : impl_->services) {
        if (filter.service && s->name != *filter.service) continue;
        for (const auto& ep : s->endpoints) {
            if (filter.endpoint && ep.name != *filter.endpoint) continue;
            if (filter.protocol && ep.protocol != *filter.protocol) continue;
            out.push_back(endpoint_view{s, &ep});
        }
    }
    return out;
}

async_generator<event_ptr> registry::watch(watch_options options) {
    auto& m = *impl_;
    watcher w;
    w.id = m.next_watcher_id++;
    w.types = std::move(options.types);
    w.services = std::move(options.services);

    // Registered before the first item is yielded: nothing published while
    // the consumer digests the snapshot or replay is missed.
    m.watchers.emplace(w.id, &w);
    struct unregister {
        impl& m;
        std::uint64_t id;
        ~unregister() { m.watchers.erase(id); }
    } guard{m, w.id};

    struct wake_on_stop {
        watcher* w;
        void operator()() const noexcept {
            w->closed = true;
            if (w->waiting) std::exchange(w->waiting, {}).resume();
        }
    };
    std::stop_callback<wake_on_stop> on_stop(options.stop, wake_on_stop{&w});
    if (w.closed) co_return;

    auto resync_event = [&](std::uint64_t from, std::uint64_t oldest) {
        auto r = make_event(event_type::resync_required, m.published_revision, nullptr);
        r->resync_from = from;
        r->oldest_revision = oldest;
        return r;
    };

    std::vector<event_ptr> initial;
    if (options.from_revision) {
        const std::uint64_t from = *options.from_revision;
        if (from > m.state_revision || from + 1 < m.first_retained) {
            initial.push_back(resync_event(from, m.first_retained));
            initial.push_back(m.snapshot_event(w.services));
            w.skip_through = m.state_revision;
        } else {
            for (const auto& e : m.history) {
                if (e->revision > from && w.wants(*e)) initial.push_back(e);
            }
            w.skip_through = std::max(from, m.published_revision);
        }
    } else if (options.snapshot) {
        initial.push_back(m.snapshot_event(w.services));
        w.skip_through = m.state_revision;
    } else {
        w.skip_through = m.state_revision;
    }

    for (auto& e : initial) {
        if (w.closed) co_return;
        w.delivered_through = std::max(w.delivered_through, e->revision);
        co_yield e;
    }

    struct next_event {
        watcher& w;
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
            event_ptr r = resync_event(w.delivered_through, m.published_revision + 1);
            event_ptr snap = m.snapshot_event(w.services);
            w.skip_through = m.state_revision;
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

void registry::add_registration_rule(registration_rule rule) { impl_->rules.push_back(std::move(rule)); }

void registry::release_session(session_id owner) {
    auto& m = *impl_;
    auto it = m.sessions.find(owner);
    if (it == m.sessions.end()) return;
    const auto lease_ids = std::move(it->second);
    m.sessions.erase(it);
    const time_point orphaned = m.clk.now() + m.opt.session_grace;
    for (std::uint64_t id : lease_ids) {
        auto lit = m.leases.find(id);
        if (lit == m.leases.end()) continue;
        lit->second.owner = 0;
        lit->second.orphaned_at = orphaned;
        m.schedule(id, lit->second);
    }
}

task<result<std::uint64_t>> registry::record(std::vector<std::shared_ptr<event>> events,
                                             std::vector<store_mutation> mutations, std::string_view what) {
    auto& m = *impl_;
    if (m.failed) co_return fail(errc::unavailable, "the store has failed; the registry accepts no writes");
    const bool change = !events.empty();
    const std::uint64_t rev = change ? m.next_revision(std::move(events)) : m.state_revision;
    store_batch batch{rev, std::move(mutations)};
    const bool written = co_await m.commit(std::move(batch));
    if (!written) co_return fail(errc::unavailable, "the store failed to persist the " + std::string(what));
    if (change) m.mark_durable(rev, rev);
    co_return rev;
}

std::uint64_t registry::revision() const noexcept { return impl_->state_revision; }
std::size_t registry::size() const noexcept { return impl_->services.size(); }
bool registry::available() const noexcept { return !impl_->failed; }
const registry_options& registry::options() const noexcept { return impl_->opt; }

}  // namespace registry
