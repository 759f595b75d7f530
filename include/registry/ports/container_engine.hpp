// The container-engine port: run and observe containers on one engine.
//
// The embedder implements it (registryd: daemon/docker_engine, a client of the
// Docker Engine API v1.41 that Docker and Podman both serve). The registry
// drives several engines, one instance of this port each.
//
// Conventions:
//  - Every operation completes with a result: errc::unavailable when the
//    engine cannot be reached or does not answer in time (the message names
//    the engine's address), errc::not_found for an unknown container or
//    image, errc::conflict when the engine refuses because of the
//    container's state or a name clash, errc::invalid_request when it
//    rejects the parameters, errc::internal for anything else (with the
//    engine's message).
//  - Cancellation: requesting `cancel` makes a pending operation, or a
//    stream's pending step, throw registry::operation_cancelled. The stop may
//    be requested from any thread; completions are delivered on the
//    embedder's event loop, never on a new thread.
//  - Streams: opening one completes promptly with the stream or a plain
//    error (an unknown container is not_found; an attach is in place when it
//    completes, so attach before start sees everything). The stream then
//    yields values as the engine produces them. A failure during the stream
//    (the connection drops, the engine reports an error inside its 200
//    response) is yielded as a final error element, after which the stream
//    ends. An implementation may defer the request itself to the first
//    iteration (Podman answers a log follow or a pull only once it has
//    something to say), in which case its errors arrive that way too.
//    Destroying a stream closes its connection; a stream holds one
//    connection to the engine.
//  - The engine object must outlive every task and stream it returned.
//  - Labels cannot be changed after create (Docker and Podman): whatever must
//    change later (a lease's extended expiry) has to live elsewhere too.
#pragma once

#include <registry/async_generator.hpp>
#include <registry/container.hpp>
#include <registry/resource_usage.hpp>
#include <registry/result.hpp>
#include <registry/task.hpp>

#include <chrono>
#include <stop_token>
#include <string>
#include <vector>

namespace registry {

// Values as the engine produces them; an error, if any, is the last element.
template <typename T>
using engine_stream = async_generator<result<T>>;

class container_engine {
public:
    virtual ~container_engine() = default;

    // Cheap liveness check (heartbeat).
    virtual task<result<void>> ping(std::stop_token cancel = {}) = 0;

    // Name and versions of the engine.
    virtual task<result<engine_info>> version(std::stop_token cancel = {}) = 0;

    // Creates (does not start) a container; yields its id. not_found: no such
    // image locally (pull it first); conflict: the name is taken.
    virtual task<result<std::string>> create(container_spec spec, std::stop_token cancel = {}) = 0;

    // Starting a running container succeeds.
    virtual task<result<void>> start(std::string id, std::stop_token cancel = {}) = 0;

    // Signals the container to stop (its stop signal, SIGTERM by default),
    // kills it after `grace`, completes once it has stopped. Stopping a
    // stopped container succeeds.
    virtual task<result<void>> stop(std::string id, std::chrono::seconds grace, std::stop_token cancel = {}) = 0;

    // Removes the container and its anonymous volumes. `force` kills a
    // running one first; without it, a running container is a conflict.
    // An unknown container is not_found (a reaper may count that as done).
    virtual task<result<void>> remove(std::string id, bool force, std::stop_token cancel = {}) = 0;

    virtual task<result<container_info>> inspect(std::string id, std::stop_token cancel = {}) = 0;

    // One sample of the container's CPU time and memory (Docker API: GET
    // /containers/{id}/stats?stream=false). A container that is not running
    // has no figures: each is absent. not_found for an unknown container.
    // An engine that reports no figures keeps this default.
    virtual task<result<container_stats>> stats(std::string id, std::stop_token cancel = {}) {
        (void)id;
        (void)cancel;
        co_return container_stats{};
    }

    // Every container (running or not) carrying all of `labels`.
    virtual task<result<std::vector<container_summary>>> list(label_selector labels,
                                                              std::stop_token cancel = {}) = 0;

    // Completes when the container is not running and yields its exit code.
    // At once if it has already stopped, or has never been started (then
    // with 0). No timeout: cancel it.
    virtual task<result<int>> wait(std::string id, std::stop_token cancel = {}) = 0;

    // The container's output so far (or its last `tail` lines) and, with
    // `follow`, what it writes next, until it stops. A container that has
    // not started yet has no output: following it ends at once (attach
    // before start instead).
    virtual task<result<engine_stream<output_chunk>>> logs(std::string id, log_options options,
                                                           std::stop_token cancel = {}) = 0;

    // Attaches to stdout and stderr. Attach before start to see all output;
    // the stream ends when the container stops.
    virtual task<result<engine_stream<output_chunk>>> attach(std::string id, std::stop_token cancel = {}) = 0;

    // Writes `files` into the container's filesystem under `directory`.
    // Works on a created, not yet started, container (to provide config
    // before start). Docker refuses a read-only rootfs (conflict); Podman
    // writes into it anyway.
    virtual task<result<void>> put_archive(std::string id, std::string directory, std::vector<archive_file> files,
                                           std::stop_token cancel = {}) = 0;

    // Pulls `reference` ("name", "name:tag", "name@digest"; no tag means
    // "latest") from its registry. Errors the engine reports inside the
    // stream (unreachable registry, unknown image) end it with an error
    // element: not_found for an unknown image, unavailable otherwise.
    virtual task<result<engine_stream<pull_progress>>> pull_image(std::string reference,
                                                                  std::stop_token cancel = {}) = 0;
};

}  // namespace registry
