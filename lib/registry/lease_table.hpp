// The registry's leases: one per service instance, with its deadline, its
// session (session-bound leases), the reaper's queue of deadlines and the
// per-origin and per-session counts behind the quotas.
//
// Header-only on purpose: register and keepalive call these on every request,
// and they stay inlined into the operations that use them.
#pragma once

#include "expiry_queue.hpp"

#include <registry/error.hpp>
#include <registry/registry.hpp>

#include <algorithm>
#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <unordered_map>
#include <unordered_set>
#include <vector>

namespace registry::detail {

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

struct lease_table {
    explicit lease_table(const registry_options& o) : opt(o) {}

    // A replica expires nothing (registry::become_replica).
    void clear() {
        by_id.clear();
        expiry = expiry_queue{};
        sessions.clear();
        by_origin.clear();
        by_creator.clear();
    }

    const registry_options& opt;
    std::unordered_map<std::uint64_t, lease_entry> by_id;
    expiry_queue expiry;  // effective deadlines, with stale entries (see is_current)
    std::unordered_map<session_id, std::unordered_set<std::uint64_t>> sessions;
    std::unordered_map<std::string, std::size_t> by_origin;  // live leases per origin (non-empty ones)
    std::unordered_map<session_id, std::size_t> by_creator;  // live leases per creating session (non-zero)

    // ---- deadlines ------------------------------------------------------------

    static time_point effective_deadline(const lease_entry& l) {
        return l.orphaned_at ? std::min(l.deadline, *l.orphaned_at) : l.deadline;
    }

    // A lease is scheduled again whenever its effective deadline changes;
    // the entry for the old deadline stays queued, stale.
    void schedule(std::uint64_t lease_id, const lease_entry& l) {
        expiry.push(effective_deadline(l), lease_id);
        if (expiry.size() > 2 * by_id.size() + 64) {
            std::vector<expiry_queue::entry> current;
            current.reserve(by_id.size());
            for (const auto& [id, live] : by_id) current.push_back({effective_deadline(live), id});
            expiry.rebuild(std::move(current));
        }
    }

    // An expiry entry still stands for its lease's deadline.
    bool is_current(const expiry_queue::entry& e) const {
        auto it = by_id.find(e.lease_id);
        return it != by_id.end() && effective_deadline(it->second) == e.deadline;
    }

    std::optional<expiry_queue::entry> next_expiry() {
        return expiry.next([this](const expiry_queue::entry& e) { return is_current(e); });
    }

    // How long the reaper may sleep without looking again. A deadline set
    // while it sleeps is at least min_ttl (or the session grace) away, so it
    // never needs waking early: no re-entrant wake-ups, at the price of one
    // idle wake-up per min_ttl.
    milliseconds max_sleep() const {
        return std::max(milliseconds{1}, std::min<milliseconds>(opt.min_ttl, opt.session_grace));
    }

    // ---- sessions -------------------------------------------------------------

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

    void drop(std::uint64_t lease_id) {
        auto it = by_id.find(lease_id);
        if (it == by_id.end()) return;
        detach(lease_id, it->second);
        uncount(it->second);
        by_id.erase(it);
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
};

}  // namespace registry::detail
