// Event frames: {"type":"event","subscription":"s1","event":...,"revision":N,"data":{...}}.
// The head names the subscription; the body is the same for every subscriber,
// so it is encoded once per event and shared.
#pragma once

#include <registry/event.hpp>

#include <memory>
#include <string>
#include <string_view>

namespace registry::protocol {

// {"type":"event","subscription":"<id>",
std::string event_head(std::string_view subscription);

// "event":"<type>","revision":N,"data":{...}}  encoded on first use and
// parked in e.encoded, where every later subscriber finds it.
std::shared_ptr<const std::string> event_body(const event& e);

}  // namespace registry::protocol
