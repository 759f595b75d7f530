// The protocol's JSON as registry::client writes and reads it
// (docs/protocol.md): request frames and their params, and the typed values
// of responses and events. Decoders fail with errc::bad_frame naming what
// is missing; they never throw.
#pragma once

#include <registry/client/error.hpp>
#include <registry/client/types.hpp>

#include <simdjson.h>

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace registry::client::wire {

std::string request(std::string_view id, std::string_view action, std::string_view params_json);

std::string register_params(const service_instance& s, const register_options& o, std::optional<std::uint64_t> lease_id);
std::string keepalive_params(std::uint64_t lease_id);
std::string instance_params(std::string_view instance_id);
std::string name_params(std::string_view name, std::optional<health_filter> health);
std::string continue_params(std::string_view token);
std::string endpoints_params(const endpoint_filter& f);
std::string subscribe_params(const watch_options& o, std::optional<std::uint64_t> from_revision, bool snapshot);
std::string unsubscribe_params(std::string_view subscription);

// A frame registryd sent, classified.
struct incoming {
    enum class kind { response, event, other } what = kind::other;
    std::optional<std::string> id;   // response: its id (none: null)
    std::optional<error> failure;    // response: its error
    std::string data;                // response / event: the data object, JSON text
    std::string subscription;        // event
    std::string event;               // event
    std::uint64_t revision = 0;      // event
    std::string subscribed;          // response to subscribe: data.subscription
    std::uint64_t subscribed_revision = 0;
};
result<incoming> classify(simdjson::dom::parser& parser, std::string_view text);

result<lease_info> lease(simdjson::dom::parser& parser, std::string_view data);
result<service_instance> service_of(simdjson::dom::parser& parser, std::string_view data);  // data.service

// One page of a listing: its items appended to `into`; the continue token, empty on the last page.
result<std::string> services_page(simdjson::dom::parser& parser, std::string_view data, listing<service_instance>& into);
result<std::string> endpoints_page(simdjson::dom::parser& parser, std::string_view data, listing<endpoint_info>& into);

// An event's typed fields from its data.
result<event> decode_event(simdjson::dom::parser& parser, const incoming& frame);

}  // namespace registry::client::wire
