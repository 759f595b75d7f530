// The registry's state: the services, their leases (lease_table.hpp) and the
// revision line their changes go out on (revision_line.hpp), shared by the
// translation units of lib/registry/: the operations (registry.cpp), loading
// from the store (open.cpp), expiry (expiry.cpp), watch (watch.cpp) and the
// queries (queries.cpp).
//
// What a write does on every request (commit, replace) is defined here, so it
// stays inlined into the operations.
#pragma once

#include "lease_table.hpp"
#include "revision_line.hpp"
#include "service_key.hpp"
#include "codec/service_record.hpp"

#include <registry/registry.hpp>

#include <cstdint>
#include <memory>
#include <set>
#include <string>
#include <string_view>
#include <vector>

namespace registry {

struct registry::impl {
    impl(class clock& c, class store& s, registry_options o) : clk(c), st(s), opt(std::move(o)) {}

    class clock& clk;
    class store& st;
    registry_options opt;

    detail::service_map services;
    detail::lease_table leases{opt};
    detail::revision_line revisions{opt};

    std::vector<registration_rule> rules;  // add_registration_rule()

    bool failed = false;
    bool opened = false;

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

    event_ptr snapshot_event(const std::set<std::string>& names) const {
        auto e = detail::make_event(event_type::registry_loaded, revisions.state_revision, nullptr);
        for (const auto& [id, s] : services) {
            if (names.empty() || names.contains(s->name)) e->snapshot.push_back(s);
        }
        return e;
    }

    // Makes `next` the instance's current version under a new revision that
    // carries `e`, and completes once that is durable.
    task<result<service_ptr>> replace(std::shared_ptr<service_instance> next, std::shared_ptr<event> e,
                                      std::string_view what) {
        const std::uint64_t rev = revisions.next_revision({std::move(e)});
        next->modified_revision = rev;
        services.insert_or_assign(next->instance_id, next);

        store_batch batch{rev, {}};
        batch.mutations.push_back({detail::service_key(next->instance_id), detail::encode_service_record(*next)});
        const bool written = co_await commit(std::move(batch));
        if (!written) co_return fail(errc::unavailable, "the store failed to persist the " + std::string(what));
        revisions.mark_durable(rev, rev);
        co_return service_ptr(std::move(next));
    }

    // Removes every lease past its deadline with its instance, under one
    // revision each, in one store batch (expiry.cpp).
    task<void> expire_due();
};

}  // namespace registry
