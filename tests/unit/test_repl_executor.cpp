// The REPL executor over a fake engine and the fake clock: the container it
// asks for, the order of upload/attach/start, streaming, limits, the queue,
// idempotency, warm pools, the shutdown clean-up, and the containers' leases:
// through a lease sink, and held by a real container manager (reaped after a
// killed registryd).
#include "repl_fake_engine.hpp"

#include "repl/driver.hpp"
#include "repl/utf8_stream.hpp"

#include "registry_test_support.hpp"

#include <registry/testing/fake_random.hpp>
#include <registry/async_scope.hpp>
#include <registry/container_manager.hpp>
#include <registry/repl/executor.hpp>
#include <registry/repl/manager_lease_sink.hpp>
#include <registry/testing/fake_clock.hpp>
#include <registry/testing/memory_store.hpp>

#include <doctest/doctest.h>

#include <algorithm>
#include <string>
#include <vector>

namespace {

using namespace registry;
using namespace std::chrono_literals;
using registry::test::fake_repl_engine;

repl::language python_language() {
    repl::language l;
    l.name = "python";
    l.version = "3.11";
    l.image = "localhost/registry-python:latest";
    l.source_file = "main.py";
    l.run = {"python3", "{source}"};
    l.defaults = repl::limits{5000ms, 1000, 64 << 20, 32, 500, false};
    l.maximum = repl::limits{30000ms, 100000, 512 << 20, 128, 2000, false};
    return l;
}

repl::language compiled_language() {
    repl::language l = python_language();
    l.name = "shc";
    l.compile = {"sh", "-n", "{source}"};
    l.run = {"sh", "{source}"};
    return l;
}

template <typename Set>
repl::limit_overrides overrides(Set set) {
    repl::limit_overrides o;
    set(o);
    return o;
}

// Records what the executor reports.
struct recorder final : repl::listener {
    std::vector<std::size_t> positions;
    std::vector<std::tuple<output_stream, std::uint64_t, std::string>> output;
    std::optional<repl::outcome> finished;
    int finished_calls = 0;

    void on_queued(const std::string&, std::size_t position) override { positions.push_back(position); }
    void on_output(const std::string&, output_stream s, std::uint64_t seq, std::string_view data) override {
        CHECK_FALSE(finished.has_value());
        output.emplace_back(s, seq, std::string(data));
    }
    void on_finished(const repl::outcome& o) override {
        finished = o;
        ++finished_calls;
    }
};

struct fixture {
    explicit fixture(std::size_t max_concurrent = 2, std::size_t max_queue = 8, std::size_t warm = 0,
                     repl::lease_sink* sink = nullptr) {
        auto py = python_language();
        py.warm_pool = warm;
        repl::executor_options o;
        o.max_queue = max_queue;
        o.idempotency_window = 60s;
        o.on_finished = [this](const repl::outcome& r) { observed.push_back(r); };
        exec.emplace(clk, random, std::vector<repl::engine_slot>{{"local", &engine, max_concurrent}},
                     std::vector<repl::language>{py, compiled_language()}, o, sink);
        scope.spawn(exec->run(stop.get_token()));
    }
    ~fixture() { shut_down(); }

    void shut_down() {
        if (stop.stop_requested()) return;
        stop.request_stop();
        REQUIRE(scope.active() == 0);
    }

    struct started_run {
        std::string id;
        std::shared_ptr<recorder> rec;
    };

    started_run execute(std::string code, repl::limit_overrides limits = {}, std::string language = "python") {
        repl::request r;
        r.files.push_back({language == "shc" ? "main.sh" : "main.py", std::move(code)});
        r.language = std::move(language);
        r.limits = limits;
        auto rec = std::make_shared<recorder>();
        auto sub = exec->execute(std::move(r), rec);
        REQUIRE_MESSAGE(sub.ok(), (sub.ok() ? "" : sub.err().message));
        return {sub->execution_id, rec};
    }

    testing::fake_clock clk;
    fake_repl_engine engine;
    std::vector<repl::outcome> observed;  // executor_options::on_finished
    testing::fake_random random;
    std::optional<repl::executor> exec;
    std::stop_source stop;
    async_scope scope;
};

TEST_CASE("repl executor: a hardened container, sources uploaded and attached before start, output streamed") {
    fixture f;
    auto run = f.execute("print('hi')");
    REQUIRE(f.engine.busy().size() == 1);
    auto c = f.engine.busy().front();

    // The container: the driver, read-only root, a tmpfs work dir, no caps,
    // a non-root user, no network, the limits, our labels.
    const auto& spec = c->spec;
    CHECK(spec.image == "localhost/registry-python:latest");
    CHECK(spec.command.at(2).find("exec /bin/sh /work/.repl/run.sh") != std::string::npos);
    CHECK(spec.read_only_rootfs);
    CHECK(spec.drop_all_capabilities);
    CHECK(spec.no_new_privileges);
    CHECK(spec.user == "65534:65534");
    CHECK(spec.network == container_network::none);
    CHECK(spec.tmpfs.contains("/work"));
    CHECK(spec.limits.memory_bytes == std::uint64_t{64 << 20});
    CHECK(spec.limits.pids == 32);
    CHECK(spec.limits.cpus == doctest::Approx(0.5));
    CHECK(spec.labels.at("io.registry.repl") == "1");
    CHECK(spec.labels.at("io.registry.repl.language") == "python");
    CHECK(spec.labels.at("io.registry.repl.execution") == run.id);
    CHECK(spec.labels.size() == 3);  // no lease sink: no lease labels

    // Created and started (waiting for its program), attached, then the
    // program uploaded, `go` last.
    const std::vector<std::string> expected{"create " + c->id, "start " + c->id, "attach " + c->id,
                                            "put_archive " + c->id + " /work"};
    CHECK(f.engine.log == expected);
    CHECK(c->attached_before_upload);
    REQUIRE(fake_repl_engine::file(*c, "main.py"));
    CHECK(fake_repl_engine::file(*c, "main.py")->contents == "print('hi')");
    CHECK(c->files.back().path == ".repl/go");
    const auto* driver = fake_repl_engine::file(*c, ".repl/run.sh");
    REQUIRE(driver);
    CHECK(driver->contents.find("\n'python3' 'main.py' </dev/null\nrc=$?\n") != std::string::npos);

    // Output arrives as it is written, before the exit.
    f.engine.write(c, output_stream::out, "one\n");
    REQUIRE(run.rec->output.size() == 1);
    CHECK(std::get<2>(run.rec->output[0]) == "one\n");
    CHECK(std::get<1>(run.rec->output[0]) == 1);
    f.clk.advance(1500ms);
    f.engine.write(c, output_stream::err, "warn\n");
    f.engine.write(c, output_stream::out, "two\n");
    CHECK(run.rec->output.size() == 3);
    CHECK(std::get<1>(run.rec->output[2]) == 3);
    CHECK_FALSE(run.rec->finished);

    f.engine.exit(c, 3);
    REQUIRE(run.rec->finished);
    const auto& o = *run.rec->finished;
    CHECK(o.exit_code == 3);
    CHECK_FALSE(o.signal);
    CHECK(o.stdout_data == "one\ntwo\n");
    CHECK(o.stderr_data == "warn\n");
    CHECK_FALSE(o.truncated);
    CHECK_FALSE(o.timed_out);
    CHECK(o.duration == 1500ms);
    CHECK(o.engine == "local");
    CHECK_FALSE(o.compile);
    CHECK(f.engine.containers.empty());  // removed right after
    CHECK(f.exec->running() == 0);
}

TEST_CASE("repl executor: the exit markers end the execution before the container stops") {
    fixture f;
    auto run = f.execute("print('hi')");
    auto c = f.engine.busy().front();
    const std::string marker = "@@registry-repl-exit " + run.id + " 4\n";
    f.engine.write(c, output_stream::out, "hi\n@@regi");  // could be a marker: held back
    REQUIRE(run.rec->output.size() == 1);
    CHECK(std::get<2>(run.rec->output[0]) == "hi\n");
    f.engine.write(c, output_stream::out, marker.substr(6));
    f.engine.write(c, output_stream::err, "oops @");
    CHECK_FALSE(run.rec->finished);
    f.engine.write(c, output_stream::err, marker);
    REQUIRE(run.rec->finished);  // the container has not exited
    CHECK(run.rec->finished->exit_code == 4);
    CHECK(run.rec->finished->stdout_data == "hi\n");
    CHECK(run.rec->finished->stderr_data == "oops @");
    CHECK(f.engine.containers.empty());
    const auto script = fake_repl_engine::file(*c, ".repl/run.sh")->contents;
    CHECK(script.find("printf '@@registry-repl-exit %s %d\\n' '" + run.id + "' \"$rc\" >&2") != std::string::npos);
}

TEST_CASE("repl executor: stdin and args reach the driver") {
    fixture f;
    repl::request r;
    r.language = "python";
    r.files = {{"main.py", "import sys"}, {"lib/util.py", "x = 1"}};
    r.stdin_data = "input";
    r.args = {"a b", "it's"};
    auto rec = std::make_shared<recorder>();
    REQUIRE(f.exec->execute(std::move(r), rec).ok());
    auto c = f.engine.busy().front();
    CHECK(fake_repl_engine::file(*c, ".repl/stdin")->contents == "input");
    CHECK(fake_repl_engine::file(*c, "lib/util.py"));
    CHECK(fake_repl_engine::file(*c, ".repl/run.sh")->contents.find(
              R"('python3' 'main.py' 'a b' 'it'\''s' </work/.repl/stdin)") != std::string::npos);
    f.engine.exit(c, 0);
}

TEST_CASE("repl executor: the wall-clock timeout kills and removes the container") {
    fixture f;
    auto run = f.execute("while True: pass", overrides([](repl::limit_overrides& o) { o.timeout = 2000ms; }));
    auto c = f.engine.busy().front();
    f.clk.advance(1999ms);
    CHECK_FALSE(run.rec->finished);
    f.clk.advance(1ms);
    REQUIRE(run.rec->finished);
    CHECK(run.rec->finished->timed_out);
    CHECK_FALSE(run.rec->finished->exit_code);
    CHECK(run.rec->finished->signal == 9);
    CHECK(run.rec->finished->duration == 2000ms);
    CHECK(f.engine.containers.empty());
}

TEST_CASE("repl executor: on_finished sees every outcome once, after the listeners") {
    fixture f(1);
    auto slow = f.execute("while True: pass", overrides([](repl::limit_overrides& o) { o.timeout = 2000ms; }));
    auto queued = f.execute("print(1)");
    CHECK(f.observed.empty());
    REQUIRE(f.exec->cancel(queued.id));  // dropped from the queue: finished at once
    REQUIRE(f.observed.size() == 1);
    CHECK(f.observed[0].execution_id == queued.id);
    CHECK(f.observed[0].cancelled);
    CHECK(queued.rec->finished);
    f.clk.advance(2000ms);
    REQUIRE(f.observed.size() == 2);
    CHECK(f.observed[1].execution_id == slow.id);
    CHECK(f.observed[1].timed_out);
    CHECK(f.observed[1].duration == 2000ms);
    CHECK(slow.rec->finished_calls == 1);
}

TEST_CASE("repl executor: the output cap truncates and kills") {
    fixture f;
    auto run = f.execute("flood", overrides([](repl::limit_overrides& o) { o.output_bytes = 10; }));
    auto c = f.engine.busy().front();
    f.engine.write(c, output_stream::out, "123456");
    f.engine.write(c, output_stream::err, "789012345");
    REQUIRE(run.rec->finished);
    const auto& o = *run.rec->finished;
    CHECK(o.truncated);
    CHECK(o.stdout_data == "123456");
    CHECK(o.stderr_data == "7890");
    CHECK(o.signal == 9);
    CHECK_FALSE(o.exit_code);
    CHECK(f.engine.containers.empty());
}

TEST_CASE("repl executor: a character split across chunks arrives whole, invalid bytes become U+FFFD") {
    fixture f;
    auto run = f.execute("print('é')");
    auto c = f.engine.busy().front();
    f.engine.write(c, output_stream::out, "caf\xC3");
    f.engine.write(c, output_stream::out, "\xA9 \xFF!");
    f.engine.exit(c, 0);
    REQUIRE(run.rec->output.size() == 2);
    CHECK(std::get<2>(run.rec->output[0]) == "caf");
    CHECK(std::get<2>(run.rec->output[1]) == "\xC3\xA9 \xEF\xBF\xBD!");
    CHECK(run.rec->finished->stdout_data == "caf\xC3\xA9 \xEF\xBF\xBD!");
    CHECK(repl::detail::to_valid_utf8("a\xE2\x82") == "a\xEF\xBF\xBD");
}

TEST_CASE("repl executor: cancel stops a running execution and drops a queued one") {
    fixture f(1);
    auto first = f.execute("1");
    auto second = f.execute("2");
    CHECK(second.rec->positions == std::vector<std::size_t>{1});
    REQUIRE(f.exec->cancel(second.id).ok());
    REQUIRE(second.rec->finished);
    CHECK(second.rec->finished->cancelled);
    CHECK(second.rec->finished->engine.empty());
    CHECK(f.exec->queued() == 0);

    REQUIRE(f.exec->cancel(first.id).ok());
    REQUIRE(first.rec->finished);
    CHECK(first.rec->finished->cancelled);
    CHECK(first.rec->finished->signal == 9);
    CHECK(f.engine.containers.empty());
    CHECK(f.exec->cancel(first.id).ok());  // finished: nothing to do
    CHECK(f.exec->cancel("nope").err().code == errc::not_found);
}

TEST_CASE("repl executor: a concurrency limit per engine, a bounded queue with positions, busy when full") {
    fixture f(2, 2);
    auto a = f.execute("a");
    auto b = f.execute("b");
    auto c = f.execute("c");
    auto d = f.execute("d");
    CHECK(f.engine.busy().size() == 2);
    CHECK(c.rec->positions == std::vector<std::size_t>{1});
    CHECK(d.rec->positions == std::vector<std::size_t>{2});

    repl::request r;
    r.language = "python";
    r.files = {{"main.py", "e"}};
    auto refused = f.exec->execute(std::move(r), std::make_shared<recorder>());
    REQUIRE_FALSE(refused.ok());
    CHECK(refused.err().code == errc::busy);

    f.engine.exit(f.engine.busy().front(), 0);  // a finishes: c runs, d moves up
    REQUIRE(a.rec->finished);
    CHECK(f.engine.busy().size() == 2);
    CHECK(d.rec->positions == std::vector<std::size_t>{2, 1});
    CHECK(f.exec->queued() == 1);
    for (int i = 0; i < 3; ++i) f.engine.exit(f.engine.busy().front(), 0);
    CHECK(b.rec->finished);
    CHECK(c.rec->finished);
    CHECK(d.rec->finished);
    CHECK(f.engine.containers.empty());
}

TEST_CASE("repl executor: the compile step's output and status, a failed compile does not run") {
    fixture f;
    SUBCASE("compiled, then run") {
        auto run = f.execute("echo hi", {}, "shc");
        auto c = f.engine.busy().front();
        const std::string script = fake_repl_engine::file(*c, ".repl/run.sh")->contents;
        CHECK(script.find("{ 'sh' '-n' 'main.sh' ; } </dev/null") != std::string::npos);
        const std::string marker = "\n@@registry-repl-compiled " + run.id + " 0\n";
        f.engine.write(c, output_stream::out, "compiling\n" + marker.substr(0, 10));
        f.engine.write(c, output_stream::out, marker.substr(10) + "hi\n");
        f.engine.write(c, output_stream::err, "note" + marker);
        f.engine.exit(c, 0);
        REQUIRE(run.rec->finished);
        const auto& o = *run.rec->finished;
        REQUIRE(o.compile);
        CHECK(o.compile->exit_code == 0);
        CHECK(o.compile->stdout_data == "compiling\n");
        CHECK(o.compile->stderr_data == "note");
        CHECK(o.stdout_data == "hi\n");
        CHECK(o.stderr_data.empty());
        CHECK(o.exit_code == 0);
    }
    SUBCASE("compile error") {
        auto run = f.execute("if", {}, "shc");
        auto c = f.engine.busy().front();
        const std::string marker = "\n@@registry-repl-compiled " + run.id + " 2\n";
        f.engine.write(c, output_stream::err, "syntax error" + marker);
        f.engine.write(c, output_stream::out, marker);
        f.engine.exit(c, 2);
        REQUIRE(run.rec->finished);
        const auto& o = *run.rec->finished;
        REQUIRE(o.compile);
        CHECK(o.compile->exit_code == 2);
        CHECK(o.compile->stderr_data == "syntax error");
        CHECK_FALSE(o.exit_code);  // the program never ran
        CHECK(run.rec->output.empty());
    }
}

TEST_CASE("repl executor: an idempotency key returns the same execution within the window") {
    fixture f;
    auto make = [] {
        repl::request r;
        r.language = "python";
        r.files = {{"main.py", "print(1)"}};
        r.idempotency_key = "k1";
        return r;
    };
    auto first = std::make_shared<recorder>();
    auto s1 = f.exec->execute(make(), first);
    REQUIRE(s1.ok());
    CHECK(s1->created);
    auto joined = std::make_shared<recorder>();
    auto s2 = f.exec->execute(make(), joined);
    REQUIRE(s2.ok());
    CHECK_FALSE(s2->created);
    CHECK(s2->execution_id == s1->execution_id);
    CHECK(f.engine.creates == 1);

    auto c = f.engine.busy().front();
    f.engine.write(c, output_stream::out, "1\n");
    f.engine.exit(c, 0);
    CHECK(first->output.size() == 1);
    CHECK(joined->output.size() == 1);
    CHECK(joined->finished);

    f.clk.advance(59s);
    auto late = std::make_shared<recorder>();
    auto s3 = f.exec->execute(make(), late);
    CHECK(s3->execution_id == s1->execution_id);
    REQUIRE(late->finished);  // at once
    CHECK(late->finished->stdout_data == "1\n");

    f.clk.advance(2s);
    auto again = f.exec->execute(make(), std::make_shared<recorder>());
    CHECK(again->created);
    CHECK(again->execution_id != s1->execution_id);
    f.engine.exit(f.engine.busy().front(), 0);
}

TEST_CASE("repl executor: strict validation of the request") {
    fixture f;
    auto expect = [&](repl::request r, std::string_view fragment) {
        auto s = f.exec->execute(std::move(r), nullptr);
        REQUIRE_FALSE(s.ok());
        CHECK(s.err().code == errc::invalid_request);
        // The field, by its path in the request (the protocol adds "params.").
        CHECK_MESSAGE(s.err().message.starts_with(fragment), s.err().message);
        CHECK(s.err().fields.size() == 1);
    };
    repl::request base;
    base.language = "python";
    base.files = {{"main.py", "x"}};
    auto r = base;
    r.language = "cobol";
    expect(r, "language: unknown language 'cobol'");
    r = base;
    r.files = {{"../etc/passwd", "x"}};
    expect(r, "files[0].name");
    r = base;
    r.files = {{"main.py", "x"}, {"main.py", "y"}};
    expect(r, "files[1].name: duplicate");
    r = base;
    r.files.clear();
    expect(r, "files");
    r = base;
    r.files = {{"main.py", "x"}, {".repl/go", "y"}};
    expect(r, "files[1].name: '.repl' is reserved");
    r = base;
    r.limits.timeout = 31000ms;
    expect(r, "limits.timeout_ms: must be 1-30000");
    r = base;
    r.limits.pids = 0;
    expect(r, "limits.pids");
    r = base;
    r.limits.network = true;
    expect(r, "limits.network: not allowed");
    r = base;
    r.args = {std::string("a\0b", 3)};
    expect(r, "args[0]");
    CHECK(f.engine.creates == 0);
}

TEST_CASE("repl executor: a missing image is a clear failure in the outcome") {
    fixture f;
    f.engine.missing_images.insert("localhost/registry-python:latest");
    auto run = f.execute("x");
    REQUIRE(run.rec->finished);
    REQUIRE(run.rec->finished->failure);
    CHECK(run.rec->finished->failure->code == errc::not_found);
    CHECK(run.rec->finished->failure->message.find("build-repl-images.sh") != std::string::npos);
    CHECK(f.exec->running() == 0);
}

TEST_CASE("repl executor: a warm pool serves executions with the default limits, each container once") {
    fixture f(2, 8, 2);
    CHECK(f.exec->warm("python") == 2);
    CHECK(f.engine.creates == 2);
    const auto warm_id = f.engine.containers.begin()->first;
    CHECK_FALSE(f.engine.get(warm_id)->spec.labels.contains("io.registry.repl.execution"));

    auto run = f.execute("print(1)");
    auto c = f.engine.busy().front();
    CHECK(c->id == warm_id);            // no create on the execution's path
    CHECK(f.engine.creates == 3);       // the pool refilled
    CHECK(f.exec->warm("python") == 2);
    f.engine.exit(c, 0);
    CHECK_FALSE(f.engine.get(warm_id));  // never reused

    auto custom = f.execute("print(2)", overrides([](repl::limit_overrides& o) { o.memory_bytes = 128 << 20; }));
    CHECK(f.engine.creates == 4);       // other limits: a cold container
    f.engine.exit(f.engine.busy().front(), 0);

    f.clk.advance(601s);  // aged warm containers are replaced
    CHECK(f.exec->warm("python") == 2);
    CHECK(f.engine.creates == 6);
    CHECK(f.engine.containers.size() == 2);

    f.shut_down();
    CHECK(f.engine.containers.empty());
}

TEST_CASE("repl executor: shutdown cancels running and queued executions and removes every container") {
    fixture f(1, 4, 1);
    auto running = f.execute("1");
    auto waiting = f.execute("2");
    CHECK(f.engine.containers.size() == 2);  // the running one and a fresh warm one
    f.shut_down();
    REQUIRE(running.rec->finished);
    CHECK(running.rec->finished->cancelled);
    REQUIRE(waiting.rec->finished);
    CHECK(waiting.rec->finished->cancelled);
    CHECK(f.engine.containers.empty());
    repl::request r;
    r.language = "python";
    r.files = {{"main.py", "x"}};
    CHECK(f.exec->execute(std::move(r), nullptr).err().code == errc::unavailable);
}

struct recording_sink final : repl::lease_sink {
    std::vector<std::string> calls;
    bool refuse = false;
    bool engine_online = true;
    bool online(std::string_view) const override { return engine_online; }
    std::map<std::string, std::string> lease_labels(time_point deadline) const override {
        return {{"lease.deadline", std::to_string(deadline.time_since_epoch().count())}};
    }
    task<result<void>> container_created(std::string_view engine, std::string_view id, time_point deadline) override {
        calls.push_back("created " + std::string(engine) + " " + std::string(id) + " " +
                        std::to_string(deadline.time_since_epoch().count()));
        if (refuse) co_return fail(errc::unavailable, "no lease");
        co_return result<void>{};
    }
    task<void> container_removed(std::string_view engine, std::string_view id) override {
        calls.push_back("removed " + std::string(engine) + " " + std::string(id));
        co_return;
    }
};

TEST_CASE("repl executor: every container is reported to the lease sink with its deadline, and its removal") {
    recording_sink sink;
    fixture f(2, 8, 0, &sink);
    const auto t0 = f.clk.now().time_since_epoch().count();
    auto run = f.execute("1");
    auto c = f.engine.busy().front();
    f.engine.exit(c, 0);
    REQUIRE(sink.calls.size() == 2);
    CHECK(sink.calls[0] == "created local " + c->id + " " + std::to_string(t0 + 5000 + 60000));
    CHECK(sink.calls[1] == "removed local " + c->id);
    CHECK(c->spec.labels.at("lease.deadline") == std::to_string(t0 + 5000 + 60000));  // the sink's labels
    CHECK(c->spec.labels.at("io.registry.repl") == "1");

    sink.refuse = true;
    auto refused = f.execute("2");
    REQUIRE(refused.rec->finished);
    REQUIRE(refused.rec->finished->failure);
    CHECK(refused.rec->finished->failure->message == "no lease");
    CHECK(f.engine.containers.empty());
}

TEST_CASE("repl executor: an engine the lease sink calls offline is not used until it is online") {
    recording_sink sink;
    sink.engine_online = false;
    fixture f(2, 8, 1, &sink);
    CHECK(f.exec->warm("python") == 0);  // no pool on an offline engine
    auto run = f.execute("1");
    CHECK(run.rec->positions == std::vector<std::size_t>{1});
    CHECK(f.engine.creates == 0);

    sink.engine_online = true;
    f.clk.advance(1s);  // the next housekeeping round
    CHECK(f.exec->queued() == 0);
    REQUIRE(f.engine.busy().size() == 1);
    CHECK(f.exec->warm("python") == 1);
    f.engine.exit(f.engine.busy().front(), 0);
    REQUIRE(run.rec->finished);
    CHECK(run.rec->finished->exit_code == 0);
}

TEST_CASE("repl executor: an engine added while it runs takes the queued executions, and one added again under its name is used by its new client") {
    recording_sink sink;
    fixture f(1, 8, 0, &sink);
    auto first = f.execute("1");
    auto second = f.execute("2");
    CHECK(f.engine.busy().size() == 1);
    CHECK(second.rec->positions == std::vector<std::size_t>{1});

    fake_repl_engine joined;
    CHECK(f.exec->add_engine({"joined", nullptr, 1}).err().code == errc::invalid_request);
    CHECK(f.exec->add_engine({"joined", &joined, 0}).err().code == errc::invalid_request);
    REQUIRE(f.exec->add_engine({"joined", &joined, 1}).ok());
    CHECK(f.exec->queued() == 0);  // at once: the sink calls it online
    REQUIRE(joined.busy().size() == 1);
    joined.exit(joined.busy().front(), 0);
    REQUIRE(second.rec->finished);
    CHECK(second.rec->finished->exit_code == 0);
    CHECK(sink.calls.front().starts_with("created local "));
    CHECK(std::count_if(sink.calls.begin(), sink.calls.end(),
                        [](const std::string& c) { return c.starts_with("created joined "); }) == 1);

    // The same name again (the member moved): the new client is used.
    fake_repl_engine moved;
    REQUIRE(f.exec->add_engine({"joined", &moved, 1}).ok());
    auto third = f.execute("3");
    CHECK(joined.creates == 1);
    REQUIRE(moved.busy().size() == 1);
    moved.exit(moved.busy().front(), 0);
    f.engine.exit(f.engine.busy().front(), 0);
    REQUIRE(first.rec->finished);
    REQUIRE(third.rec->finished);
}

// registryd's wiring: a registry, a container manager whose one node is the
// engine, and the executor on that node with its containers held under the
// manager's leases.
struct managed_repl {
    managed_repl(testing::fake_clock& c, fake_repl_engine& engine) {
        reg.emplace(c, st);
        REQUIRE(test::run_now(reg->open()));
        container_manager_options mo;
        mo.instance_id = "reg-1";
        mgr.emplace(*reg, c, st, std::vector<container_node>{{"local", "fake://", &engine, 8}}, mo);
        REQUIRE(test::run_now(mgr->open()));
        scope.spawn(mgr->run(stop.get_token()));  // the first heartbeat brings the node online
        sink.emplace(*mgr);
        repl::executor_options o;
        o.lease_grace = 10s;
        exec.emplace(c, random, std::vector<repl::engine_slot>{{"local", &engine, 2}},
                     std::vector<repl::language>{python_language()}, o, &*sink);
        scope.spawn(exec->run(stop.get_token()));
    }
    ~managed_repl() {
        stop.request_stop();
        CHECK(scope.active() == 0);
    }

    std::shared_ptr<recorder> execute(std::string code, milliseconds timeout) {
        repl::request r;
        r.language = "python";
        r.files = {{"main.py", std::move(code)}};
        r.limits.timeout = timeout;
        auto rec = std::make_shared<recorder>();
        auto sub = exec->execute(std::move(r), rec);
        REQUIRE(sub.ok());
        return rec;
    }

    bool stored_leases() const {
        for (const auto& [key, value] : st.data()) {
            if (key.starts_with("ctr")) return true;
        }
        return false;
    }

    testing::memory_store st;
    std::optional<class registry> reg;
    std::optional<container_manager> mgr;
    std::optional<repl::manager_lease_sink> sink;
    testing::fake_random random;
    std::optional<repl::executor> exec;
    std::stop_source stop;
    async_scope scope;
};

std::string ms_text(time_point t) { return std::to_string(t.time_since_epoch().count()); }

TEST_CASE("repl executor: a container is held under the container manager's lease while it runs, released after") {
    testing::fake_clock clk;
    fake_repl_engine engine;
    managed_repl d(clk, engine);
    auto rec = d.execute("print(1)", 5000ms);
    REQUIRE(engine.busy().size() == 1);
    auto c = engine.busy().front();
    const time_point deadline = clk.now() + 5000ms + 10s;  // the timeout, then the lease grace
    CHECK(c->spec.labels.at("io.registry.instance") == "reg-1");
    CHECK(c->spec.labels.at("io.registry.holder") == "repl");
    CHECK(c->spec.labels.at("io.registry.expires_at_ms") == ms_text(deadline));
    CHECK_FALSE(c->spec.labels.contains("io.registry.lease"));
    auto held = d.mgr->held();
    REQUIRE(held.size() == 1);
    CHECK(held[0].engine == "local");
    CHECK(held[0].container_id == c->id);
    CHECK(held[0].expires_at == deadline);
    // Not one of the manager's own: not listed, not counted, not stored.
    CHECK(d.mgr->list().empty());
    CHECK(d.mgr->find(c->id) == nullptr);
    CHECK(d.mgr->nodes().at(0).running == 0);
    CHECK_FALSE(d.stored_leases());

    engine.exit(c, 0);
    REQUIRE(rec->finished);
    CHECK(rec->finished->exit_code == 0);
    CHECK(engine.containers.empty());
    CHECK(d.mgr->held().empty());
}

TEST_CASE("repl executor: after a killed registryd the new one's reaper removes its container at the deadline, not before") {
    testing::fake_clock dead_clock;
    fake_repl_engine dead_engine;
    managed_repl killed(dead_clock, dead_engine);
    auto rec = killed.execute("import time; time.sleep(60)", 5000ms);
    REQUIRE(dead_engine.busy().size() == 1);
    const std::string id = dead_engine.busy().front()->id;
    const time_point deadline = dead_clock.now() + 5000ms + 10s;

    // Killed: nothing of it runs again (its clock and its engine connections
    // went with it). A new registryd starts a second later on the same engine.
    auto engine = dead_engine.survivor();
    testing::fake_clock clk;
    clk.advance(1s);
    managed_repl restarted(clk, *engine);
    REQUIRE(engine->get(id));  // adopted: its lease runs on
    auto held = restarted.mgr->held();
    REQUIRE(held.size() == 1);
    CHECK(held[0].container_id == id);
    CHECK(held[0].expires_at == deadline);
    CHECK(restarted.mgr->list().empty());

    clk.advance_to(deadline - 1ms);
    CHECK(engine->get(id));
    clk.advance(1ms);
    CHECK_FALSE(engine->get(id));
    CHECK(engine->log == std::vector<std::string>{"remove " + id});  // the reaper; the new executor did nothing
    CHECK(restarted.mgr->held().empty());
    CHECK_FALSE(rec->finished);  // the dead registryd never finished it
}

TEST_CASE("repl driver: shell quoting survives any text") {
    CHECK(repl::detail::shell_quote("a'b") == R"('a'\''b')");
    CHECK(repl::detail::shell_quote("$(rm -rf /)") == "'$(rm -rf /)'");
}

}  // namespace
