// The events the container manager records, and the small conversions
// between the engine's account of a container and the managed one.
#pragma once

#include "codec/time.hpp"

#include <registry/container.hpp>
#include <registry/container_events.hpp>
#include <registry/container_manager.hpp>
#include <registry/event.hpp>
#include <registry/managed_container.hpp>
#include <registry/result.hpp>

#include <charconv>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace registry::containers {

using detail::ms;

template <typename Int>
std::optional<Int> parse_number(std::string_view s) {
    Int v{};
    auto [end, ec] = std::from_chars(s.data(), s.data() + s.size(), v);
    if (ec != std::errc{} || end != s.data() + s.size()) return std::nullopt;
    return v;
}

inline std::shared_ptr<event> with_detail(event_type type, std::shared_ptr<const event_detail> d,
                                          std::string reason = {}) {
    auto e = std::make_shared<event>();
    e->type = type;
    e->reason = std::move(reason);
    e->detail = std::move(d);
    return e;
}

// A change of a container (container_state_changed, container_reap_failed,
// lease_expired).
inline std::shared_ptr<event> container_event(event_type type, container_ptr c, std::string reason = {},
                                              std::optional<managed_state> previous = {}, unsigned attempts = 0) {
    auto change = std::make_shared<container_change>();
    change->container = std::move(c);
    change->previous_state = previous;
    change->attempts = attempts;
    return with_detail(type, std::move(change), std::move(reason));
}

// `previous` is absent for a container that has just been created.
inline std::shared_ptr<event> state_changed(container_ptr c, std::optional<managed_state> previous,
                                            std::string reason = {}) {
    return container_event(event_type::container_state_changed, std::move(c), std::move(reason), previous);
}

// A container_log item; without output, the stream's last.
inline std::shared_ptr<event> log_event(container_ptr c, std::optional<output_chunk> output) {
    auto item = std::make_shared<container_log_item>();
    item->container = std::move(c);
    item->end = !output;
    item->output = std::move(output);
    return with_detail(event_type::container_log, std::move(item));
}

// One event as the list registry::record() takes. (Temporaries in a co_await
// expression trip GCC 12: callers bind the list to a local first.)
inline std::vector<std::shared_ptr<event>> only(std::shared_ptr<event> e) {
    std::vector<std::shared_ptr<event>> events;
    events.push_back(std::move(e));
    return events;
}

// A placeholder for a result a try block is about to assign. (A string
// literal in a coroutine's local initializer trips GCC 12.)
inline unexpected not_yet() { return fail(errc::internal, std::string("no result yet")); }

inline error not_managed(std::string_view id) {
    return error{errc::not_found, "no managed container '" + std::string(id) + "'"};
}

inline managed_state from_engine(container_status s) {
    switch (s) {
        case container_status::created: return managed_state::created;
        case container_status::running:
        case container_status::paused:
        case container_status::restarting: return managed_state::running;
        default: return managed_state::exited;
    }
}

// Created or running: what counts against a node's capacity.
inline bool occupies(managed_state s) { return s == managed_state::created || s == managed_state::running; }

// The engine's account of the container's run (its inspect's State).
inline void take_run_state(managed_container& c, const container_state& s) {
    if (s.started_at) c.started_at = s.started_at;
    if (s.finished_at) c.finished_at = s.finished_at;
    c.error = s.error;
}

// What an adopted container without a stored record runs, from its inspect.
inline void take_spec(managed_container& c, const container_info& info) {
    c.command = info.command;
    c.limits = info.limits;
    c.labels.clear();
    for (const auto& [key, value] : info.labels) {
        if (!key.starts_with(container_labels::reserved_prefix)) c.labels.emplace(key, value);
    }
}

inline container_ptr with_state(const container_ptr& c, managed_state s) {
    auto next = std::make_shared<managed_container>(*c);
    next->state = s;
    return next;
}

// `c` (just made by with_state) with the usage sampled before its end.
inline container_ptr with_usage_of(container_ptr c, const resource_usage& usage) {
    std::const_pointer_cast<managed_container>(c)->usage = usage;
    return c;
}

}  // namespace registry::containers
