// REPL results by id (repl_result, repl_history: kept in the store, bounded,
// per identity) and resource usage (repl_finished's usage: CPU time and peak
// memory from the engine's stats), on a real registryd and Podman.
#include "harness_tls.hpp"
#include "repl_harness.hpp"

#include <doctest/doctest.h>

#include <cstdio>
#include <string>
#include <thread>

namespace {

using namespace repl_it;
using it::num;
using it::str;

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

TEST_CASE("repl: a client that lost its connection gets the result by id, other identities get not_found, a restart keeps it") {
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
