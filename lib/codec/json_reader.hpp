// Reading JSON into typed values (simdjson's DOM): the `read` overloads of
// the protocol's value types, each naming the offending field's path on
// error. The request parser and the stored records' decoders build on it.
// Everything here is inline: a request's fields are read on the hot path.
#pragma once

#include "enum_names.hpp"

#include <registry/ports/clock.hpp>
#include <registry/result.hpp>

#include <simdjson.h>

#include <algorithm>
#include <array>
#include <bitset>
#include <cassert>
#include <cstddef>
#include <cstdint>
#include <initializer_list>
#include <limits>
#include <map>
#include <optional>
#include <set>
#include <span>
#include <string>
#include <string_view>
#include <type_traits>
#include <utility>
#include <vector>

namespace registry::detail {

namespace dom = simdjson::dom;

// Where a value sits, e.g. params.service.endpoints[1].port: a chain through
// the callers' stack frames, rendered only when there is an error to report.
struct path {
    const path* parent = nullptr;
    std::string_view name;  // a member's name; unused for an array element
    std::size_t index = 0;
    bool is_element = false;

    path member(std::string_view n) const { return {this, n, 0, false}; }
    path element(std::size_t i) const { return {this, {}, i, true}; }

    void render(std::string& out) const {
        if (parent) parent->render(out);
        if (is_element) {
            out += '[';
            out += std::to_string(index);
            out += ']';
        } else if (!name.empty() || parent) {
            if (!out.empty()) out += '.';
            out += name;
        }
    }
};

// Every string of a request is at most this long (docs/protocol.md,
// "Limits"), unless read as long text (REPL code, files, stdin): one client
// must not make registryd store, broadcast or log megabytes of free text.
inline constexpr std::size_t max_request_string = 4096;

// Collects the first problem; every reader returns false once there is one.
struct decoder {
    std::string problem;
    // Strings (and object keys) longer than this are refused; stored records
    // are not limited (they were checked when they came in).
    std::size_t max_string = std::numeric_limits<std::size_t>::max();

    bool fail(const path& at, std::string_view what) {
        at.render(problem);
        if (!problem.empty()) problem += ": ";
        problem += what;
        return false;
    }
};

// One object's members, checked against the names it may have.
inline constexpr std::size_t max_members = 20;  // the container record has 17

struct members {
    members(const path& where, std::span<const std::string_view> allowed) : at(where), names(allowed) {
        assert(allowed.size() <= max_members);
    }

    const path& at;
    std::span<const std::string_view> names;
    std::array<dom::element, max_members> values;
    std::bitset<max_members> present;

    std::size_t index_of(std::string_view name) const {
        for (std::size_t i = 0; i < names.size(); ++i) {
            if (names[i] == name) return i;
        }
        return names.size();
    }

    std::optional<dom::element> get(std::string_view name) const {
        const std::size_t i = index_of(name);
        if (i == names.size() || !present[i]) return std::nullopt;
        return values[i];
    }
};

inline bool open(decoder& d, dom::element e, members& m) {
    dom::object obj;
    if (e.get_object().get(obj)) return d.fail(m.at, "must be an object");
    for (auto [key, value] : obj) {
        const std::size_t i = m.index_of(key);
        if (i == m.names.size()) {
            if (key.size() > 128) return d.fail(m.at, "unknown field (a name of " + std::to_string(key.size()) + " bytes)");
            return d.fail(m.at.member(key), "unknown field");
        }
        if (m.present[i]) return d.fail(m.at.member(key), "duplicate field");
        m.present.set(i);
        m.values[i] = value;
    }
    return true;
}

// An absent object (params) is an empty one.
inline bool open(decoder& d, const std::optional<dom::element>& e, members& m) { return !e || open(d, *e, m); }

// Members that exist for some variants of an object only (execution kinds).
inline bool only(decoder& d, const members& m, std::initializer_list<std::string_view> allowed, std::string_view variant) {
    for (std::size_t i = 0; i < m.names.size(); ++i) {
        if (!m.present[i] || std::find(allowed.begin(), allowed.end(), m.names[i]) != allowed.end()) continue;
        return d.fail(m.at.member(m.names[i]), "not allowed when kind is '" + std::string(variant) + "'");
    }
    return true;
}

// ---- values -------------------------------------------------------------------

inline std::string too_long(std::size_t max) { return "must be at most " + std::to_string(max) + " bytes"; }

inline bool read(decoder& d, dom::element e, const path& at, std::string& out) {
    std::string_view s;
    if (e.get_string().get(s)) return d.fail(at, "must be a string");
    if (s.size() > d.max_string) return d.fail(at, too_long(d.max_string));
    out.assign(s);
    return true;
}

// A field whose size only the message size bounds (and the REPL's own limits).
template <typename T>
bool read_long_text(decoder& d, dom::element e, const path& at, T& out) {
    const std::size_t saved = std::exchange(d.max_string, std::numeric_limits<std::size_t>::max());
    const bool ok = read(d, e, at, out);
    d.max_string = saved;
    return ok;
}

inline bool read(decoder& d, dom::element e, const path& at, bool& out) {
    if (e.get_bool().get(out)) return d.fail(at, "must be a boolean");
    return true;
}

inline bool read(decoder& d, dom::element e, const path& at, std::uint64_t& out) {
    if (e.get_uint64().get(out)) return d.fail(at, "must be a non-negative integer");
    return true;
}

inline bool read(decoder& d, dom::element e, const path& at, std::uint32_t& out) {
    std::uint64_t v = 0;
    if (e.get_uint64().get(v) || v > std::numeric_limits<std::uint32_t>::max()) {
        return d.fail(at, "must be 0-4294967295");
    }
    out = static_cast<std::uint32_t>(v);
    return true;
}

// Every 16-bit field of the protocol is a port.
inline bool read(decoder& d, dom::element e, const path& at, std::uint16_t& out) {
    std::uint64_t v = 0;
    if (e.get_uint64().get(v) || v == 0 || v > 65535) return d.fail(at, "must be 1-65535");
    out = static_cast<std::uint16_t>(v);
    return true;
}

inline bool read(decoder& d, dom::element e, const path& at, std::int64_t& out) {
    if (e.type() == dom::element_type::UINT64) {
        out = std::numeric_limits<std::int64_t>::max();  // beyond any bound checked later
        return true;
    }
    if (e.get_int64().get(out)) return d.fail(at, "must be an integer");
    return true;
}

inline bool read(decoder& d, dom::element e, const path& at, seconds& out) {
    std::int64_t v = 0;
    if (!read(d, e, at, v)) return false;
    out = seconds{v};
    return true;
}

inline bool read(decoder& d, dom::element e, const path& at, time_point& out) {
    std::int64_t v = 0;
    if (!read(d, e, at, v)) return false;
    out = time_point{milliseconds{v}};
    return true;
}

// Enumerations, by the names of their table (enum_names.hpp).
template <typename Enum>
    requires std::is_enum_v<Enum>
bool read(decoder& d, dom::element e, const path& at, Enum& out) {
    std::string_view s;
    if (e.get_string().get(s)) return d.fail(at, "must be a string");
    auto v = enum_of<Enum>(s);
    if (!v) return d.fail(at, "must be one of " + enum_name_list<Enum>());
    out = *v;
    return true;
}

// A 32-bit signed integer (exit codes).
inline bool read(decoder& d, dom::element e, const path& at, int& out) {
    std::int64_t v = 0;
    if (e.get_int64().get(v) || v < std::numeric_limits<int>::min() || v > std::numeric_limits<int>::max()) {
        return d.fail(at, "must be a 32-bit integer");
    }
    out = static_cast<int>(v);
    return true;
}

// The one non-integer number of the protocol: a share of CPUs.
inline bool read(decoder& d, dom::element e, const path& at, double& out) {
    if (e.get_double().get(out)) return d.fail(at, "must be a number");
    return true;
}

template <typename T>
bool read(decoder& d, dom::element e, const path& at, std::optional<T>& out) {
    return read(d, e, at, out.emplace());
}

// vector or set; duplicates in a set collapse.
template <typename Container>
bool read_array(decoder& d, dom::element e, const path& at, Container& out) {
    dom::array items;
    if (e.get_array().get(items)) return d.fail(at, "must be an array");
    std::size_t i = 0;
    for (dom::element item : items) {
        typename Container::value_type v{};
        if (!read(d, item, at.element(i++), v)) return false;
        out.insert(out.end(), std::move(v));
    }
    return true;
}

template <typename T>
bool read(decoder& d, dom::element e, const path& at, std::vector<T>& out) {
    return read_array(d, e, at, out);
}

template <typename T>
bool read(decoder& d, dom::element e, const path& at, std::set<T>& out) {
    return read_array(d, e, at, out);
}

// An object of strings with free-form keys (metadata).
inline bool read(decoder& d, dom::element e, const path& at, std::map<std::string, std::string>& out) {
    dom::object obj;
    if (e.get_object().get(obj)) return d.fail(at, "must be an object");
    for (auto [key, value] : obj) {
        const path p = at.member(key);
        if (key.size() > d.max_string) return d.fail(at, "a key " + too_long(d.max_string));
        std::string v;
        if (!read(d, value, p, v)) return false;
        if (!out.emplace(key, std::move(v)).second) return d.fail(p, "duplicate field");
    }
    return true;
}

template <typename T>
bool required(decoder& d, const members& m, std::string_view name, T& out) {
    auto v = m.get(name);
    if (!v) return d.fail(m.at.member(name), "is required");
    return read(d, *v, m.at.member(name), out);
}

template <typename T>
bool optional(decoder& d, const members& m, std::string_view name, T& out) {
    auto v = m.get(name);
    return !v || read(d, *v, m.at.member(name), out);
}

// Decodes one stored record with `read(decoder&, dom::element, Record&)`.
// Records are decoded one at a time, on whichever thread loads the store.
template <typename Record, typename Read>
result<Record> decode_record(std::string_view json, Read read_record) {
    thread_local dom::parser parser;
    dom::element root;
    if (parser.parse(json.data(), json.size()).get(root)) return fail(errc::invalid_request, "not valid JSON");
    decoder d;
    Record r;
    if (!read_record(d, root, r)) return fail(errc::invalid_request, std::move(d.problem));
    return r;
}

}  // namespace registry::detail
