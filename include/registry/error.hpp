// Errors as values: a stable code plus a human-readable message.
//
// The codes are part of the wire protocol (docs/protocol.md); never renumber
// or rename one, only add.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace registry {

enum class errc {
    invalid_request,     // malformed frame, missing/extra field, wrong type, out of range
    unknown_action,      // the action is not one this server implements
    not_found,           // no such service/instance/subscription
    conflict,            // the instance id is taken by another lease
    lease_not_found,     // keepalive/re-register with a lease that does not exist (expired?)
    invalid_transition,  // the state machine forbids this state change
    payload_too_large,   // the frame exceeds the configured maximum
    limit_exceeded,      // a configured quota (services, subscriptions, in-flight) is full
    unavailable,         // the store failed; the registry no longer accepts writes
    internal,            // a bug: never expected in normal operation
    // Package deployment (docs/protocol.md, "Deployment").
    invalid_package,      // the archive or its manifest is unsafe or invalid
    requirement_not_met,  // requires.commands/libraries missing on the target, or depends_on not running
    deployment_failed,    // a script failed or the health gate did not pass (rolled back when possible)
    host_key_rejected,    // the SSH host key is unknown or does not match known_hosts
    busy,                // every worker is taken and the wait queue is full: retry later
    // Package uploads (docs/protocol.md, "package_upload_begin").
    offset_mismatch,    // a chunk's offset is not where the received bytes end (resume from there)
    checksum_mismatch,  // the uploaded bytes do not have the declared sha256 (the upload is deleted)
    upload_incomplete,  // deploy_package names an upload that has not received every byte
    forbidden,          // the configuration does not allow it (a package path outside deploy.package_dirs)
    continue_expired,   // a listing's continue token names a listing no longer held: list again
    rate_limited,       // the caller's request rate is over its limit: retry after error::retry_after_ms
    not_writer,         // a standby (several registryd on one etcd) takes no writes: send them to the writer
};

constexpr std::string_view to_string(errc code) noexcept {
    switch (code) {
        case errc::invalid_request: return "invalid_request";
        case errc::unknown_action: return "unknown_action";
        case errc::not_found: return "not_found";
        case errc::conflict: return "conflict";
        case errc::lease_not_found: return "lease_not_found";
        case errc::invalid_transition: return "invalid_transition";
        case errc::payload_too_large: return "payload_too_large";
        case errc::limit_exceeded: return "limit_exceeded";
        case errc::unavailable: return "unavailable";
        case errc::internal: return "internal";
        case errc::invalid_package: return "invalid_package";
        case errc::requirement_not_met: return "requirement_not_met";
        case errc::deployment_failed: return "deployment_failed";
        case errc::host_key_rejected: return "host_key_rejected";
        case errc::busy: return "busy";
        case errc::offset_mismatch: return "offset_mismatch";
        case errc::checksum_mismatch: return "checksum_mismatch";
        case errc::upload_incomplete: return "upload_incomplete";
        case errc::forbidden: return "forbidden";
        case errc::continue_expired: return "continue_expired";
        case errc::rate_limited: return "rate_limited";
        case errc::not_writer: return "not_writer";
    }
    return "internal";
}

// The code to_string() names `s`, if any.
constexpr std::optional<errc> parse_errc(std::string_view s) noexcept {
    for (int i = 0; i <= static_cast<int>(errc::not_writer); ++i) {
        if (to_string(static_cast<errc>(i)) == s) return static_cast<errc>(i);
    }
    return std::nullopt;
}

// A field of a domain object's input that breaks its rules, by its path
// relative to that input ("service.name", "ttl_seconds"; empty: the input as
// a whole). Each domain object
// checks its own rules; the protocol names the field relative to the request
// ("params.service.name"), in one place.
struct field_error {
    std::string path;
    std::string problem;
};

struct error {
    errc code = errc::internal;
    std::string message;
    // invalid_request from a domain object's rules: the fields at fault (the
    // message says the same, "path: problem; path: problem").
    std::vector<field_error> fields{};
    // rate_limited: how long until the request would be admitted.
    std::uint64_t retry_after_ms = 0;
};

// invalid_request naming every field at fault.
inline error invalid_fields(std::vector<field_error> fields) {
    std::string message;
    for (const auto& f : fields) {
        if (!message.empty()) message += "; ";
        message += f.path.empty() ? f.problem : f.path + ": " + f.problem;
    }
    return error{errc::invalid_request, std::move(message), std::move(fields)};
}

}  // namespace registry
