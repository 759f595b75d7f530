#include "observability/log.hpp"

#include "observability/log_throttle.hpp"

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

// Length of the valid UTF-8 sequence starting at s[i], or 0 if invalid.
std::size_t utf8_sequence_length(std::string_view s, std::size_t i) noexcept {
    const auto b0 = static_cast<unsigned char>(s[i]);
    auto cont = [&](std::size_t k) {
        return i + k < s.size() && (static_cast<unsigned char>(s[i + k]) & 0xC0) == 0x80;
    };
    if (b0 < 0x80) return 1;
    if (b0 >= 0xC2 && b0 <= 0xDF) return cont(1) ? 2 : 0;
    if (b0 >= 0xE0 && b0 <= 0xEF) {
        if (!cont(1) || !cont(2)) return 0;
        const auto b1 = static_cast<unsigned char>(s[i + 1]);
        if (b0 == 0xE0 && b1 < 0xA0) return 0;  // overlong
        if (b0 == 0xED && b1 > 0x9F) return 0;  // surrogate
        return 3;
    }
    if (b0 >= 0xF0 && b0 <= 0xF4) {
        if (!cont(1) || !cont(2) || !cont(3)) return 0;
        const auto b1 = static_cast<unsigned char>(s[i + 1]);
        if (b0 == 0xF0 && b1 < 0x90) return 0;  // overlong
        if (b0 == 0xF4 && b1 > 0x8F) return 0;  // > U+10FFFF
        return 4;
    }
    return 0;
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
            const std::size_t len = utf8_sequence_length(s, i);
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
