#include "check_rules.hpp"

#include "registration_rules.hpp"

#include <string>

namespace registry::detail {

namespace {

constexpr milliseconds min_interval{100};
constexpr milliseconds max_interval{86'400'000};
constexpr milliseconds min_timeout{10};
constexpr std::uint32_t max_threshold = 100;
constexpr std::size_t max_url = 2048;

bool clean(std::string_view s) noexcept {
    for (unsigned char c : s) {
        if (c <= 0x20 || c == 0x7f) return false;
    }
    return true;
}

// host:port, host a name or an IPv4 literal, or [IPv6]:port.
bool is_host_port(std::string_view s) noexcept {
    const auto colon = s.rfind(':');
    if (colon == std::string_view::npos || colon == 0 || colon + 1 == s.size() || !clean(s)) return false;
    const std::string_view port = s.substr(colon + 1);
    if (port.size() > 5) return false;
    unsigned v = 0;
    for (char c : port) {
        if (c < '0' || c > '9') return false;
        v = v * 10 + static_cast<unsigned>(c - '0');
    }
    return v >= 1 && v <= 65535;
}

bool has_endpoint(const service_instance& s, std::string_view name) {
    for (const auto& ep : s.endpoints) {
        if (ep.name == name) return true;
    }
    return false;
}

}  // namespace

void check_health_checks(const service_instance& s, bool script_checks, std::vector<field_error>& problems) {
    auto problem = [&](std::string path, std::string what) { problems.push_back({std::move(path), std::move(what)}); };
    if (s.checks.size() > max_checks) {
        problem("service.checks", "at most " + std::to_string(max_checks) + " checks");
        return;
    }
    for (std::size_t i = 0; i < s.checks.size(); ++i) {
        const health_check& c = s.checks[i];
        const std::string base = "service.checks[" + std::to_string(i) + "]";
        if (!is_valid_name(c.name)) problem(base + ".name", "must be 1-128 characters of [A-Za-z0-9._-]");
        for (std::size_t j = 0; j < i; ++j) {
            if (s.checks[j].name == c.name) {
                problem(base + ".name", "duplicates service.checks[" + std::to_string(j) + "].name");
                break;
            }
        }
        const bool probed = c.kind == check_kind::http || c.kind == check_kind::tcp;
        switch (c.kind) {
            case check_kind::http:
                if (c.method != "GET" && c.method != "HEAD") problem(base + ".method", "must be GET or HEAD");
                if (c.url.empty() == c.endpoint.empty()) {
                    problem(base, "exactly one of url and endpoint is required");
                } else if (!c.url.empty()) {
                    const bool scheme = c.url.starts_with("http://") || c.url.starts_with("https://");
                    if (!scheme || c.url.size() > max_url || !clean(c.url))
                        problem(base + ".url", "must be an http:// or https:// URL of at most 2048 characters");
                } else if (!has_endpoint(s, c.endpoint)) {
                    problem(base + ".endpoint", "must name one of the service's endpoints");
                }
                if (c.path.empty() || c.path.front() != '/' || c.path.size() > max_url || !clean(c.path))
                    problem(base + ".path", "must start with / and have no whitespace (at most 2048 characters)");
                if (c.status_min < 100 || c.status_max > 599 || c.status_min > c.status_max)
                    problem(base + ".expected_status", "must be [min, max] within 100-599, min <= max");
                break;
            case check_kind::tcp:
                if (c.address.empty() == c.endpoint.empty()) {
                    problem(base, "exactly one of address and endpoint is required");
                } else if (!c.address.empty()) {
                    if (!is_host_port(c.address)) problem(base + ".address", "must be host:port");
                } else if (!has_endpoint(s, c.endpoint)) {
                    problem(base + ".endpoint", "must name one of the service's endpoints");
                }
                break;
            case check_kind::ttl:
                break;
            case check_kind::script:
                if (!script_checks)
                    problem(base + ".kind", "script checks come only from a deployed package's manifest (health.script)");
                break;
        }
        if (c.interval < min_interval || c.interval > max_interval)
            problem(base + ".interval_ms", "must be 100-86400000");
        if (probed && (c.timeout < min_timeout || c.timeout > c.interval))
            problem(base + ".timeout_ms", "must be at least 10 and at most interval_ms");
        if (c.initial_delay > max_interval) problem(base + ".initial_delay_ms", "must be at most 86400000");
        if (c.successes_before_passing < 1 || c.successes_before_passing > max_threshold)
            problem(base + ".successes_before_passing", "must be 1-100");
        if (c.failures_before_critical < 1 || c.failures_before_critical > max_threshold)
            problem(base + ".failures_before_critical", "must be 1-100");
        if (c.deregister_critical_after && (*c.deregister_critical_after < min_interval ||
                                            *c.deregister_critical_after > max_interval))
            problem(base + ".deregister_critical_after_ms", "must be 100-86400000");
    }
}

}  // namespace registry::detail
