#include "cluster/target_wire.hpp"

#include "codec/json_reader.hpp"
#include "codec/json_writer.hpp"
#include "codec/utf8.hpp"

#include <array>
#include <bitset>
#include <utility>

namespace registryd {

namespace {

namespace dom = simdjson::dom;
namespace lim = target_wire_limits;
using registry::detail::decoder;
using registry::detail::json_writer;
using registry::detail::path;
using registry::detail::read;
using registry::detail::too_long;

// ---- reading -------------------------------------------------------------------

bool read_text(decoder& d, dom::element e, const path& at, std::string& out, std::size_t max, bool allow_nul) {
    std::string_view s;
    if (e.get_string().get(s)) return d.fail(at, "must be a string");
    if (s.size() > max) return d.fail(at, too_long(max));
    if (!allow_nul && s.find('\0') != std::string_view::npos) return d.fail(at, "must not contain a NUL byte");
    out.assign(s);
    return true;
}

// The members of an object `names` lists, each handed to field(index, value,
// its path) once; others are skipped, a name given twice is refused.
// `seen` says which were there.
template <std::size_t N, typename Field>
bool read_members(decoder& d, dom::element e, const path& at, const std::array<std::string_view, N>& names,
                  std::bitset<N>& seen, Field field) {
    dom::object obj;
    if (e.get_object().get(obj)) return d.fail(at, "must be an object");
    for (auto [key, value] : obj) {
        std::size_t i = 0;
        while (i < N && names[i] != key) ++i;
        if (i == N) continue;
        if (seen[i]) return d.fail(at.member(key), "duplicate field");
        seen.set(i);
        if (!field(i, value, at.member(key))) return false;
    }
    return true;
}

// Every member of `names` but those `optional` sets was there.
template <std::size_t N>
bool all_there(decoder& d, const path& at, const std::array<std::string_view, N>& names, const std::bitset<N>& seen,
               std::bitset<N> optional = {}) {
    for (std::size_t i = 0; i < N; ++i) {
        if (!seen[i] && !optional[i]) return d.fail(at.member(names[i]), "is required");
    }
    return true;
}

bool read_env(decoder& d, dom::element e, const path& at, std::map<std::string, std::string>& out) {
    dom::object obj;
    if (e.get_object().get(obj)) return d.fail(at, "must be an object");
    for (auto [key, value] : obj) {
        if (out.size() == lim::max_env_entries) {
            return d.fail(at, "must have at most " + std::to_string(lim::max_env_entries) + " entries");
        }
        if (key.size() > lim::max_env_key_bytes) return d.fail(at, "a name " + too_long(lim::max_env_key_bytes));
        const path p = at.member(key);
        if (key.empty() || key.find('=') != std::string_view::npos || key.find('\0') != std::string_view::npos) {
            return d.fail(p, "a name must be non-empty, without '=' or a NUL byte");
        }
        std::string v;
        if (!read_text(d, value, p, v, lim::max_env_value_bytes, false)) return false;
        if (!out.emplace(key, std::move(v)).second) return d.fail(p, "duplicate field");
    }
    return true;
}

bool read_timeout(decoder& d, dom::element e, const path& at, registry::milliseconds& out) {
    std::uint64_t v = 0;
    if (e.get_uint64().get(v) || v == 0 || v > lim::max_timeout_ms) {
        return d.fail(at, "must be 1-" + std::to_string(lim::max_timeout_ms));
    }
    out = registry::milliseconds{static_cast<registry::milliseconds::rep>(v)};
    return true;
}

constexpr std::array<std::string_view, 5> command_fields{"script", "env", "timeout_ms", "package_script",
                                                         "then_only_if_silent"};

// A run request; in a sequence, with then_only_if_silent.
bool read_command(decoder& d, dom::element e, const path& at, registry::sequenced_command& out, bool in_sequence) {
    std::bitset<5> seen;
    const bool ok = read_members(d, e, at, command_fields, seen, [&](std::size_t i, dom::element v, const path& p) {
        auto& c = out.command;
        switch (i) {
            case 0: return read_text(d, v, p, c.script, lim::max_script_bytes, false);
            case 1: return read_env(d, v, p, c.env);
            case 2: return read_timeout(d, v, p, c.timeout);
            case 3: return read(d, v, p, c.package_script);
            default: return !in_sequence || read(d, v, p, out.then_only_if_silent);
        }
    });
    if (!ok) return false;
    return all_there(d, at, command_fields, seen, in_sequence ? std::bitset<5>{} : std::bitset<5>{1u << 4});
}

bool read_sequence(decoder& d, dom::element e, std::vector<registry::sequenced_command>& out) {
    constexpr std::array<std::string_view, 1> names{"commands"};
    const path root;
    std::bitset<1> seen;
    const bool ok = read_members(d, e, root, names, seen, [&](std::size_t, dom::element v, const path& p) {
        dom::array items;
        if (v.get_array().get(items)) return d.fail(p, "must be an array");
        if (items.size() > lim::max_commands) {
            return d.fail(p, "must have at most " + std::to_string(lim::max_commands) + " commands");
        }
        std::size_t i = 0;
        for (dom::element item : items) {
            if (!read_command(d, item, p.element(i++), out.emplace_back(), true)) return false;
        }
        return true;
    });
    return ok && all_there(d, root, names, seen);
}

constexpr std::array<std::string_view, 4> result_fields{"exit_code", "timed_out", "stdout", "stderr"};

bool read_result(decoder& d, dom::element e, const path& at, registry::command_result& out) {
    std::bitset<4> seen;
    const bool ok = read_members(d, e, at, result_fields, seen, [&](std::size_t i, dom::element v, const path& p) {
        switch (i) {
            case 0: return read(d, v, p, out.exit_code);
            case 1: return read(d, v, p, out.timed_out);
            case 2: return read_text(d, v, p, out.stdout_text, lim::max_output_bytes, true);
            default: return read_text(d, v, p, out.stderr_text, lim::max_output_bytes, true);
        }
    });
    return ok && all_there(d, at, result_fields, seen);
}

constexpr std::array<std::string_view, 2> error_fields{"code", "message"};

bool read_error(decoder& d, dom::element e, const path& at, registry::error& out) {
    std::bitset<2> seen;
    const bool ok = read_members(d, e, at, error_fields, seen, [&](std::size_t i, dom::element v, const path& p) {
        if (i == 1) return read_text(d, v, p, out.message, lim::max_message_bytes, true);
        std::string_view s;
        if (v.get_string().get(s)) return d.fail(p, "must be a string");
        out.code = registry::parse_errc(s).value_or(registry::errc::internal);  // a newer registryd's code
        return true;
    });
    return ok && all_there(d, at, error_fields, seen, std::bitset<2>{0b10});
}

bool read_results(decoder& d, dom::element e, std::vector<registry::result<registry::command_result>>& out) {
    constexpr std::array<std::string_view, 1> names{"results"};
    const path root;
    std::bitset<1> seen;
    const bool ok = read_members(d, e, root, names, seen, [&](std::size_t, dom::element v, const path& p) {
        dom::array items;
        if (v.get_array().get(items)) return d.fail(p, "must be an array");
        if (items.size() > lim::max_commands) {
            return d.fail(p, "must have at most " + std::to_string(lim::max_commands) + " results");
        }
        std::size_t i = 0;
        for (dom::element item : items) {
            const path at = p.element(i++);
            dom::object obj;
            if (item.get_object().get(obj)) return d.fail(at, "must be an object");
            if (obj.at_key("code").error() == simdjson::SUCCESS) {
                registry::error err;
                if (!read_error(d, item, at, err)) return false;
                out.emplace_back(registry::unexpected{std::move(err)});
            } else {
                registry::command_result r;
                if (!read_result(d, item, at, r)) return false;
                out.emplace_back(std::move(r));
            }
        }
        return true;
    });
    return ok && all_there(d, root, names, seen);
}

// ---- writing -------------------------------------------------------------------

// A command's output as a JSON string may carry it: valid UTF-8, its tail
// within the bound.
std::string output_text(std::string_view bytes) {
    std::string s = registry::detail::valid_utf8(bytes);
    if (s.size() > lim::max_output_bytes) {
        std::size_t cut = s.size() - lim::max_output_bytes;
        while (cut < s.size() && (static_cast<unsigned char>(s[cut]) & 0xC0) == 0x80) ++cut;  // a character's start
        s.erase(0, cut);
    }
    return s;
}

void write_command(json_writer& w, const registry::target_command& c) {
    w.key("script").string(c.script).key("env").begin_object();
    for (const auto& [name, value] : c.env) w.key(name).string(value);
    w.end_object();
    w.key("timeout_ms").number(static_cast<std::int64_t>(c.timeout.count()));
    w.key("package_script").boolean(c.package_script);
}

void write_result(json_writer& w, const registry::command_result& r) {
    w.begin_object().key("exit_code").number(r.exit_code).key("timed_out").boolean(r.timed_out);
    w.key("stdout").string(output_text(r.stdout_text)).key("stderr").string(output_text(r.stderr_text));
    w.end_object();
}

void write_error(json_writer& w, const registry::error& e) {
    std::string message = registry::detail::valid_utf8(e.message);
    if (message.size() > lim::max_message_bytes) {
        std::size_t keep = lim::max_message_bytes;
        while (keep > 0 && (static_cast<unsigned char>(message[keep]) & 0xC0) == 0x80) --keep;  // a character's start
        message.resize(keep);
    }
    w.begin_object().key("code").string(registry::to_string(e.code)).key("message").string(message).end_object();
}

}  // namespace

std::string encode_target_command(const registry::target_command& c) {
    std::string out;
    json_writer w(out);
    w.begin_object();
    write_command(w, c);
    w.end_object();
    return out;
}

registry::result<registry::target_command> decode_target_command(std::string_view json) {
    auto r = registry::detail::decode_record<registry::sequenced_command>(
        json, [](decoder& d, dom::element root, registry::sequenced_command& c) {
            return read_command(d, root, path{}, c, false);
        });
    if (!r) return registry::unexpected{r.err()};
    return std::move(r->command);
}

std::string encode_command_sequence(const std::vector<registry::sequenced_command>& commands) {
    std::string out;
    json_writer w(out);
    w.begin_object().key("commands").begin_array();
    for (const auto& c : commands) {
        w.begin_object();
        write_command(w, c.command);
        w.key("then_only_if_silent").boolean(c.then_only_if_silent);
        w.end_object();
    }
    w.end_array().end_object();
    return out;
}

registry::result<std::vector<registry::sequenced_command>> decode_command_sequence(std::string_view json) {
    return registry::detail::decode_record<std::vector<registry::sequenced_command>>(json, read_sequence);
}

std::string encode_command_result(const registry::command_result& r) {
    std::string out;
    json_writer w(out);
    write_result(w, r);
    return out;
}

registry::result<registry::command_result> decode_command_result(std::string_view json) {
    return registry::detail::decode_record<registry::command_result>(
        json, [](decoder& d, dom::element root, registry::command_result& r) { return read_result(d, root, path{}, r); });
}

std::string encode_target_error(const registry::error& e) {
    std::string out;
    json_writer w(out);
    write_error(w, e);
    return out;
}

registry::result<registry::error> decode_target_error(std::string_view json) {
    return registry::detail::decode_record<registry::error>(
        json, [](decoder& d, dom::element root, registry::error& e) { return read_error(d, root, path{}, e); });
}

std::string encode_sequence_results(const std::vector<registry::result<registry::command_result>>& results) {
    std::string out;
    json_writer w(out);
    w.begin_object().key("results").begin_array();
    for (const auto& r : results) {
        if (r) {
            write_result(w, *r);
        } else {
            write_error(w, r.err());
        }
    }
    w.end_array().end_object();
    return out;
}

registry::result<std::vector<registry::result<registry::command_result>>> decode_sequence_results(
    std::string_view json) {
    return registry::detail::decode_record<std::vector<registry::result<registry::command_result>>>(json, read_results);
}

}  // namespace registryd
