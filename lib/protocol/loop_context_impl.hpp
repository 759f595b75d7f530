// What one event loop's connections share (registry/protocol/loop_context.hpp).
#pragma once

#include "request_parser.hpp"

#include <registry/protocol/loop_context.hpp>

namespace registry::protocol {

struct loop_context::impl {
    request_parser parser;
};

}  // namespace registry::protocol
