// Loading the registry from the store (registry::open).
#include "registry_impl.hpp"

#include <optional>
#include <string>
#include <utility>
#include <vector>

namespace registry {

task<result<void>> registry::open() {
    auto& m = *impl_;
    const time_point now = m.clk.now();
    std::optional<error> bad;  // the first stored record that does not decode
    // Each record is decoded where the store keeps it: no copy of the
    // encoded state is made on the way.
    const std::string prefix(detail::keyspace::services);
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
        detail::lease_entry l{entry, expires_at, std::nullopt, 0, session_bound, {}, 0};  // counted toward no quota
        // Its session died with the previous process: the grace starts now.
        if (l.session_bound) l.orphaned_at = now + m.opt.session_grace;
        m.leases.by_id.emplace(lease_id, l);
        m.leases.expiry.push(detail::lease_table::effective_deadline(l), lease_id);
    };
    std::uint64_t revision = 0;
    try {
        revision = co_await m.st.load(prefix, restore);
    } catch (const store_error& e) {
        m.failed = true;
        co_return fail(errc::unavailable, std::string("store: ") + e.what());
    }
    if (bad) co_return unexpected{std::move(*bad)};
    m.revisions.state_revision = m.revisions.published_revision = revision;
    m.revisions.first_retained = revision + 1;
    if (m.opt.event_log) {
        auto replayed = co_await m.load_history(revision);
        if (!replayed) co_return replayed;
    }
    m.opened = true;
    co_return result<void>{};
}

// The event log's revisions up to `revision` into the history: the run of
// consecutive revisions that ends there (a log started later, or trimmed,
// replays from its first revision on).
task<result<void>> registry::impl::load_history(std::uint64_t revision) {
    std::vector<std::pair<std::uint64_t, std::string>> logged;
    std::optional<error> bad;
    store_visitor keep = [&logged, &bad, revision](std::string_view key, std::string_view value) {
        const auto r = detail::event_log_revision(key);
        if (!r) {
            if (!bad) bad = error{errc::internal, "stored key '" + std::string(key) + "' is not an event log key"};
            return;
        }
        if (*r <= revision) logged.emplace_back(*r, value);
    };
    try {
        co_await st.load(std::string(detail::keyspace::event_log), keep);
    } catch (const store_error& e) {
        failed = true;
        co_return fail(errc::unavailable, std::string("store: ") + e.what());
    }
    if (bad) co_return unexpected{std::move(*bad)};
    std::size_t start = logged.size();  // keys come in revision order
    while (start > 0 && logged[start - 1].first == revision - (logged.size() - start)) --start;
    // remember() raises first_retained past what it trims, if it must.
    if (start < logged.size()) revisions.first_retained = logged[start].first;
    for (std::size_t i = start; i < logged.size(); ++i) {
        auto events = detail::decode_event_log(logged[i].second, logged[i].first);
        if (!events) {
            co_return fail(errc::internal, "stored event log entry of revision " + std::to_string(logged[i].first) +
                                               ": " + events.err().message);
        }
        for (auto& e : *events) revisions.remember(std::move(e));
    }
    co_return result<void>{};
}

}  // namespace registry
