// The REPL executor: runs programs in ephemeral containers, one container per
// execution, never reused.
//
// An execution: a container is taken from the language's warm pool (when the
// request keeps the default container limits) or created; the sources, stdin
// and a small driver script are uploaded as a tar archive (put_archive)
// before start; the executor attaches before start, so no output is lost, and
// reports output as it arrives. The driver copies the sources into the
// writable work dir (a tmpfs; the root filesystem is read-only), runs the
// compile step if the language has one, and then the program. The executor
// kills the container at the wall-clock timeout, when the output cap is
// reached or on cancel, and removes it in every case, right after
// on_finished.
//
// Engines have a concurrency limit each; an execution that finds every engine
// full (or offline, as the lease sink says) waits in one bounded FIFO queue
// (listeners get on_queued with the position whenever it changes); a full
// queue refuses with errc::busy.
//
// Every container is under a lease from the lease sink (lease_sink.hpp), so
// that what a killed process leaves behind is reaped at its deadline; without
// a sink, nothing outlives the executor's own clean-up.
//
// Threading: like the registry, used from one thread; coroutines over the
// container_engine and clock ports, no thread of its own.
#pragma once

#include <registry/async_scope.hpp>
#include <registry/identity.hpp>
#include <registry/ports/clock.hpp>
#include <registry/ports/container_engine.hpp>
#include <registry/ports/random.hpp>
#include <registry/repl/execution.hpp>
#include <registry/repl/language.hpp>
#include <registry/repl/lease_sink.hpp>
#include <registry/result.hpp>
#include <registry/task.hpp>

#include <cstddef>
#include <functional>
#include <memory>
#include <optional>
#include <stop_token>
#include <string>
#include <string_view>
#include <vector>

namespace registry::repl {

struct engine_slot {
    std::string name;  // as the lease sink knows it (a container manager's node)
    container_engine* engine = nullptr;
    std::size_t max_concurrent = 4;  // executions running at once on this engine
};

struct executor_options {
    std::size_t max_queue = 64;  // executions waiting for an engine; beyond: busy
    // Executions one non-admin identity may have queued or running at once
    // (0: no such quota), so that one client cannot take every slot.
    std::size_t max_concurrent_per_identity = 0;
    // A container's lease ends this long after the latest time its execution
    // can end (its timeout): room for attaching, uploading and removing it.
    milliseconds lease_grace{60'000};
    milliseconds idempotency_window{600'000};  // a key finds its execution for this long after it finished
    std::size_t max_files = 64;
    std::size_t max_source_bytes = 1 << 20;  // files + stdin together
    std::size_t max_args = 64;
    milliseconds warm_max_age{600'000};  // a warm container older than this is replaced
    std::string user = "65534:65534";    // the non-root user programs run as
    std::uint64_t work_dir_bytes = 64 << 20;  // size of the writable work dir (tmpfs)
    // How often a running execution's container is sampled for its resource
    // usage (container_engine::stats), besides once when its program ends.
    milliseconds usage_sample_interval{250};
    // Every execution's outcome, once, after its listeners got it: the
    // embedder's record (registryd: metrics). Optional; called inline, must
    // not throw nor call back into the executor.
    std::function<void(const outcome&)> on_finished;
};

struct submission {
    std::string execution_id;
    bool created = true;  // false: the idempotency key found an earlier execution
};

class executor {
public:
    // `random`: where execution ids get their 128 random bits from (an id
    // must not be guessable: it is how its owner names it).
    executor(clock& clk, random_source& random, std::vector<engine_slot> engines, std::vector<language> languages,
             executor_options options = {}, lease_sink* leases = nullptr);
    ~executor();
    executor(const executor&) = delete;
    executor& operator=(const executor&) = delete;

    // Keeps the warm pools of the online engines filled and starts queued
    // executions as engines come online, until `stop`. Then cancels every
    // execution, removes every container (warm ones too) and returns once
    // nothing is left running.
    task<void> run(std::stop_token stop);

    const std::vector<language>& languages() const noexcept;

    // An engine that joins while it runs (a node added to the container
    // manager behind the lease sink), or one known by this name again,
    // perhaps by another client: executions start on it once the lease sink
    // calls it online. One that leaves needs no call: the sink calls it
    // offline. invalid_request: no engine, or max_concurrent 0.
    result<void> add_engine(engine_slot slot);

    // Validates and accepts an execution. `accepted` is called with the
    // submission before anything is reported to `l` (the protocol answers
    // there, so the response precedes every event). A known idempotency key
    // adds `l` to that execution instead (a finished one reports on_finished
    // to it at once). Errors: invalid_request (language, files, limits),
    // busy (queue full), unavailable (not running, or shutting down),
    // limit_exceeded (`by` has max_concurrent_per_identity executions).
    // The execution is `by`'s; idempotency keys are per identity.
    result<submission> execute(request req, listener_ptr l,
                               const std::function<void(const submission&)>& accepted = {},
                               const identity& by = identity::anonymous());

    // Stops a queued or running execution; it finishes with cancelled set.
    // not_found for an unknown id; a finished one is left as it is (ok);
    // forbidden unless `by` owns it or is an admin.
    result<void> cancel(std::string_view execution_id, const identity& by = identity::anonymous());

    // "queued" or "running" for an execution that has not finished and that
    // `by` may see (its owner, or an admin); nullopt otherwise.
    std::optional<std::string_view> state_of(std::string_view execution_id, const identity& by) const;

    // Executions running and waiting, for metrics and tests.
    std::size_t running() const noexcept;
    std::size_t queued() const noexcept;
    // Warm containers over every engine: of one version, or (none given) of every version of the language.
    std::size_t warm(std::string_view language, std::optional<std::string_view> version = {}) const noexcept;

    struct impl;

private:
    std::unique_ptr<impl> impl_;
};

}  // namespace registry::repl
