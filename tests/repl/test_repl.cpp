// REPL execution end to end: the real registryd, configured with a real
// Podman API service (started by the test, own storage, overlay driver) as
// its one container engine and the sh (busybox), python (Debian's
// python3-minimal) and shc (sh with a `sh -n` syntax check as its compile
// step) languages, and those of registryd.example.yaml (node, and c and cpp
// compiled by gcc-12). Each daemon has an instance id of its own; each test
// checks that its executions left no container behind.
#include "etcd_server.hpp"
#include "repl_harness.hpp"

#include <doctest/doctest.h>

#include <algorithm>
#include <fstream>
#include <sstream>
#include <map>
#include <string>
#include <thread>
#include <vector>

namespace {

using namespace repl_it;
using it::num;
using it::str;

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

}  // namespace

// Several registryd on one etcd: the writer has no engine of its own and
// runs executions on the one a standby offers (docs/protocol.md, "Engines of
// the cluster"), for its own clients and for the standby's.
TEST_CASE("repl: on a cluster, the writer runs executions on the engine a standby offers") {
    it::etcd_server etcd;
    const std::string instance = rt::unique_name("it");
    const std::string with_engine = config(instance);
    const std::string engines = "  engines:\n    - name: local\n      endpoint: " + podman().uri() + "\n";
    const auto at = with_engine.find(engines);
    REQUIRE(at != std::string::npos);
    const std::string without_engine = std::string(with_engine).replace(at, engines.size(), "  engines: []\n");
    const auto store = [&](const char* member) {
        return "store:\n  kind: etcd\n  etcd:\n    endpoints: [\"" + etcd.client_url() +
               "\"]\n    prefix: /repl/\n    writer_lease_ttl_seconds: 2\n    member: " + member + "\n";
    };
    it::registryd a(without_engine + store("a"));
    IT_DIAGNOSE(a);
    it::registryd b(with_engine + store("b"), false);
    IT_DIAGNOSE(b);
    b.spawn();
    b.wait_ready();

    it::ws_client on_a(a);
    const auto deadline = it::steady::now() + it::scaled(15s);
    for (;;) {
        const json::value nodes = on_a.call("list_nodes");
        if (!it::arr(nodes, "/nodes").empty() && str(nodes, "/nodes/0/status") == "online") {
            CHECK(str(nodes, "/nodes/0/name") == "local");
            CHECK(str(nodes, "/nodes/0/endpoint").rfind("member b at ws://", 0) == 0);
            break;
        }
        REQUIRE_MESSAGE(it::steady::now() < deadline, it::dump(nodes));
        std::this_thread::sleep_for(100ms);
    }
    const execution on_writer = run_one(on_a, sh("echo through b; echo oops >&2; exit 3"));
    CHECK(num(on_writer.finished, "/data/exit_code") == 3);
    CHECK(str(on_writer.finished, "/data/stdout") == "through b\n");
    CHECK(on_writer.stream("stderr") == "oops\n");
    {
        it::ws_client on_b(b);  // relayed to the writer, which runs it through b
        const execution relayed = run_one(on_b, sh("echo relayed"));
        CHECK(num(relayed.finished, "/data/exit_code") == 0);
        CHECK(relayed.stream("stdout") == "relayed\n");
    }
    // Every container is removed after its execution.
    const auto clean = it::steady::now() + it::scaled(15s);
    while (!containers_of(instance).empty() && it::steady::now() < clean) std::this_thread::sleep_for(100ms);
    CHECK(containers_of(instance).empty());
}
