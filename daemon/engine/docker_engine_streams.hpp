// The Docker Engine API's long answers, read as they arrive: logs and attach
// (the framed output stream, docker::frame_demuxer) and an image pull's
// progress (JSON lines). The lazy ones open their request when first
// iterated: Podman sends no response head before a followed container's
// first output, nor before the image registry answers a pull.
#pragma once

#include "engine/engine_http.hpp"

#include <registry/container.hpp>
#include <registry/ports/container_engine.hpp>

#include <stop_token>
#include <string>

namespace registryd::docker {

// Opens a streaming request; a status other than `expected` (or `also`)
// becomes the engine's error.
registry::task<registry::result<http_stream>> open_stream(engine_http_client& http, http_request req, std::string what,
                                                          unsigned expected, unsigned also, bool head_may_wait,
                                                          std::stop_token stop);

// An open logs or attach body, demultiplexed.
registry::engine_stream<registry::output_chunk> output_frames(http_stream body, std::stop_token stop);

// A logs follow: `req` opened when first iterated.
registry::engine_stream<registry::output_chunk> lazy_output(engine_http_client& http, http_request req,
                                                            std::string what, std::stop_token stop);

// An image pull (POST /images/create): `req` opened when first iterated.
registry::engine_stream<registry::pull_progress> lazy_pull(engine_http_client& http, http_request req,
                                                           std::string reference, std::stop_token stop);

}  // namespace registryd::docker
