// What every connection of one server shares.
#pragma once

#include "request_parser.hpp"

#include <registry/protocol/connection.hpp>

namespace registry::protocol {

struct server::impl {
    impl(class registry& r, struct limits l) : reg(r), lims(l) {}

    class registry& reg;
    struct limits lims;
    request_parser parser;
    repl::executor* repl = nullptr;
};

}  // namespace registry::protocol
