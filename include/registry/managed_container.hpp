// A container the registry manages under a lease, and an engine as a node of
// the cluster: the values container_manager (container_manager.hpp) keeps and
// publishes in its events.
#pragma once

#include <registry/container.hpp>
#include <registry/ports/clock.hpp>
#include <registry/resource_usage.hpp>

#include <cstddef>
#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace registry {

enum class managed_state { created, running, exited, removed, lost };

std::string_view to_string(managed_state s) noexcept;
std::optional<managed_state> parse_managed_state(std::string_view s) noexcept;

struct managed_container {
    std::uint64_t lease_id = 0;
    std::string engine;        // the node's name
    std::string container_id;  // the engine's id
    std::string name;
    std::string image;
    seconds ttl{0};
    time_point created_at{};
    time_point expires_at{};  // the lease's current deadline (extensions included)
    managed_state state = managed_state::created;
    std::optional<int> exit_code;  // once exited
    // From the engine's inspect (State.StartedAt, FinishedAt, Error), kept in
    // the record so that they outlive the container and a restart.
    std::optional<time_point> started_at;   // nullopt: not started (yet)
    std::optional<time_point> finished_at;  // nullopt: not finished (yet)
    std::string error;                      // the engine's error running it; usually empty
    // What it runs, as requested (or, adopted without a record, as inspected).
    std::vector<std::string> command;            // empty: the image's default
    container_limits limits;
    std::map<std::string, std::string> labels;  // the user's; not the registry's io.registry.* ones
    // The identity that created it (identity.hpp): only it, or an admin, may
    // stop, remove or extend it. Adopted without a record: "anonymous".
    std::string owner = "anonymous";
    // CPU time and peak memory from the engine's stats (resource_usage.hpp):
    // sampled when registryd stops or removes it (before the engine does,
    // since its figures go with it), and live for container_get of a running
    // one (not recorded). A container that exits by itself has none.
    resource_usage usage;
};

using container_ptr = std::shared_ptr<const managed_container>;

// An engine as a node: what list_nodes shows.
struct node_status {
    std::string name;
    std::string endpoint;  // as configured, informational
    std::size_t capacity = 0;
    bool online = false;
    std::size_t running = 0;  // managed containers created or running there
    std::optional<time_point> last_heartbeat;
};

}  // namespace registry
