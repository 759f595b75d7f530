// The REPL executor's state, shared by the files that do its work, one
// concern each:
//   admission.cpp    validating and accepting an execution
//   idempotency.cpp  idempotency keys, and how long a finished execution stays findable
//   slots.cpp        engine slots, the FIFO queue, cancellation
//   containers.cpp   an execution's container, created (or taken warm); removing containers
//   warm_pool.cpp    the warm pools, and the housekeeping of containers
//   run.cpp          one execution: its run, its output stream, its outcome
//   usage.cpp        the resource usage of an execution's container
//   executor.cpp     the lifecycle, and the public interface
// The public entry point is include/registry/repl/executor.hpp.
#pragma once

#include <registry/async_scope.hpp>
#include <registry/repl/executor.hpp>

#include <cstddef>
#include <cstdint>
#include <deque>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <set>
#include <stop_token>
#include <string>
#include <string_view>
#include <vector>

namespace registry::repl::detail {

enum class phase { queued, running, finished };

struct execution {
    std::string id;
    const language* lang = nullptr;
    request req;
    limits lim;
    bool warm_eligible = false;  // the container limits are the language's defaults
    std::vector<listener_ptr> listeners;
    phase state = phase::queued;
    std::size_t last_position = 0;
    std::optional<std::stop_source> cancel;  // libstdc++ 12: emplace, never reassign
    bool cancel_requested = false;
    outcome result;
    time_point finished_at{};
    std::uint64_t seq = 0;
    std::string owner;  // the identity that submitted it
    bool counted = false;  // toward its owner's active executions
};

using execution_ptr = std::shared_ptr<execution>;

struct warm_container {
    std::string id;
    time_point created;
};

struct engine_state {
    explicit engine_state(engine_slot s) : slot(std::move(s)) {}

    engine_slot slot;
    std::size_t active = 0;
    std::set<std::string, std::less<>> stranded;  // removal failed: retried by the housekeeping loop
    std::map<std::string, std::deque<warm_container>, std::less<>> warm;  // by pool_key of a language version
    std::map<std::string, std::size_t, std::less<>> warm_creating;
};

// A warm pool is per language version: its containers are of that version's image.
std::string pool_key(const language& lang);

// What one running execution has seen of its container's output (run.cpp).
struct run_state;

}  // namespace registry::repl::detail

namespace registry::repl {

struct executor::impl {
    using phase = detail::phase;
    using execution = detail::execution;
    using execution_ptr = detail::execution_ptr;
    using warm_container = detail::warm_container;
    using engine_state = detail::engine_state;
    using run_state = detail::run_state;

    impl(clock& c, random_source& r, std::vector<engine_slot> slots, std::vector<language> l, executor_options o,
         lease_sink* s)
        : clk(c), random(r), langs(std::move(l)), opts(std::move(o)), leases(s) {
        for (auto& slot : slots) engines.emplace_back(std::move(slot));
        tasks.on_error([](std::exception_ptr) {});  // every task catches its own; never terminate the daemon
    }

    clock& clk;
    random_source& random;
    std::deque<engine_state> engines;  // grows only: running executions hold references
    std::vector<language> langs;
    executor_options opts;
    lease_sink* leases;

    std::map<std::string, execution_ptr, std::less<>> executions;  // live, and finished within the window
    std::map<std::string, std::string, std::less<>> by_key;        // owner, NUL, idempotency key → execution id
    std::map<std::string, std::size_t, std::less<>> active_by_owner;  // queued or running, by non-admin owner
    std::deque<execution_ptr> queue;
    std::size_t running_count = 0;
    bool accepting = false;
    async_scope tasks;

    // admission.cpp: validating and accepting an execution
    // The language version a request names (absent version: the default, the
    // first of the name); invalid_request naming the configured versions.
    result<const language*> find_language(std::string_view name, const std::optional<std::string>& version) const;
    result<limits> resolve(const language& lang, const limit_overrides& o) const;
    result<void> check_sources(const request& req) const;
    std::string next_id();
    result<submission> execute(request req, listener_ptr l, const std::function<void(const submission&)>& accepted,
                               const identity& by);
    // Idempotency keys are per identity: another's key finds nothing.
    static std::string key_of(std::string_view owner, std::string_view key);

    // idempotency.cpp: idempotency keys, and how long a finished execution stays findable
    void prune();
    // The execution `key` already names, if any: `l` joins it (a finished one
    // reports on_finished to it at once) and `accepted` hears of it.
    std::optional<submission> rejoin(const std::string& key, listener_ptr& l,
                                     const std::function<void(const submission&)>& accepted);

    // slots.cpp: engine slots, the FIFO queue, cancellation
    bool usable(const engine_state& e) const;
    engine_state* free_engine();
    result<void> add_engine(engine_slot slot);
    void report_positions();
    void dispatch();
    void start(const execution_ptr& ex, engine_state& eng);
    void finish(execution& ex);
    result<void> cancel(std::string_view id, const identity& by);

    // containers.cpp: an execution's container, created (or taken warm); removing containers
    container_spec spec_for(const language& lang, const limits& lim, std::string_view execution_id,
                            time_point deadline) const;
    task<result<std::string>> create(engine_state& eng, container_spec spec, time_point deadline);
    task<void> discard(engine_state& eng, std::string id);
    task<result<std::string>> acquire(execution& ex, engine_state& eng);

    // warm_pool.cpp: the warm pools, and the housekeeping of containers
    std::optional<std::string> take_warm(engine_state& eng, const language& lang);
    void fill_pools();
    task<void> create_warm(engine_state& eng, const language& lang);
    void retry_stranded();
    void replace_aged();

    // run.cpp: one execution: its run, its output stream, its outcome
    void emit(execution& ex, output_stream stream, std::string_view text);
    bool consume(execution& ex, run_state& st, const output_chunk& chunk);
    task<void> pump(execution& ex, engine_state& eng, const std::string& id, engine_stream<output_chunk>& stream,
                    run_state& st, std::stop_token kill, std::stop_source& done);
    task<void> watchdog(time_point deadline, run_state& st, std::stop_source& kill, std::stop_token done);
    task<void> run_execution(execution_ptr ex_ptr, engine_state& eng);
    task<void> run_container(execution& ex, engine_state& eng, const std::string& id, run_state& st,
                             std::stop_source& kill, bool& started, time_point& t0);
    void conclude(execution& ex, run_state& st, bool started);

    // usage.cpp: the resource usage of an execution's container
    task<void> sample_usage(execution& ex, engine_state& eng, const std::string& id, std::stop_token done);
    task<void> last_usage(execution& ex, engine_state& eng, const std::string& id);

    // executor.cpp: the lifecycle, and the public interface
    task<void> run(std::stop_token stop);
};

}  // namespace registry::repl
