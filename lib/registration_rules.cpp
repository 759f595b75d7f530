#include "registration_rules.hpp"

#include "health/check_rules.hpp"

#include <string>

namespace registry::detail {

namespace {

constexpr std::size_t max_name = 128;
constexpr std::size_t max_version = 64;
constexpr std::size_t max_list = 64;
constexpr std::size_t max_meta_value = 4096;
constexpr std::size_t max_address = 253;
constexpr std::size_t max_protocol = 16;
constexpr std::size_t max_text = 4096;

bool is_name_char(char c) noexcept {
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '.' || c == '_' ||
           c == '-';
}

bool is_protocol_char(char c) noexcept {
    return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '+' || c == '.' || c == '-';
}

bool has_space_or_control(std::string_view s) noexcept {
    for (unsigned char c : s) {
        if (c <= 0x20 || c == 0x7f) return true;
    }
    return false;
}

std::string index_path(std::string_view base, std::size_t i) {
    return std::string(base) + "[" + std::to_string(i) + "]";
}

}  // namespace

bool is_valid_name(std::string_view s) noexcept {
    if (s.empty() || s.size() > max_name) return false;
    for (char c : s) {
        if (!is_name_char(c)) return false;
    }
    return true;
}

std::vector<field_error> check_registration(const registration& reg, const registry_options& options) {
    std::vector<field_error> problems;
    auto problem = [&](std::string path, std::string_view what) { problems.push_back({std::move(path), std::string(what)}); };
    const service_instance& s = reg.service;
    constexpr std::string_view name_rule = "must be 1-128 characters of [A-Za-z0-9._-]";

    if (!is_valid_name(s.name)) problem("service.name", name_rule);
    if (!s.instance_id.empty() && !is_valid_name(s.instance_id)) problem("service.instance_id", name_rule);
    if (s.version.size() > max_version) problem("service.version", "must be at most 64 characters");
    if (has_space_or_control(s.version)) problem("service.version", "must not contain whitespace or control characters");

    const auto& ex = s.execution;
    if (ex.command.size() > max_text) problem("service.execution.command", "must be at most 4096 characters");
    switch (ex.kind) {
        case execution_kind::managed_process: break;
        case execution_kind::container:
            if (ex.container_id.empty() || ex.container_id.size() > max_name)
                problem("service.execution.container_id", "must be 1-128 characters");
            if (ex.image.size() > max_text) problem("service.execution.image", "must be at most 4096 characters");
            break;
        case execution_kind::systemd_unit:
            if (ex.unit_name.empty() || ex.unit_name.size() > max_name)
                problem("service.execution.unit_name", "must be 1-128 characters");
            break;
    }

    if (s.where.remote) {
        if (s.where.host.empty() || s.where.host.size() > max_address || has_space_or_control(s.where.host))
            problem("service.location.host", "must be 1-253 characters without whitespace");
        if (s.where.ssh_user.size() > max_name) problem("service.location.ssh_user", "must be at most 128 characters");
    }

    if (s.endpoints.size() > max_list) problem("service.endpoints", "at most 64 endpoints");
    for (std::size_t i = 0; i < s.endpoints.size() && i < max_list; ++i) {
        const auto& ep = s.endpoints[i];
        const std::string base = index_path("service.endpoints", i);
        if (!is_valid_name(ep.name)) problem(base + ".name", name_rule);
        if (ep.address.empty() || ep.address.size() > max_address || has_space_or_control(ep.address))
            problem(base + ".address", "must be 1-253 characters without whitespace");
        if (ep.port == 0) problem(base + ".port", "must be 1-65535");
        bool protocol_ok = !ep.protocol.empty() && ep.protocol.size() <= max_protocol;
        for (char c : ep.protocol) protocol_ok = protocol_ok && is_protocol_char(c);
        if (!protocol_ok) problem(base + ".protocol", "must be 1-16 characters of [a-z0-9+.-]");
        for (std::size_t j = 0; j < i; ++j) {
            if (s.endpoints[j].name == ep.name) {
                problem(base + ".name", "duplicates " + index_path("service.endpoints", j) + ".name");
                break;
            }
        }
    }

    if (s.depends_on.size() > max_list) problem("service.depends_on", "at most 64 entries");
    for (std::size_t i = 0; i < s.depends_on.size() && i < max_list; ++i) {
        if (!is_valid_name(s.depends_on[i])) problem(index_path("service.depends_on", i), name_rule);
    }

    if (s.metadata.size() > max_list) problem("service.metadata", "at most 64 pairs");
    for (const auto& [k, v] : s.metadata) {
        if (k.empty() || k.size() > max_name) problem("service.metadata", "keys must be 1-128 characters");
        if (v.size() > max_meta_value) problem("service.metadata." + k, "must be at most 4096 characters");
    }

    check_health_checks(s, reg.script_checks, problems);

    if (reg.ttl) {
        if (*reg.ttl < options.min_ttl || *reg.ttl > options.max_ttl) {
            problem("ttl_seconds", "must be " + std::to_string(options.min_ttl.count()) + "-" +
                                       std::to_string(options.max_ttl.count()));
        }
    }
    return problems;
}

}  // namespace registry::detail
