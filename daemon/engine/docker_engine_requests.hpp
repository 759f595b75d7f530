// Building the Docker Engine API's requests: targets, and the JSON bodies
// and query values some of them carry (written with registry's json_writer).
#pragma once

#include "engine/engine_http.hpp"

#include <registry/container.hpp>
#include <registry/result.hpp>

#include <string>
#include <string_view>

namespace registryd::docker {

// Built as a named local before a co_await: GCC 12 mishandles aggregate
// temporaries (and braced lists) inside a co_await expression.
http_request make_request(std::string method, std::string target, std::string body = {},
                          std::string content_type = {}, bool upgrade = false);

// "/containers/<id>", the id percent-encoded.
std::string id_path(std::string_view id);

// POST /containers/create's body; invalid_request for limits the engine
// cannot be given (a memory limit beyond int64, cpus not in (0, 1e6]).
registry::result<std::string> create_body(const registry::container_spec& spec);

// GET /containers/json's `filters` value, percent-encoded:
// {"label":["key=value","key"]}.
std::string label_filters(const registry::label_selector& labels);

}  // namespace registryd::docker
