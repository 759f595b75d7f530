#include <registry/client/error.hpp>

#include <array>
#include <utility>

namespace registry::client {

namespace {

constexpr std::array<std::pair<errc, std::string_view>, 32> names{{
    {errc::invalid_request, "invalid_request"},
    {errc::unknown_action, "unknown_action"},
    {errc::not_found, "not_found"},
    {errc::conflict, "conflict"},
    {errc::lease_not_found, "lease_not_found"},
    {errc::invalid_transition, "invalid_transition"},
    {errc::payload_too_large, "payload_too_large"},
    {errc::limit_exceeded, "limit_exceeded"},
    {errc::unavailable, "unavailable"},
    {errc::internal, "internal"},
    {errc::invalid_package, "invalid_package"},
    {errc::requirement_not_met, "requirement_not_met"},
    {errc::deployment_failed, "deployment_failed"},
    {errc::host_key_rejected, "host_key_rejected"},
    {errc::busy, "busy"},
    {errc::offset_mismatch, "offset_mismatch"},
    {errc::checksum_mismatch, "checksum_mismatch"},
    {errc::upload_incomplete, "upload_incomplete"},
    {errc::forbidden, "forbidden"},
    {errc::continue_expired, "continue_expired"},
    {errc::rate_limited, "rate_limited"},
    {errc::not_writer, "not_writer"},
    {errc::unknown_server_error, "unknown_server_error"},
    {errc::unauthorized, "unauthorized"},
    {errc::handshake_failed, "handshake_failed"},
    {errc::connection_failed, "connection_failed"},
    {errc::connection_lost, "connection_lost"},
    {errc::not_connected, "not_connected"},
    {errc::timeout, "timeout"},
    {errc::closed, "closed"},
    {errc::bad_frame, "bad_frame"},
    {errc::slow_consumer, "slow_consumer"},
}};

class category_impl final : public std::error_category {
public:
    const char* name() const noexcept override { return "registry.client"; }
    std::string message(int value) const override { return std::string(to_string(static_cast<errc>(value))); }
};

}  // namespace

const std::error_category& category() noexcept {
    static const category_impl c;
    return c;
}

std::string_view to_string(errc e) noexcept {
    for (const auto& [code, name] : names)
        if (code == e) return name;
    return "unknown";
}

errc errc_from_protocol(std::string_view code) noexcept {
    for (const auto& [e, name] : names) {
        if (e > errc::not_writer) break;  // the client's own are not the protocol's
        if (name == code) return e;
    }
    return errc::unknown_server_error;
}

}  // namespace registry::client
