// REPL execution end to end: the real registryd, configured with a real
// Podman API service (started by the test, own storage, overlay driver) as
// its one container engine and the sh (busybox), python (Debian's
// python3-minimal) and shc (sh with a `sh -n` syntax check as its compile
// step) languages, and those of registryd.example.yaml (node, and c and cpp
// compiled by gcc-12). Each daemon has an instance id of its own; each test
// checks that its executions left no container behind.
#include "harness.hpp"
#include "harness_tls.hpp"
#include "podman_harness.hpp"

#include <doctest/doctest.h>

#include <algorithm>
#include <cstdio>
#include <fstream>
#include <sstream>
#include <map>
#include <string>
#include <thread>
#include <vector>

namespace {

namespace json = it::json;
namespace rt = registry_test;
using it::num;
using it::str;
using namespace std::chrono_literals;

constexpr const char* python_image = "localhost/registry-python:latest";

// One Podman service per test process, with every language's image.
rt::podman_service& podman() {
    struct with_languages {
        rt::podman_service service{rt::podman_service::listen_on::unix_socket, "overlay"};
        with_languages() {
            // Shared by every build directory (and scripts/build-repl-images.sh).
            const std::string cache = std::string(REGISTRY_SOURCE_DIR) + "/build/container-images";
            auto built = rt::run_command({std::string(REGISTRY_SOURCE_DIR) + "/tests/containers/build-images.sh",
                                          cache, "python", "node", "gcc"});
            if (built.exit_code != 0) throw std::runtime_error("build-images.sh failed: " + built.output);
            for (const char* image : {"python", "node", "gcc"}) {
                auto imported = service.podman({"import", "--change", "CMD [\"/bin/sh\"]",
                                                cache + "/registry-" + image + ".tar",
                                                std::string("localhost/registry-") + image + ":latest"});
                if (imported.exit_code != 0) {
                    throw std::runtime_error(std::string("podman import ") + image + " failed: " + imported.output);
                }
            }
        }
    };
    static with_languages env;
    return env.service;
}

struct options {
    std::size_t max_concurrent = 4;
    std::size_t warm_pool = 0;
    std::string more_repl = {};  // further keys of the repl section, each a line "  key: value\n"
};

std::string language_limits() {
    return "      defaults: {timeout_ms: 20000, output_bytes: 65536, memory_bytes: 128MiB, pids: 64, cpu_millicores: 1000}\n"
           "      maximum: {timeout_ms: 60000, output_bytes: 1MiB, memory_bytes: 512MiB, pids: 256, cpu_millicores: 2000}\n";
}

// A short lease grace: the killed-daemon test waits for a lease to end.
std::string config(const std::string& instance, options o = {}) {
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

// A daemon with REPL execution, checked for leftovers when the test ends.
struct repl_daemon {
    explicit repl_daemon(options o = {}) : instance(rt::unique_name("it")), d(config(instance, o)) { wait_online(d); }
    struct shipped {};
    explicit repl_daemon(shipped) : instance(rt::unique_name("it")), d(shipped_config(instance)) { wait_online(d); }
    ~repl_daemon() {
        const auto status = d.terminate(30s);
        CHECK_MESSAGE(status.clean(), status.describe());
        CHECK(containers_of(instance).empty());
    }
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

    std::string stream(const char* name) const {
        std::string s;
        for (const auto& o : output) {
            if (str(o, "/data/stream") == name) s += str(o, "/data/data");
        }
        return s;
    }
};

// An execution as its repl_execute response announced it.
struct started {
    std::string execution_id;
    std::string request_id;
};

started start(it::ws_client& ws, json::object params) {
    const std::string request_id = ws.send_request("repl_execute", std::move(params));
    const json::value r = ws.wait_response(request_id);
    INFO(it::dump(r));
    REQUIRE(it::has(r, "/data/execution_id"));
    return {str(r, "/data/execution_id"), request_id};
}

json::object sh(const std::string& code, json::object limits = {}, const char* language = "sh") {
    json::object p{{"language", language}, {"code", code}};
    if (!limits.empty()) p["limits"] = std::move(limits);
    return p;
}

// Collects the events of the given executions until each has finished,
// checking that each event names its execution's request.
std::map<std::string, execution> collect(it::ws_client& ws, const std::vector<started>& ids, it::ms timeout = 60s) {
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

execution run_one(it::ws_client& ws, json::object params, it::ms timeout = 60s) {
    const started s = start(ws, std::move(params));
    return collect(ws, {s}, timeout).at(s.execution_id);
}

bool is_null(const json::value& v, std::string_view pointer) { return it::at(v, pointer).is_null(); }

TEST_CASE("repl: hello world in sh, python and node, output streamed before the program exits") {
    repl_daemon rd{repl_daemon::shipped{}};  // the languages of registryd.example.yaml, with warm pools
    IT_DIAGNOSE(rd.d);
    it::ws_client ws(rd.d);
    const std::vector<std::pair<json::object, const char*>> programs{
        {sh("echo first; sleep 1; echo second"), "sh"},
        {json::object{{"language", "python"},
                      {"code", "import time\nprint('first')\ntime.sleep(1)\nprint('second')\n"}},
         "python"},
        {json::object{{"language", "node"},
                      {"code", "console.log('first');\nsetTimeout(() => console.log('second'), 1000);\n"}},
         "node"}};
    for (const auto& [params, name] : programs) {
        INFO(name);
        const execution run = run_one(ws, params);
        INFO(it::dump(run.finished));
        REQUIRE(run.output.size() >= 2);
        CHECK(str(run.output.front(), "/data/data").rfind("first", 0) == 0);  // python -u: "\n" may come apart
        CHECK(str(run.output.front(), "/data/stream") == "stdout");
        // "first" came while the program was still sleeping.
        CHECK(run.finished_at - run.output_at.front() >= 700ms);
        CHECK(num(run.finished, "/data/exit_code") == 0);
        CHECK(is_null(run.finished, "/data/signal"));
        CHECK(str(run.finished, "/data/stdout") == "first\nsecond\n");
        CHECK(run.stream("stdout") == "first\nsecond\n");
        CHECK_FALSE(it::boolean(run.finished, "/data/timed_out"));
        CHECK(num(run.finished, "/data/duration_ms") >= 1000);
        CHECK_FALSE(it::has(run.finished, "/data/compile"));
    }
}

TEST_CASE("repl: c and cpp compile and run, warm, a compile error does not run") {
    repl_daemon rd{repl_daemon::shipped{}};  // c and cpp as registryd.example.yaml ships them, warm pools on
    IT_DIAGNOSE(rd.d);
    it::ws_client ws(rd.d);
    const json::value langs = ws.call("repl_languages");
    INFO(it::dump(langs));
    const std::vector<std::pair<std::string, std::string>> hello{
        {"c", "#include <stdio.h>\n#include <math.h>\nint main(void) { printf(\"hello c %.0f\\n\", sqrt(49.0)); return 0; }\n"},
        {"cpp", "#include <iostream>\n#include <ranges>\n#include <vector>\nint main() {\n"
                "  std::vector v{1, 2, 3};\n  for (int x : v | std::views::transform([](int i) { return i * i; }))"
                " std::cout << x << ' ';\n  std::cout << \"hello cpp\" << std::endl;\n}\n"}};
    for (const auto& [language, code] : hello) {
        INFO(language);
        const execution run = run_one(ws, json::object{{"language", language}, {"code", code}}, 120s);
        INFO(it::dump(run.finished));
        CHECK(num(run.finished, "/data/compile/exit_code") == 0);
        CHECK(num(run.finished, "/data/exit_code") == 0);
        CHECK(str(run.finished, "/data/stdout") == (language == "c" ? "hello c 7\n" : "1 4 9 hello cpp\n"));
    }
    for (const auto& language : {"c", "cpp"}) {
        INFO(language);
        const execution bad = run_one(ws, json::object{{"language", language},
                                                       {"code", "int main() { puts(\"never\") return 0; }\n"}}, 120s);
        INFO(it::dump(bad.finished));
        CHECK(num(bad.finished, "/data/compile/exit_code") != 0);
        CHECK(str(bad.finished, "/data/compile/stderr").find("error") != std::string::npos);
        CHECK(is_null(bad.finished, "/data/exit_code"));
        CHECK(bad.output.empty());
    }
    // A runtime failure of a compiled program is the program's exit code.
    const execution crash = run_one(ws, json::object{{"language", "c"},
                                                     {"code", "#include <stdlib.h>\nint main(void) { abort(); }\n"}}, 120s);
    INFO(it::dump(crash.finished));
    CHECK(num(crash.finished, "/data/compile/exit_code") == 0);
    CHECK(num(crash.finished, "/data/exit_code") == 128 + 6);  // SIGABRT, as the driver's shell reports it
}

TEST_CASE("repl: stderr, exit codes, stdin and args") {
    repl_daemon rd;
    IT_DIAGNOSE(rd.d);
    it::ws_client ws(rd.d);
    const execution a = run_one(ws, sh("echo out; echo err >&2; exit 3"));
    INFO(it::dump(a.finished));
    CHECK(num(a.finished, "/data/exit_code") == 3);
    CHECK(str(a.finished, "/data/stdout") == "out\n");
    CHECK(str(a.finished, "/data/stderr") == "err\n");
    CHECK(a.stream("stderr") == "err\n");

    json::object p{{"language", "python"},
                   {"files", json::array{json::object{{"name", "main.py"}, {"content", "import sys, helper\n"
                                                                                         "print(sys.stdin.read().upper(), sys.argv[1:])\n"
                                                                                         "sys.exit(helper.CODE)\n"}},
                                         json::object{{"name", "helper.py"}, {"content", "CODE = 5\n"}}}},
                   {"stdin", "hello"},
                   {"args", json::array{"a b", "it's"}}};
    const execution b = run_one(ws, p);
    INFO(it::dump(b.finished));
    CHECK(num(b.finished, "/data/exit_code") == 5);
    CHECK(str(b.finished, "/data/stdout") == "HELLO ['a b', \"it's\"]\n");

    // Who and where: a non-root user, a read-only root, a writable work dir, no capabilities.
    const execution c = run_one(ws, sh("id -u; touch /x 2>/dev/null || echo ro; echo ok > f && cat f; "
                                       "grep CapEff /proc/self/status"));
    INFO(it::dump(c.finished));
    CHECK(str(c.finished, "/data/stdout") == "65534\nro\nok\nCapEff:\t0000000000000000\n");
}

TEST_CASE("repl: an infinite loop is stopped by the timeout, an output flood is truncated") {
    repl_daemon rd;
    IT_DIAGNOSE(rd.d);
    it::ws_client ws(rd.d);
    const execution loop = run_one(ws, sh("while :; do :; done", json::object{{"timeout_ms", 1500}}));
    INFO(it::dump(loop.finished));
    CHECK(it::boolean(loop.finished, "/data/timed_out"));
    CHECK(is_null(loop.finished, "/data/exit_code"));
    CHECK(num(loop.finished, "/data/signal") == 9);
    CHECK(num(loop.finished, "/data/duration_ms") >= 1500);
    CHECK(num(loop.finished, "/data/duration_ms") < 10000);

    const execution flood = run_one(ws, sh("yes", json::object{{"output_bytes", 10000}}));
    CHECK(it::boolean(flood.finished, "/data/truncated"));
    CHECK_FALSE(it::boolean(flood.finished, "/data/timed_out"));
    CHECK(str(flood.finished, "/data/stdout").size() == 10000);
    CHECK(flood.stream("stdout").size() == 10000);
    CHECK(num(flood.finished, "/data/signal") == 9);
}

TEST_CASE("repl: executions are counted by outcome on /metrics, with their run time and the queue") {
    repl_daemon rd;
    IT_DIAGNOSE(rd.d);
    it::ws_client ws(rd.d);
    auto scrape = [&](const std::string& name) {
        const it::http_response r = it::http_get(rd.d.host(), rd.d.port(), "/metrics");
        REQUIRE(r.status == 200);
        const std::string prefix = "\n" + name + " ";
        const auto at = r.body.find(prefix);
        REQUIRE_MESSAGE(at != std::string::npos, name << " not in\n" << r.body);
        return std::stod(r.body.substr(at + prefix.size()));
    };
    CHECK(scrape("registryd_repl_executions_total{outcome=\"ok\"}") == 0);
    CHECK(scrape("registryd_repl_execution_duration_seconds_count") == 0);

    run_one(ws, sh("echo fine"));
    run_one(ws, sh("exit 3"));
    run_one(ws, sh("while :; do :; done", json::object{{"timeout_ms", 1000}}));
    CHECK(scrape("registryd_repl_executions_total{outcome=\"ok\"}") == 1);
    CHECK(scrape("registryd_repl_executions_total{outcome=\"error\"}") == 1);
    CHECK(scrape("registryd_repl_executions_total{outcome=\"timed_out\"}") == 1);
    CHECK(scrape("registryd_repl_executions_total{outcome=\"failed\"}") == 0);
    CHECK(scrape("registryd_repl_execution_duration_seconds_count") == 3);
    CHECK(scrape("registryd_repl_execution_duration_seconds_sum") >= 1.0);  // the timed-out one ran 1 s
    CHECK(scrape("registryd_repl_execution_duration_seconds_bucket{le=\"+Inf\"}") == 3);
    CHECK(scrape("registryd_repl_queue_depth") == 0);
    // An execution holds its engine slot until its container is removed, just after it finished.
    const auto deadline = it::steady::now() + it::scaled(10s);
    while (scrape("registryd_repl_running") != 0 && it::steady::now() < deadline) std::this_thread::sleep_for(50ms);
    CHECK(scrape("registryd_repl_running") == 0);
}

TEST_CASE("repl: a fork bomb is held by the pids limit, and the network is unreachable") {
    repl_daemon rd;
    IT_DIAGNOSE(rd.d);
    it::ws_client ws(rd.d);
    const execution count = run_one(ws, json::object{{"language", "python"},
                                                     {"code", "import os, time\n"
                                                              "n = 0\n"
                                                              "try:\n"
                                                              "    while n < 1000:\n"
                                                              "        if os.fork() == 0:\n"
                                                              "            time.sleep(30)\n"
                                                              "            os._exit(0)\n"
                                                              "        n += 1\n"
                                                              "except OSError as e:\n"
                                                              "    print('blocked after', n, e.errno)\n"},
                                                     {"limits", json::object{{"pids", 20}}}});
    INFO(it::dump(count.finished));
    const std::string out = str(count.finished, "/data/stdout");
    REQUIRE(out.rfind("blocked after ", 0) == 0);
    CHECK(std::stoi(out.substr(14)) < 20);
    CHECK(out.find(" 11\n") != std::string::npos);  // EAGAIN

    const execution bomb = run_one(ws, sh("b() { b | b & }; b; sleep 2; echo alive", json::object{{"pids", 16}, {"timeout_ms", 8000}}));
    INFO(it::dump(bomb.finished));
    CHECK(str(bomb.finished, "/data/stderr").find("fork") != std::string::npos);

    const execution net = run_one(ws, json::object{{"language", "python"},
                                                   {"code", "import socket\n"
                                                            "print(open('/proc/net/dev').read().count(':'))\n"
                                                            "try:\n"
                                                            "    socket.create_connection(('1.1.1.1', 80), 3)\n"
                                                            "    print('connected')\n"
                                                            "except OSError as e:\n"
                                                            "    print('unreachable', e.errno)\n"}});
    INFO(it::dump(net.finished));
    CHECK(str(net.finished, "/data/stdout") == "1\nunreachable 101\n");  // only lo; ENETUNREACH
}

TEST_CASE("repl: cancel stops a running execution") {
    repl_daemon rd;
    IT_DIAGNOSE(rd.d);
    it::ws_client ws(rd.d);
    const started s = start(ws, sh("echo started; sleep 30"));
    const std::string& id = s.execution_id;
    const json::value first = ws.expect_event("repl_output", it::scaled(20s));
    CHECK(str(first, "/data/data") == "started\n");
    CHECK(str(first, "/request_id") == s.request_id);
    const auto t0 = it::steady::now();
    const json::value r = ws.call("repl_cancel", json::object{{"execution_id", id}});
    CHECK(str(r, "/execution_id") == id);
    const json::value done = ws.expect_event("repl_finished", it::scaled(10s));
    INFO(it::dump(done));
    CHECK(it::boolean(done, "/data/cancelled"));
    CHECK(num(done, "/data/signal") == 9);
    CHECK(it::steady::now() - t0 < 5s);
    CHECK(it::error_code(ws.request("repl_cancel", json::object{{"execution_id", "nope"}})) == "not_found");
}

TEST_CASE("repl: 8 concurrent executions with a concurrency limit of 2 queue with positions") {
    repl_daemon rd(options{2, 0});
    IT_DIAGNOSE(rd.d);
    it::ws_client ws(rd.d);
    std::vector<started> ids;
    for (int i = 0; i < 8; ++i) ids.push_back(start(ws, sh("sleep 0.3; echo run " + std::to_string(i))));
    const auto runs = collect(ws, ids, 120s);
    std::size_t queued = 0;
    for (std::size_t i = 0; i < ids.size(); ++i) {
        const auto& run = runs.at(ids[i].execution_id);
        INFO(it::dump(run.finished));
        CHECK(num(run.finished, "/data/exit_code") == 0);
        CHECK(str(run.finished, "/data/stdout") == "run " + std::to_string(i) + "\n");
        if (!run.positions.empty()) {
            ++queued;
            CHECK(run.positions.back() == 1);  // moved up to the head before it ran
            CHECK(std::is_sorted(run.positions.rbegin(), run.positions.rend()));
        }
    }
    CHECK(queued == 6);
    CHECK(runs.at(ids[7].execution_id).positions.front() == 6);
}

TEST_CASE("repl: a compile error does not run, a good compile does") {
    repl_daemon rd;
    IT_DIAGNOSE(rd.d);
    it::ws_client ws(rd.d);
    const execution bad = run_one(ws, sh("echo never\nif then fi\n", {}, "shc"));
    INFO(it::dump(bad.finished));
    CHECK(num(bad.finished, "/data/compile/exit_code") != 0);
    CHECK(str(bad.finished, "/data/compile/stderr").find("syntax error") != std::string::npos);
    CHECK(is_null(bad.finished, "/data/exit_code"));
    CHECK(bad.output.empty());

    const execution good = run_one(ws, sh("echo ran\n", {}, "shc"));
    INFO(it::dump(good.finished));
    CHECK(num(good.finished, "/data/compile/exit_code") == 0);
    CHECK(num(good.finished, "/data/exit_code") == 0);
    CHECK(str(good.finished, "/data/stdout") == "ran\n");
}

TEST_CASE("repl: languages, strict validation, idempotency, a warm pool") {
    repl_daemon rd(options{4, 1});
    IT_DIAGNOSE(rd.d);
    it::ws_client ws(rd.d);
    const json::value langs = ws.call("repl_languages");
    INFO(it::dump(langs));
    REQUIRE(it::arr(langs, "/languages").size() == 3);
    CHECK(str(langs, "/languages/1/name") == "python");
    CHECK(num(langs, "/languages/1/maximum/pids") == 256);
    CHECK(it::boolean(langs, "/languages/2/compiled"));

    CHECK(it::error_code(ws.request("repl_execute", json::object{{"language", "cobol"}, {"code", "x"}})) ==
          "invalid_request");
    const json::value both = ws.request("repl_execute", json::object{{"language", "sh"}, {"code", "x"},
                                                                     {"files", json::array{}}});
    CHECK(it::error_message(both) == "params: exactly one of code and files is required");
    const json::value over = ws.request("repl_execute", sh("x", json::object{{"pids", 100000}}));
    CHECK(it::error_message(over) == "params.limits.pids: must be 1-256 for this language");
    CHECK(it::error_code(ws.request("repl_execute", sh("x", json::object{{"nope", 1}}))) == "invalid_request");

    json::object keyed = sh("echo once");
    keyed["idempotency_key"] = "k-1";
    const started r1 = start(ws, keyed);
    const execution once = collect(ws, {r1}).at(r1.execution_id);
    CHECK(str(once.finished, "/data/stdout") == "once\n");
    const std::string r2_id = ws.send_request("repl_execute", keyed);
    const json::value r2 = ws.wait_response(r2_id);
    CHECK(str(r2, "/data/execution_id") == r1.execution_id);
    CHECK_FALSE(it::boolean(r2, "/data/created"));
    // The repeat's events answer the repeat.
    const json::value again = ws.expect_event("repl_finished");
    CHECK(str(again, "/data/stdout") == "once\n");
    CHECK(str(again, "/request_id") == r2_id);

    // The warm pool: a container is waiting before the request comes.
    std::this_thread::sleep_for(it::scaled(3s));
    CHECK(containers_of(rd.instance).size() >= 2);  // one per language with a pool
    const execution warm = run_one(ws, sh("echo warm"));
    CHECK(str(warm.finished, "/data/stdout") == "warm\n");
}

TEST_CASE("repl: a daemon killed mid-execution leaves nothing behind after its restart") {
    repl_daemon rd;
    IT_DIAGNOSE(rd.d);
    const auto before_create = std::chrono::system_clock::now();
    {
        it::ws_client ws(rd.d);
        start(ws, sh("echo started; sleep 60", json::object{{"timeout_ms", 5000}}));
        ws.expect_event("repl_output", it::scaled(20s));
    }
    rd.d.kill9();
    CHECK(containers_of(rd.instance).size() == 1);
    rd.d.start();
    wait_online(rd.d);
    // The container's lease ends 5 s (the timeout) + 5 s (lease_grace_seconds)
    // after its create: the restarted daemon adopted it and lets it run until
    // then, and its reaper removes it then.
    const auto lease_end = before_create + 10s;
    if (std::chrono::system_clock::now() < lease_end - 1s) CHECK(containers_of(rd.instance).size() == 1);
    const auto deadline = it::steady::now() + it::scaled(30s);
    while (!containers_of(rd.instance).empty() && it::steady::now() < deadline) std::this_thread::sleep_for(200ms);
    CHECK(containers_of(rd.instance).empty());
    CHECK(std::chrono::system_clock::now() >= lease_end);
}

TEST_CASE("repl: a bad repl configuration stops registryd with exit 2 and names the key") {
    it::temp_dir dir;
    auto refused = [&](const std::string& yaml, const std::string& message) {
        INFO(yaml);
        const std::string file = (dir.path() / "bad.yaml").string();
        std::ofstream(file) << yaml;
        const auto r = rt::run_command({REGISTRYD_PATH, "--config", file, "--data-dir", (dir.path() / "d").string()});
        CHECK(r.exit_code == 2);
        CHECK_MESSAGE(r.output.find(message) != std::string::npos, r.output);
    };
    refused("repl:\n  languages:\n    - name: sh\n      image: x\n      source_file: a\n"
            "      run: [sh]\n      defaults: {pids: 100}\n      maximum: {pids: 10}\n",
            "repl.languages[0].defaults: must not exceed repl.languages[0].maximum");
    refused("repl:\n  enabled: true\n",
            "repl.enabled: REPL executions need at least one engine in containers.engines");
    // The engine of earlier versions' repl section.
    refused("repl:\n  engine: unix:///run/podman/podman.sock\n",
            "repl.engine: no longer supported: REPL executions run on the engines of containers.engines");
}

// ---- results by id and resource usage

std::string token_of(const std::string& who) { return "repl-it-" + who + "-7c41e2"; }

it::client_options as(const std::string& who) {
    it::client_options o;
    o.headers = {{"Authorization", "Bearer " + token_of(who)}};
    return o;
}

// A daemon with REPL execution and access control: the runners alice and bob.
struct auth_repl_daemon {
    explicit auth_repl_daemon(const std::string& more_repl = {})
        : instance(rt::unique_name("it")),
          d(config(instance, options{4, 0, more_repl}) + "auth:\n  tokens_file: \"{dir}/tokens.yaml\"\n", false) {
        std::string tokens = "tokens:\n";
        for (const char* who : {"alice", "bob"}) {
            tokens += std::string("  - name: ") + who + "\n    sha256: " + it::sha256_hex(token_of(who)) +
                      "\n    role: runner\n";
        }
        d.write_file("tokens.yaml", tokens);
        d.start();
        online();
    }
    ~auth_repl_daemon() {
        const auto status = d.terminate(30s);
        CHECK_MESSAGE(status.clean(), status.describe());
        CHECK(containers_of(instance).empty());
    }
    void online() {
        it::ws_client ws(d, as("alice"));
        const auto deadline = it::steady::now() + it::scaled(15s);
        while (str(ws.call("list_nodes"), "/nodes/0/status") != "online") {
            REQUIRE(it::steady::now() < deadline);
            std::this_thread::sleep_for(100ms);
        }
    }
    std::string instance;
    it::registryd d;
};

json::value result_of(it::ws_client& ws, const std::string& id) {
    return ws.request("repl_result", json::object{{"execution_id", id}});
}

// repl_result's data repeats every field of repl_finished.
void same_as_finished(const json::value& result, const json::value& finished) {
    INFO(it::dump(result));
    INFO(it::dump(finished));
    CHECK(str(result, "/data/state") == "finished");
    for (const auto& [key, value] : it::at(finished, "/data").as_object()) {
        CHECK_MESSAGE(it::dump(it::at(result, "/data/" + std::string(key))) == it::dump(value), key);
    }
}

TEST_CASE("repl: usage reports the CPU time of a busy program and the peak memory of an allocating one") {
    repl_daemon rd;
    IT_DIAGNOSE(rd.d);
    it::ws_client ws(rd.d);
    const execution busy = run_one(ws, json::object{{"language", "python"},
                                                    {"code", "import time\nt = time.process_time()\n"
                                                             "while time.process_time() - t < 0.8: pass\n"}});
    INFO(it::dump(busy.finished));
    CHECK(num(busy.finished, "/data/exit_code") == 0);
    CHECK(num(busy.finished, "/data/usage/cpu_ms") >= 800);
    CHECK(num(busy.finished, "/data/usage/cpu_ms") < 5000);

    // 64 MiB touched and held for a second: several samples see it.
    const execution big = run_one(ws, json::object{{"language", "python"},
                                                   {"code", "import time\nb = bytearray(64 << 20)\n"
                                                            "for i in range(0, len(b), 4096): b[i] = 1\n"
                                                            "time.sleep(1)\nprint(len(b))\n"}});
    INFO(it::dump(big.finished));
    CHECK(str(big.finished, "/data/stdout") == "67108864\n");
    CHECK(num(big.finished, "/data/usage/memory_peak_bytes") > (64 << 20));
    CHECK(num(big.finished, "/data/usage/memory_peak_bytes") < (128 << 20));  // the language's limit

    // A quiet one: a little CPU, a few MiB.
    const execution idle = run_one(ws, sh("sleep 0.5; echo ok"));
    INFO(it::dump(idle.finished));
    CHECK(num(idle.finished, "/data/usage/cpu_ms") < 500);
    CHECK(num(idle.finished, "/data/usage/memory_peak_bytes") < (32 << 20));
    std::printf("  [usage] busy %s, 64 MiB %s, idle %s\n", it::dump(it::at(busy.finished, "/data/usage")).c_str(),
                it::dump(it::at(big.finished, "/data/usage")).c_str(), it::dump(it::at(idle.finished, "/data/usage")).c_str());
}

TEST_CASE("repl: a client that lost its connection gets the result by id; other identities get not_found; a restart keeps it") {
    auth_repl_daemon rd;
    IT_DIAGNOSE(rd.d);
    std::string id;
    {
        it::ws_client ws(rd.d, as("alice"));
        id = start(ws, sh("echo started; sleep 2; echo done; exit 4")).execution_id;
        ws.expect_event("repl_output", it::scaled(20s));
    }  // the connection drops mid-execution
    it::ws_client alice(rd.d, as("alice"));
    const json::value running = result_of(alice, id);
    INFO(it::dump(running));
    CHECK(str(running, "/data/state") == "running");
    json::value got;
    const auto deadline = it::steady::now() + it::scaled(30s);
    for (;;) {
        got = result_of(alice, id);
        if (str(got, "/data/state") == "finished") break;
        REQUIRE_MESSAGE(it::steady::now() < deadline, it::dump(got));
        std::this_thread::sleep_for(100ms);
    }
    INFO(it::dump(got));
    CHECK(num(got, "/data/exit_code") == 4);
    CHECK(str(got, "/data/stdout") == "started\ndone\n");
    CHECK(str(got, "/data/owner") == "alice");
    CHECK(it::has(got, "/data/usage/cpu_ms"));
    CHECK(num(got, "/data/finished_at_ms") >= num(got, "/data/started_at_ms"));

    it::ws_client bob(rd.d, as("bob"));
    CHECK(it::error_code(result_of(bob, id)) == "not_found");
    CHECK(it::error_code(result_of(bob, "x0123456789abcdef0123456789abcdef")) == "not_found");
    CHECK(it::arr(bob.call("repl_history"), "/executions").empty());
    CHECK(it::error_code(bob.request("repl_history", json::object{{"owner", "alice"}})) == "forbidden");

    // repl_result answers what repl_finished said.
    const execution seen = run_one(alice, sh("echo out; echo err >&2; exit 3"));
    same_as_finished(result_of(alice, seen.id), seen.finished);
    const json::value history = alice.call("repl_history", json::object{{"limit", 10}});
    INFO(it::dump(history));
    REQUIRE(it::arr(history, "/executions").size() == 2);
    CHECK(str(history, "/executions/0/execution_id") == seen.id);  // newest first
    CHECK(str(history, "/executions/1/execution_id") == id);
    CHECK_FALSE(it::has(history, "/executions/0/stdout"));

    // Kept in the store: a restarted registryd has both.
    const auto status = rd.d.terminate(30s);
    CHECK_MESSAGE(status.clean(), status.describe());
    rd.d.start();
    rd.online();
    it::ws_client again(rd.d, as("alice"));
    same_as_finished(result_of(again, seen.id), seen.finished);
    CHECK(num(result_of(again, id), "/data/exit_code") == 4);
}

TEST_CASE("repl: a result expires after repl.result_retention_seconds") {
    repl_daemon rd(options{4, 0, "  result_retention_seconds: 2\n"});
    IT_DIAGNOSE(rd.d);
    it::ws_client ws(rd.d);
    const execution run = run_one(ws, sh("echo short-lived"));
    const json::value kept = result_of(ws, run.id);
    INFO(it::dump(kept));
    CHECK(str(kept, "/data/stdout") == "short-lived\n");
    const auto finished = it::steady::now();
    const auto deadline = finished + it::scaled(10s);
    while (it::error_code(result_of(ws, run.id)) != "not_found") {
        REQUIRE_MESSAGE(it::steady::now() < deadline, "the result outlived its retention");
        std::this_thread::sleep_for(100ms);
    }
    CHECK(it::steady::now() - finished >= 1500ms);  // not before its time (2 s after it finished)
    CHECK(it::arr(ws.call("repl_history"), "/executions").empty());
}

}  // namespace
