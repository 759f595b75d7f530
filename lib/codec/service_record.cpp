#include "service_record.hpp"

#include "health_check_record.hpp"
#include "json_reader.hpp"
#include "time.hpp"

namespace registry::detail {

namespace {

void write_execution(json_writer& w, const execution_info& x) {
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

void write_location(json_writer& w, const location& l) {
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

void write_endpoints(json_writer& w, const std::vector<endpoint>& endpoints) {
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

void write_health(json_writer& w, const std::optional<health_result>& health) {
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

void write_service(json_writer& w, const service_instance& s, bool with_lease_id) {
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
    if (!s.checks.empty()) {  // written only when there are some: the object stays as it was without
        w.key("checks");
        write_checks(w, s.checks);
    }
    w.key("lease").begin_object();
    if (with_lease_id && s.lease.id != 0) w.key("id").number(s.lease.id);
    w.key("ttl_seconds").number(s.lease.ttl.count())
        .key("expires_at_ms").number(ms(s.lease.expires_at))
        .key("session_bound").boolean(s.lease.session_bound);
    // Absent for "anonymous" (access control off), as records were before holders.
    if (s.lease.holder != "anonymous") w.key("holder").string(s.lease.holder);
    w.end_object();
    w.key("registered_at_ms").number(ms(s.registered_at))
        .key("created_revision").number(s.created_revision)
        .key("modified_revision").number(s.modified_revision)
        .end_object();
}

// Every key, bracket and number at its widest, then the strings.
std::size_t service_json_capacity(const service_instance& s) noexcept {
    constexpr std::size_t fixed = 656;       // the members written for every service, and the optional ones
    constexpr std::size_t per_endpoint = 80;  // keys, brackets, port
    std::size_t n = fixed + s.name.size() + s.instance_id.size() + s.version.size() + s.failure_reason.size() +
                    s.execution.command.size() + s.execution.container_id.size() + s.execution.image.size() +
                    s.execution.unit_name.size() + s.where.host.size() + s.where.ssh_user.size() +
                    s.lease.holder.size();
    for (const auto& ep : s.endpoints) n += per_endpoint + ep.name.size() + ep.address.size() + ep.protocol.size();
    for (const auto& d : s.depends_on) n += 3 + d.size();
    for (const auto& [k, v] : s.metadata) n += 6 + k.size() + v.size();
    if (s.health) n += s.health->output.size();
    if (!s.checks.empty()) n += checks_json_capacity(s.checks);
    return n;
}

std::string encode_service_record(const service_instance& s) {
    std::string out;
    out.reserve(service_json_capacity(s));
    json_writer w(out);
    write_service(w, s);
    return out;
}

// ---- reading ---------------------------------------------------------------------

static bool read(decoder& d, dom::element e, const path& at, endpoint& out) {
    static constexpr std::string_view names[] = {"name", "address", "port", "protocol"};
    members m{at, names};
    return open(d, e, m) && required(d, m, "name", out.name) && required(d, m, "address", out.address) &&
           required(d, m, "port", out.port) && required(d, m, "protocol", out.protocol);
}

static bool read(decoder& d, dom::element e, const path& at, execution_info& out) {
    static constexpr std::string_view names[] = {"kind", "pid", "command", "container_id", "image", "unit_name"};
    members m{at, names};
    if (!open(d, e, m) || !required(d, m, "kind", out.kind)) return false;
    switch (out.kind) {
        case execution_kind::managed_process:
            return only(d, m, {"kind", "pid", "command"}, "managed_process") && optional(d, m, "pid", out.pid) &&
                   optional(d, m, "command", out.command);
        case execution_kind::container:
            return only(d, m, {"kind", "container_id", "image"}, "container") &&
                   required(d, m, "container_id", out.container_id) && optional(d, m, "image", out.image);
        case execution_kind::systemd_unit:
            return only(d, m, {"kind", "unit_name"}, "systemd_unit") && required(d, m, "unit_name", out.unit_name);
    }
    return false;
}

static bool read(decoder& d, dom::element e, const path& at, location& out) {
    static constexpr std::string_view names[] = {"kind", "host", "ssh_user", "ssh_port"};
    members m{at, names};
    std::string kind;
    if (!open(d, e, m) || !required(d, m, "kind", kind)) return false;
    if (kind == "local") return only(d, m, {"kind"}, "local");
    if (kind != "remote") return d.fail(at.member("kind"), "must be one of local, remote");
    out.remote = true;
    return required(d, m, "host", out.host) && optional(d, m, "ssh_user", out.ssh_user) &&
           optional(d, m, "ssh_port", out.ssh_port);
}

// null until a health result is recorded.
static bool read(decoder& d, dom::element e, const path& at, std::optional<health_result>& out) {
    if (e.is_null()) {
        out.reset();
        return true;
    }
    static constexpr std::string_view names[] = {"status", "output", "checked_at_ms"};
    members m{at, names};
    auto& h = out.emplace();
    return open(d, e, m) && required(d, m, "status", h.status) && required(d, m, "output", h.output) &&
           required(d, m, "checked_at_ms", h.checked_at);
}

static bool read(decoder& d, dom::element e, const path& at, lease& out) {
    static constexpr std::string_view names[] = {"id", "ttl_seconds", "expires_at_ms", "session_bound", "holder"};
    members m{at, names};
    // A record from before holders has none: it is anonymous's. Lease ids
    // start at 1; 0 marks an id hidden from a viewer (write_service).
    if (!open(d, e, m) || !required(d, m, "id", out.id)) return false;
    if (out.id == 0) return d.fail(at.member("id"), "must be at least 1");
    return required(d, m, "ttl_seconds", out.ttl) &&
           required(d, m, "expires_at_ms", out.expires_at) && required(d, m, "session_bound", out.session_bound) &&
           optional(d, m, "holder", out.holder);
}

bool read_service(decoder& d, dom::element e, const path& at, service_form form, service_instance& out) {
    static constexpr std::string_view names[] = {
        "name",     "instance_id",    "version", "execution", "location",         "endpoints",        "depends_on",
        "metadata", "checks", "state",          "failure_reason", "health", "lease", "registered_at_ms", "created_revision",
        "modified_revision"};
    constexpr std::size_t registration_names = 9;
    const bool record = form == service_form::record;
    members m{at, std::span(names).first(record ? std::size(names) : registration_names)};
    auto descriptive = [&](std::string_view name, auto& value) {
        return record ? required(d, m, name, value) : optional(d, m, name, value);
    };
    const bool ok = open(d, e, m) && required(d, m, "name", out.name) &&
                    descriptive("instance_id", out.instance_id) && descriptive("version", out.version) &&
                    descriptive("execution", out.execution) && descriptive("location", out.where) &&
                    descriptive("endpoints", out.endpoints) && descriptive("depends_on", out.depends_on) &&
                    descriptive("metadata", out.metadata);
    if (!ok) return false;
    // Optional in both forms: records written before checks existed have none.
    if (auto c = m.get("checks"); c && !read_checks(d, *c, at.member("checks"), record, out.checks)) return false;
    if (!record) return true;
    return required(d, m, "state", out.state) && optional(d, m, "failure_reason", out.failure_reason) &&
           required(d, m, "health", out.health) && required(d, m, "lease", out.lease) &&
           required(d, m, "registered_at_ms", out.registered_at) &&
           required(d, m, "created_revision", out.created_revision) &&
           required(d, m, "modified_revision", out.modified_revision);
}

result<service_instance> decode_service_record(std::string_view json) {
    return decode_record<service_instance>(json, [](decoder& d, dom::element root, service_instance& s) {
        return read_service(d, root, path{}, service_form::record, s);
    });
}

}  // namespace registry::detail
