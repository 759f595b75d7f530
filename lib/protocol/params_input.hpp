// Where an action's params are read from: the request's params element
// (absent: an empty object), its path ("params") and the decoder that keeps
// the first problem. Readers check syntax and types; the domain its rules.
#pragma once

#include "codec/json_reader.hpp"

#include <optional>

namespace registry::protocol {

using params_element = std::optional<detail::dom::element>;

struct params_input {
    detail::decoder& d;
    const params_element& params;
    const detail::path& at;
};

}  // namespace registry::protocol
