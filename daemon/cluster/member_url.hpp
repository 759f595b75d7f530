// Where the writer reaches a member of the cluster: the URL in its record
// (ws://host:port/ or wss://) as the TCP endpoint the daemon's HTTP client
// connects to, and whether it speaks TLS there.
#pragma once

#include "engine/engine_http.hpp"

#include <registry/result.hpp>

#include <string_view>

namespace registryd {

struct member_endpoint {
    engine_endpoint where;
    bool tls = false;
};

// invalid_request naming the URL when it is not a ws:// or wss:// URL with a port.
registry::result<member_endpoint> member_endpoint_of(std::string_view url);

}  // namespace registryd
