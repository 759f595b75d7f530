// The health monitor: runs every registered instance's health checks
// (docs/protocol.md, "Health checks"). It schedules them on the clock port,
// has the prober port probe http and tcp checks, applies the thresholds and
// records each check's transitions in the registry (registry::record_check);
// a ttl check turns critical when its service has not reported within the
// interval; a check critical for longer than deregister_critical_after
// deregisters its instance.
//
// Scheduling: a check first runs at initial_delay plus a spread (a hash of
// instance id and check name, modulo the interval) after the monitor learns
// of it, then every interval on that phase, so that many checks of one
// interval do not fire together. At most max_concurrent_probes probes are
// in flight; a due check waits for a free one. One thread, like the registry.
#pragma once

#include <registry/health_check.hpp>
#include <registry/ports/clock.hpp>
#include <registry/ports/health_prober.hpp>
#include <registry/task.hpp>

#include <cstddef>
#include <cstdint>
#include <memory>
#include <stop_token>
#include <string>
#include <string_view>

namespace registry {

class registry;

struct health_monitor_options {
    std::size_t max_concurrent_probes = 64;
};

// The reason an instance is deregistered with when a check stayed critical
// for longer than its deregister_critical_after:
// "health check '<name>' critical for more than <n> ms".
std::string critical_deregistration_reason(std::string_view check, milliseconds after);

// The spread of a check's first run: FNV-1a of "<instance id>/<check name>"
// modulo the interval.
milliseconds check_spread(std::string_view instance_id, std::string_view check, milliseconds interval) noexcept;

class health_monitor {
public:
    health_monitor(class registry& reg, clock& clk, health_prober& prober, health_monitor_options options = {});
    ~health_monitor();
    health_monitor(const health_monitor&) = delete;
    health_monitor& operator=(const health_monitor&) = delete;

    // Follows the registry's instances and runs their checks until `stop`
    // is requested; completes once no probe is in flight.
    task<void> run(std::stop_token stop);

    std::size_t checks() const noexcept;     // scheduled now
    std::size_t in_flight() const noexcept;  // probes running now
    std::uint64_t probes() const noexcept;   // started since run()
    // How late probes started after their due time, worst since run() (a
    // bench's figure: checks hold their schedule).
    milliseconds worst_lag() const noexcept;

private:
    struct impl;
    std::unique_ptr<impl> impl_;
};

}  // namespace registry
