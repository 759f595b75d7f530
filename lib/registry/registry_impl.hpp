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
#include "codec/event_record.hpp"
#include "codec/service_record.hpp"

#include <registry/registry.hpp>

#include <cstdint>
#include <deque>
#include <memory>
#include <optional>
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

    // become_replica(): who writes, for not_writer's message.
    bool replica = false;
    std::string writer;
    read_barrier_fn barrier;

    // Batches the store could not write (store_unreachable), in the order
    // they were started, with the revisions whose events wait for them.
    struct unwritten_batch {
        store_batch batch;
        std::uint64_t first = 0;  // 0: no events
        std::uint64_t last = 0;
    };
    std::deque<unwritten_batch> unwritten;
    std::string store_problem;
    time_point store_trouble_since{};

    // Why a write may not start now, if it may not.
    std::optional<error> refuse_writes() const {
        if (replica) {
            return error{errc::not_writer, "this registryd is a standby: " + writer +
                                               " writes the registry; send writes there"};
        }
        if (failed) return error{errc::unavailable, "the store has failed; the registry accepts no writes"};
        if (!unwritten.empty()) {
            return error{errc::unavailable, "the store is unreachable (" + store_problem +
                                                "); the registry accepts no writes until it is back"};
        }
        return std::nullopt;
    }

    // Writes a batch and publishes the events of revisions first..last (0:
    // none) once it is durable. When the store is unreachable the batch is
    // kept for run() to write again, and false tells the caller to answer
    // unavailable; any other store failure is final, because what reached
    // the disk is unknown.
    task<bool> commit(store_batch batch, std::uint64_t first = 0, std::uint64_t last = 0) {
        if (failed) co_return false;
        if (opt.event_log && first != 0) log_events(batch, first, last);
        if (!unwritten.empty()) {  // behind a batch that waits: keep the order
            unwritten.push_back({std::move(batch), first, last});
            co_return false;
        }
        try {
            co_await st.commit(std::move(batch));
        } catch (store_unreachable& e) {
            if (unwritten.empty()) {
                store_problem = e.what();
                store_trouble_since = clk.now();
            }
            unwritten.push_back({std::move(e.batch), first, last});
            co_return false;
        } catch (const store_error& e) {
            failed = true;
            store_problem = e.what();
            store_trouble_since = clk.now();
            co_return false;
        }
        if (first != 0) revisions.mark_durable(first, last);
        co_return true;
    }

    // Adds the events of revisions first..last to the batch (event_log), and
    // drops the entries that fell out of the history limit.
    void log_events(store_batch& batch, std::uint64_t first, std::uint64_t last) const {
        for (std::uint64_t r = first; r <= last; ++r) {
            auto it = revisions.unpublished.find(r);
            if (it == revisions.unpublished.end()) continue;
            batch.mutations.push_back({detail::event_log_key(r), detail::encode_event_log(it->second)});
            if (r > opt.history_limit) batch.mutations.push_back({detail::event_log_key(r - opt.history_limit), std::nullopt});
        }
    }

    // open()'s part with an event log (open.cpp).
    task<result<void>> load_history(std::uint64_t revision);

    // run()'s part while the store is unreachable (expiry.cpp).
    task<void> write_unwritten();

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
        const bool written = co_await commit(std::move(batch), rev, rev);
        if (!written) co_return not_written(what);
        co_return service_ptr(std::move(next));
    }

    // The answer to a change whose write failed (commit() returned false).
    unexpected not_written(std::string_view what) const {
        if (failed) return fail(errc::unavailable, "the store failed to persist the " + std::string(what));
        return fail(errc::unavailable, "the store is unreachable (" + store_problem + "): the " + std::string(what) +
                                           " is not acknowledged; registryd writes it once the store is back");
    }

    // Removes every lease past its deadline with its instance, under one
    // revision each, in one store batch (expiry.cpp).
    task<void> expire_due();
};

}  // namespace registry
