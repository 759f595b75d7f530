#include "event_record.hpp"

#include "json_reader.hpp"
#include "health_check_record.hpp"
#include "json_writer.hpp"
#include "service_record.hpp"

#include <registry/health_check.hpp>

namespace registry::detail {

namespace {

// A companion's data, as its event_detail wrote it on the writer.
struct logged_detail final : event_detail {
    explicit logged_detail(std::string m) : members(std::move(m)) {}
    void write_data(json_writer& w, const event&) const override { w.raw_members(members); }
    std::string members;
};

void write_deployment(json_writer& w, const deployment_change& d) {
    w.key("deployment").begin_object()
        .key("instance_id").string(d.instance_id)
        .key("package").string(d.package)
        .key("target").string(d.target);
    if (d.from_version) w.key("from_version").string(*d.from_version);
    w.key("to_version").string(d.to_version).key("stage").string(d.stage).key("message").string(d.message);
    if (d.restored_healthy) w.key("healthy").boolean(*d.restored_healthy);
    if (d.connection) w.key("connection").number(*d.connection);
    if (d.request_id) w.key("request_id").string(*d.request_id);
    w.end_object();
}

void write_event(json_writer& w, const event& e) {
    w.begin_object().key("type").string(to_string(e.type));
    if (e.service) {
        w.key("service");
        write_service(w, *e.service);
    }
    if (e.previous_state) w.key("previous_state").string(to_string(*e.previous_state));
    if (!e.reason.empty()) w.key("reason").string(e.reason);
    if (e.check) {
        w.key("check");
        write_check_change(w, *e.check);
    }
    if (e.failure) {
        w.key("error").begin_object()
            .key("code").string(to_string(e.failure->code))
            .key("message").string(e.failure->message)
            .end_object();
    }
    if (e.deployment) write_deployment(w, *e.deployment);
    if (e.detail) {
        w.key("data").begin_object();
        e.detail->write_data(w, e);
        w.end_object();
    }
    w.end_object();
}

bool read_check(decoder& d, dom::element e, const path& at, check_change& out) {
    static constexpr std::string_view names[] = {"name", "kind", "status", "previous_status", "output", "count"};
    members m{at, names};
    return open(d, e, m) && required(d, m, "name", out.name) && required(d, m, "kind", out.kind) &&
           required(d, m, "status", out.status) && required(d, m, "previous_status", out.previous) &&
           required(d, m, "output", out.output) && required(d, m, "count", out.count);
}

bool read_failure(decoder& d, dom::element e, const path& at, error& out) {
    static constexpr std::string_view names[] = {"code", "message"};
    members m{at, names};
    std::string code;
    if (!open(d, e, m) || !required(d, m, "code", code) || !required(d, m, "message", out.message)) return false;
    auto parsed = parse_errc(code);
    if (!parsed) return d.fail(at.member("code"), "unknown error code '" + code + "'");
    out.code = *parsed;
    return true;
}

bool read_deployment(decoder& d, dom::element e, const path& at, deployment_change& out) {
    static constexpr std::string_view names[] = {"instance_id", "package",    "target",     "from_version",
                                                 "to_version",  "stage",      "message",    "healthy",
                                                 "connection",  "request_id"};
    members m{at, names};
    return open(d, e, m) && required(d, m, "instance_id", out.instance_id) && required(d, m, "package", out.package) &&
           required(d, m, "target", out.target) && optional(d, m, "from_version", out.from_version) &&
           required(d, m, "to_version", out.to_version) && required(d, m, "stage", out.stage) &&
           required(d, m, "message", out.message) && optional(d, m, "healthy", out.restored_healthy) &&
           optional(d, m, "connection", out.connection) && optional(d, m, "request_id", out.request_id);
}

bool read_event(decoder& d, dom::element e, const path& at, std::shared_ptr<event>& out) {
    static constexpr std::string_view names[] = {"type",  "service", "previous_state", "reason", "check",
                                                 "error", "deployment", "data"};
    members m{at, names};
    if (!open(d, e, m)) return false;
    out = std::make_shared<event>();
    event& ev = *out;
    std::string type;
    if (!required(d, m, "type", type)) return false;
    auto t = parse_event_type(type);
    if (!t) return d.fail(at.member("type"), "unknown event type '" + type + "'");
    ev.type = *t;
    if (auto s = m.get("service")) {
        service_instance instance;
        if (!read_service(d, *s, at.member("service"), service_form::record, instance)) return false;
        ev.service = std::make_shared<const service_instance>(std::move(instance));
    }
    if (!optional(d, m, "previous_state", ev.previous_state) || !optional(d, m, "reason", ev.reason)) return false;
    if (auto c = m.get("check")) {
        auto change = std::make_shared<check_change>();
        if (!read_check(d, *c, at.member("check"), *change)) return false;
        ev.check = std::move(change);
    }
    if (auto f = m.get("error")) {
        error failure{errc::internal, {}};
        if (!read_failure(d, *f, at.member("error"), failure)) return false;
        ev.failure = std::move(failure);
    }
    if (auto dep = m.get("deployment")) {
        auto change = std::make_shared<deployment_change>();
        if (!read_deployment(d, *dep, at.member("deployment"), *change)) return false;
        ev.deployment = std::move(change);
    }
    if (auto data = m.get("data")) {
        if (!data->is_object()) return d.fail(at.member("data"), "must be an object");
        std::string text = simdjson::minify(*data);
        ev.detail = std::make_shared<logged_detail>(text.substr(1, text.size() - 2));  // without the braces
    }
    return true;
}

}  // namespace

std::string encode_event_log(const std::vector<std::shared_ptr<event>>& events) {
    std::string out;
    json_writer w(out);
    w.begin_array();
    for (const auto& e : events) write_event(w, *e);
    w.end_array();
    return out;
}

result<std::vector<std::shared_ptr<event>>> decode_event_log(std::string_view json, std::uint64_t revision) {
    auto decoded = decode_record<std::vector<std::shared_ptr<event>>>(
        json, [](decoder& d, dom::element root, std::vector<std::shared_ptr<event>>& out) {
            dom::array items;
            if (root.get_array().get(items)) return d.fail(path{}, "must be an array");
            std::size_t i = 0;
            const path at{};
            for (dom::element item : items) {
                std::shared_ptr<event> e;
                if (!read_event(d, item, at.element(i++), e)) return false;
                out.push_back(std::move(e));
            }
            return true;
        });
    if (!decoded) return decoded;
    for (auto& e : *decoded) e->revision = revision;
    return decoded;
}

}  // namespace registry::detail
