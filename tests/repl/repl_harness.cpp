// What the REPL end-to-end tests share (repl_harness.hpp).
#include "repl_harness.hpp"

#include <fstream>
#include <sstream>
#include <stdexcept>
#include <thread>

namespace repl_it {

using it::num;
using it::str;

namespace {

const std::string image_cache = std::string(REGISTRY_SOURCE_DIR) + "/build/container-images";

// Builds the images (once, shared by every build directory and
// scripts/build-repl-images.sh) and imports those not in `service` yet.
void build_and_import(rt::podman_service& service, std::initializer_list<const char*> images) {
    std::vector<std::string> build{std::string(REGISTRY_SOURCE_DIR) + "/tests/containers/build-images.sh", image_cache};
    for (const char* image : images) build.emplace_back(image);
    auto built = rt::run_command(build);
    if (built.exit_code != 0) throw std::runtime_error("build-images.sh failed: " + built.output);
    for (const char* image : images) {
        const std::string ref = std::string("localhost/registry-") + image + ":latest";
        if (service.podman({"image", "exists", ref}).exit_code == 0) continue;
        auto imported = service.podman({"import", "--change", "CMD [\"/bin/sh\"]",
                                        image_cache + "/registry-" + image + ".tar", ref});
        if (imported.exit_code != 0) {
            throw std::runtime_error(std::string("podman import ") + image + " failed: " + imported.output);
        }
    }
}

}  // namespace

rt::podman_service& podman() {
    struct with_languages {
        rt::podman_service service{rt::podman_service::listen_on::unix_socket, "overlay"};
        with_languages() { build_and_import(service, {"python", "node", "gcc"}); }
    };
    static with_languages env;
    return env.service;
}

void import_images(std::initializer_list<const char*> images) { build_and_import(podman(), images); }

std::string language_limits() {
    return "      defaults: {timeout_ms: 20000, output_bytes: 65536, memory_bytes: 128MiB, pids: 64, cpu_millicores: 1000}\n"
           "      maximum: {timeout_ms: 60000, output_bytes: 1MiB, memory_bytes: 512MiB, pids: 256, cpu_millicores: 2000}\n";
}

// A short lease grace: the killed-daemon test waits for a lease to end.
std::string config(const std::string& instance, options o) {
    return "containers:\n"
           "  instance_id: " + instance + "\n"
           "  engines:\n"
           "    - name: local\n"
           "      endpoint: " + podman().uri() + "\n"
           "repl:\n"
           "  enabled: true\n"
           "  max_concurrent: " + std::to_string(o.max_concurrent) + "\n"
           "  max_queue: 16\n"
           "  lease_grace_seconds: 5\n" + o.more_repl +
           "  languages:\n"
           "    - name: sh\n"
           "      version: busybox\n"
           "      image: " + rt::test_image + "\n"
           "      source_file: main.sh\n"
           "      run: [sh, \"{source}\"]\n"
           "      warm_pool: " + std::to_string(o.warm_pool) + "\n" + language_limits() +
           "    - name: python\n"
           "      version: \"3.11\"\n"
           "      image: " + python_image + "\n"
           "      source_file: main.py\n"
           "      run: [python3, -u, \"{source}\"]\n"
           "      warm_pool: " + std::to_string(o.warm_pool) + "\n" + language_limits() +
           "    - name: shc\n"
           "      image: " + rt::test_image + "\n"
           "      source_file: main.sh\n"
           "      compile: [sh, -n, \"{source}\"]\n"
           "      run: [sh, \"{source}\"]\n" + language_limits();
}

// The containers a daemon with this instance id has on the engine.
std::vector<std::string> containers_of(const std::string& instance) {
    auto r = podman().podman({"ps", "-a", "-q", "--filter", "label=io.registry.instance=" + instance});
    REQUIRE_MESSAGE(r.exit_code == 0, r.output);
    std::vector<std::string> ids;
    std::string line;
    for (char c : r.output) {
        if (c == '\n') {
            if (!line.empty()) ids.push_back(line);
            line.clear();
        } else {
            line += c;
        }
    }
    if (!line.empty()) ids.push_back(line);
    return ids;
}

// The shipped configuration (daemon/registryd.example.yaml) with this
// test's engine and instance id, and REPL execution enabled.
std::string shipped_config(const std::string& instance) {
    std::ifstream in(std::string(REGISTRY_SOURCE_DIR) + "/daemon/registryd.example.yaml");
    std::stringstream text;
    text << in.rdbuf();
    std::string yaml = text.str();
    auto replace = [&](const std::string& from, const std::string& to) {
        const auto at = yaml.find(from);
        REQUIRE(at != std::string::npos);
        yaml.replace(at, from.size(), to);
    };
    replace("  instance_id: registryd\n", "  instance_id: " + instance + "\n");
    replace("      endpoint: unix:///run/podman/podman.sock", "      endpoint: " + podman().uri());
    replace("  enabled: false\n", "  enabled: true\n");
    return yaml;
}

// Until the daemon's engine is online: before that, executions wait in the queue.
void wait_online(it::registryd& d) {
    it::ws_client ws(d);
    const auto deadline = it::steady::now() + it::scaled(15s);
    for (;;) {
        const json::value nodes = ws.call("list_nodes");
        if (str(nodes, "/nodes/0/status") == "online") return;
        REQUIRE_MESSAGE(it::steady::now() < deadline, it::dump(nodes));
        std::this_thread::sleep_for(100ms);
    }
}

repl_daemon::repl_daemon(options o) : instance(rt::unique_name("it")), d(config(instance, o)) { wait_online(d); }

repl_daemon::repl_daemon(shipped)
    : instance(rt::unique_name("it")), d((import_images({"clang", "go"}), shipped_config(instance))) {
    wait_online(d);
}

repl_daemon::~repl_daemon() {
    const auto status = d.terminate(30s);
    CHECK_MESSAGE(status.clean(), status.describe());
    CHECK(containers_of(instance).empty());
}

std::string execution::stream(const char* name) const {
    std::string s;
    for (const auto& o : output) {
        if (str(o, "/data/stream") == name) s += str(o, "/data/data");
    }
    return s;
}

started start(it::ws_client& ws, json::object params) {
    const std::string request_id = ws.send_request("repl_execute", std::move(params));
    const json::value r = ws.wait_response(request_id);
    INFO(it::dump(r));
    REQUIRE(it::has(r, "/data/execution_id"));
    return {str(r, "/data/execution_id"), request_id};
}

json::object sh(const std::string& code, json::object limits, const char* language) {
    json::object p{{"language", language}, {"code", code}};
    if (!limits.empty()) p["limits"] = std::move(limits);
    return p;
}

// Collects the events of the given executions until each has finished,
// checking that each event names its execution's request.
std::map<std::string, execution> collect(it::ws_client& ws, const std::vector<started>& ids, it::ms timeout) {
    std::map<std::string, execution> runs;
    for (const auto& s : ids) {
        runs[s.execution_id].id = s.execution_id;
        runs[s.execution_id].request_id = s.request_id;
    }
    std::size_t open = ids.size();
    const auto deadline = it::steady::now() + it::scaled(timeout);
    while (open > 0) {
        const auto left = std::chrono::duration_cast<it::ms>(deadline - it::steady::now());
        REQUIRE_MESSAGE(left.count() > 0, "executions did not finish in time");
        auto ev = ws.next_event(left);
        REQUIRE_MESSAGE(ev, "executions did not finish in time");
        const std::string type = str(*ev, "/event");
        const std::string id = str(*ev, "/data/execution_id");
        auto it = runs.find(id);
        REQUIRE_MESSAGE(it != runs.end(), it::dump(*ev));
        auto& run = it->second;
        CHECK_MESSAGE(str(*ev, "/request_id") == run.request_id, it::dump(*ev));
        if (type == "repl_output") {
            CHECK(num(*ev, "/data/seq") == static_cast<std::int64_t>(run.output.size() + 1));
            run.output.push_back(*ev);
            run.output_at.push_back(it::steady::now());
        } else if (type == "repl_queued") {
            run.positions.push_back(num(*ev, "/data/position"));
        } else if (type == "repl_finished") {
            run.finished = *ev;
            run.finished_at = it::steady::now();
            --open;
        } else {
            FAIL("unexpected event " << it::dump(*ev));
        }
    }
    return runs;
}

execution run_one(it::ws_client& ws, json::object params, it::ms timeout) {
    const started s = start(ws, std::move(params));
    return collect(ws, {s}, timeout).at(s.execution_id);
}

bool is_null(const json::value& v, std::string_view pointer) { return it::at(v, pointer).is_null(); }

}  // namespace repl_it
