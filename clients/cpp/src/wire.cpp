#include "wire.hpp"

#include "codec/json_writer.hpp"
#include "codec/service_record.hpp"

namespace registry::client::wire {

namespace dom = simdjson::dom;
using registry::detail::json_writer;

namespace {

error bad(std::string message) { return error{make_error_code(errc::bad_frame), std::move(message)}; }

void string_list(json_writer& w, std::string_view key, const std::vector<std::string>& items) {
    w.key(key).begin_array();
    for (const auto& s : items) w.string(s);
    w.end_array();
}

// The registration form of a service: its descriptive fields, the optional
// ones only when set.
void registration(json_writer& w, const service_instance& s) {
    w.begin_object().key("name").string(s.name);
    if (!s.instance_id.empty()) w.key("instance_id").string(s.instance_id);
    if (!s.version.empty()) w.key("version").string(s.version);
    const execution_info& x = s.execution;
    if (x != execution_info{}) {
        w.key("execution").begin_object().key("kind").string(registry::to_string(x.kind));
        if (x.kind == execution_kind::managed_process) {
            if (x.pid) w.key("pid").number(*x.pid);
            if (!x.command.empty()) w.key("command").string(x.command);
        } else if (x.kind == execution_kind::container) {
            w.key("container_id").string(x.container_id);
            if (!x.image.empty()) w.key("image").string(x.image);
        } else {
            w.key("unit_name").string(x.unit_name);
        }
        w.end_object();
    }
    if (s.where.remote) {
        w.key("location").begin_object().key("kind").string("remote").key("host").string(s.where.host);
        if (!s.where.ssh_user.empty()) w.key("ssh_user").string(s.where.ssh_user);
        if (s.where.ssh_port != 0) w.key("ssh_port").number(s.where.ssh_port);
        w.end_object();
    }
    if (!s.endpoints.empty()) registry::detail::write_endpoints(w.key("endpoints"), s.endpoints);
    if (!s.depends_on.empty()) string_list(w, "depends_on", s.depends_on);
    if (!s.metadata.empty()) {
        w.key("metadata").begin_object();
        for (const auto& [k, v] : s.metadata) w.key(k).string(v);
        w.end_object();
    }
    w.end_object();
}

template <typename T>
bool get(dom::element e, std::string_view key, T& out) {
    return e[key].get(out) == simdjson::SUCCESS;
}

result<dom::element> parse_object(dom::parser& parser, std::string_view text) {
    dom::element root;
    if (parser.parse(text.data(), text.size()).get(root) != simdjson::SUCCESS || !root.is_object()) {
        return bad("not a JSON object: " + std::string(text.substr(0, 200)));
    }
    return root;
}

result<service_instance> decode_service(dom::element e) {
    auto s = registry::detail::decode_service_record(simdjson::minify(e));
    if (!s.ok()) return bad("a service object that does not read: " + s.err().message);
    return std::move(s).value();
}

}  // namespace

std::string request(std::string_view id, std::string_view action, std::string_view params_json) {
    std::string out;
    out.reserve(64 + params_json.size());
    json_writer w(out);
    w.begin_object().key("id").string(id).key("type").string("request").key("action").string(action);
    out += ",\"params\":";
    out += params_json;
    out += '}';
    return out;
}

std::string register_params(const service_instance& s, const register_options& o, std::optional<std::uint64_t> lease_id) {
    std::string out;
    json_writer w(out);
    w.begin_object().key("service");
    registration(w, s);
    w.key("ttl_seconds").number(o.ttl.count());
    if (o.session_bound) w.key("session_bound").boolean(true);
    if (lease_id) w.key("lease_id").number(*lease_id);
    w.end_object();
    return out;
}

std::string keepalive_params(std::uint64_t lease_id) {
    std::string out;
    json_writer(out).begin_object().key("lease_id").number(lease_id).end_object();
    return out;
}

std::string instance_params(std::string_view instance_id) {
    std::string out;
    json_writer(out).begin_object().key("instance_id").string(instance_id).end_object();
    return out;
}

std::string name_params(std::string_view name, std::optional<health_filter> health) {
    std::string out;
    json_writer w(out);
    w.begin_object().key("name").string(name);
    if (health) w.key("health").string(to_string(*health));
    w.end_object();
    return out;
}

std::string continue_params(std::string_view token) {
    std::string out;
    json_writer(out).begin_object().key("continue").string(token).end_object();
    return out;
}

std::string endpoints_params(const endpoint_filter& f) {
    std::string out;
    json_writer w(out);
    w.begin_object();
    if (!f.service.empty()) w.key("service").string(f.service);
    if (!f.endpoint.empty()) w.key("endpoint").string(f.endpoint);
    if (!f.protocol.empty()) w.key("protocol").string(f.protocol);
    if (f.health) w.key("health").string(to_string(*f.health));
    w.end_object();
    return out;
}

std::string subscribe_params(const watch_options& o, std::optional<std::uint64_t> from_revision, bool snapshot) {
    std::string out;
    json_writer w(out);
    w.begin_object();
    if (!o.events.empty()) string_list(w, "events", o.events);
    if (!o.services.empty()) string_list(w, "services", o.services);
    if (from_revision) w.key("from_revision").number(*from_revision);
    else if (!snapshot) w.key("snapshot").boolean(false);
    w.end_object();
    return out;
}

std::string unsubscribe_params(std::string_view subscription) {
    std::string out;
    json_writer(out).begin_object().key("subscription").string(subscription).end_object();
    return out;
}

result<incoming> classify(dom::parser& parser, std::string_view text) {
    auto root = parse_object(parser, text);
    if (!root) return root.err();
    const dom::element e = *root;
    incoming out;
    std::string_view type;
    if (!get(e, "type", type)) return bad("a frame without a type");
    if (type == "response") {
        out.what = incoming::kind::response;
        std::string_view id;
        if (get(e, "id", id)) out.id = std::string(id);
        dom::element err;
        if (e["error"].get(err) == simdjson::SUCCESS) {
            std::string_view code, message;
            get(err, "code", code);
            get(err, "message", message);
            const errc c = errc_from_protocol(code);
            std::string text_message(message);
            if (c == errc::unknown_server_error) text_message = std::string(code) + ": " + text_message;
            out.failure = error{make_error_code(c), std::move(text_message)};
            return out;
        }
        dom::element data;
        if (e["data"].get(data) != simdjson::SUCCESS) return bad("a response with neither data nor error");
        out.data = simdjson::minify(data);
        std::string_view sub;
        if (get(data, "subscription", sub)) out.subscribed = std::string(sub);
        std::uint64_t rev = 0;
        if (get(data, "revision", rev)) out.subscribed_revision = rev;
        return out;
    }
    if (type == "event") {
        out.what = incoming::kind::event;
        std::string_view sub, event;
        get(e, "subscription", sub);  // events about one request have none
        if (!get(e, "event", event)) return bad("an event without its type");
        out.subscription = std::string(sub);
        out.event = std::string(event);
        get(e, "revision", out.revision);
        dom::element data;
        if (e["data"].get(data) == simdjson::SUCCESS) out.data = simdjson::minify(data);
        return out;
    }
    return out;
}

result<lease_info> lease(dom::parser& parser, std::string_view data) {
    auto root = parse_object(parser, data);
    if (!root) return root.err();
    lease_info l;
    std::string_view instance;
    std::uint64_t ttl = 0;
    if (!get(*root, "lease_id", l.lease_id) || !get(*root, "instance_id", instance) || !get(*root, "ttl_seconds", ttl) ||
        !get(*root, "expires_at_ms", l.expires_at_ms)) {
        return bad("a lease answer without lease_id, instance_id, ttl_seconds or expires_at_ms: " + std::string(data));
    }
    l.instance_id = std::string(instance);
    l.ttl = std::chrono::seconds(ttl);
    get(*root, "revision", l.revision);
    get(*root, "created", l.created);
    return l;
}

result<service_instance> service_of(dom::parser& parser, std::string_view data) {
    auto root = parse_object(parser, data);
    if (!root) return root.err();
    dom::element s;
    if ((*root)["service"].get(s) != simdjson::SUCCESS) return bad("an answer without its service: " + std::string(data));
    return decode_service(s);
}

result<std::string> services_page(dom::parser& parser, std::string_view data, listing<service_instance>& into) {
    auto root = parse_object(parser, data);
    if (!root) return root.err();
    dom::array services;
    if ((*root)["services"].get(services) != simdjson::SUCCESS) return bad("a listing without services");
    get(*root, "revision", into.revision);
    for (dom::element s : services) {
        auto one = decode_service(s);
        if (!one) return one.err();
        into.items.push_back(std::move(one).value());
    }
    std::string_view next;
    get(*root, "continue", next);
    return std::string(next);
}

result<std::string> endpoints_page(dom::parser& parser, std::string_view data, listing<endpoint_info>& into) {
    auto root = parse_object(parser, data);
    if (!root) return root.err();
    dom::array endpoints;
    if ((*root)["endpoints"].get(endpoints) != simdjson::SUCCESS) return bad("a listing without endpoints");
    get(*root, "revision", into.revision);
    for (dom::element e : endpoints) {
        std::string_view service, instance, state, name, address, protocol;
        std::uint64_t port = 0;
        if (!get(e, "service", service) || !get(e, "instance_id", instance) || !get(e, "state", state) ||
            !get(e, "name", name) || !get(e, "address", address) || !get(e, "port", port) ||
            !get(e, "protocol", protocol) || port > 65535) {
            return bad("an endpoint that does not read: " + simdjson::minify(e));
        }
        endpoint_info info;
        info.service = std::string(service);
        info.instance_id = std::string(instance);
        info.state = parse_service_state(state).value_or(service_state::registered);
        info.name = std::string(name);
        info.address = std::string(address);
        info.port = static_cast<std::uint16_t>(port);
        info.protocol = std::string(protocol);
        into.items.push_back(std::move(info));
    }
    std::string_view next;
    get(*root, "continue", next);
    return std::string(next);
}

result<event> decode_event(dom::parser& parser, const incoming& frame) {
    event out;
    out.type = frame.event;
    out.revision = frame.revision;
    out.data = frame.data;
    auto root = parse_object(parser, frame.data);
    if (!root) return root.err();
    dom::element s;
    if ((*root)["service"].get(s) == simdjson::SUCCESS) {
        auto one = decode_service(s);
        if (!one) return one.err();
        out.service = std::move(one).value();
    }
    dom::array services;
    if ((*root)["services"].get(services) == simdjson::SUCCESS) {
        for (dom::element e : services) {
            auto one = decode_service(e);
            if (!one) return one.err();
            out.services.push_back(std::move(one).value());
        }
    }
    return out;
}

}  // namespace registry::client::wire
