// The data of the container manager's events, as the protocol writes them
// (docs/protocol.md, "Events"): the container part of event_encoder, which
// writes an event's envelope and calls these for its detail.
#include "codec/container_record.hpp"
#include "codec/json_writer.hpp"
#include "codec/utf8.hpp"

#include <registry/container_events.hpp>

namespace registry {

namespace {

void write_container_member(detail::json_writer& w, const container_ptr& c) {
    w.key("container");
    if (c) {
        detail::write_container(w, *c);
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

}  // namespace

void container_change::write_data(detail::json_writer& w, const event& e) const {
    switch (e.type) {
        case event_type::lease_expired:  // event_encoder writes the reason after this
            if (container) w.key("lease_id").number(container->lease_id);
            write_container_member(w, container);
            break;
        case event_type::container_state_changed:
            write_container_member(w, container);
            if (previous_state) w.key("previous_state").string(to_string(*previous_state));
            if (container) w.key("state").string(to_string(container->state));
            w.key("reason").string(e.reason);
            break;
        case event_type::container_reap_failed:
            write_container_member(w, container);
            w.key("attempts").number(attempts);
            write_failure(w, e);
            break;
        default:
            break;
    }
}

void container_log_item::write_data(detail::json_writer& w, const event& e) const {
    if (container) w.key("container_id").string(container->container_id).key("lease_id").number(container->lease_id);
    if (output) w.key("stream").string(to_string(output->stream)).key("data").string(detail::valid_utf8(output->bytes));
    if (end) w.key("end").boolean(true);
    write_failure(w, e);
}

void image_pull_item::write_data(detail::json_writer& w, const event& e) const {
    w.key("engine").string(engine).key("reference").string(reference);
    if (progress) {
        w.key("id").string(progress->id)
            .key("status").string(progress->status)
            .key("progress").string(progress->progress);
        if (progress->current) w.key("current").number(*progress->current);
        if (progress->total) w.key("total").number(*progress->total);
    }
    if (end) w.key("end").boolean(true);
    write_failure(w, e);
}

}  // namespace registry
