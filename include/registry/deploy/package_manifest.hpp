// A package's manifest.yaml (docs/protocol.md, "Deployment"): what the package
// is, what it serves, what it needs on the target and how its health is
// checked. Plain values; the YAML reader is compiled in lib/.
#pragma once

#include <registry/health_check.hpp>
#include <registry/ports/clock.hpp>
#include <registry/result.hpp>

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace registry::deploy {

struct package_port {
    std::string name;          // endpoint name: "http"
    std::uint16_t port = 0;
    std::string protocol = "tcp";
};

// How a container package's health is checked: the container's own address
// and one of its ports, since a script in the package cannot run inside the
// image (docs/protocol.md, "Container packages").
enum class container_check { running, http, tcp };

std::string_view to_string(container_check c) noexcept;

struct package_health {
    std::string script;               // relative to the package root: "scripts/health.sh" (managed_process)
    milliseconds interval{30000};     // between checks, also between retries while gating
    milliseconds timeout{5000};       // one run of the script
    milliseconds deadline{60000};     // after start.sh: healthy within this, or the deploy rolls back
    // The periodic checks after the gate: the instance's check of kind
    // script (script_check_of), with the timing and thresholds of a
    // registration's checks (docs/protocol.md, "Health checks").
    std::uint32_t failures_before_critical = 1;
    std::uint32_t successes_before_passing = 1;
    milliseconds initial_delay{0};  // after the gate, before the first periodic run
};

// The deployed instance's check of kind script that runs `h.script`: named
// after the script's file ("health.sh"), with its interval, timeout and thresholds.
health_check script_check_of(const package_health& h);

// service.type container: what the container manager runs (its request's
// fields; the container policy applies to them as to container_create).
struct package_container {
    std::string image;                  // empty: the preset's
    std::optional<std::string> preset;  // a name in containers.presets
    std::vector<std::string> command;   // empty: the image's (or the preset's)
    std::map<std::string, std::string> env;
    std::map<std::string, std::string> labels;
    std::optional<std::uint64_t> memory_bytes;
    std::optional<double> cpus;
    std::optional<std::int64_t> pids;
    // Its health (the manifest's health.check, health.port, health.path):
    // `check` on the port named `check_port`, GET `check_path` for http;
    // `running`: the container runs.
    container_check check = container_check::running;
    std::string check_port;
    std::string check_path = "/";
};

struct package_manifest {
    std::string name;
    std::string version;
    std::string description;
    std::string service_type = "managed_process";  // or "container"
    std::vector<package_port> ports;
    std::vector<std::string> depends_on;
    std::vector<std::string> required_commands;
    std::vector<std::string> required_libraries;
    std::optional<package_health> health;
    std::optional<package_container> container;  // service.type container
    // The manifest.yaml it was read from (a container package's deployment
    // keeps it: a restarted registryd recreates the container from it).
    std::string source;

    bool is_container() const noexcept { return service_type == "container"; }
};

// Parses and validates manifest.yaml. Every problem is reported, each with
// the path of its field ("service.ports[1].port: must be 1-65535"), joined by
// "; " in an errc::invalid_request.
result<package_manifest> parse_package_manifest(std::string_view yaml);

// The same problems, one string each; empty when the manifest is valid.
std::vector<std::string> check_package_manifest(std::string_view yaml, package_manifest* out = nullptr);

// "30s", "500ms", "2m", "1h", or a bare number of seconds.
std::optional<milliseconds> parse_duration(std::string_view text);

// [^a-zA-Z0-9_-] -> '_': the name as it appears in install paths.
std::string sanitize_package_name(std::string_view name);

// "{sanitized-name}-{version}", the install directory's name under the prefix
// (a valid version is already path-safe: it starts with [A-Za-z0-9]).
std::string install_dir_name(const package_manifest& m);

}  // namespace registry::deploy
