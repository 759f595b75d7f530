// Reading the Docker Engine API's answers: the error of a failed request, and
// the JSON bodies of the calls that return one. Statuses map to error codes
// as docker_engine.hpp says; a 2xx body that is not what the call returns is
// errc::internal, "<what>: unexpected reply from the container engine: ...".
//
// Only docker_engine_replies.cpp includes simdjson (heavy to compile).
#pragma once

#include "engine/engine_http.hpp"

#include <registry/container.hpp>
#include <registry/resource_usage.hpp>
#include <registry/result.hpp>

#include <string>
#include <string_view>
#include <vector>

namespace registryd::docker {

// A failed request: its status (and Podman's "cause") decides the code, the
// engine's message (its {"message": ...}, else the body) ends the text.
registry::error engine_error(const http_response& r, std::string_view what);
inline registry::unexpected engine_failure(const http_response& r, std::string_view what) {
    return registry::unexpected{engine_error(r, what)};
}

registry::result<registry::engine_info> read_version(std::string_view body);
// The id of a created container ({"Id": ...}).
registry::result<std::string> read_created(std::string_view body, std::string_view what);
registry::result<registry::container_info> read_inspect(std::string_view body, std::string_view what);
// Every container listed, unfiltered (elements that are no object are skipped).
registry::result<std::vector<registry::container_summary>> read_list(std::string_view body);
// A wait's exit code, or the error the engine reports instead.
registry::result<int> read_wait(std::string_view body, std::string_view what);
// A one-shot stats sample: cpu_stats.cpu_usage.total_usage (ns),
// memory_stats.usage and, where the engine has it, memory_stats.max_usage
// (Podman 4.3 has not). An empty body (Podman, a stopped container) or a
// sample at the zero time (Docker) has no figures.
registry::result<registry::container_stats> read_stats(std::string_view body, std::string_view what);
// One line of POST /images/create's stream: progress, or the error that ends
// the pull (an unknown image → not_found, anything else → unavailable).
registry::result<registry::pull_progress> read_progress(std::string_view line, std::string_view reference);

}  // namespace registryd::docker
