// The registry's operations: register, keepalive, deregister, state and
// health changes, and the writes of companions (record). The state they work
// on is in registry_impl.hpp; loading (open.cpp), expiry (expiry.cpp), watch
// (watch.cpp) and the queries (queries.cpp) have files of their own.
#include "registry_impl.hpp"
#include "registration_rules.hpp"
#include "check_results.hpp"

#include <registry/ownership.hpp>

#include <cassert>

namespace registry {

registry::registry(class clock& clk, class store& st, registry_options options)
    : impl_(std::make_unique<impl>(clk, st, std::move(options))) {}

// Every watch() generator must be destroyed before its registry.
registry::~registry() { assert(impl_->revisions.watchers.empty()); }

namespace {

// `by` may act on the instance `s` (its name in scope, its lease held).
std::optional<error> check_holder(const identity& by, const service_instance& s, std::string_view action) {
    if (auto refused = check_service_scope(by, s.name, action)) return refused;
    return check_owner(by, s.lease.holder, action, "instance", s.instance_id);
}

}  // namespace

task<result<lease_grant>> registry::register_service(registration reg, session_id owner, const identity& by) {
    auto& m = *impl_;
    if (auto problems = detail::check_registration(reg, m.opt); !problems.empty()) {
        co_return unexpected{invalid_fields(std::move(problems))};
    }
    if (auto refused = check_service_scope(by, reg.service.name, "register")) co_return unexpected{std::move(*refused)};
    if (auto refused = m.refuse_writes()) co_return unexpected{std::move(*refused)};
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
        // Before the lease id is compared: a lease id alone grants nothing.
        if (auto refused = check_holder(by, *previous, "re-register")) co_return unexpected{std::move(*refused)};
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
    } else if (auto refused = m.leases.over_quota(reg.origin, owner)) {
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
        detail::carry_check_results(*next, previous.get(), now);
        const bool other_changed = next->name != previous->name || next->version != previous->version ||
                                   next->execution != previous->execution || next->where != previous->where ||
                                   next->depends_on != previous->depends_on || next->metadata != previous->metadata ||
                                   next->checks != previous->checks;
        // One event per change: endpoint_updated carries the whole new
        // instance, so a client following it misses nothing else.
        if (endpoints_changed) {
            events.push_back(detail::make_event(event_type::endpoint_updated, 0, next));
        } else if (other_changed) {
            events.push_back(detail::make_event(event_type::service_registered, 0, next));
        }
    } else {
        lease_id = m.revisions.state_revision + 1;  // the revision this registration is about to get: unique, persisted
        if (next->instance_id.empty()) {
            next->instance_id = next->name + "-" + std::to_string(lease_id);
            for (int k = 2; m.services.contains(next->instance_id); ++k) {
                next->instance_id = next->name + "-" + std::to_string(lease_id) + "-" + std::to_string(k);
            }
        }
        next->state = service_state::registered;
        next->failure_reason.clear();
        next->health.reset();
        detail::carry_check_results(*next, nullptr, now);
        next->registered_at = now;
        events.push_back(detail::make_event(event_type::service_registered, 0, next));
    }
    std::string holder = previous                ? previous->lease.holder
                         : reg.holder.empty()    ? by.name
                                                 : std::move(reg.holder);
    next->lease = lease{lease_id, ttl, deadline, reg.session_bound, std::move(holder)};
    const auto entry = m.services.insert_or_assign(next->instance_id, next).first;

    // Lease bookkeeping.
    if (previous) {
        auto& l = m.leases.by_id.at(lease_id);
        l.deadline = deadline;
        l.session_bound = reg.session_bound;
        if (reg.session_bound) {
            m.leases.bind(lease_id, l, owner);
        } else {
            m.leases.detach(lease_id, l);
        }
        m.leases.schedule(lease_id, l);
    } else {
        auto& l = m.leases.by_id
                      .emplace(lease_id, detail::lease_entry{entry, deadline, std::nullopt, 0, reg.session_bound,
                                                             std::move(reg.origin), owner})
                      .first->second;
        m.leases.count(l);
        if (reg.session_bound) m.leases.bind(lease_id, l, owner);
        m.leases.schedule(lease_id, l);
    }

    std::uint64_t rev = m.revisions.state_revision;
    const bool changed = !events.empty();
    if (changed) {
        rev = m.revisions.next_revision(std::move(events));
        if (!previous) next->created_revision = rev;
        next->modified_revision = rev;
    }

    store_batch batch{rev, {}};
    batch.mutations.push_back({detail::service_key(next->instance_id), detail::encode_service_record(*next)});
    const bool written = co_await m.commit(std::move(batch), changed ? rev : 0, changed ? rev : 0);
    if (!written) co_return m.not_written("registration");
    co_return lease_grant{lease_id, next->instance_id, ttl, deadline, rev, previous == nullptr};
}

task<result<lease_grant>> registry::keepalive(std::uint64_t lease_id, session_id owner, const identity& by) {
    auto& m = *impl_;
    if (auto refused = m.refuse_writes()) co_return unexpected{std::move(*refused)};
    auto lit = m.leases.by_id.find(lease_id);
    if (lit == m.leases.by_id.end()) {
        co_return fail(errc::lease_not_found, "lease " + std::to_string(lease_id) + " does not exist (it may have expired)");
    }
    auto& l = lit->second;
    auto current = l.service->second;
    if (auto refused = check_holder(by, *current, "keepalive")) co_return unexpected{std::move(*refused)};
    const time_point deadline = m.clk.now() + current->lease.ttl;

    l.deadline = deadline;
    if (l.session_bound && owner != 0) m.leases.bind(lease_id, l, owner);
    m.leases.schedule(lease_id, l);

    auto next = std::make_shared<service_instance>(*current);
    next->lease.expires_at = deadline;
    m.services.insert_or_assign(next->instance_id, next);

    // A renewal is not a change others need to hear about: it keeps the
    // current revision, but it is durable so a restart keeps the deadline.
    store_batch batch{m.revisions.state_revision, {}};
    batch.mutations.push_back({detail::service_key(next->instance_id), detail::encode_service_record(*next)});
    const bool written = co_await m.commit(std::move(batch));
    if (!written) co_return m.not_written("renewal");
    co_return lease_grant{lease_id, next->instance_id, next->lease.ttl, deadline, m.revisions.state_revision, false};
}

task<result<deregistration>> registry::deregister(std::string_view instance_id, std::string reason,
                                                  const identity& by) {
    auto& m = *impl_;
    if (auto refused = m.refuse_writes()) co_return unexpected{std::move(*refused)};
    auto it = m.services.find(instance_id);
    if (it == m.services.end()) co_return fail(errc::not_found, "no instance '" + std::string(instance_id) + "'");
    if (auto refused = check_holder(by, *it->second, "deregister")) co_return unexpected{std::move(*refused)};
    service_ptr gone = it->second;
    m.services.erase(it);
    m.leases.drop(gone->lease.id);

    const std::uint64_t rev =
        m.revisions.next_revision({detail::make_event(event_type::service_deregistered, 0, gone, std::move(reason))});
    store_batch batch{rev, {}};
    batch.mutations.push_back({detail::service_key(gone->instance_id), std::nullopt});
    const bool written = co_await m.commit(std::move(batch), rev, rev);
    if (!written) co_return m.not_written("deregistration");
    co_return deregistration{std::move(gone), rev};
}

task<result<service_ptr>> registry::set_state(std::string_view instance_id, service_state to, std::string reason,
                                              const identity& by) {
    auto& m = *impl_;
    if (auto refused = m.refuse_writes()) co_return unexpected{std::move(*refused)};
    auto it = m.services.find(instance_id);
    if (it == m.services.end()) co_return fail(errc::not_found, "no instance '" + std::string(instance_id) + "'");
    if (auto refused = check_holder(by, *it->second, "set the state of")) co_return unexpected{std::move(*refused)};
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
    auto e = detail::make_event(event_type::service_state_changed, 0, next, std::move(reason));
    e->previous_state = current->state;
    co_return co_await m.replace(std::move(next), std::move(e), "state change");
}

task<result<service_ptr>> registry::record_health(std::string_view instance_id, health_result health) {
    auto& m = *impl_;
    if (auto refused = m.refuse_writes()) co_return unexpected{std::move(*refused)};
    auto it = m.services.find(instance_id);
    if (it == m.services.end()) co_return fail(errc::not_found, "no instance '" + std::string(instance_id) + "'");
    auto next = std::make_shared<service_instance>(*it->second);
    next->health = std::move(health);
    auto e = detail::make_event(event_type::health_check_result, 0, next);
    co_return co_await m.replace(std::move(next), std::move(e), "health result");
}

void registry::set_event_encoder(event_encoder encode) noexcept { impl_->revisions.encode = encode; }

void registry::add_registration_rule(registration_rule rule) { impl_->rules.push_back(std::move(rule)); }

void registry::release_session(session_id owner) {
    auto& m = *impl_;
    auto it = m.leases.sessions.find(owner);
    if (it == m.leases.sessions.end()) return;
    const auto lease_ids = std::move(it->second);
    m.leases.sessions.erase(it);
    const time_point orphaned = m.clk.now() + m.opt.session_grace;
    for (std::uint64_t id : lease_ids) {
        auto lit = m.leases.by_id.find(id);
        if (lit == m.leases.by_id.end()) continue;
        lit->second.owner = 0;
        lit->second.orphaned_at = orphaned;
        m.leases.schedule(id, lit->second);
    }
}

task<result<std::uint64_t>> registry::record(std::vector<std::shared_ptr<event>> events,
                                             std::vector<store_mutation> mutations, std::string_view what) {
    auto& m = *impl_;
    if (auto refused = m.refuse_writes()) co_return unexpected{std::move(*refused)};
    const bool change = !events.empty();
    const std::uint64_t rev = change ? m.revisions.next_revision(std::move(events)) : m.revisions.state_revision;
    store_batch batch{rev, std::move(mutations)};
    const bool written = co_await m.commit(std::move(batch), change ? rev : 0, change ? rev : 0);
    if (!written) co_return m.not_written(what);
    co_return rev;
}

std::uint64_t registry::revision() const noexcept { return impl_->revisions.state_revision; }
std::size_t registry::size() const noexcept { return impl_->services.size(); }
bool registry::available() const noexcept { return !impl_->failed && impl_->unwritten.empty(); }

store_condition registry::store_status() const {
    const auto& m = *impl_;
    store_condition c;
    if (m.failed) {
        c.current = store_condition::state::failed;
    } else if (!m.unwritten.empty()) {
        c.current = store_condition::state::unreachable;
    } else {
        return c;
    }
    c.problem = m.store_problem;
    c.since = m.store_trouble_since;
    c.unwritten = m.unwritten.size();
    return c;
}
const registry_options& registry::options() const noexcept { return impl_->opt; }
clock& registry::clk() const noexcept { return impl_->clk; }

}  // namespace registry
