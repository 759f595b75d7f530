// Errors of registry::client, as values: every operation completes with a
// result<T>, a value or an error {code, message}. The code is a
// std::error_code of the "registry.client" category: the protocol's error
// codes (docs/protocol.md, "Error codes") under the same names, and the
// client's own (unauthorized, connection_failed, ...). The message is the
// daemon's, or the client's own saying what failed. result<T>::value()
// throws the error as std::system_error (code and message) for those who
// prefer exceptions.
#pragma once

#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>
#include <system_error>
#include <type_traits>
#include <utility>
#include <variant>

namespace registry::client {

enum class errc {
    // The protocol's codes (registryd's answers).
    invalid_request = 1,
    unknown_action,
    not_found,
    conflict,
    lease_not_found,
    invalid_transition,
    payload_too_large,
    limit_exceeded,
    unavailable,
    internal,
    invalid_package,
    requirement_not_met,
    deployment_failed,
    host_key_rejected,
    busy,
    offset_mismatch,
    checksum_mismatch,
    upload_incomplete,
    forbidden,
    continue_expired,
    rate_limited,
    not_writer,            // a standby registryd (several on one etcd): send writes to the writer
    unknown_server_error,  // a code this client does not know (the message starts with it)
    // The client's own.
    unauthorized = 100,    // registryd answered the upgrade with 401: a missing or wrong token
    handshake_failed,      // not a WebSocket server, another HTTP status, a bad Sec-WebSocket-Accept
    connection_failed,     // the address did not resolve, the TCP connect or TLS handshake failed
    connection_lost,       // the connection closed with the request in flight (it may have been done)
    not_connected,         // no connection within the request timeout (the message says the last failure)
    timeout,               // no response within the request timeout
    closed,                // the client (or the watch, or the registration) was closed
    bad_frame,             // registryd sent something that is not the protocol
    slow_consumer,         // a watch buffered more events than options::max_buffered_events
};

const std::error_category& category() noexcept;
inline std::error_code make_error_code(errc e) noexcept { return {static_cast<int>(e), category()}; }
// The protocol's name of a code ("lease_not_found"); the client's codes by their names too.
std::string_view to_string(errc e) noexcept;
// The code of the protocol's name; unknown_server_error for a name this client does not know.
errc errc_from_protocol(std::string_view code) noexcept;

struct error {
    std::error_code code;
    std::string message;

    bool is(errc e) const noexcept { return code == make_error_code(e); }
};

// std::system_error whose what() is the message (and the code's name).
class exception : public std::system_error {
public:
    explicit exception(const error& e) : std::system_error(e.code, e.message) {}
};

template <typename T>
class [[nodiscard]] result {
public:
    result() : v_(std::in_place_index<1>, error{make_error_code(errc::internal), "no result"}) {}
    result(T value) : v_(std::in_place_index<0>, std::move(value)) {}
    result(error e) : v_(std::in_place_index<1>, std::move(e)) {}

    bool ok() const noexcept { return v_.index() == 0; }
    explicit operator bool() const noexcept { return ok(); }

    // The value; throws registry::client::exception when there is an error.
    T& value() & { check(); return std::get<0>(v_); }
    const T& value() const& { check(); return std::get<0>(v_); }
    T&& value() && { check(); return std::get<0>(std::move(v_)); }
    T* operator->() { return &value(); }
    const T* operator->() const { return &value(); }
    T& operator*() & { return value(); }
    const T& operator*() const& { return value(); }

    // The error (an empty one with a value).
    const error& err() const noexcept {
        static const error none{};
        return ok() ? none : std::get<1>(v_);
    }

private:
    void check() const {
        if (!ok()) throw exception(std::get<1>(v_));
    }
    std::variant<T, error> v_;
};

// An operation without a value (deregister, close).
struct done {};

}  // namespace registry::client

template <>
struct std::is_error_code_enum<registry::client::errc> : std::true_type {};
