// The REPL events through protocol::connection, over the executor on the fake
// engine: each carries the request_id of the repl_execute it answers, on the
// connection that sent it, so that a client can route it (docs/protocol.md,
// "REPL execution"). tests/repl runs the same on a real Podman.
#include "protocol_test_support.hpp"
#include "repl_fake_engine.hpp"

#include <registry/testing/fake_random.hpp>
#include <registry/protocol/repl.hpp>
#include <registry/repl/executor.hpp>

#include <doctest/doctest.h>

#include <optional>
#include <string>
#include <vector>

using namespace registry;
using namespace registry::test;
using namespace std::chrono_literals;

namespace {

struct repl_fixture {
    testing::fake_clock clk;
    testing::memory_store st;
    registry::registry reg{clk, st};
    fake_repl_engine engine;
    testing::fake_random random;
    std::optional<repl::executor> exec;
    std::optional<protocol::server> srv;
    std::stop_source stop;
    async_scope runner;

    repl_fixture() {
        REQUIRE(run_now(reg.open()).ok());
        repl::language sh;
        sh.name = "sh";
        sh.image = "localhost/registry-busybox:latest";
        sh.source_file = "main.sh";
        sh.run = {"sh", "{source}"};
        sh.defaults = repl::limits{5000ms, 1000, 64 << 20, 32, 500, false};
        sh.maximum = sh.defaults;
        repl::executor_options o;
        o.max_queue = 8;
        o.idempotency_window = 60s;
        // One execution at a time: the second one queues.
        exec.emplace(clk, random, std::vector<repl::engine_slot>{{"local", &engine, 1}}, std::vector<repl::language>{sh}, o,
                     nullptr);
        runner.spawn(exec->run(stop.get_token()));
        srv.emplace(reg);
        protocol::add_repl_actions(*srv, *exec);
    }
    ~repl_fixture() {
        stop.request_stop();
        CHECK(runner.active() == 0);
    }
};

// The execution id of a repl_execute response.
std::string execution_id(const std::string& response) {
    const auto at = response.find(R"("execution_id":")");
    REQUIRE(at != std::string::npos);
    const auto begin = at + 16;
    return response.substr(begin, response.find('"', begin) - begin);
}

}  // namespace

TEST_CASE("repl protocol: the events of an execution carry the id of its repl_execute request") {
    repl_fixture f;
    client a(*f.srv, 1);
    const std::string first = a.ask(req("7", "repl_execute", R"({"language":"sh","code":"echo hi"})"));
    const std::string id = execution_id(first);
    CHECK(first == R"({"id":"7","type":"response","data":{"execution_id":")" + id + R"(","created":true}})");
    // The second one waits: the response, then its place in the queue.
    const auto second = a.send(req("8", "repl_execute", R"({"language":"sh","code":"echo two"})"));
    REQUIRE(second.size() == 2);
    const std::string id2 = execution_id(second[0]);
    CHECK(second[1] == R"({"type":"event","event":"repl_queued","request_id":"8",)"
                       R"("data":{"execution_id":")" + id2 + R"(","position":1}})");

    auto c = f.engine.busy().front();
    f.engine.write(c, output_stream::out, "hi\n");
    CHECK(a.out.take() == std::vector<std::string>{R"({"type":"event","event":"repl_output","request_id":"7",)"
                                                   R"("data":{"execution_id":")" + id +
                                                   R"(","stream":"stdout","seq":1,"data":"hi\n"}})"});
    f.engine.exit(c, 3);
    const auto frames = a.out.take();
    REQUIRE(!frames.empty());
    CHECK(frames.front() == R"({"type":"event","event":"repl_finished","request_id":"7","data":{"execution_id":")" +
                                id + R"(","language":"sh","version":"","engine":"local","exit_code":3,"signal":null,)"
                                R"("stdout":"hi\n","stderr":"","truncated":false,"timed_out":false,)"
                                R"("cancelled":false,"duration_ms":0}})");
    // The queued one runs now; its events name its own request.
    auto c2 = f.engine.busy().front();
    f.engine.exit(c2, 0);
    const auto last = a.out.take();
    REQUIRE(last.size() == 1);
    CHECK(last.front().rfind(R"({"type":"event","event":"repl_finished","request_id":"8",)", 0) == 0);
}

TEST_CASE("repl protocol: a repeated idempotency key gets the events under the repeating request's id") {
    repl_fixture f;
    client a(*f.srv, 1);
    client b(*f.srv, 2);
    const std::string params = R"({"language":"sh","code":"echo once","idempotency_key":"k-1"})";
    const std::string id = execution_id(a.ask(req("1", "repl_execute", params)));
    f.engine.exit(f.engine.busy().front(), 0);
    REQUIRE(a.out.take().size() == 1);  // its repl_finished

    auto frames = b.send(req("x-9", "repl_execute", params));
    REQUIRE(frames.size() == 2);
    CHECK(frames[0] == R"({"id":"x-9","type":"response","data":{"execution_id":")" + id + R"(","created":false}})");
    CHECK(frames[1].rfind(R"({"type":"event","event":"repl_finished","request_id":"x-9",)", 0) == 0);
    CHECK(a.out.take().empty());  // nothing more for the first connection
}
