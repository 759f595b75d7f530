#include "engine/docker_engine_streams.hpp"

#include "engine/docker_engine.hpp"
#include "engine/docker_engine_replies.hpp"

#include <algorithm>
#include <cctype>

namespace registryd::docker {

using registry::errc;
using registry::fail;
using registry::result;
using registry::task;
using registry::unexpected;

namespace {

using output_item = result<registry::output_chunk>;
using progress_item = result<registry::pull_progress>;

bool blank(std::string_view s) {
    return std::all_of(s.begin(), s.end(), [](unsigned char c) { return std::isspace(c) != 0; });
}

registry::engine_stream<registry::pull_progress> progress_stream(http_stream body, std::string reference,
                                                                 std::stop_token stop) {
    line_splitter lines;
    bool done = false;
    while (!done) {
        auto piece = co_await body.next(stop);
        if (!piece) {
            progress_item e = unexpected{piece.err()};
            co_yield e;
            co_return;
        }
        if (*piece) {
            lines.feed(**piece);
        } else {
            done = true;
        }
        for (;;) {
            auto line = done ? lines.finish() : lines.next();
            if (!line) break;
            if (blank(*line)) continue;
            progress_item item = read_progress(*line, reference);
            const bool failed = !item.ok();
            co_yield item;
            if (failed) co_return;
        }
    }
}

}  // namespace

registry::engine_stream<registry::output_chunk> output_frames(http_stream body, std::stop_token stop) {
    frame_demuxer demux;
    for (;;) {
        auto piece = co_await body.next(stop);
        if (!piece) {
            output_item e = unexpected{piece.err()};
            co_yield e;
            co_return;
        }
        if (!*piece) break;
        demux.feed(**piece);
        for (;;) {
            auto chunk = demux.next();
            if (!chunk) break;
            output_item item = std::move(*chunk);
            co_yield item;
        }
        if (demux.corrupt()) {
            output_item e = fail(errc::internal, "the container engine sent a malformed output frame");
            co_yield e;
            co_return;
        }
    }
    for (;;) {
        auto chunk = demux.finish();
        if (!chunk) break;
        output_item item = std::move(*chunk);
        co_yield item;
    }
}

task<result<http_stream>> open_stream(engine_http_client& http, http_request req, std::string what,
                                      unsigned expected, unsigned also, bool head_may_wait, std::stop_token stop) {
    auto opened = co_await http.open(std::move(req), stop, head_may_wait);
    if (!opened) co_return unexpected{opened.err()};
    http_stream s = std::move(*opened);
    if (s.status() != expected && s.status() != also) {
        auto body = co_await s.read_all(http.options().request_timeout, stop);
        if (!body) co_return unexpected{body.err()};
        co_return engine_failure(http_response{s.status(), s.content_type(), std::move(*body)}, what);
    }
    co_return s;
}

registry::engine_stream<registry::output_chunk> lazy_output(engine_http_client& http, http_request req,
                                                            std::string what, std::stop_token stop) {
    auto opened = co_await open_stream(http, std::move(req), std::move(what), 200, 200, true, stop);
    if (!opened) {
        output_item e = unexpected{opened.err()};
        co_yield e;
        co_return;
    }
    auto frames = output_frames(std::move(*opened), stop);
    for (auto it = co_await frames.begin(); it != frames.end(); co_await ++it) co_yield *it;
}

registry::engine_stream<registry::pull_progress> lazy_pull(engine_http_client& http, http_request req,
                                                           std::string reference, std::stop_token stop) {
    std::string what = "pull " + reference;
    auto opened = co_await open_stream(http, std::move(req), std::move(what), 200, 200, true, stop);
    if (!opened) {
        progress_item e = unexpected{opened.err()};
        co_yield e;
        co_return;
    }
    auto progress = progress_stream(std::move(*opened), reference, stop);
    for (auto it = co_await progress.begin(); it != progress.end(); co_await ++it) co_yield *it;
}

}  // namespace registryd::docker
