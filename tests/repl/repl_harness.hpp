// What the REPL end-to-end tests share: one Podman API service per test
// process (own storage, overlay driver) with the languages' images, a
// registryd with REPL execution on it (the tests' languages, or those of
// registryd.example.yaml), and collecting an execution's events.
#pragma once

#include "harness.hpp"
#include "podman_harness.hpp"

#include <doctest/doctest.h>

#include <cstddef>
#include <cstdint>
#include <initializer_list>
#include <map>
#include <string>
#include <string_view>
#include <vector>

namespace repl_it {

namespace json = it::json;
namespace rt = registry_test;
using namespace std::chrono_literals;

inline constexpr const char* python_image = "localhost/registry-python:latest";

// The service, with the python, node and gcc images imported.
rt::podman_service& podman();
// Builds (tests/containers/build-images.sh) and imports more images into it,
// those not imported yet: "clang", "go" (large; only the tests that run them).
void import_images(std::initializer_list<const char*> images);

struct options {
    std::size_t max_concurrent = 4;
    std::size_t warm_pool = 0;
    std::string more_repl = {};  // further keys of the repl section, each a line "  key: value\n"
};

std::string language_limits();
// The tests' languages: sh, python, shc (sh -n as its compile step).
std::string config(const std::string& instance, options o = {});
// The containers a daemon with this instance id has on the engine.
std::vector<std::string> containers_of(const std::string& instance);
// The shipped configuration (daemon/registryd.example.yaml) with this
// test's engine and instance id, and REPL execution enabled.
std::string shipped_config(const std::string& instance);
// Until the daemon's engine is online: before that, executions wait in the queue.
void wait_online(it::registryd& d);

// A daemon with REPL execution, checked for leftovers when the test ends.
struct repl_daemon {
    explicit repl_daemon(options o = {});
    struct shipped {};
    // Imports every image the shipped languages use first.
    explicit repl_daemon(shipped);
    ~repl_daemon();
    std::string instance;
    it::registryd d;
};

struct execution {
    std::string id;
    std::string request_id;                           // of its repl_execute: every event carries it
    std::vector<json::value> output;                 // repl_output events
    std::vector<std::int64_t> positions;              // repl_queued
    std::vector<it::steady::time_point> output_at;
    json::value finished;                             // repl_finished
    it::steady::time_point finished_at;

    std::string stream(const char* name) const;
};

// An execution as its repl_execute response announced it.
struct started {
    std::string execution_id;
    std::string request_id;
};

started start(it::ws_client& ws, json::object params);
json::object sh(const std::string& code, json::object limits = {}, const char* language = "sh");
// Collects the events of the given executions until each has finished,
// checking that each event names its execution's request.
std::map<std::string, execution> collect(it::ws_client& ws, const std::vector<started>& ids, it::ms timeout = 60s);
execution run_one(it::ws_client& ws, json::object params, it::ms timeout = 60s);
bool is_null(const json::value& v, std::string_view pointer);

}  // namespace repl_it
