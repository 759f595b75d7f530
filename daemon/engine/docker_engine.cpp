// docker_engine's calls: each builds its request (docker_engine_requests),
// sends it and reads the answer (docker_engine_replies) or hands out its
// stream (docker_engine_streams).
#include "engine/docker_engine.hpp"

#include "engine/docker_engine_replies.hpp"
#include "engine/docker_engine_requests.hpp"
#include "engine/docker_engine_streams.hpp"
#include "deploy/tar_builder.hpp"

#include <algorithm>
#include <chrono>
#include <exception>
#include <stdexcept>
#include <utility>

namespace registryd {

using docker::engine_failure;
using docker::id_path;
using docker::make_request;
using registry::errc;
using registry::fail;
using registry::result;
using registry::task;
using registry::unexpected;

// ------------------------------------------------------------ the engine

docker_engine::docker_engine(boost::asio::io_context& ioc, engine_endpoint endpoint, docker_engine_options options)
    : http_(ioc, std::move(endpoint), options.http), options_(std::move(options)) {}

task<result<void>> docker_engine::ping(std::stop_token cancel) {
    auto req = make_request("GET", path("/_ping"));
    auto r = co_await http_.request(std::move(req), cancel, options_.ping_timeout);
    if (!r) co_return unexpected{r.err()};
    if (r->status != 200) co_return engine_failure(*r, "ping");
    co_return result<void>{};
}

task<result<registry::engine_info>> docker_engine::version(std::stop_token cancel) {
    auto req = make_request("GET", path("/version"));
    auto r = co_await http_.request(std::move(req), cancel);
    if (!r) co_return unexpected{r.err()};
    if (r->status != 200) co_return engine_failure(*r, "version");
    co_return docker::read_version(r->body);
}

task<result<std::string>> docker_engine::create(registry::container_spec spec, std::stop_token cancel) {
    if (spec.image.empty()) co_return fail(errc::invalid_request, "create: no image");
    auto body = docker::create_body(spec);
    if (!body) co_return unexpected{body.err()};

    std::string target = path("/containers/create");
    if (!spec.name.empty()) target += "?name=" + docker::url_encode(spec.name);
    const std::string what = "create container" + (spec.name.empty() ? std::string() : " " + spec.name);
    auto req = make_request("POST", std::move(target), std::move(*body), "application/json");
    auto r = co_await http_.request(std::move(req), cancel);
    if (!r) co_return unexpected{r.err()};
    if (r->status != 201 && r->status != 200) co_return engine_failure(*r, what);
    co_return docker::read_created(r->body, what);
}

task<result<void>> docker_engine::start(std::string id, std::stop_token cancel) {
    auto req = make_request("POST", path(id_path(id) + "/start"));
    auto r = co_await http_.request(std::move(req), cancel);
    if (!r) co_return unexpected{r.err()};
    if (r->status != 204 && r->status != 304 && r->status != 200) co_return engine_failure(*r, "start " + id);
    co_return result<void>{};
}

task<result<void>> docker_engine::stop(std::string id, std::chrono::seconds grace, std::stop_token cancel) {
    const auto t = std::max<std::chrono::seconds::rep>(grace.count(), 0);
    // The engine answers once the container has stopped: up to `grace`, plus
    // the kill.
    const auto timeout = std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::seconds(t)) +
                         options_.http.request_timeout;
    auto req = make_request("POST", path(id_path(id) + "/stop?t=" + std::to_string(t)));
    auto r = co_await http_.request(std::move(req), cancel, timeout);
    if (!r) co_return unexpected{r.err()};
    if (r->status != 204 && r->status != 304 && r->status != 200) co_return engine_failure(*r, "stop " + id);
    co_return result<void>{};
}

task<result<void>> docker_engine::remove(std::string id, bool force, std::stop_token cancel) {
    const std::string target = path(id_path(id) + "?v=1&force=" + (force ? "1" : "0"));
    auto req = make_request("DELETE", target);
    auto r = co_await http_.request(std::move(req), cancel);
    if (!r) co_return unexpected{r.err()};
    if (r->status != 204 && r->status != 200) co_return engine_failure(*r, "remove " + id);
    co_return result<void>{};
}

task<result<registry::container_info>> docker_engine::inspect(std::string id, std::stop_token cancel) {
    auto req = make_request("GET", path(id_path(id) + "/json"));
    auto r = co_await http_.request(std::move(req), cancel);
    if (!r) co_return unexpected{r.err()};
    const std::string what = "inspect " + id;
    if (r->status != 200) co_return engine_failure(*r, what);
    co_return docker::read_inspect(r->body, what);
}

task<result<registry::container_stats>> docker_engine::stats(std::string id, std::stop_token cancel) {
    auto req = make_request("GET", path(id_path(id) + "/stats?stream=false"));
    auto r = co_await http_.request(std::move(req), cancel);
    if (!r) co_return unexpected{r.err()};
    const std::string what = "stats " + id;
    if (r->status != 200) co_return engine_failure(*r, what);
    co_return docker::read_stats(r->body, what);
}

task<result<std::vector<registry::container_summary>>> docker_engine::list(registry::label_selector labels,
                                                                           std::stop_token cancel) {
    std::string target = path("/containers/json?all=1");
    if (!labels.terms.empty()) target += "&filters=" + docker::label_filters(labels);
    auto req = make_request("GET", std::move(target));
    auto r = co_await http_.request(std::move(req), cancel);
    if (!r) co_return unexpected{r.err()};
    if (r->status != 200) co_return engine_failure(*r, "list containers");
    auto all = docker::read_list(r->body);
    if (!all) co_return unexpected{all.err()};
    std::vector<registry::container_summary> out;
    out.reserve(all->size());
    for (auto& s : *all) {
        // The engine filtered already; checking again costs nothing and keeps
        // a lax engine from handing out containers that are not ours.
        const bool matches = std::all_of(labels.terms.begin(), labels.terms.end(), [&](const auto& t) {
            const auto it = s.labels.find(t.key);
            return it != s.labels.end() && (!t.value || it->second == *t.value);
        });
        if (matches) out.push_back(std::move(s));
    }
    co_return out;
}

task<result<int>> docker_engine::wait(std::string id, std::stop_token cancel) {
    const std::string what = "wait " + id;
    // Podman sends the response head only when the container stops.
    auto req = make_request("POST", path(id_path(id) + "/wait?condition=not-running"));
    auto opened = co_await http_.open(std::move(req), cancel, true);
    if (!opened) co_return unexpected{opened.err()};
    http_stream s = std::move(*opened);
    const unsigned status = s.status();
    // The answer comes when the container stops: no deadline for a 200.
    auto body = co_await s.read_all(status == 200 ? std::chrono::milliseconds::zero() : options_.http.request_timeout,
                                    cancel);
    if (!body) co_return unexpected{body.err()};
    http_response r{status, s.content_type(), std::move(*body)};
    if (status != 200) co_return engine_failure(r, what);
    co_return docker::read_wait(r.body, what);
}

task<result<registry::engine_stream<registry::output_chunk>>> docker_engine::logs(std::string id,
                                                                                  registry::log_options options,
                                                                                  std::stop_token cancel) {
    std::string target = path(id_path(id) + "/logs?stdout=" + (options.want_stdout ? "1" : "0") +
                              "&stderr=" + (options.want_stderr ? "1" : "0") + "&follow=" + (options.follow ? "1" : "0"));
    target += "&tail=" + (options.tail ? std::to_string(*options.tail) : std::string("all"));
    auto req = make_request("GET", std::move(target));
    const std::string what = "logs " + id;
    if (options.follow) {
        // Podman sends no response head before the first output: open when
        // first iterated, after checking here that the container exists.
        auto check = make_request("GET", path(id_path(id) + "/json"));
        auto r = co_await http_.request(std::move(check), cancel);
        if (!r) co_return unexpected{r.err()};
        if (r->status != 200) co_return engine_failure(*r, what);
        co_return docker::lazy_output(http_, std::move(req), what, cancel);
    }
    auto opened = co_await docker::open_stream(http_, std::move(req), what, 200, 200, false, cancel);
    if (!opened) co_return unexpected{opened.err()};
    co_return docker::output_frames(std::move(*opened), cancel);
}

task<result<registry::engine_stream<registry::output_chunk>>> docker_engine::attach(std::string id,
                                                                                    std::stop_token cancel) {
    // Docker answers 101 (we asked to upgrade); some versions 200 and then
    // hijack anyway. Either way the body is the raw framed stream.
    auto req = make_request("POST", path(id_path(id) + "/attach?stream=1&stdout=1&stderr=1"), {}, {}, true);
    std::string what = "attach " + id;
    auto opened = co_await docker::open_stream(http_, std::move(req), std::move(what), 101, 200, false, cancel);
    if (!opened) co_return unexpected{opened.err()};
    co_return docker::output_frames(std::move(*opened), cancel);
}

task<result<void>> docker_engine::put_archive(std::string id, std::string directory,
                                              std::vector<registry::archive_file> files, std::stop_token cancel) {
    std::string tar;
    try {
        tar_builder b;
        for (const auto& f : files) b.add_file(f.path, f.contents, f.mode);
        tar = b.finish();
    } catch (const std::invalid_argument& e) {
        co_return fail(errc::invalid_request, "put_archive " + id + ": " + e.what());
    } catch (const std::exception& e) {
        co_return fail(errc::internal, "put_archive " + id + ": " + e.what());
    }
    co_return co_await put_tar(std::move(id), std::move(directory), std::move(tar), cancel);
}

task<result<void>> docker_engine::put_tar(std::string id, std::string directory, std::string tar,
                                          std::stop_token cancel) {
    if (directory.empty() || directory.front() != '/') {
        co_return fail(errc::invalid_request, "put_archive " + id + ": the directory must be an absolute path");
    }
    const std::string target = path(id_path(id) + "/archive?path=" + docker::url_encode(directory));
    auto req = make_request("PUT", target, std::move(tar), "application/x-tar");
    auto r = co_await http_.request(std::move(req), cancel);
    if (!r) co_return unexpected{r.err()};
    if (r->status != 200 && r->status != 204) co_return engine_failure(*r, "put_archive " + id + " " + directory);
    co_return result<void>{};
}

task<result<registry::engine_stream<registry::pull_progress>>> docker_engine::pull_image(std::string reference,
                                                                                         std::stop_token cancel) {
    if (reference.empty()) co_return fail(errc::invalid_request, "pull: no image");
    auto [image, tag] = docker::split_reference(reference);
    std::string target = path("/images/create?fromImage=" + docker::url_encode(image));
    if (!tag.empty()) target += "&tag=" + docker::url_encode(tag);
    co_return docker::lazy_pull(http_, make_request("POST", std::move(target)), std::move(reference), cancel);
}

}  // namespace registryd
