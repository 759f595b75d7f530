#include "deploy/deployment_record.hpp"

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
            .end_object();
    } else {
        w.null();
    }
    w.end_object().end_object();
    return out;
}

}  // namespace registry::detail
