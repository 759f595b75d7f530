#include "container_record.hpp"

#include "json_reader.hpp"
#include "time.hpp"

namespace registry {

std::string_view to_string(managed_state s) noexcept { return detail::name_of(s); }
std::optional<managed_state> parse_managed_state(std::string_view s) noexcept { return detail::enum_of<managed_state>(s); }

std::string_view to_string(container_network n) noexcept { return detail::name_of(n); }

}  // namespace registry

namespace registry::detail {

void write_container(json_writer& w, const managed_container& c, container_view view) {
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
    if (c.owner != "anonymous") w.key("owner").string(c.owner);  // absent: access control off, or an old record
    if (!c.usage.empty()) {
        w.key("usage").begin_object();
        if (c.usage.cpu_ms) w.key("cpu_ms").number(*c.usage.cpu_ms);
        if (c.usage.memory_peak_bytes) w.key("memory_peak_bytes").number(*c.usage.memory_peak_bytes);
        w.end_object();
    }
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

std::string encode_container_record(const managed_container& c) {
    std::string out;
    out.reserve(256);
    json_writer w(out);
    write_container(w, c, container_view::full);
    return out;
}

// ---- reading ---------------------------------------------------------------------

// A stored record's limits, as they were accepted (or inspected): read back
// without the request's bounds, so that no engine's figure can make a record
// unreadable.
static bool read_stored_limits(decoder& d, dom::element e, const path& at, container_limits& out) {
    static constexpr std::string_view names[] = {"memory_bytes", "cpus", "pids"};
    members m{at, names};
    return open(d, e, m) && optional(d, m, "memory_bytes", out.memory_bytes) && optional(d, m, "cpus", out.cpus) &&
           optional(d, m, "pids", out.pids);
}

static bool read_usage(decoder& d, dom::element e, const path& at, resource_usage& out) {
    static constexpr std::string_view names[] = {"cpu_ms", "memory_peak_bytes"};
    members m{at, names};
    return open(d, e, m) && optional(d, m, "cpu_ms", out.cpu_ms) &&
           optional(d, m, "memory_peak_bytes", out.memory_peak_bytes);
}

static bool read_container(decoder& d, dom::element e, const path& at, managed_container& out) {
    static constexpr std::string_view names[] = {
        "lease_id",       "container_id",   "name",  "image",   "engine", "state",  "exit_code", "ttl_seconds",
        "created_at_ms",  "expires_at_ms",  "started_at_ms", "finished_at_ms", "error", "command", "limits", "labels",
        "owner", "usage"};
    members m{at, names};
    return open(d, e, m) && optional(d, m, "started_at_ms", out.started_at) &&
           (!m.get("usage") || read_usage(d, *m.get("usage"), at.member("usage"), out.usage)) &&
           optional(d, m, "finished_at_ms", out.finished_at) && optional(d, m, "error", out.error) &&
           optional(d, m, "command", out.command) && optional(d, m, "labels", out.labels) &&
           optional(d, m, "owner", out.owner) &&
           (!m.get("limits") || read_stored_limits(d, *m.get("limits"), at.member("limits"), out.limits)) &&
           required(d, m, "lease_id", out.lease_id) &&
           required(d, m, "container_id", out.container_id) && required(d, m, "name", out.name) &&
           required(d, m, "image", out.image) && required(d, m, "engine", out.engine) &&
           required(d, m, "state", out.state) && optional(d, m, "exit_code", out.exit_code) &&
           required(d, m, "ttl_seconds", out.ttl) && required(d, m, "created_at_ms", out.created_at) &&
           required(d, m, "expires_at_ms", out.expires_at);
}

result<managed_container> decode_container_record(std::string_view json) {
    return decode_record<managed_container>(json, [](decoder& d, dom::element root, managed_container& c) {
        return read_container(d, root, path{}, c);
    });
}

}  // namespace registry::detail
