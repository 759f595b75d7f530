#include "observability/log.hpp"

#include "observability/log_throttle.hpp"

#include "codec/utf8.hpp"

#include <atomic>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <ctime>
#include <mutex>

namespace registryd::log {

namespace {

std::atomic<level> g_level{level::info};

// Warnings and errors are mostly about what clients do: throttled per message.
std::mutex g_throttle_mutex;
log_throttle g_throttle;

void append_timestamp(std::string& out) {
    using namespace std::chrono;
    const auto now = system_clock::now();
    const auto ms = duration_cast<milliseconds>(now.time_since_epoch()).count();
    std::time_t secs = static_cast<std::time_t>(ms / 1000);
    auto millis = static_cast<int>(ms % 1000);
    if (millis < 0) {
        millis += 1000;
        --secs;
    }
    std::tm tm{};
    gmtime_r(&secs, &tm);
    char buf[40];
    const int n = std::snprintf(buf, sizeof buf, "%04d-%02d-%02dT%02d:%02d:%02d.%03dZ", tm.tm_year + 1900,
                                tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec, millis);
    out.append(buf, static_cast<std::size_t>(n));
}


void append_value(std::string& out, const field::value_type& v) {
    char buf[64];
    if (const auto* s = std::get_if<std::string_view>(&v)) {
        append_json_string(out, *s);
    } else if (const auto* i = std::get_if<std::int64_t>(&v)) {
        const int n = std::snprintf(buf, sizeof buf, "%lld", static_cast<long long>(*i));
        out.append(buf, static_cast<std::size_t>(n));
    } else if (const auto* u = std::get_if<std::uint64_t>(&v)) {
        const int n = std::snprintf(buf, sizeof buf, "%llu", static_cast<unsigned long long>(*u));
        out.append(buf, static_cast<std::size_t>(n));
    } else if (const auto* d = std::get_if<double>(&v)) {
        if (std::isfinite(*d)) {
            const int n = std::snprintf(buf, sizeof buf, "%.6g", *d);
            out.append(buf, static_cast<std::size_t>(n));
        } else {
            out += "null";  // JSON has no NaN/Inf
        }
    } else if (const auto* b = std::get_if<bool>(&v)) {
        out += *b ? "true" : "false";
    }
}

}  // namespace

std::string_view to_string(level l) noexcept {
    switch (l) {
        case level::debug: return "debug";
        case level::info: return "info";
        case level::warn: return "warn";
        case level::error: return "error";
    }
    return "info";
}

std::optional<level> parse_level(std::string_view s) noexcept {
    if (s == "debug") return level::debug;
    if (s == "info") return level::info;
    if (s == "warn" || s == "warning") return level::warn;
    if (s == "error") return level::error;
    return std::nullopt;
}

void set_level(level l) noexcept { g_level.store(l, std::memory_order_relaxed); }
level current_level() noexcept { return g_level.load(std::memory_order_relaxed); }

void append_json_string(std::string& out, std::string_view s) {
    static constexpr char hex[] = "0123456789abcdef";
    out += '"';
    std::size_t i = 0;
    while (i < s.size()) {
        const auto c = static_cast<unsigned char>(s[i]);
        if (c >= 0x80) {
            const std::size_t len = registry::detail::utf8_sequence(s.substr(i));
            if (len == 0) {
                out += "\xEF\xBF\xBD";  // U+FFFD
                ++i;
            } else {
                out.append(s.substr(i, len));
                i += len;
            }
            continue;
        }
        switch (c) {
            case '"': out += "\\\""; break;
            case '\\': out += "\\\\"; break;
            case '\b': out += "\\b"; break;
            case '\f': out += "\\f"; break;
            case '\n': out += "\\n"; break;
            case '\r': out += "\\r"; break;
            case '\t': out += "\\t"; break;
            default:
                if (c < 0x20 || c == 0x7F) {
                    out += "\\u00";
                    out += hex[c >> 4];
                    out += hex[c & 0xF];
                } else {
                    out += static_cast<char>(c);
                }
        }
        ++i;
    }
    out += '"';
}

std::string format_line(level l, std::string_view msg, std::initializer_list<field> fields) {
    std::string line;
    line.reserve(96 + msg.size() + fields.size() * 24);
    line += "{\"ts\":\"";
    append_timestamp(line);
    line += "\",\"level\":\"";
    line += to_string(l);
    line += "\",\"msg\":";
    append_json_string(line, msg);
    for (const auto& f : fields) {
        line += ',';
        append_json_string(line, f.key);
        line += ':';
        append_value(line, f.value);
    }
    line += "}\n";
    return line;
}

void set_repeat_limit(std::size_t burst, std::chrono::seconds window) {
    std::lock_guard lock(g_throttle_mutex);
    g_throttle = log_throttle(burst, window);
}

void write(level l, std::string_view msg, std::initializer_list<field> fields) {
    if (!enabled(l)) return;
    std::string throttled;
    if (l >= level::warn) {
        std::optional<std::uint64_t> suppressed;
        {
            std::lock_guard lock(g_throttle_mutex);
            suppressed = g_throttle.admit(msg, log_throttle::clock::now());
        }
        if (!suppressed) return;
        if (*suppressed != 0) {
            throttled = std::string(msg) + " (" + std::to_string(*suppressed) + " similar suppressed)";
            msg = throttled;
        }
    }
    const std::string line = format_line(l, msg, fields);
    // stderr is unbuffered: one fwrite is one write(2) under stdio's lock,
    // so lines from different threads do not interleave.
    std::fwrite(line.data(), 1, line.size(), stderr);
}

}  // namespace registryd::log
