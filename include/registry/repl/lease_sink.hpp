// Where the REPL executor puts the containers it creates under leases, and
// learns which engines it may use: in registryd, the container manager
// (manager_lease_sink.hpp), whose reaper removes them if registryd dies
// before the executor does.
//
// Every container the executor creates carries the sink's lease_labels for
// its absolute deadline (the time after which it may be removed whatever
// happens), is reported to container_created before it is started, and to
// container_removed once the executor has removed it. The executor removes
// its containers itself in every path; the lease only covers the executor
// not being there any more.
#pragma once

#include <registry/ports/clock.hpp>
#include <registry/result.hpp>
#include <registry/task.hpp>

#include <map>
#include <string>
#include <string_view>

namespace registry::repl {

// Labels on every REPL container, for the operator's eyes (the lease is in
// the sink's labels).
namespace repl_labels {
inline constexpr std::string_view marker = "io.registry.repl";             // "1"
inline constexpr std::string_view language = "io.registry.repl.language";
inline constexpr std::string_view execution = "io.registry.repl.execution";  // not on warm-pool containers (created before their execution)
}  // namespace repl_labels

class lease_sink {
public:
    virtual ~lease_sink() = default;
    // Whether the engine may take new containers now (an offline one may not).
    virtual bool online(std::string_view engine) const = 0;
    // The labels that put a container under a lease ending at `deadline`
    // (given at create: labels cannot change).
    virtual std::map<std::string, std::string> lease_labels(time_point deadline) const = 0;
    // A failure aborts the execution (the container is removed, the execution
    // finishes with that failure); a warm container is dropped.
    virtual task<result<void>> container_created(std::string_view engine, std::string_view container_id,
                                                 time_point deadline) = 0;
    virtual task<void> container_removed(std::string_view engine, std::string_view container_id) = 0;
};

}  // namespace registry::repl
