// Where the REPL executor reports the containers it creates, so that a
// container manager can put them under leases (and its reaper remove them if
// registryd dies before the executor does).
//
// Every container the executor creates is reported to container_created
// (before it is started) with its absolute deadline, the time after which it
// may be removed whatever happens; every container it removes, to
// container_removed. The executor does not depend on the sink: it removes its
// containers itself in every path, sweeps leftovers by label at start, and
// labels each container (repl_labels) so that a reaper without the sink can
// still find them.
#pragma once

#include <registry/ports/clock.hpp>
#include <registry/result.hpp>
#include <registry/task.hpp>

#include <string_view>

namespace registry::repl {

// Labels on every REPL container.
namespace repl_labels {
inline constexpr std::string_view marker = "io.registry.repl";             // "1"
inline constexpr std::string_view owner = "io.registry.repl.owner";        // executor_options::owner
inline constexpr std::string_view language = "io.registry.repl.language";
inline constexpr std::string_view execution = "io.registry.repl.execution";  // not on warm-pool containers (created before their execution)
inline constexpr std::string_view deadline = "io.registry.repl.deadline_ms";  // absolute, ms since the epoch
}  // namespace repl_labels

class lease_sink {
public:
    virtual ~lease_sink() = default;
    // A failure aborts the execution (the container is removed, the execution
    // finishes with that failure); a warm container is dropped.
    virtual task<result<void>> container_created(std::string_view engine, std::string_view container_id,
                                                 time_point deadline) = 0;
    virtual task<void> container_removed(std::string_view engine, std::string_view container_id) = 0;
};

}  // namespace registry::repl
