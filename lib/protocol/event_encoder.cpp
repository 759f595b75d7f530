#include "event_encoder.hpp"

#include "json_writer.hpp"
#include "service_writer.hpp"

namespace registry::protocol {

namespace {

void write_service_member(detail::json_writer& w, const event& e) {
    w.key("service");
    if (e.service) {
        write_service(w, *e.service);
    } else {
        w.null();
    }
}

void write_data(detail::json_writer& w, const event& e) {
    w.begin_object();
    switch (e.type) {
        case event_type::service_registered:
            write_service_member(w, e);
            break;
        case event_type::service_deregistered:
            write_service_member(w, e);
            w.key("reason").string(e.reason);
            break;
        case event_type::service_state_changed:
            write_service_member(w, e);
            if (e.previous_state) w.key("previous_state").string(to_string(*e.previous_state));
            if (e.service) w.key("state").string(to_string(e.service->state));
            w.key("reason").string(e.reason);
            break;
        case event_type::endpoint_updated:
            write_service_member(w, e);
            if (e.service) {
                w.key("endpoints");
                write_endpoints(w, e.service->endpoints);
            }
            break;
        case event_type::health_check_result:
            write_service_member(w, e);
            if (e.service) {
                w.key("health");
                write_health(w, e.service->health);
            }
            break;
        case event_type::lease_expired:
            if (e.service) {
                w.key("lease_id").number(e.service->lease.id)
                    .key("instance_id").string(e.service->instance_id)
                    .key("name").string(e.service->name);
            }
            w.key("reason").string(e.reason);
            break;
        case event_type::registry_loaded:
            w.key("services").begin_array();
            for (const auto& s : e.snapshot) write_service(w, *s);
            w.end_array();
            break;
        case event_type::bookmark:
            break;
        case event_type::resync_required:
            w.key("from_revision").number(e.resync_from).key("oldest_revision").number(e.oldest_revision);
            break;
    }
    w.end_object();
}

}  // namespace

std::string event_head(std::string_view subscription) {
    std::string head;
    detail::json_writer w(head);
    w.begin_object().key("type").string("event").key("subscription").string(subscription);
    head.push_back(',');
    return head;
}

std::shared_ptr<const std::string> event_body(const event& e) {
    if (e.encoded) return e.encoded;
    auto body = std::make_shared<std::string>();
    detail::json_writer w(*body);
    w.key("event").string(to_string(e.type)).key("revision").number(e.revision).key("data");
    write_data(w, e);
    w.end_object();  // closes the object the head opened
    e.encoded = body;
    return body;
}

}  // namespace registry::protocol
