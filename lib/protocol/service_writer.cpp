#include "service_writer.hpp"

namespace registry::protocol {

namespace {

std::int64_t ms(time_point t) { return t.time_since_epoch().count(); }

void write_execution(detail::json_writer& w, const execution_info& x) {
    w.begin_object().key("kind").string(to_string(x.kind));
    switch (x.kind) {
        case execution_kind::managed_process:
            if (x.pid) w.key("pid").number(*x.pid);
            if (!x.command.empty()) w.key("command").string(x.command);
            break;
        case execution_kind::container:
            w.key("container_id").string(x.container_id);
            if (!x.image.empty()) w.key("image").string(x.image);
            break;
        case execution_kind::systemd_unit:
            w.key("unit_name").string(x.unit_name);
            break;
    }
    w.end_object();
}

void write_location(detail::json_writer& w, const location& l) {
    w.begin_object();
    if (!l.remote) {
        w.key("kind").string("local");
    } else {
        w.key("kind").string("remote").key("host").string(l.host);
        if (!l.ssh_user.empty()) w.key("ssh_user").string(l.ssh_user);
        if (l.ssh_port != 0) w.key("ssh_port").number(l.ssh_port);
    }
    w.end_object();
}

}  // namespace

void write_endpoints(detail::json_writer& w, const std::vector<endpoint>& endpoints) {
    w.begin_array();
    for (const auto& ep : endpoints) {
        w.begin_object()
            .key("name").string(ep.name)
            .key("address").string(ep.address)
            .key("port").number(ep.port)
            .key("protocol").string(ep.protocol)
            .end_object();
    }
    w.end_array();
}

void write_health(detail::json_writer& w, const std::optional<health_result>& health) {
    if (!health) {
        w.null();
        return;
    }
    w.begin_object()
        .key("status").string(to_string(health->status))
        .key("output").string(health->output)
        .key("checked_at_ms").number(ms(health->checked_at))
        .end_object();
}

void write_service(detail::json_writer& w, const service_instance& s) {
    w.begin_object()
        .key("name").string(s.name)
        .key("instance_id").string(s.instance_id)
        .key("version").string(s.version);
    w.key("execution");
    write_execution(w, s.execution);
    w.key("location");
    write_location(w, s.where);
    w.key("endpoints");
    write_endpoints(w, s.endpoints);
    w.key("depends_on").begin_array();
    for (const auto& d : s.depends_on) w.string(d);
    w.end_array();
    w.key("metadata").begin_object();
    for (const auto& [k, v] : s.metadata) w.key(k).string(v);
    w.end_object();
    w.key("state").string(to_string(s.state));
    if (s.state == service_state::failed) w.key("failure_reason").string(s.failure_reason);
    w.key("health");
    write_health(w, s.health);
    w.key("lease").begin_object()
        .key("id").number(s.lease.id)
        .key("ttl_seconds").number(s.lease.ttl.count())
        .key("expires_at_ms").number(ms(s.lease.expires_at))
        .key("session_bound").boolean(s.lease.session_bound)
        .end_object();
    w.key("registered_at_ms").number(ms(s.registered_at))
        .key("created_revision").number(s.created_revision)
        .key("modified_revision").number(s.modified_revision)
        .end_object();
}

// Every key, bracket and number at its widest, then the strings.
std::size_t service_json_capacity(const service_instance& s) noexcept {
    constexpr std::size_t fixed = 640;       // the members written for every service, and the optional ones
    constexpr std::size_t per_endpoint = 80;  // keys, brackets, port
    std::size_t n = fixed + s.name.size() + s.instance_id.size() + s.version.size() + s.failure_reason.size() +
                    s.execution.command.size() + s.execution.container_id.size() + s.execution.image.size() +
                    s.execution.unit_name.size() + s.where.host.size() + s.where.ssh_user.size();
    for (const auto& ep : s.endpoints) n += per_endpoint + ep.name.size() + ep.address.size() + ep.protocol.size();
    for (const auto& d : s.depends_on) n += 3 + d.size();
    for (const auto& [k, v] : s.metadata) n += 6 + k.size() + v.size();
    if (s.health) n += s.health->output.size();
    return n;
}

}  // namespace registry::protocol
