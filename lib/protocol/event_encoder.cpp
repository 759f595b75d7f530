#include "event_encoder.hpp"

#include "codec/health_check_record.hpp"
#include "codec/json_writer.hpp"
#include "codec/service_record.hpp"

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

void write_failure(detail::json_writer& w, const event& e) {
    if (!e.failure) return;
    w.key("error").begin_object()
        .key("code").string(to_string(e.failure->code))
        .key("message").string(e.failure->message)
        .end_object();
}

void write_deployment(detail::json_writer& w, const event& e) {
    if (!e.deployment) return;
    const deployment_change& d = *e.deployment;
    w.key("instance_id").string(d.instance_id)
        .key("package").string(d.package)
        .key("target").string(d.target)
        .key("from_version");
    if (d.from_version) {
        w.string(*d.from_version);
    } else {
        w.null();
    }
    w.key("to_version").string(d.to_version);
    if (e.type == event_type::deployment_stage || e.type == event_type::deployment_failed) w.key("stage").string(d.stage);
    w.key("message").string(d.message);
    if (d.restored_healthy) w.key("healthy").boolean(*d.restored_healthy);
    write_failure(w, e);
    if (d.connection || d.request_id) {
        w.key("requested_by").begin_object();
        if (d.connection) w.key("connection").number(*d.connection);
        if (d.request_id) w.key("request_id").string(*d.request_id);
        w.end_object();
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
            if (e.check) {  // a check's transition (health_check.hpp)
                w.key("check");
                write_check_change(w, *e.check);
            }
            break;
        case event_type::lease_expired:
            if (e.detail) {
                e.detail->write_data(w, e);  // a container's lease
            } else if (e.service) {
                if (e.service->lease.id != 0) w.key("lease_id").number(e.service->lease.id);  // 0: hidden
                w.key("instance_id").string(e.service->instance_id)
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
        case event_type::container_state_changed:
        case event_type::container_reap_failed:
        case event_type::container_log:
        case event_type::image_pull_progress:
            if (e.detail) e.detail->write_data(w, e);
            break;
        case event_type::deployment_started:
        case event_type::deployment_stage:
        case event_type::deployment_succeeded:
        case event_type::deployment_failed:
        case event_type::deployment_rolled_back:
            write_deployment(w, e);
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
    auto body = std::make_shared<std::string>();
    detail::json_writer w(*body);
    w.key("event").string(to_string(e.type)).key("revision").number(e.revision).key("data");
    write_data(w, e);
    w.end_object();  // closes the object the head opened
    return body;
}

}  // namespace registry::protocol
