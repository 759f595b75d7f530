// The results of finished REPL executions, kept for a retention window so
// that a client that lost its connection can still fetch an outcome by its
// execution id (repl_result) or list its recent executions (repl_history).
//
// Each result is a record in the store (keyspace::repl_results), written
// through the registry like the container manager's records, so results
// outlive a restart. Bounded: a result is dropped `retention` after its
// execution finished (swept by run()), and the oldest ones go first when
// there are more than max_results or max_bytes of them, or more than
// max_results_per_identity or max_bytes_per_identity of one identity's. The
// bytes are the records' encoded sizes, the capped output included.
//
// Threading: like the registry, used from one thread.
#pragma once

#include <registry/identity.hpp>
#include <registry/ports/clock.hpp>
#include <registry/ports/store.hpp>
#include <registry/repl/execution.hpp>
#include <registry/result.hpp>
#include <registry/task.hpp>

#include <cstddef>
#include <cstdint>
#include <memory>
#include <optional>
#include <stop_token>
#include <string_view>
#include <vector>

namespace registry {
class registry;
}

namespace registry::repl {

struct result_store_options {
    milliseconds retention{3'600'000};  // after an execution finished; zero keeps nothing
    std::size_t max_results = 10'000;
    std::uint64_t max_bytes = std::uint64_t{256} << 20;
    std::size_t max_results_per_identity = 1'000;
    std::uint64_t max_bytes_per_identity = std::uint64_t{64} << 20;
    milliseconds sweep_interval{1'000};  // how often expired results are looked for
};

using outcome_ptr = std::shared_ptr<const outcome>;

class result_store {
public:
    // `reg` writes the records (and gives the clock), `st` is its store, read by open().
    result_store(class registry& reg, store& st, result_store_options options = {});
    ~result_store();
    result_store(const result_store&) = delete;
    result_store& operator=(const result_store&) = delete;

    // Loads the kept results; drops the expired ones and what is over the bounds.
    task<result<void>> open();
    // Sweeps expired results until `stop`, then waits for the writes in flight.
    task<void> run(std::stop_token stop);
    // Waits for the writes in flight (after the last keep(): once the
    // executor's run() is over).
    task<void> flush();

    // Keeps a finished execution's outcome (at once in memory; durable
    // shortly after). A result larger on its own than max_bytes or
    // max_bytes_per_identity is not kept.
    void keep(const outcome& o);

    // The kept result, if `by` may see it (its owner, or an admin).
    outcome_ptr find(std::string_view execution_id, const identity& by) const;
    // Newest first, at most `limit`: `by`'s own, or for an admin everyone's
    // (or `owner`'s only, when given).
    std::vector<outcome_ptr> history(const identity& by, std::size_t limit,
                                     std::optional<std::string_view> owner = std::nullopt) const;

    std::size_t size() const noexcept;
    std::uint64_t bytes() const noexcept;
    const result_store_options& options() const noexcept;

    struct impl;

private:
    std::unique_ptr<impl> impl_;
};

}  // namespace registry::repl
