// The registry's data model: a service instance and what belongs to it:
// execution, location, endpoints, depends_on, state machine, last health
// result; the lease that keeps the instance alive and the revisions that
// version it.
#pragma once

#include <registry/health_check.hpp>
#include <registry/ports/clock.hpp>

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace registry {

enum class service_state { registered, starting, running, stopping, stopped, failed };

std::string_view to_string(service_state s) noexcept;
std::optional<service_state> parse_service_state(std::string_view s) noexcept;

// The state machine. A state "changing" to itself is not a transition.
bool is_allowed_transition(service_state from, service_state to) noexcept;

struct endpoint {
    std::string name;      // "http", "grpc", ...
    std::string address;   // host name or IP literal
    std::uint16_t port = 0;
    std::string protocol;  // "tcp", "udp", "http", ...

    friend bool operator==(const endpoint&, const endpoint&) = default;
};

enum class execution_kind { managed_process, container, systemd_unit };

std::string_view to_string(execution_kind k) noexcept;
std::optional<execution_kind> parse_execution_kind(std::string_view s) noexcept;

struct execution_info {
    execution_kind kind = execution_kind::managed_process;
    // managed_process
    std::optional<std::uint32_t> pid;
    std::string command;
    // container
    std::string container_id;
    std::string image;
    // systemd_unit
    std::string unit_name;

    friend bool operator==(const execution_info&, const execution_info&) = default;
};

struct location {
    bool remote = false;
    std::string host;           // remote only
    std::string ssh_user;       // remote only, optional
    std::uint16_t ssh_port = 0; // remote only, 0 = default

    friend bool operator==(const location&, const location&) = default;
};

std::string_view to_string(health_status h) noexcept;
std::optional<health_status> parse_health_status(std::string_view s) noexcept;

struct health_result {
    health_status status = health_status::unknown;
    std::string output;
    time_point checked_at{};

    friend bool operator==(const health_result&, const health_result&) = default;
};

struct lease {
    std::uint64_t id = 0;
    seconds ttl{0};
    time_point expires_at{};
    bool session_bound = false;  // dropped when its WebSocket session goes away
    // The identity holding it (identity.hpp): only it, or an admin, may renew,
    // re-register, deregister the instance or change its state, and see `id`.
    std::string holder = "anonymous";

    friend bool operator==(const lease&, const lease&) = default;
};

struct service_instance {
    std::string name;
    std::string instance_id;
    std::string version;
    execution_info execution;
    location where;
    std::vector<endpoint> endpoints;
    std::vector<std::string> depends_on;
    std::map<std::string, std::string> metadata;

    service_state state = service_state::registered;
    std::string failure_reason;  // set while state == failed
    std::optional<health_result> health;  // with checks: the worst of them
    std::vector<health_check> checks;

    struct lease lease;
    time_point registered_at{};
    std::uint64_t created_revision = 0;
    std::uint64_t modified_revision = 0;

    friend bool operator==(const service_instance&, const service_instance&) = default;
};

}  // namespace registry
