// Structured logging for registryd: one JSON object per line on stderr,
//
//   {"ts":"2026-11-23T10:00:00.123Z","level":"info","msg":"listening","addr":"127.0.0.1:8080"}
//
// Fields follow "msg" in the order given. Lines below the configured level
// are dropped before anything is formatted. Safe to call from any thread
// (the file store's writer thread logs too): a line is formatted into a
// local buffer and written with one call.
#pragma once

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <initializer_list>
#include <optional>
#include <string>
#include <string_view>
#include <type_traits>
#include <variant>

namespace registryd::log {

enum class level { debug = 0, info = 1, warn = 2, error = 3 };

std::string_view to_string(level l) noexcept;
std::optional<level> parse_level(std::string_view s) noexcept;

void set_level(level l) noexcept;
level current_level() noexcept;
inline bool enabled(level l) noexcept { return l >= current_level(); }

// One key/value pair of a log line. Holds views: build it in the call.
struct field {
    using value_type = std::variant<std::string_view, std::int64_t, std::uint64_t, double, bool>;

    std::string_view key;
    value_type value;

    field(std::string_view k, std::string_view v) noexcept : key(k), value(v) {}
    field(std::string_view k, const char* v) noexcept : key(k), value(std::string_view(v)) {}
    field(std::string_view k, const std::string& v) noexcept : key(k), value(std::string_view(v)) {}
    field(std::string_view k, bool v) noexcept : key(k), value(v) {}
    field(std::string_view k, double v) noexcept : key(k), value(v) {}
    template <typename I>
        requires(std::is_integral_v<I> && !std::is_same_v<I, bool> && std::is_signed_v<I>)
    field(std::string_view k, I v) noexcept : key(k), value(static_cast<std::int64_t>(v)) {}
    template <typename I>
        requires(std::is_integral_v<I> && !std::is_same_v<I, bool> && std::is_unsigned_v<I>)
    field(std::string_view k, I v) noexcept : key(k), value(static_cast<std::uint64_t>(v)) {}
};

void write(level l, std::string_view msg, std::initializer_list<field> fields = {});

// Warnings and errors of one message (the same `msg`) beyond `burst` lines
// per `window` are dropped; the next one written ends its message with
// " (N similar suppressed)". Default: 10 per 10 s (log.repeat_* in the YAML).
void set_repeat_limit(std::size_t burst, std::chrono::seconds window);

inline void debug(std::string_view msg, std::initializer_list<field> fields = {}) {
    if (enabled(level::debug)) write(level::debug, msg, fields);
}
inline void info(std::string_view msg, std::initializer_list<field> fields = {}) {
    if (enabled(level::info)) write(level::info, msg, fields);
}
inline void warn(std::string_view msg, std::initializer_list<field> fields = {}) {
    if (enabled(level::warn)) write(level::warn, msg, fields);
}
inline void error(std::string_view msg, std::initializer_list<field> fields = {}) {
    if (enabled(level::error)) write(level::error, msg, fields);
}

// At most `max` bytes of `s`: a value from outside (a client's names, an
// engine's error) keeps a line bounded. A cut character becomes U+FFFD.
inline std::string_view clip(std::string_view s, std::size_t max = 256) noexcept { return s.substr(0, max); }

// Appends `s` to `out` as a JSON string literal, quotes included. Control
// characters are escaped; invalid UTF-8 bytes become U+FFFD so that every
// line stays valid JSON whatever a client sent.
void append_json_string(std::string& out, std::string_view s);

// Formats a complete line (without writing it); exposed for tests.
std::string format_line(level l, std::string_view msg, std::initializer_list<field> fields);

}  // namespace registryd::log
