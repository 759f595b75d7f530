// docker_engine against a real Podman API service (podman_harness.hpp).
#include "engine/docker_engine.hpp"
#include "podman_harness.hpp"

#include <registry/cancellation.hpp>

#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/steady_timer.hpp>
#include <doctest/doctest.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <stop_token>
#include <string>
#include <thread>
#include <vector>

namespace {

using namespace std::chrono_literals;
using registry::errc;
using registry::output_stream;
using registry::task;
namespace rt = registry_test;
using clock_type = std::chrono::steady_clock;

double seconds_since(clock_type::time_point t0) {
    return std::chrono::duration<double>(clock_type::now() - t0).count();
}

registryd::engine_endpoint endpoint_of(const std::string& uri) {
    auto r = registryd::engine_endpoint::parse(uri);
    REQUIRE(r.ok());
    return *r;
}

struct output {
    std::string out;
    std::string err;
    std::vector<std::pair<registry::output_chunk, double>> chunks;  // with arrival time
    std::optional<registry::error> error;
};

// Reads a stream to its end.
task<output> collect(registry::engine_stream<registry::output_chunk> s, clock_type::time_point t0 = clock_type::now()) {
    output o;
    for (auto it = co_await s.begin(); it != s.end(); co_await ++it) {
        const auto& r = *it;
        if (!r.ok()) {
            o.error = r.err();
            continue;
        }
        (r->stream == output_stream::err ? o.err : o.out) += r->bytes;
        o.chunks.emplace_back(*r, seconds_since(t0));
    }
    co_return o;
}

struct engine_fixture {
    rt::podman_service& podman = rt::shared_podman();
    boost::asio::io_context io;
    registryd::docker_engine engine{io, endpoint_of(podman.uri())};
    std::string run_label = rt::unique_name("run");

    registry::container_spec spec(std::vector<std::string> command) const {
        registry::container_spec s;
        s.image = rt::test_image;
        s.command = std::move(command);
        s.labels["registry.test.run"] = run_label;
        return s;
    }

    template <typename T>
    T run(task<T> t) {
        return rt::run(io, std::move(t));
    }

    // create → start → wait → logs.
    task<std::pair<int, output>> run_to_exit(registry::container_spec s) {
        auto id = co_await engine.create(std::move(s));
        REQUIRE_MESSAGE(id.ok(), id.err().message);
        auto started = co_await engine.start(*id);
        REQUIRE_MESSAGE(started.ok(), started.err().message);
        auto code = co_await engine.wait(*id);
        REQUIRE_MESSAGE(code.ok(), code.err().message);
        auto logs = co_await engine.logs(*id, registry::log_options());
        REQUIRE_MESSAGE(logs.ok(), logs.err().message);
        auto o = co_await collect(std::move(*logs));
        co_return std::pair{*code, std::move(o)};
    }
};

void report(const char* what, clock_type::time_point t0) {
    std::printf("  [timing] %-55s %7.3f s\n", what, seconds_since(t0));
}

}  // namespace

TEST_CASE_FIXTURE(engine_fixture, "ping and version") {
    std::printf("  [timing] podman service startup (import + serve)       %7.3f s\n",
                static_cast<double>(podman.startup_time().count()) / 1000.0);
    const auto t0 = clock_type::now();
    run([&]() -> task<void> {
        auto p = co_await engine.ping();
        REQUIRE_MESSAGE(p.ok(), p.err().message);
        report("first ping", t0);
        const auto t1 = clock_type::now();
        auto p2 = co_await engine.ping();
        REQUIRE(p2.ok());
        report("second ping", t1);
        auto v = co_await engine.version();
        REQUIRE_MESSAGE(v.ok(), v.err().message);
        CHECK(v->name == "Podman Engine");
        CHECK(v->api_version == "1.41");
        CHECK(!v->version.empty());
        CHECK(v->os == "linux");
    }());
    report("ping + version", t0);
}

TEST_CASE_FIXTURE(engine_fixture, "create, start and wait yield the exit code, and inspect follows the state") {
    const auto t0 = clock_type::now();
    run([&]() -> task<void> {
        auto s = spec({"sh", "-c", "exit 3"});
        s.env["GREETING"] = "hello";
        s.name = rt::unique_name("exit3");
        auto id = co_await engine.create(s);
        REQUIRE_MESSAGE(id.ok(), id.err().message);
        auto created = co_await engine.inspect(*id);
        REQUIRE_MESSAGE(created.ok(), created.err().message);
        CHECK(created->id == *id);
        CHECK(created->name == s.name);
        CHECK(created->image == rt::test_image);
        CHECK(created->state.status == registry::container_status::created);
        CHECK_FALSE(created->state.started_at);
        CHECK(created->env["GREETING"] == "hello");
        CHECK(created->labels["registry.test.run"] == run_label);
        CHECK(created->command == std::vector<std::string>{"sh", "-c", "exit 3"});
        CHECK(created->created);

        auto started = co_await engine.start(*id);
        REQUIRE_MESSAGE(started.ok(), started.err().message);
        auto code = co_await engine.wait(*id);
        REQUIRE_MESSAGE(code.ok(), code.err().message);
        CHECK(*code == 3);

        auto exited = co_await engine.inspect(*id);
        REQUIRE(exited.ok());
        CHECK(exited->state.status == registry::container_status::exited);
        CHECK_FALSE(exited->state.running);
        CHECK(exited->state.exit_code == 3);
        CHECK(exited->state.started_at);
        CHECK(exited->state.finished_at);

        // Waiting again on a stopped container answers at once.
        auto again = co_await engine.wait(*id);
        REQUIRE(again.ok());
        CHECK(*again == 3);
        // Starting under a taken name is a conflict (Podman: 500 + cause).
        auto clash = co_await engine.create(s);
        REQUIRE_FALSE(clash.ok());
        CHECK(clash.err().code == errc::conflict);
    }());
    report("create+start+wait (exit 3)", t0);
}

TEST_CASE_FIXTURE(engine_fixture, "logs: everything, the tail, stdout and stderr apart") {
    const auto t0 = clock_type::now();
    run([&]() -> task<void> {
        auto ran_spec = spec({"sh", "-c", "echo one; echo two >&2; echo three"});
        auto ran = co_await run_to_exit(std::move(ran_spec));
        const auto& all = ran.second;
        CHECK(ran.first == 0);
        CHECK(all.out == "one\nthree\n");
        CHECK(all.err == "two\n");
        CHECK_FALSE(all.error);
    }());
    report("run to exit + logs", t0);
    run([&]() -> task<void> {
        auto id_spec = spec({"sh", "-c", "for i in 1 2 3 4 5; do echo line$i; done"});
        auto id = co_await engine.create(std::move(id_spec));
        REQUIRE(id.ok());
        REQUIRE((co_await engine.start(*id)).ok());
        REQUIRE((co_await engine.wait(*id)).ok());
        registry::log_options tail2;
        tail2.tail = 2;
        auto logs = co_await engine.logs(*id, tail2);
        REQUIRE(logs.ok());
        auto o = co_await collect(std::move(*logs));
        CHECK(o.out == "line4\nline5\n");
        registry::log_options only_err;
        only_err.want_stdout = false;
        auto none = co_await engine.logs(*id, only_err);
        REQUIRE(none.ok());
        CHECK((co_await collect(std::move(*none))).out.empty());
    }());
}

TEST_CASE_FIXTURE(engine_fixture, "logs: a follow streams lines as they are written, and ends at exit") {
    run([&]() -> task<void> {
        auto id_spec = spec({"sh", "-c", "echo a; sleep 1; echo b"});
        auto id = co_await engine.create(std::move(id_spec));
        REQUIRE(id.ok());
        REQUIRE((co_await engine.start(*id)).ok());
        const auto t0 = clock_type::now();
        registry::log_options follow;
        follow.follow = true;
        auto logs = co_await engine.logs(*id, follow);
        REQUIRE_MESSAGE(logs.ok(), logs.err().message);
        auto o = co_await collect(std::move(*logs), t0);
        const double ended = seconds_since(t0);
        CHECK(o.out == "a\nb\n");
        CHECK_FALSE(o.error);
        REQUIRE(o.chunks.size() >= 2);
        const double a_at = o.chunks.front().second;
        const double b_at = o.chunks.back().second;
        std::printf("  [timing] follow: 'a' after %.3f s, 'b' after %.3f s, end after %.3f s\n", a_at, b_at, ended);
        CHECK(o.chunks.front().first.bytes == "a\n");
        // "a" came while the container was still sleeping, i.e. before it exited.
        CHECK(b_at - a_at > 0.7);
        auto state = co_await engine.inspect(*id);
        REQUIRE(state.ok());
        CHECK(state->state.status == registry::container_status::exited);
    }());
}

TEST_CASE_FIXTURE(engine_fixture, "attach before start: stdout and stderr arrive demultiplexed") {
    const auto t0 = clock_type::now();
    run([&]() -> task<void> {
        auto id_spec = spec({"sh", "-c", "echo out1; echo err1 >&2; sleep 0.2; echo out2; echo err2 >&2"});
        auto id = co_await engine.create(std::move(id_spec));
        REQUIRE(id.ok());
        auto attached = co_await engine.attach(*id);
        REQUIRE_MESSAGE(attached.ok(), attached.err().message);
        REQUIRE((co_await engine.start(*id)).ok());
        auto o = co_await collect(std::move(*attached));
        CHECK(o.out == "out1\nout2\n");
        CHECK(o.err == "err1\nerr2\n");
        CHECK_FALSE(o.error);
        for (const auto& [chunk, at] : o.chunks) {
            CHECK_MESSAGE(chunk.bytes.find(chunk.stream == output_stream::out ? "err" : "out") == std::string::npos,
                          "a chunk mixes streams: " << chunk.bytes);
        }
        auto code = co_await engine.wait(*id);
        REQUIRE(code.ok());
        CHECK(*code == 0);
        // Attaching to an unknown container is not_found.
        auto missing = co_await engine.attach("no-such-container-" + run_label);
        REQUIRE_FALSE(missing.ok());
        CHECK(missing.err().code == errc::not_found);
    }());
    report("attach + start + stream to end", t0);
}

TEST_CASE_FIXTURE(engine_fixture, "put_archive: uploaded files are there when the container runs") {
    const auto t0 = clock_type::now();
    run([&]() -> task<void> {
        auto id_spec =
            spec({"sh", "-c", "cat /tmp/app/hello.txt; stat -c %a /tmp/app/bin/run.sh /tmp/app/secret; /tmp/app/bin/run.sh"});
        auto id = co_await engine.create(std::move(id_spec));
        REQUIRE(id.ok());
        std::vector<registry::archive_file> files{
            {"app/hello.txt", "hello file\n", 0644},
            {"app/bin/run.sh", "#!/bin/sh\necho ran\n", 0755},
            {"app/secret", "s3cret", 0600},
        };
        auto put = co_await engine.put_archive(*id, "/tmp", files);
        REQUIRE_MESSAGE(put.ok(), put.err().message);
        REQUIRE((co_await engine.start(*id)).ok());
        auto code = co_await engine.wait(*id);
        REQUIRE(code.ok());
        CHECK(*code == 0);
        auto logs = co_await engine.logs(*id, registry::log_options());
        REQUIRE(logs.ok());
        auto o = co_await collect(std::move(*logs));
        CHECK(o.out == "hello file\n755\n600\nran\n");
        CHECK(o.err.empty());

        auto missing = co_await engine.put_archive("no-such-container-" + run_label, "/tmp", files);
        REQUIRE_FALSE(missing.ok());
        CHECK(missing.err().code == errc::not_found);
        std::vector<registry::archive_file> bad_files{{"../etc/passwd", "x", 0644}};
        auto escaping = co_await engine.put_archive(*id, "/tmp", std::move(bad_files));
        REQUIRE_FALSE(escaping.ok());
        CHECK(escaping.err().code == errc::invalid_request);
    }());
    report("put_archive + run cat", t0);
}

TEST_CASE_FIXTURE(engine_fixture, "stop: a running container stops, gracefully or after its grace period") {
    run([&]() -> task<void> {
        // Exits on SIGTERM.
        auto polite_spec = spec({"sh", "-c", "trap 'exit 7' TERM; while true; do sleep 0.1; done"});
        auto polite = co_await engine.create(std::move(polite_spec));
        REQUIRE(polite.ok());
        REQUIRE((co_await engine.start(*polite)).ok());
        auto t0 = clock_type::now();
        auto stopped = co_await engine.stop(*polite, 10s);
        REQUIRE_MESSAGE(stopped.ok(), stopped.err().message);
        report("stop (exits on SIGTERM, grace 10 s)", t0);
        CHECK(seconds_since(t0) < 5.0);
        auto info = co_await engine.inspect(*polite);
        REQUIRE(info.ok());
        CHECK(info->state.status == registry::container_status::exited);
        CHECK(info->state.exit_code == 7);
        // Stopping a stopped container succeeds (304).
        auto again = co_await engine.stop(*polite, 1s);
        CHECK_MESSAGE(again.ok(), again.err().message);

        // PID 1 ignores SIGTERM: killed after the grace period.
        auto stubborn_spec = spec({"sleep", "1000"});
        auto stubborn = co_await engine.create(std::move(stubborn_spec));
        REQUIRE(stubborn.ok());
        REQUIRE((co_await engine.start(*stubborn)).ok());
        t0 = clock_type::now();
        auto killed = co_await engine.stop(*stubborn, 1s);
        REQUIRE_MESSAGE(killed.ok(), killed.err().message);
        const double took = seconds_since(t0);
        report("stop (ignores SIGTERM, grace 1 s)", t0);
        CHECK(took >= 0.9);
        CHECK(took < 8.0);
        auto k = co_await engine.inspect(*stubborn);
        REQUIRE(k.ok());
        CHECK(k->state.exit_code == 137);

        auto missing = co_await engine.stop("no-such-container-" + run_label, 1s);
        REQUIRE_FALSE(missing.ok());
        CHECK(missing.err().code == errc::not_found);
    }());
}

TEST_CASE_FIXTURE(engine_fixture, "remove: force kills a running container, and removing again is not_found") {
    const auto t0 = clock_type::now();
    run([&]() -> task<void> {
        auto id_spec = spec({"sleep", "1000"});
        auto id = co_await engine.create(std::move(id_spec));
        REQUIRE(id.ok());
        REQUIRE((co_await engine.start(*id)).ok());
        auto refused = co_await engine.remove(*id, false);
        REQUIRE_FALSE(refused.ok());
        CHECK(refused.err().code == errc::conflict);  // Podman: 500 + cause "container state improper"
        auto removed = co_await engine.remove(*id, true);
        REQUIRE_MESSAGE(removed.ok(), removed.err().message);
        auto again = co_await engine.remove(*id, true);
        REQUIRE_FALSE(again.ok());
        CHECK(again.err().code == errc::not_found);
        CHECK(again.err().message.find("no such container") != std::string::npos);

        auto inspect = co_await engine.inspect(*id);
        REQUIRE_FALSE(inspect.ok());
        CHECK(inspect.err().code == errc::not_found);
        auto start = co_await engine.start(*id);
        REQUIRE_FALSE(start.ok());
        CHECK(start.err().code == errc::not_found);
        auto wait = co_await engine.wait(*id);
        REQUIRE_FALSE(wait.ok());
        CHECK(wait.err().code == errc::not_found);
        auto logs = co_await engine.logs(*id, registry::log_options());
        REQUIRE_FALSE(logs.ok());
        CHECK(logs.err().code == errc::not_found);
        registry::log_options follow;
        follow.follow = true;
        auto follow_logs = co_await engine.logs(*id, follow);
        REQUIRE_FALSE(follow_logs.ok());
        CHECK(follow_logs.err().code == errc::not_found);

        auto unknown_spec = spec({"true"});
        unknown_spec.image = "localhost/registry-no-such-image:latest";
        auto unknown_image = co_await engine.create(std::move(unknown_spec));
        REQUIRE_FALSE(unknown_image.ok());
        CHECK(unknown_image.err().code == errc::not_found);
    }());
    report("remove/not_found round", t0);
}

TEST_CASE_FIXTURE(engine_fixture, "list selects by label") {
    const auto t0 = clock_type::now();
    run([&]() -> task<void> {
        const std::string group = rt::unique_name("group");
        auto mine = [&](std::string role) {
            auto s = spec({"true"});
            s.labels["registry.test.group"] = group;
            s.labels["registry.test.role"] = std::move(role);
            return s;
        };
        auto a = co_await engine.create(mine("a"));
        auto b = co_await engine.create(mine("b"));
        auto other_spec = spec({"true"});
        auto other = co_await engine.create(std::move(other_spec));
        REQUIRE((a.ok() && b.ok() && other.ok()));
        REQUIRE((co_await engine.start(*b)).ok());

        registry::label_selector in_group;
        in_group.equals("registry.test.group", group);
        auto both = co_await engine.list(in_group);
        REQUIRE_MESSAGE(both.ok(), both.err().message);
        std::vector<std::string> ids;
        for (const auto& c : *both) {
            ids.push_back(c.id);
            CHECK(c.labels.at("registry.test.group") == group);
            CHECK(c.image == rt::test_image);
            CHECK(c.created);
            CHECK(!c.name.empty());
        }
        std::sort(ids.begin(), ids.end());
        std::vector<std::string> expected{*a, *b};
        std::sort(expected.begin(), expected.end());
        CHECK(ids == expected);

        registry::label_selector a_in_group;
        a_in_group.equals("registry.test.group", group).equals("registry.test.role", "a");
        auto only_a = co_await engine.list(a_in_group);
        REQUIRE(only_a.ok());
        REQUIRE(only_a->size() == 1);
        CHECK(only_a->front().id == *a);
        CHECK(only_a->front().status == registry::container_status::created);

        registry::label_selector labelled;
        labelled.has("registry.test.run");
        auto by_presence = co_await engine.list(labelled);
        REQUIRE(by_presence.ok());
        CHECK(by_presence->size() >= 3);

        registry::label_selector nobody;
        nobody.equals("registry.test.group", group + "-none");
        auto none = co_await engine.list(nobody);
        REQUIRE(none.ok());
        CHECK(none->empty());
    }());
    report("list by label", t0);
}

TEST_CASE_FIXTURE(engine_fixture, "limits: memory, cpus, pids, network none and a read-only rootfs are applied") {
    const auto t0 = clock_type::now();
    run([&]() -> task<void> {
        auto s = spec({"sh", "-c",
                       "touch /probe 2>/dev/null && echo rootfs=writable || echo rootfs=readonly; "
                       "echo pids=$(cat /sys/fs/cgroup/pids/pids.max 2>/dev/null || cat /sys/fs/cgroup/pids.max); "
                       "echo net=$(ls /sys/class/net | tr '\\n' ' ')"});
        s.limits.memory_bytes = 64 * 1024 * 1024;
        s.limits.cpus = 0.5;
        s.limits.pids = 64;
        s.network = registry::container_network::none;
        s.read_only_rootfs = true;
        auto id = co_await engine.create(s);
        REQUIRE_MESSAGE(id.ok(), id.err().message);
        auto info = co_await engine.inspect(*id);
        REQUIRE(info.ok());
        CHECK(info->limits.memory_bytes == std::optional<std::uint64_t>(64 * 1024 * 1024));
        CHECK(info->limits.cpus == std::optional<double>(0.5));
        CHECK(info->limits.pids == std::optional<std::int64_t>(64));
        CHECK(info->network_mode == "none");
        CHECK(info->read_only_rootfs);

        REQUIRE((co_await engine.start(*id)).ok());
        auto code = co_await engine.wait(*id);
        REQUIRE(code.ok());
        auto logs = co_await engine.logs(*id, registry::log_options());
        REQUIRE(logs.ok());
        auto o = co_await collect(std::move(*logs));
        CHECK(o.out == "rootfs=readonly\npids=64\nnet=lo\n");

        // No limits, default network: the engine's defaults.
        auto plain_spec = spec({"true"});
        plain_spec.network = registry::container_network::default_;
        auto plain = co_await engine.create(std::move(plain_spec));
        REQUIRE(plain.ok());
        auto pinfo = co_await engine.inspect(*plain);
        REQUIRE(pinfo.ok());
        CHECK_FALSE(pinfo->limits.memory_bytes);
        CHECK_FALSE(pinfo->limits.cpus);
        CHECK_FALSE(pinfo->read_only_rootfs);
        CHECK(pinfo->network_mode == "bridge");
    }());
    report("limits applied + checked inside", t0);
}

TEST_CASE_FIXTURE(engine_fixture, "image pull: an error inside the 200 stream ends it as an error") {
    const auto t0 = clock_type::now();
    run([&]() -> task<void> {
        auto pull = co_await engine.pull_image("127.0.0.1:1/registry-test/nope:latest");
        REQUIRE_MESSAGE(pull.ok(), pull.err().message);
        std::vector<registry::result<registry::pull_progress>> items;
        for (auto it = co_await pull->begin(); it != pull->end(); co_await ++it) items.push_back(*it);
        REQUIRE_FALSE(items.empty());
        for (std::size_t i = 0; i + 1 < items.size(); ++i) CHECK(items[i].ok());
        const auto& last = items.back();
        REQUIRE_FALSE(last.ok());
        CHECK(last.err().code == errc::unavailable);
        CHECK(last.err().message.find("127.0.0.1:1") != std::string::npos);
        std::printf("  [pull error] %s\n", last.err().message.c_str());
    }());
    report("pull from an unreachable registry", t0);
}

TEST_CASE_FIXTURE(engine_fixture, "cancellation: a stop request ends a log follow, a wait and an attach") {
    run([&]() -> task<void> {
        auto id_spec = spec({"sleep", "1000"});
        auto id = co_await engine.create(std::move(id_spec));
        REQUIRE(id.ok());
        REQUIRE((co_await engine.start(*id)).ok());

        for (const std::string what : {"follow", "wait", "attach"}) {
            std::stop_source stop;
            boost::asio::steady_timer timer(io, 300ms);
            timer.async_wait([&stop](const boost::system::error_code& ec) {
                if (!ec) stop.request_stop();
            });
            const auto t0 = clock_type::now();
            bool cancelled = false;
            try {
                if (what == "follow") {
                    registry::log_options follow;
                    follow.follow = true;
                    auto logs = co_await engine.logs(*id, follow, stop.get_token());
                    REQUIRE(logs.ok());
                    co_await collect(std::move(*logs));
                    FAIL("the follow ended by itself");
                } else if (what == "wait") {
                    auto w = co_await engine.wait(*id, stop.get_token());
                    FAIL("the wait completed: " << (w.ok() ? std::to_string(*w) : w.err().message));
                } else {
                    auto attached = co_await engine.attach(*id, stop.get_token());
                    REQUIRE(attached.ok());
                    co_await collect(std::move(*attached));
                    FAIL("the attach ended by itself");
                }
            } catch (const registry::operation_cancelled&) {
                cancelled = true;
            }
            CHECK_MESSAGE(cancelled, what);
            CHECK(seconds_since(t0) < 3.0);
            std::printf("  [timing] cancel %-8s after %.3f s\n", what.c_str(), seconds_since(t0));
        }
        // A stop requested before the call: cancelled at once.
        std::stop_source already;
        already.request_stop();
        bool cancelled = false;
        try {
            auto p = co_await engine.ping(already.get_token());
            (void)p;
        } catch (const registry::operation_cancelled&) {
            cancelled = true;
        }
        CHECK(cancelled);
        REQUIRE((co_await engine.remove(*id, true)).ok());
    }());
}

TEST_CASE_FIXTURE(engine_fixture, "a stream dropped mid-follow closes its connection") {
    run([&]() -> task<void> {
        auto id_spec = spec({"sh", "-c", "while true; do echo tick; sleep 0.1; done"});
        auto id = co_await engine.create(std::move(id_spec));
        REQUIRE(id.ok());
        REQUIRE((co_await engine.start(*id)).ok());
        {
            registry::log_options follow;
            follow.follow = true;
            auto logs = co_await engine.logs(*id, follow);
            REQUIRE(logs.ok());
            auto it = co_await logs->begin();
            REQUIRE(it != logs->end());
            REQUIRE((*it).ok());
            CHECK((*it)->bytes == "tick\n");
        }  // dropped between two values
        auto removed = co_await engine.remove(*id, true);
        CHECK_MESSAGE(removed.ok(), removed.err().message);
    }());
}

TEST_CASE("an unreachable engine is unavailable, and the message names its address") {
    boost::asio::io_context io;
    const std::string sock = "/tmp/registry-no-such-dir-" + rt::unique_name("x") + "/podman.sock";
    registryd::docker_engine on_unix(io, endpoint_of("unix://" + sock));
    const std::uint16_t port = rt::free_tcp_port();
    registryd::docker_engine on_tcp(io, endpoint_of("tcp://127.0.0.1:" + std::to_string(port)));
    const auto t0 = clock_type::now();
    rt::run(io, [&]() -> task<void> {
        auto p = co_await on_unix.ping();
        REQUIRE_FALSE(p.ok());
        CHECK(p.err().code == errc::unavailable);
        CHECK(p.err().message.find(sock) != std::string::npos);
        std::printf("  [unreachable] %s\n", p.err().message.c_str());
        registry::container_spec s;
        s.image = rt::test_image;
        auto c = co_await on_unix.create(s);
        REQUIRE_FALSE(c.ok());
        CHECK(c.err().code == errc::unavailable);
        registry::log_options follow;
        follow.follow = true;
        auto l = co_await on_unix.logs("x", follow);
        REQUIRE_FALSE(l.ok());
        CHECK(l.err().code == errc::unavailable);

        auto t = co_await on_tcp.ping();
        REQUIRE_FALSE(t.ok());
        CHECK(t.err().code == errc::unavailable);
        CHECK(t.err().message.find("tcp://127.0.0.1:" + std::to_string(port)) != std::string::npos);
        std::printf("  [unreachable] %s\n", t.err().message.c_str());
    }());
    report("unreachable unix + tcp", t0);
}

TEST_CASE("an engine that does not answer in time is unavailable") {
    // A listening socket nobody accepts on: connect succeeds (backlog), no reply.
    boost::asio::io_context io;
    const std::uint16_t port = rt::free_tcp_port();
    boost::asio::ip::tcp::acceptor silent(io, {boost::asio::ip::make_address("127.0.0.1"), port});
    registryd::docker_engine_options options;
    options.http.request_timeout = 300ms;
    registryd::docker_engine engine(io, endpoint_of("tcp://127.0.0.1:" + std::to_string(port)), options);
    const auto t0 = clock_type::now();
    rt::run(io, [&]() -> task<void> {
        auto p = co_await engine.ping();
        REQUIRE_FALSE(p.ok());
        CHECK(p.err().code == errc::unavailable);
        CHECK(p.err().message.find("timed out") != std::string::npos);
        std::printf("  [timeout] %s\n", p.err().message.c_str());
    }());
    CHECK(seconds_since(t0) < 2.0);
}

TEST_CASE("the client works over TCP") {
    rt::podman_service tcp_podman(rt::podman_service::listen_on::tcp);
    std::printf("  [timing] tcp podman service startup                    %7.3f s\n",
                static_cast<double>(tcp_podman.startup_time().count()) / 1000.0);
    boost::asio::io_context io;
    registryd::docker_engine engine(io, endpoint_of(tcp_podman.uri()));
    const auto t0 = clock_type::now();
    rt::run(io, [&]() -> task<void> {
        auto p = co_await engine.ping();
        REQUIRE_MESSAGE(p.ok(), p.err().message);
        registry::container_spec s;
        s.image = rt::test_image;
        s.command = {"sh", "-c", "echo over tcp; echo to stderr >&2; exit 5"};
        auto id = co_await engine.create(s);
        REQUIRE_MESSAGE(id.ok(), id.err().message);
        auto attached = co_await engine.attach(*id);
        REQUIRE_MESSAGE(attached.ok(), attached.err().message);
        REQUIRE((co_await engine.start(*id)).ok());
        auto o = co_await collect(std::move(*attached));
        CHECK(o.out == "over tcp\n");
        CHECK(o.err == "to stderr\n");
        auto code = co_await engine.wait(*id);
        REQUIRE(code.ok());
        CHECK(*code == 5);
        auto logs = co_await engine.logs(*id, registry::log_options());
        REQUIRE(logs.ok());
        CHECK((co_await collect(std::move(*logs))).out == "over tcp\n");
        REQUIRE((co_await engine.remove(*id, false)).ok());
    }());
    report("tcp: ping+create+attach+start+wait+logs+remove", t0);
}

TEST_CASE_FIXTURE(engine_fixture, "stats: a running container's CPU time and memory, a stopped one has no figures") {
    // Busy for a while, then idle with a 16 MiB file in its writable layer
    // (page cache, charged to its cgroup).
    const std::string id = run([&]() -> task<std::string> {
        auto busy = spec({"sh", "-c", "i=0; while [ $i -lt 200000 ]; do i=$((i+1)); done; "
                                      "dd if=/dev/zero of=/big bs=1048576 count=16 2>/dev/null; sleep 1000"});
        auto made = co_await engine.create(std::move(busy));
        REQUIRE_MESSAGE(made.ok(), made.err().message);
        REQUIRE((co_await engine.start(*made)).ok());
        co_return *made;
    }());
    registry::container_stats s;
    const auto deadline = clock_type::now() + std::chrono::seconds(30);
    // Until the loop is over and the file written: CPU time stops growing.
    for (std::uint64_t last = 0;; last = *s.cpu_ns) {
        std::this_thread::sleep_for(std::chrono::milliseconds(500));
        s = run([&]() -> task<registry::container_stats> {
            auto r = co_await engine.stats(id);
            REQUIRE_MESSAGE(r.ok(), r.err().message);
            co_return *r;
        }());
        REQUIRE(s.cpu_ns);
        if (*s.cpu_ns == last || clock_type::now() > deadline) break;
    }
    std::printf("  [stats] cpu %llu ns, memory %llu bytes, max %s\n", static_cast<unsigned long long>(*s.cpu_ns),
                static_cast<unsigned long long>(s.memory_bytes.value_or(0)),
                s.memory_max_bytes ? std::to_string(*s.memory_max_bytes).c_str() : "absent");
    CHECK(*s.cpu_ns > 50'000'000);  // 200000 shell iterations: well over 50 ms
    REQUIRE(s.memory_bytes);
    CHECK(*s.memory_bytes > (16u << 20));  // the file it wrote is charged to it
    CHECK_FALSE(s.memory_max_bytes);       // Podman 4.3 reports usage and limit only

    run([&]() -> task<void> {
        REQUIRE((co_await engine.stop(id, std::chrono::seconds(0))).ok());
        auto stopped = co_await engine.stats(id);
        REQUIRE_MESSAGE(stopped.ok(), stopped.err().message);
        CHECK(*stopped == registry::container_stats{});  // its cgroup is gone
        REQUIRE((co_await engine.remove(id, true)).ok());
        auto gone = co_await engine.stats(id);
        REQUIRE_FALSE(gone.ok());
        CHECK(gone.err().code == errc::not_found);
    }());
}
