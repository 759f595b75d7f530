// The container object of docs/protocol.md ("Containers"), written into a
// larger document (responses, events, stored lease records), and text from a
// container's output made safe for a JSON string.
#pragma once

#include "json_writer.hpp"

#include <registry/managed_container.hpp>

#include <string>
#include <string_view>

namespace registry::protocol {

void write_container(detail::json_writer& w, const managed_container& c);

// Container output is bytes; JSON strings are UTF-8. Invalid sequences
// become U+FFFD.
std::string valid_utf8(std::string_view bytes);

}  // namespace registry::protocol
