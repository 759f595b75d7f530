// Text from outside (a container's output) made safe for a JSON string.
#pragma once

#include <string>
#include <string_view>

namespace registry::detail {

// JSON strings are UTF-8; bytes are not. Invalid sequences become U+FFFD.
std::string valid_utf8(std::string_view bytes);

}  // namespace registry::detail
