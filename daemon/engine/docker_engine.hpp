// registry::container_engine over the Docker Engine API (v1.41 paths), which
// Docker and Podman (`podman system service`) both serve, on a unix socket or
// TCP (engine_http.hpp).
//
// Mapping: create → POST /containers/create, start/stop/wait → POST
// /containers/{id}/..., remove → DELETE /containers/{id}?v=1, inspect → GET
// /containers/{id}/json, stats → GET /containers/{id}/stats?stream=false, list → GET /containers/json?all=1&filters=label,
// logs → GET /containers/{id}/logs (8-byte framed, chunked), attach → POST
// /containers/{id}/attach hijacked with "Upgrade: tcp" (same framing),
// put_archive → PUT /containers/{id}/archive (a tar built by tar_builder),
// pull_image → POST /images/create (a 200 stream of JSON lines, errors
// included), ping → GET /_ping, version → GET /version.
//
// Statuses: 404 → not_found, 409 and 403 → conflict, 400 → invalid_request,
// anything else unexpected → internal, always with the engine's message.
// 304 from start/stop (already in that state) is success. Transport failures
// and timeouts → unavailable, naming the engine's address.
//
// Runs on the io_context's thread, like engine_http_client.
//
// The calls are in docker_engine.cpp; what they share: docker_engine_requests
// (targets, JSON bodies written with json_writer), docker_engine_replies (the
// answers, read with simdjson; the status → error mapping), docker_engine_streams
// (logs, attach, pull progress) and docker_engine_wire.cpp (the pieces below).
#pragma once

#include "engine/engine_http.hpp"

#include <registry/container.hpp>
#include <registry/ports/container_engine.hpp>

#include <cstddef>
#include <optional>
#include <string>
#include <string_view>

namespace registryd {

struct docker_engine_options {
    std::string api_version = "v1.41";  // the path prefix; both Docker and Podman serve v1.41
    http_client_options http;            // connect and request timeouts, response size cap
    // A ping is a heartbeat: an engine that accepts the connection but does
    // not answer within this is as offline as one that refuses it.
    std::chrono::milliseconds ping_timeout{0};  // zero: http.request_timeout
};

class docker_engine final : public registry::container_engine {
public:
    docker_engine(boost::asio::io_context& ioc, engine_endpoint endpoint, docker_engine_options options = {});

    const engine_endpoint& endpoint() const noexcept { return http_.endpoint(); }

    registry::task<registry::result<void>> ping(std::stop_token cancel = {}) override;
    registry::task<registry::result<registry::engine_info>> version(std::stop_token cancel = {}) override;
    registry::task<registry::result<std::string>> create(registry::container_spec spec,
                                                         std::stop_token cancel = {}) override;
    registry::task<registry::result<void>> start(std::string id, std::stop_token cancel = {}) override;
    registry::task<registry::result<void>> stop(std::string id, std::chrono::seconds grace,
                                                std::stop_token cancel = {}) override;
    registry::task<registry::result<void>> remove(std::string id, bool force, std::stop_token cancel = {}) override;
    registry::task<registry::result<registry::container_info>> inspect(std::string id,
                                                                       std::stop_token cancel = {}) override;
    registry::task<registry::result<registry::container_stats>> stats(std::string id,
                                                                      std::stop_token cancel = {}) override;
    registry::task<registry::result<std::vector<registry::container_summary>>> list(
        registry::label_selector labels, std::stop_token cancel = {}) override;
    registry::task<registry::result<int>> wait(std::string id, std::stop_token cancel = {}) override;
    registry::task<registry::result<registry::engine_stream<registry::output_chunk>>> logs(
        std::string id, registry::log_options options, std::stop_token cancel = {}) override;
    registry::task<registry::result<registry::engine_stream<registry::output_chunk>>> attach(
        std::string id, std::stop_token cancel = {}) override;
    registry::task<registry::result<void>> put_archive(std::string id, std::string directory,
                                                       std::vector<registry::archive_file> files,
                                                       std::stop_token cancel = {}) override;
    registry::task<registry::result<registry::engine_stream<registry::pull_progress>>> pull_image(
        std::string reference, std::stop_token cancel = {}) override;

    // put_archive with a ready-made tar body.
    registry::task<registry::result<void>> put_tar(std::string id, std::string directory, std::string tar,
                                                   std::stop_token cancel = {});

private:
    std::string path(std::string_view p) const { return "/" + options_.api_version + std::string(p); }

    engine_http_client http_;
    docker_engine_options options_;
};

// The pieces of the wire format, exposed for unit tests.
namespace docker {

// Demultiplexes Docker's framed output stream: each frame is an 8-byte
// header [stream (0 stdin, 1 stdout, 2 stderr), 0, 0, 0, size as 4 bytes
// big-endian] followed by `size` bytes. Frame payloads are handed out as they
// arrive (a large frame may come out in several chunks). A stream whose first
// bytes are no frame header (a TTY container's raw output) is passed through
// as stdout.
class frame_demuxer {
public:
    void feed(std::string_view bytes);
    // The next chunk available, or nullopt until more is fed.
    std::optional<registry::output_chunk> next();
    // At the end of the stream: whatever is left that cannot be a frame
    // (only in raw mode, or a short raw stream).
    std::optional<registry::output_chunk> finish();
    // A header in the middle of a framed stream was invalid; nothing more
    // comes out.
    bool corrupt() const noexcept { return corrupt_; }

private:
    enum class mode { undecided, framed, raw };
    std::string buf_;
    std::size_t pos_ = 0;
    mode mode_ = mode::undecided;
    std::size_t remaining_ = 0;  // payload bytes still to come in the current frame
    registry::output_stream current_ = registry::output_stream::out;
    bool corrupt_ = false;
};

// Splits a byte stream into lines (without the "\n" or "\r\n").
class line_splitter {
public:
    void feed(std::string_view bytes);
    std::optional<std::string> next();
    // The last line, if the stream did not end with a newline.
    std::optional<std::string> finish();

private:
    std::string buf_;
    std::size_t pos_ = 0;
};

// RFC 3339 ("2026-11-23T10:15:18.159985815Z", "...+01:00") at millisecond
// precision; nullopt for Docker's zero time ("0001-01-01T00:00:00Z") and for
// anything unparsable.
std::optional<registry::time_point> parse_time(std::string_view s);

// Percent-encodes everything but RFC 3986's unreserved characters.
std::string url_encode(std::string_view s);

// fromImage and tag for POST /images/create: "a/b:1" → {"a/b", "1"},
// "a/b" → {"a/b", "latest"}, "host:5000/a" → {"host:5000/a", "latest"},
// "a@sha256:..." → {"a@sha256:...", ""}.
std::pair<std::string, std::string> split_reference(std::string_view reference);

}  // namespace docker

}  // namespace registryd
