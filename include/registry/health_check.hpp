// A registration's health checks (docs/protocol.md, "Health checks"): what
// to probe and how often, the thresholds that turn results into a status,
// and each check's current result. The health monitor (health_monitor.hpp)
// schedules them; the registry stores them with the instance.
#pragma once

#include <registry/ports/clock.hpp>

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace registry {

struct health_result;

// The status of a check and of an instance (service.hpp: health_result).
enum class health_status { healthy, warning, critical, unknown };

enum class check_kind { http, tcp, ttl, script };

std::string_view to_string(check_kind k) noexcept;
std::optional<check_kind> parse_check_kind(std::string_view s) noexcept;

// A check's current result: the status and the output of the result that set
// it (for ttl, of the last report), when that came, and since when the
// status has been what it is.
struct check_result {
    health_status status = health_status::unknown;  // until the thresholds say otherwise
    std::string output;
    time_point checked_at{};
    time_point since{};

    friend bool operator==(const check_result&, const check_result&) = default;
};

struct health_check {
    std::string name;  // unique within the instance
    check_kind kind = check_kind::ttl;
    // http: GET or HEAD of `url`, or of `path` on the instance's endpoint
    // `endpoint`; passing when the status is within expected_status.
    std::string method = "GET";
    std::string url;
    std::string path = "/";
    std::uint16_t status_min = 200;
    std::uint16_t status_max = 399;
    bool tls_verify = true;
    // http, tcp: the instance's endpoint by name; tcp: or `address` (host:port).
    std::string endpoint;
    std::string address;

    milliseconds interval{10000};  // ttl: the service reports within this
    milliseconds timeout{2000};
    milliseconds initial_delay{0};
    std::uint32_t successes_before_passing = 1;
    std::uint32_t failures_before_critical = 1;
    std::optional<milliseconds> deregister_critical_after;

    check_result result;  // not part of the definition

    bool same_definition(const health_check& o) const;
    friend bool operator==(const health_check&, const health_check&) = default;
};

// What a health_check_result event says about the check that changed.
struct check_change {
    std::string name;
    check_kind kind = check_kind::ttl;
    health_status status = health_status::unknown;
    health_status previous = health_status::unknown;
    std::string output;
    std::uint32_t count = 0;  // the consecutive results that crossed the threshold (1 for a ttl report or expiry)
};

// At most this many checks per instance.
inline constexpr std::size_t max_checks = 16;

// A check's output in events and records is cut to this many bytes (at a
// UTF-8 character boundary).
inline constexpr std::size_t max_check_output = 1024;

// The order of badness: healthy < warning < unknown < critical. An
// instance's health is the worst of its checks.
int severity(health_status s) noexcept;

// Discovery's health filter: instances whose health is healthy (passing),
// or healthy or warning. An instance with neither checks nor a recorded
// health passes both; one whose checks have not decided yet (unknown) none.
enum class health_filter { passing, passing_or_warning };

std::string_view to_string(health_filter f) noexcept;
bool passes(health_filter f, const std::optional<health_result>& health, bool has_checks) noexcept;

}  // namespace registry
