#include "container_writer.hpp"

namespace registry::protocol {

namespace {

std::int64_t ms(time_point t) { return t.time_since_epoch().count(); }

// The length of the valid UTF-8 sequence at the start of `s`, 0 if none.
std::size_t utf8_sequence(std::string_view s) {
    const auto b = [&](std::size_t i) { return static_cast<unsigned char>(s[i]); };
    const unsigned char c = b(0);
    std::size_t n = 0;
    if (c < 0x80) return 1;
    if (c >= 0xc2 && c <= 0xdf) n = 2;
    else if (c >= 0xe0 && c <= 0xef) n = 3;
    else if (c >= 0xf0 && c <= 0xf4) n = 4;
    else return 0;
    if (s.size() < n) return 0;
    for (std::size_t i = 1; i < n; ++i) {
        if ((b(i) & 0xc0) != 0x80) return 0;
    }
    // Overlong forms, surrogates and code points past U+10FFFF.
    if (c == 0xe0 && b(1) < 0xa0) return 0;
    if (c == 0xed && b(1) > 0x9f) return 0;
    if (c == 0xf0 && b(1) < 0x90) return 0;
    if (c == 0xf4 && b(1) > 0x8f) return 0;
    return n;
}

}  // namespace

void write_container(detail::json_writer& w, const managed_container& c, container_view view) {
    w.begin_object()
        .key("lease_id").number(c.lease_id)
        .key("container_id").string(c.container_id)
        .key("name").string(c.name)
        .key("image").string(c.image)
        .key("engine").string(c.engine)
        .key("state").string(to_string(c.state));
    if (c.exit_code) w.key("exit_code").number(*c.exit_code);
    w.key("ttl_seconds").number(c.ttl.count())
        .key("created_at_ms").number(ms(c.created_at))
        .key("expires_at_ms").number(ms(c.expires_at));
    if (c.started_at) w.key("started_at_ms").number(ms(*c.started_at));
    if (c.finished_at) w.key("finished_at_ms").number(ms(*c.finished_at));
    if (!c.error.empty()) w.key("error").string(c.error);
    if (view == container_view::full) {
        w.key("command").begin_array();
        for (const auto& arg : c.command) w.string(arg);
        w.end_array().key("limits").begin_object();
        if (c.limits.memory_bytes) w.key("memory_bytes").number(*c.limits.memory_bytes);
        if (c.limits.cpus) w.key("cpus").real(*c.limits.cpus);
        if (c.limits.pids) w.key("pids").number(*c.limits.pids);
        w.end_object().key("labels").begin_object();
        for (const auto& [key, value] : c.labels) w.key(key).string(value);
        w.end_object();
    }
    w.end_object();
}

std::string valid_utf8(std::string_view bytes) {
    std::string out;
    out.reserve(bytes.size());
    while (!bytes.empty()) {
        const std::size_t n = utf8_sequence(bytes);
        if (n == 0) {
            out += "\xef\xbf\xbd";
            bytes.remove_prefix(1);
        } else {
            out.append(bytes.substr(0, n));
            bytes.remove_prefix(n);
        }
    }
    return out;
}

}  // namespace registry::protocol
