// Event frames: {"type":"event","subscription":"s1","event":...,"revision":N,"data":{...}}.
// The head names the subscription; the body is the same for every subscriber,
// so it is encoded once per event and shared: the registry calls event_body
// as it publishes an event (protocol::server installs it as the registry's
// event_encoder) and the event carries the bytes to every subscriber.
#pragma once

#include <registry/event.hpp>

#include <memory>
#include <string>
#include <string_view>

namespace registry::protocol {

// {"type":"event","subscription":"<id>",
std::string event_head(std::string_view subscription);

// "event":"<type>","revision":N,"data":{...}}
std::shared_ptr<const std::string> event_body(const event& e);

// What a subscription sends of `e`: the bytes made when it was published,
// or (an event made for one subscriber, a stream item) encoded now.
inline std::shared_ptr<const std::string> event_wire(const event& e) { return e.wire ? e.wire : event_body(e); }

}  // namespace registry::protocol
