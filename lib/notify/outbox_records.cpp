#include "outbox_records.hpp"

#include <charconv>
#include <cstdio>

namespace registry::notify {

namespace {

template <typename T>
bool parse_number(std::string_view s, T& out) {
    if (s.empty()) return false;
    auto [p, ec] = std::from_chars(s.data(), s.data() + s.size(), out);
    return ec == std::errc{} && p == s.data() + s.size();
}

std::string padded(entry_key k) {
    char buf[40];
    const int n = std::snprintf(buf, sizeof buf, "%020llu.%04u", static_cast<unsigned long long>(k.revision), k.n);
    return std::string(buf, static_cast<std::size_t>(n));
}

// The next line of `rest` (without its '\n'); false if there is none.
bool next_line(std::string_view& rest, std::string_view& line) {
    const auto nl = rest.find('\n');
    if (nl == std::string_view::npos) return false;
    line = rest.substr(0, nl);
    rest.remove_prefix(nl + 1);
    return true;
}

std::string one_line(std::string_view s) {
    std::string out(s);
    for (char& c : out) {
        if (c == '\n' || c == '\r') c = ' ';
    }
    return out;
}

}  // namespace

std::string to_id(entry_key k) { return std::to_string(k.revision) + "." + std::to_string(k.n); }

std::optional<entry_key> parse_id(std::string_view id) {
    const auto dot = id.find('.');
    if (dot == std::string_view::npos) return std::nullopt;
    entry_key k;
    if (!parse_number(id.substr(0, dot), k.revision) || !parse_number(id.substr(dot + 1), k.n)) return std::nullopt;
    return k;
}

std::string outbox_key(std::string_view webhook, entry_key k) {
    return std::string(prefix) + "outbox/" + std::string(webhook) + "/" + padded(k);
}

std::string dead_key(std::string_view webhook, entry_key k) {
    return std::string(prefix) + "dead/" + std::string(webhook) + "/" + padded(k);
}

std::optional<parsed_key> parse_key(std::string_view key) {
    if (!key.starts_with(prefix)) return std::nullopt;
    key.remove_prefix(prefix.size());
    parsed_key p;
    if (key.starts_with("outbox/")) {
        key.remove_prefix(7);
    } else if (key.starts_with("dead/")) {
        key.remove_prefix(5);
        p.dead = true;
    } else {
        return std::nullopt;
    }
    const auto slash = key.find('/');
    if (slash == std::string_view::npos || slash == 0) return std::nullopt;
    p.webhook = std::string(key.substr(0, slash));
    auto k = parse_id(key.substr(slash + 1));
    if (!k) return std::nullopt;
    p.key = *k;
    return p;
}

std::string encode_outbox(std::string_view event, std::string_view body) {
    std::string v;
    v.reserve(event.size() + 1 + body.size());
    v.append(event).push_back('\n');
    v.append(body);
    return v;
}

std::optional<outbox_record> decode_outbox(std::string_view value) {
    std::string_view event;
    if (!next_line(value, event) || event.empty()) return std::nullopt;
    return outbox_record{std::string(event), std::make_shared<const std::string>(value)};
}

std::string hook_key(std::string_view webhook) { return std::string(hooks_prefix) + std::string(webhook); }

namespace {

std::string joined(const std::vector<std::string>& items) {
    std::string out;
    for (const auto& i : items) {
        if (!out.empty()) out.push_back('\t');
        out += i;
    }
    return out;
}

std::vector<std::string> split(std::string_view line) {
    std::vector<std::string> out;
    while (!line.empty()) {
        const auto tab = line.find('\t');
        out.emplace_back(line.substr(0, tab));
        if (tab == std::string_view::npos) break;
        line.remove_prefix(tab + 1);
    }
    return out;
}

}  // namespace

std::string encode_hook(const webhook& w, const identity& owner) {
    std::vector<std::string> events;
    for (auto t : w.events) events.emplace_back(to_string(t));
    std::string v;
    v.append(owner.name).push_back('\n');
    v.append(owner.admin ? "1" : "0").push_back('\n');
    v.append(joined(owner.services)).push_back('\n');
    v.append(w.url).push_back('\n');
    v.append(joined(events)).push_back('\n');
    v.append(joined(w.services)).push_back('\n');
    v.append(std::to_string(w.timeout.count())).push_back('\n');
    v.append(std::to_string(w.max_attempts)).push_back('\n');
    v.append(w.secret);
    return v;
}

std::optional<std::pair<webhook, identity>> decode_hook(std::string_view name, std::string_view value) {
    std::string_view owner, admin, scope, url, events, services, timeout, attempts;
    if (!next_line(value, owner) || !next_line(value, admin) || !next_line(value, scope) || !next_line(value, url) ||
        !next_line(value, events) || !next_line(value, services) || !next_line(value, timeout) ||
        !next_line(value, attempts)) {
        return std::nullopt;
    }
    webhook w;
    identity who;
    std::int64_t ms = 0;
    if (owner.empty() || url.empty() || !parse_number(timeout, ms) || !parse_number(attempts, w.max_attempts)) {
        return std::nullopt;
    }
    for (const auto& e : split(events)) {
        auto t = parse_event_type(e);
        if (!t) return std::nullopt;
        w.events.insert(*t);
    }
    w.name = std::string(name);
    w.owner = std::string(owner);
    w.url = std::string(url);
    w.services = split(services);
    w.timeout = milliseconds{ms};
    w.secret = std::string(value);
    who.name = std::string(owner);
    who.admin = admin == "1";
    who.services = split(scope);
    return std::pair{std::move(w), std::move(who)};
}

std::string encode_dead(const dead_letter& d) {
    std::string v;
    v.append(d.event).push_back('\n');
    v.append(one_line(d.reason)).push_back('\n');
    v.append(std::to_string(d.attempts)).push_back('\n');
    v.append(std::to_string(d.failed_at.time_since_epoch().count())).push_back('\n');
    v.append(one_line(d.last_error)).push_back('\n');
    if (d.body) v.append(*d.body);
    return v;
}

std::optional<dead_letter> decode_dead(std::string_view value) {
    std::string_view event, reason, attempts, failed_at, last_error;
    if (!next_line(value, event) || !next_line(value, reason) || !next_line(value, attempts) ||
        !next_line(value, failed_at) || !next_line(value, last_error)) {
        return std::nullopt;
    }
    dead_letter d;
    std::int64_t ms = 0;
    if (event.empty() || !parse_number(attempts, d.attempts) || !parse_number(failed_at, ms)) return std::nullopt;
    d.event = std::string(event);
    d.reason = std::string(reason);
    d.last_error = std::string(last_error);
    d.failed_at = time_point{milliseconds{ms}};
    d.body = std::make_shared<const std::string>(value);
    return d;
}

}  // namespace registry::notify
