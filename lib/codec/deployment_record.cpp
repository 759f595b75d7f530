#include "deployment_record.hpp"

#include "json_reader.hpp"
#include "json_writer.hpp"

namespace registry::detail {

std::string encode_deployment_record(const deployment_record& r) {
    std::string out;
    json_writer w(out);
    const deploy::package_manifest& m = r.manifest;
    w.begin_object()
        .key("instance_id").string(r.instance_id)
        .key("target").string(r.target)
        .key("home").string(r.home)
        .key("dir").string(r.dir)
        .key("manifest").begin_object()
        .key("name").string(m.name)
        .key("version").string(m.version)
        .key("ports").begin_array();
    for (const auto& p : m.ports) {
        w.begin_object().key("name").string(p.name).key("port").number(p.port).key("protocol").string(p.protocol).end_object();
    }
    w.end_array().key("depends_on").begin_array();
    for (const auto& d : m.depends_on) w.string(d);
    w.end_array().key("health");
    if (m.health) {
        w.begin_object()
            .key("script").string(m.health->script)
            .key("interval_ms").number(m.health->interval.count())
            .key("timeout_ms").number(m.health->timeout.count())
            .key("deadline_ms").number(m.health->deadline.count())
            .key("initial_delay_ms").number(m.health->initial_delay.count())
            .key("failures_before_critical").number(m.health->failures_before_critical)
            .key("successes_before_passing").number(m.health->successes_before_passing)
            .end_object();
    } else {
        w.null();
    }
    w.end_object();
    if (r.owner != "anonymous") w.key("owner").string(r.owner);
    if (m.is_container()) {
        w.key("container").begin_object()
            .key("id").string(r.container_id)
            .key("node").string(r.node)
            .key("address").string(r.address)
            .key("manifest_yaml").string(m.source)
            .end_object();
    }
    w.end_object();
    return out;
}

// ---- reading ---------------------------------------------------------------------

static bool read_millis(decoder& d, const members& m, std::string_view name, milliseconds& out) {
    std::uint64_t v = 0;
    if (!required(d, m, name, v)) return false;
    if (v > static_cast<std::uint64_t>(std::numeric_limits<std::int64_t>::max())) return d.fail(m.at.member(name), "too large");
    out = milliseconds{static_cast<std::int64_t>(v)};
    return true;
}

static bool read(decoder& d, dom::element e, const path& at, deploy::package_port& out) {
    static constexpr std::string_view names[] = {"name", "port", "protocol"};
    members m{at, names};
    return open(d, e, m) && required(d, m, "name", out.name) && required(d, m, "port", out.port) &&
           required(d, m, "protocol", out.protocol);
}

static bool read(decoder& d, dom::element e, const path& at, std::optional<deploy::package_health>& out) {
    if (e.is_null()) {
        out.reset();
        return true;
    }
    // The timing and thresholds of its check came later: optional.
    static constexpr std::string_view names[] = {"script",           "interval_ms",
                                                 "timeout_ms",       "deadline_ms",
                                                 "initial_delay_ms", "failures_before_critical",
                                                 "successes_before_passing"};
    members m{at, names};
    auto& h = out.emplace();
    return open(d, e, m) && required(d, m, "script", h.script) && read_millis(d, m, "interval_ms", h.interval) &&
           read_millis(d, m, "timeout_ms", h.timeout) && read_millis(d, m, "deadline_ms", h.deadline) &&
           (!m.get("initial_delay_ms") || read_millis(d, m, "initial_delay_ms", h.initial_delay)) &&
           optional(d, m, "failures_before_critical", h.failures_before_critical) &&
           optional(d, m, "successes_before_passing", h.successes_before_passing);
}

static bool read(decoder& d, dom::element e, const path& at, deploy::package_manifest& out) {
    static constexpr std::string_view names[] = {"name", "version", "ports", "depends_on", "health"};
    members m{at, names};
    return open(d, e, m) && required(d, m, "name", out.name) && required(d, m, "version", out.version) &&
           required(d, m, "ports", out.ports) && required(d, m, "depends_on", out.depends_on) &&
           required(d, m, "health", out.health);
}

// A container package's: its manifest read again from the kept text.
struct container_part {
    std::string id;
    std::string node;
    std::string address;
    std::string manifest_yaml;
};

static bool read(decoder& d, dom::element e, const path& at, container_part& out) {
    static constexpr std::string_view names[] = {"id", "node", "address", "manifest_yaml"};
    members m{at, names};
    return open(d, e, m) && required(d, m, "id", out.id) && required(d, m, "node", out.node) &&
           required(d, m, "address", out.address) && required(d, m, "manifest_yaml", out.manifest_yaml);
}

static bool read_deployment(decoder& d, dom::element e, const path& at, detail::deployment_record& out) {
    static constexpr std::string_view names[] = {"instance_id", "target", "home", "dir", "manifest", "owner", "container"};
    members m{at, names};
    container_part container;
    if (!(open(d, e, m) && required(d, m, "instance_id", out.instance_id) && required(d, m, "target", out.target) &&
          required(d, m, "home", out.home) && required(d, m, "dir", out.dir) &&
          required(d, m, "manifest", out.manifest) && optional(d, m, "owner", out.owner) &&
          optional(d, m, "container", container))) {
        return false;
    }
    if (!m.get("container")) return true;
    auto manifest = deploy::parse_package_manifest(container.manifest_yaml);
    if (!manifest || !manifest->is_container()) return d.fail(at.member("container"), "manifest_yaml: not a container package's manifest");
    out.manifest = std::move(*manifest);
    out.container_id = std::move(container.id);
    out.node = std::move(container.node);
    out.address = std::move(container.address);
    return true;
}

result<deployment_record> decode_deployment_record(std::string_view json) {
    return decode_record<deployment_record>(json, [](decoder& d, dom::element root, deployment_record& r) {
        return read_deployment(d, root, path{}, r);
    });
}

}  // namespace registry::detail
