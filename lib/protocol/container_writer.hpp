// The container object of docs/protocol.md ("Containers"), written into a
// larger document (responses, events, stored lease records), and text from a
// container's output made safe for a JSON string.
#pragma once

#include "json_writer.hpp"

#include <registry/managed_container.hpp>

#include <string>
#include <string_view>

namespace registry::protocol {

// How much of a container: `summary` in listings and events, `full` (adds
// command, limits, labels) in container_get and the stored lease record.
enum class container_view { summary, full };

void write_container(detail::json_writer& w, const managed_container& c,
                     container_view view = container_view::summary);

// Container output is bytes; JSON strings are UTF-8. Invalid sequences
// become U+FFFD.
std::string valid_utf8(std::string_view bytes);

}  // namespace registry::protocol
