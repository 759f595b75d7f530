// The container manager's data in the event stream, which the core's event
// carries as its `detail` without knowing its type:
//   changes, revisioned (registry::record): container_state_changed,
//     container_reap_failed, lease_expired of a container (container_change);
//   per-request stream items, no revision of their own: container_log
//     (container_log_item), image_pull_progress (image_pull_item).
// docs/protocol.md, "Events", is what each one's data looks like on the wire.
#pragma once

#include <registry/container.hpp>
#include <registry/event.hpp>
#include <registry/managed_container.hpp>

#include <optional>
#include <string>

namespace registry {

struct container_change final : event_detail {
    container_ptr container;
    std::optional<managed_state> previous_state;  // container_state_changed; absent: just created
    unsigned attempts = 0;                        // container_reap_failed
    // (container_reap_failed: event::failure is why; event::reason as for services)

    void write_data(detail::json_writer& w, const event& e) const override;
};

struct container_log_item final : event_detail {
    container_ptr container;
    std::optional<output_chunk> output;  // absent on the last one
    bool end = false;                    // the stream's last (event::failure: why it ended early)

    void write_data(detail::json_writer& w, const event& e) const override;
};

struct image_pull_item final : event_detail {
    std::string engine;                     // the node pulling
    std::string reference;                  // the image
    std::optional<pull_progress> progress;  // absent on the last one
    bool end = false;                       // the stream's last (event::failure: why it failed)

    void write_data(detail::json_writer& w, const event& e) const override;
};

// `e`'s detail if it is a T; null otherwise.
template <typename T>
const T* detail_of(const event& e) noexcept {
    return dynamic_cast<const T*>(e.detail.get());
}

// The container an event concerns (a change or a log item); null if none.
inline container_ptr container_of(const event& e) noexcept {
    if (const auto* c = detail_of<container_change>(e)) return c->container;
    if (const auto* l = detail_of<container_log_item>(e)) return l->container;
    return nullptr;
}

}  // namespace registry
