// Finished REPL executions kept for repl_result and repl_history (the result
// store, on the fake clock and the in-memory store: retention, the bounds, a
// restart), their resource usage sampled from the engine's stats, and the two
// actions through protocol::connection.
#include "protocol_test_support.hpp"
#include "repl_fake_engine.hpp"

#include <registry/protocol/repl.hpp>
#include <registry/repl/executor.hpp>
#include <registry/repl/result_store.hpp>
#include <registry/testing/fake_random.hpp>

#include <doctest/doctest.h>

#include <optional>
#include <string>
#include <vector>

using namespace registry;
using namespace registry::test;
using namespace std::chrono_literals;

namespace {

repl::language sh_language() {
    repl::language sh;
    sh.name = "sh";
    sh.image = "localhost/registry-busybox:latest";
    sh.source_file = "main.sh";
    sh.run = {"sh", "{source}"};
    sh.defaults = repl::limits{5000ms, 1000, 64 << 20, 32, 500, false};
    sh.maximum = sh.defaults;
    return sh;
}

const identity alice{"alice", false, {}};
const identity bob{"bob", false, {}};
const identity root{"root", true, {}};

// An executor whose outcomes go to a result store, both on one registry.
struct results_fixture {
    explicit results_fixture(repl::result_store_options ro = {}) {
        REQUIRE(run_now(reg.open()).ok());
        results.emplace(reg, st, ro);
        REQUIRE(run_now(results->open()).ok());
        repl::executor_options o;
        o.usage_sample_interval = 250ms;
        o.on_finished = [this](const repl::outcome& r) { results->keep(r); };
        exec.emplace(clk, random, std::vector<repl::engine_slot>{{"local", &engine, 4}},
                     std::vector<repl::language>{sh_language()}, o, nullptr);
        runner.spawn(exec->run(stop.get_token()));
        runner.spawn(results->run(stop.get_token()));
        srv.emplace(reg);
        protocol::add_repl_actions(*srv, *exec, &*results);
    }
    ~results_fixture() {
        stop.request_stop();
        CHECK(runner.active() == 0);
    }

    std::string execute(const identity& by, std::string code = "echo hi") {
        repl::request r;
        r.language = "sh";
        r.files.push_back({"main.sh", std::move(code)});
        auto sub = exec->execute(std::move(r), nullptr, {}, by);
        REQUIRE(sub.ok());
        return sub->execution_id;
    }

    // Runs one execution of `by` to its end with exit code `code`.
    std::string finish(const identity& by, int code = 0) {
        const std::string id = execute(by);
        auto c = engine.busy().back();
        engine.write(c, output_stream::out, "out of " + id + "\n");
        engine.exit(c, code);
        return id;
    }

    std::size_t stored() const {
        std::size_t n = 0;
        for (const auto& [key, value] : st.data()) n += key.starts_with("repl/");
        return n;
    }

    testing::fake_clock clk;
    testing::memory_store st;
    registry::registry reg{clk, st};
    fake_repl_engine engine;
    testing::fake_random random;
    std::optional<repl::result_store> results;
    std::optional<repl::executor> exec;
    std::optional<protocol::server> srv;
    std::stop_source stop;
    async_scope runner;
};

std::shared_ptr<const protocol::principal> as(const identity& who) {
    return std::make_shared<const protocol::principal>(protocol::principal{who, protocol::permission_set::all()});
}

}  // namespace

TEST_CASE("repl usage: CPU time is the last sample, memory the highest, the last taken before the removal") {
    results_fixture f;
    const std::string id = f.execute(alice);
    auto c = f.engine.busy().front();
    c->figures = container_stats{200'000'000, 50 << 20, std::nullopt};
    f.clk.advance(250ms);  // a sample while it runs
    CHECK(c->stats_calls == 1);
    c->figures = container_stats{900'000'000, 3 << 20, std::nullopt};  // the program freed its memory
    f.clk.advance(100ms);
    f.engine.write(c, output_stream::out, "@@registry-repl-exit " + id + " 0\n");
    f.engine.write(c, output_stream::err, "@@registry-repl-exit " + id + " 0\n");
    CHECK(c->stats_calls == 2);  // the last one, before the removal
    CHECK(f.engine.containers.empty());
    auto o = f.results->find(id, alice);
    REQUIRE(o);
    CHECK(o->exit_code == 0);
    CHECK(o->usage.cpu_ms == 900);
    CHECK(o->usage.memory_peak_bytes == std::uint64_t{50} << 20);
    CHECK(o->owner == "alice");
    REQUIRE(o->started_at);
    CHECK(o->submitted_at <= *o->started_at);
    CHECK(o->finished_at - *o->started_at == 350ms);
    CHECK(o->duration == 350ms);
}

TEST_CASE("repl usage: an engine's own maximum counts, and no figures leave the usage empty") {
    resource_usage u;
    CHECK(u.empty());
    u.add(container_stats{});
    CHECK(u.empty());
    u.add(container_stats{std::nullopt, 10, 70});
    CHECK_FALSE(u.cpu_ms);
    CHECK(u.memory_peak_bytes == 70);
    u.add(container_stats{5'000'000, 20, std::nullopt});
    CHECK(u.cpu_ms == 5);
    CHECK(u.memory_peak_bytes == 70);
}

TEST_CASE("repl results: kept for their owner and admins, in the store, gone after the retention window") {
    repl::result_store_options ro;
    ro.retention = 60s;
    results_fixture f(ro);
    const std::string a = f.finish(alice, 3);
    f.clk.advance(10s);
    const std::string b = f.finish(alice);
    const std::string other = f.finish(bob);
    CHECK(f.stored() == 3);

    auto got = f.results->find(a, alice);
    REQUIRE(got);
    CHECK(got->exit_code == 3);
    CHECK(got->stdout_data == "out of " + a + "\n");
    CHECK(f.results->find(a, root));
    CHECK_FALSE(f.results->find(a, bob));        // another identity's: as if unknown
    CHECK_FALSE(f.results->find("x00", alice));  // unknown

    auto mine = f.results->history(alice, 10);
    REQUIRE(mine.size() == 2);
    CHECK(mine[0]->execution_id == b);  // newest first
    CHECK(mine[1]->execution_id == a);
    CHECK(f.results->history(alice, 1).size() == 1);
    CHECK(f.results->history(root, 10).size() == 3);
    CHECK(f.results->history(root, 10, "bob").at(0)->execution_id == other);
    CHECK(f.results->history(bob, 10, "alice").at(0)->execution_id == other);  // a non-admin sees only its own

    f.clk.advance(50s);  // `a` finished 60 s ago
    CHECK_FALSE(f.results->find(a, alice));
    CHECK(f.results->find(b, alice));
    CHECK(f.stored() == 2);  // swept from the store too
    f.clk.advance(10s);
    CHECK(f.results->size() == 0);
    CHECK(f.stored() == 0);
}

TEST_CASE("repl results: the oldest go first beyond the count and byte bounds, per identity and in total") {
    repl::result_store_options ro;
    ro.max_results_per_identity = 2;
    ro.max_results = 3;
    results_fixture f(ro);
    const std::string a1 = f.finish(alice);
    f.clk.advance(1ms);
    const std::string a2 = f.finish(alice);
    f.clk.advance(1ms);
    const std::string a3 = f.finish(alice);
    CHECK_FALSE(f.results->find(a1, alice));  // alice's third pushed out her first
    CHECK(f.results->find(a2, alice));
    CHECK(f.results->history(alice, 10).size() == 2);
    f.clk.advance(1ms);
    const std::string b1 = f.finish(bob);
    f.clk.advance(1ms);
    const std::string b2 = f.finish(bob);
    CHECK(f.results->size() == 3);  // the total bound: a2 went
    CHECK_FALSE(f.results->find(a2, alice));
    CHECK(f.results->find(a3, alice));
    CHECK(f.results->find(b1, bob));
    CHECK(f.results->find(b2, bob));
    CHECK(f.stored() == 3);

    // Bytes: each record is a few hundred bytes; room for two of one identity's.
    repl::result_store_options small;
    small.max_bytes_per_identity = 1000;
    results_fixture g(small);
    g.finish(alice);
    g.clk.advance(1ms);
    g.finish(alice);
    g.clk.advance(1ms);
    g.finish(alice);
    CHECK(g.results->size() == 2);
    CHECK(g.results->bytes() <= 1000);
    CHECK(g.stored() == 2);
}

TEST_CASE("repl results: a restart loads what is kept and drops what expired meanwhile") {
    repl::result_store_options ro;
    ro.retention = 60s;
    std::string early, late;
    testing::memory_store kept;
    {
        results_fixture f(ro);
        early = f.finish(alice);
        f.clk.advance(30s);
        late = f.finish(alice, 4);
        kept = f.st;
    }
    testing::fake_clock clk(time_point{milliseconds{1'700'000'000'000}} + 45s);  // `early` has 15 s left
    registry::registry reg{clk, kept};
    REQUIRE(run_now(reg.open()).ok());
    repl::result_store again(reg, kept, ro);
    REQUIRE(run_now(again.open()).ok());
    CHECK(again.size() == 2);
    auto o = again.find(late, alice);
    REQUIRE(o);
    CHECK(o->exit_code == 4);
    CHECK(o->stdout_data == "out of " + late + "\n");
    CHECK(o->owner == "alice");

    testing::fake_clock later(time_point{milliseconds{1'700'000'000'000}} + 70s);
    registry::registry reg2{later, kept};
    REQUIRE(run_now(reg2.open()).ok());
    repl::result_store third(reg2, kept, ro);
    REQUIRE(run_now(third.open()).ok());
    CHECK(third.size() == 1);
    CHECK_FALSE(third.find(early, alice));
    CHECK_FALSE(kept.data().contains("repl/" + early));  // dropped from the store at open
}

TEST_CASE("repl protocol: repl_result answers running, then the result, another identity gets not_found") {
    results_fixture f;
    client a(*f.srv, 1, {}, as(alice));
    client b(*f.srv, 2, {}, as(bob));
    const std::string id = f.execute(alice);
    CHECK(a.ask(req("1", "repl_result", R"({"execution_id":")" + id + R"("})")) ==
          R"({"id":"1","type":"response","data":{"execution_id":")" + id + R"(","state":"running"}})");
    CHECK(b.ask(req("2", "repl_result", R"({"execution_id":")" + id + R"("})"), "not_found")
              .find("no finished execution") != std::string::npos);
    auto c = f.engine.busy().front();
    c->figures = container_stats{1'500'000'000, 1 << 20, std::nullopt};
    f.engine.write(c, output_stream::out, "hi\n");
    f.engine.write(c, output_stream::out, "@@registry-repl-exit " + id + " 0\n");
    f.engine.write(c, output_stream::err, "@@registry-repl-exit " + id + " 0\n");
    const std::string r = a.ask(req("3", "repl_result", R"({"execution_id":")" + id + R"("})"));
    const std::string t = std::to_string(f.clk.now().time_since_epoch().count());
    CHECK(r == R"({"id":"3","type":"response","data":{"execution_id":")" + id +
                   R"(","language":"sh","version":"","engine":"local","state":"finished","owner":"alice","exit_code":0,)"
                   R"("signal":null,"stdout":"hi\n","stderr":"","truncated":false,"timed_out":false,)"
                   R"("cancelled":false,"duration_ms":0,"usage":{"cpu_ms":1500,"memory_peak_bytes":1048576},)"
                   R"("submitted_at_ms":)" + t + R"(,"started_at_ms":)" + t + R"(,"finished_at_ms":)" + t + "}}");
    CHECK(b.ask(req("4", "repl_result", R"({"execution_id":")" + id + R"("})"), "not_found").find(id) !=
          std::string::npos);

    const std::string h = a.ask(req("5", "repl_history", R"({"limit":5})"));
    CHECK(h.find(R"("executions":[{"execution_id":")" + id) != std::string::npos);
    CHECK(h.find("stdout") == std::string::npos);  // summaries: no output
    CHECK(b.ask(req("6", "repl_history")) == R"({"id":"6","type":"response","data":{"executions":[]}})");
    CHECK(b.ask(req("7", "repl_history", R"({"owner":"alice"})"), "forbidden").find("only an admin") !=
          std::string::npos);
    CHECK(a.ask(req("8", "repl_history", R"({"limit":0})"), "invalid_request").find("params.limit") !=
          std::string::npos);
}

TEST_CASE("repl results: none kept with a zero retention, nor one larger than a byte bound on its own") {
    repl::result_store_options none;
    none.retention = 0ms;
    results_fixture f(none);
    const std::string id = f.finish(alice);
    CHECK_FALSE(f.results->find(id, alice));
    CHECK(f.stored() == 0);

    repl::result_store_options tiny;
    tiny.max_bytes = 100;  // below any record
    results_fixture g(tiny);
    const std::string big = g.finish(alice);
    CHECK_FALSE(g.results->find(big, alice));
    CHECK(g.results->size() == 0);
    CHECK(g.stored() == 0);
}
