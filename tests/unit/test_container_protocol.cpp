// The container actions and events through protocol::connection, over a
// container_manager on in-memory engines and a fake clock.
#include "protocol_test_support.hpp"

#include <registry/container_manager.hpp>
#include <registry/protocol/containers.hpp>
#include <registry/testing/memory_engine.hpp>

#include <doctest/doctest.h>

#include <memory>
#include <optional>
#include <string>

using namespace registry;
using namespace registry::test;
using namespace std::chrono_literals;

namespace {

bool has(const std::string& text, std::string_view part) { return text.find(part) != std::string::npos; }

struct containers_fixture {
    testing::fake_clock clk;
    testing::memory_store st;
    testing::memory_engine a{"a"};
    registry::registry reg{clk, st};
    std::optional<container_manager> mgr;
    std::optional<protocol::server> srv;
    std::stop_source stop;
    async_scope runner;
    std::optional<client> c;

    explicit containers_fixture(bool with_engine = true) {
        REQUIRE(run_now(reg.open()).ok());
        if (with_engine) {
            container_manager_options o;
            o.instance_id = "reg-1";
            o.max_ttl = 3600s;
            o.presets.emplace("busy", container_preset{"img", {"sh", "-c", "sleep 9"}, {}});
            mgr.emplace(reg, clk, st, std::vector<container_node>{{"a", "mem://a", &a, 2}}, o);
            REQUIRE(run_now(mgr->open()));
            runner.spawn(mgr->run(stop.get_token()));
        }
        srv.emplace(reg, protocol::limits{1 << 16, 4});
        if (mgr) protocol::add_container_actions(*srv, *mgr);
        c.emplace(*srv, 1);
    }
    ~containers_fixture() {
        c.reset();
        stop.request_stop();
        CHECK(runner.active() == 0);
    }
};

const std::string create_params = R"({"image":"img","name":"job-1","command":["sh","-c","echo hi"],"env":{"A":"1"},)"
                                  R"("labels":{"team":"x"},"limits":{"memory_bytes":67108864,"cpus":0.5,"pids":64},)"
                                  R"("network":"none","read_only_rootfs":true,"ttl_seconds":60})";

TEST_CASE("container protocol: create, list, extend, logs, stop, remove") {
    containers_fixture f;
    auto& c = *f.c;
    CHECK(c.ask(req("1", "subscribe", R"({"events":["container_state_changed"],"snapshot":false})")) ==
          R"({"id":"1","type":"response","data":{"subscription":"s1","revision":0}})");
    auto frames = c.send(req("2", "container_create", create_params));
    REQUIRE(frames.size() == 3);  // two events (created, running), then the response
    CHECK(frames[0] ==
          R"({"type":"event","subscription":"s1","event":"container_state_changed","revision":1,"data":{"container":)"
          R"({"lease_id":1,"container_id":"a-c1","name":"job-1","image":"img","engine":"a","state":"created",)"
          R"("ttl_seconds":60,"created_at_ms":1700000000000,"expires_at_ms":1700000060000},)"
          R"("state":"created","reason":""}})");
    CHECK(has(frames[1], R"("state":"running","ttl_seconds":60)"));
    CHECK(has(frames[1], R"("previous_state":"created","state":"running")"));
    CHECK(frames[2] == R"({"id":"2","type":"response","data":{"container":{"lease_id":1,"container_id":"a-c1",)"
                       R"("name":"job-1","image":"img","engine":"a","state":"running","ttl_seconds":60,)"
                       R"("created_at_ms":1700000000000,"expires_at_ms":1700000060000}}})");
    const auto& spec = f.a.containers().at("a-c1").spec;
    CHECK(spec.limits.cpus == 0.5);
    CHECK(spec.limits.memory_bytes == 67108864u);
    CHECK(spec.read_only_rootfs);
    CHECK(spec.env.at("A") == "1");
    CHECK(spec.labels.at("team") == "x");
    CHECK(spec.labels.at("io.registry.instance") == "reg-1");

    CHECK(c.ask(req("3", "container_list", R"({"state":"running"})")) ==
          R"({"id":"3","type":"response","data":{"revision":2,"containers":[{"lease_id":1,"container_id":"a-c1",)"
          R"("name":"job-1","image":"img","engine":"a","state":"running","ttl_seconds":60,)"
          R"("created_at_ms":1700000000000,"expires_at_ms":1700000060000}]}})");
    CHECK(c.ask(req("4", "container_list", R"({"engine":"b"})")) ==
          R"({"id":"4","type":"response","data":{"revision":2,"containers":[]}})");

    f.clk.advance(10s);
    CHECK(c.ask(req("5", "container_extend", R"({"container_id":"a-c1","ttl_seconds":120})")) ==
          R"({"id":"5","type":"response","data":{"lease_id":1,"container_id":"a-c1","ttl_seconds":120,)"
          R"("expires_at_ms":1700000130000}})");

    f.a.write("a-c1", "hi\n");
    f.a.write("a-c1", "bad \xff byte\n", output_stream::err);
    CHECK(c.ask(req("6", "container_logs", R"({"container_id":"a-c1","tail":5})")) ==
          R"({"id":"6","type":"response","data":{"container_id":"a-c1","output":[{"stream":"stdout","data":"hi\n"},)"
          R"({"stream":"stderr","data":"bad )" "\xef\xbf\xbd" R"( byte\n"}]}})");

    frames = c.send(req("7", "container_logs", R"({"container_id":"a-c1","follow":true,"tail":1})"));
    REQUIRE(frames.size() == 2);
    CHECK(frames[0] == R"({"id":"7","type":"response","data":{"subscription":"s2","container_id":"a-c1"}})");
    CHECK(frames[1] == R"({"type":"event","subscription":"s2","event":"container_log","revision":2,"data":)"
                       R"({"container_id":"a-c1","lease_id":1,"stream":"stderr","data":"bad )" "\xef\xbf\xbd" R"( byte\n"}})");
    f.a.write("a-c1", "more\n");
    auto more = c.out.take();
    REQUIRE(more.size() == 1);
    CHECK(has(more[0], R"("stream":"stdout","data":"more\n")"));

    frames = c.send(req("8", "container_stop", R"({"container_id":"a-c1","grace_seconds":1})"));
    // The exit (the state change and the followed stream's end, in either order), then the response.
    REQUIRE(frames.size() == 3);
    const std::string log_end = R"({"type":"event","subscription":"s2","event":"container_log","revision":3,"data":)"
                                R"({"container_id":"a-c1","lease_id":1,"end":true}})";
    CHECK((frames[0] == log_end || frames[1] == log_end));
    CHECK((has(frames[0], R"("state":"exited","exit_code":137)") || has(frames[1], R"("state":"exited","exit_code":137)")));
    CHECK(has(frames[2], R"({"id":"8","type":"response","data":{"container":{"lease_id":1,"container_id":"a-c1")"));
    CHECK(has(frames[2], R"("state":"exited","exit_code":137)"));

    frames = c.send(req("9", "container_remove", R"({"container_id":"a-c1"})"));
    REQUIRE(frames.size() == 2);
    CHECK(has(frames[0], R"("previous_state":"exited","state":"removed","reason":"removed")"));
    CHECK(has(frames[1], R"("state":"removed")"));
    CHECK(f.a.containers().empty());
    CHECK(c.ask(req("10", "container_remove", R"({"container_id":"a-c1"})"), "not_found") ==
          R"({"id":"10","type":"response","error":{"code":"not_found","message":"no managed container 'a-c1'"}})");
}

TEST_CASE("container protocol: container_get, one container in full") {
    containers_fixture f;
    f.a.clk = &f.clk;
    auto& c = *f.c;
    c.send(req("1", "container_create", create_params));
    const std::string running =
        R"({"id":"2","type":"response","data":{"container":{"lease_id":1,"container_id":"a-c1","name":"job-1",)"
        R"("image":"img","engine":"a","state":"running","ttl_seconds":60,"created_at_ms":1700000000000,)"
        R"("expires_at_ms":1700000060000,"started_at_ms":1700000000000,"command":["sh","-c","echo hi"],)"
        R"("limits":{"memory_bytes":67108864,"cpus":0.5,"pids":64},"labels":{"team":"x"}}}})";
    CHECK(c.ask(req("2", "container_get", R"({"container_id":"a-c1"})")) == running);
    // Listings and events keep to the summary: no command, limits or labels.
    CHECK(!has(c.ask(req("3", "container_list", "{}")), "\"command\""));

    f.clk.advance(2500ms);
    f.a.set_error("a-c1", "it broke");
    f.a.exit("a-c1", 3);
    CHECK(c.ask(req("4", "container_get", R"({"container_id":"a-c1"})")) ==
          R"({"id":"4","type":"response","data":{"container":{"lease_id":1,"container_id":"a-c1","name":"job-1",)"
          R"("image":"img","engine":"a","state":"exited","exit_code":3,"ttl_seconds":60,)"
          R"("created_at_ms":1700000000000,"expires_at_ms":1700000060000,"started_at_ms":1700000000000,)"
          R"("finished_at_ms":1700000002500,"error":"it broke","command":["sh","-c","echo hi"],)"
          R"("limits":{"memory_bytes":67108864,"cpus":0.5,"pids":64},"labels":{"team":"x"}}}})");

    CHECK(c.ask(req("5", "container_get", R"({"container_id":"nope"})"), "not_found") ==
          R"({"id":"5","type":"response","error":{"code":"not_found","message":"no managed container 'nope'"}})");
    CHECK(c.ask(req("6", "container_get", "{}"), "invalid_request") ==
          R"({"id":"6","type":"response","error":{"code":"invalid_request","message":"params.container_id: is required"}})");
}

TEST_CASE("container protocol: container_create with a preset, explicit fields overriding it") {
    containers_fixture f;
    auto& c = *f.c;
    auto frames = c.send(req("1", "container_create", R"({"preset":"busy","limits":{"pids":8}})"));
    REQUIRE(frames.size() == 1);
    CHECK(has(frames[0], R"("image":"img")"));
    const auto& spec = f.a.containers().at("a-c1").spec;
    CHECK(spec.image == "img");
    CHECK(spec.command == std::vector<std::string>{"sh", "-c", "sleep 9"});
    CHECK(spec.limits.pids == 8);
    frames = c.send(req("2", "container_create", R"({"preset":"busy","command":["true"]})"));
    REQUIRE(frames.size() == 1);
    CHECK(f.a.containers().at("a-c2").spec.command == std::vector<std::string>{"true"});
}

TEST_CASE("container protocol: expiry events, nodes, pulls") {
    containers_fixture f;
    auto& c = *f.c;
    c.ask(req("1", "subscribe", R"({"events":["lease_expired","container_state_changed"],"snapshot":false})"));
    c.send(req("2", "container_create", R"({"image":"img","ttl_seconds":5})"));
    f.clk.advance(5s);
    auto frames = c.out.take();
    REQUIRE(frames.size() == 3);
    CHECK(has(frames[0], R"("event":"lease_expired","revision":3,"data":{"lease_id":1,"container":{)"));
    CHECK(has(frames[1], R"("state":"exited","exit_code":137)"));
    CHECK(has(frames[2], R"("previous_state":"exited","state":"removed","reason":"lease_expired")"));

    CHECK(c.ask(req("3", "list_nodes")) ==
          R"({"id":"3","type":"response","data":{"nodes":[{"name":"a","endpoint":"mem://a","status":"online",)"
          R"("capacity":2,"running":0,"last_heartbeat_ms":1700000004000}]}})");

    frames = c.send(req("4", "image_pull", R"({"reference":"app:1"})"));
    REQUIRE(frames.size() == 4);
    CHECK(frames[0] == R"({"id":"4","type":"response","data":{"subscription":"s2","reference":"app:1"}})");
    CHECK(frames[1] == R"({"type":"event","subscription":"s2","event":"image_pull_progress","revision":5,"data":)"
                       R"({"engine":"a","reference":"app:1","id":"layer1","status":"Downloading",)"
                       R"("progress":"[==>   ]","current":10,"total":100}})");
    CHECK(frames[3] == R"({"type":"event","subscription":"s2","event":"image_pull_progress","revision":5,"data":)"
                       R"({"engine":"a","reference":"app:1","end":true}})");
    frames = c.send(req("5", "image_pull", R"({"reference":"missing"})"));
    REQUIRE(frames.size() == 2);
    CHECK(frames[1] == R"({"type":"event","subscription":"s3","event":"image_pull_progress","revision":5,"data":)"
                       R"({"engine":"a","reference":"missing","end":true,"error":{"code":"not_found",)"
                       R"("message":"manifest unknown: missing"}}})");
    CHECK(c.ask(req("6", "image_pull", R"({"reference":"x","engine":"zz"})"), "not_found") ==
          R"({"id":"6","type":"response","error":{"code":"not_found","message":"no engine 'zz'"}})");
}

TEST_CASE("container protocol: strict parameters") {
    containers_fixture f;
    auto& c = *f.c;
    auto error_of = [&](std::string_view action, std::string_view params) {
        return c.ask(req("e", action, params), "invalid_request");
    };
    auto message = [](std::string m) {
        return R"({"id":"e","type":"response","error":{"code":"invalid_request","message":")" + m + R"("}})";
    };
    CHECK(error_of("container_create", "{}") == message("params.image: is required"));
    CHECK(error_of("container_create", R"({"image":"a b"})") ==
          message("params.image: must be 1-255 characters without whitespace"));
    CHECK(error_of("container_create", R"({"image":"img","colour":1})") == message("params.colour: unknown field"));
    CHECK(error_of("container_create", R"({"image":"img","command":"ls"})") ==
          message("params.command: must be an array"));
    CHECK(error_of("container_create", R"({"image":"img","name":"-x"})") ==
          message("params.name: must be 1-128 characters of [A-Za-z0-9_.-], starting with a letter or digit"));
    CHECK(error_of("container_create", R"({"image":"img","env":{"A=B":"1"}})") ==
          message("params.env.A=B: a name must be non-empty and without '='"));
    CHECK(error_of("container_create", R"({"image":"img","labels":{"io.registry.lease":"1"}})") ==
          message("params.labels.io.registry.lease: the prefix 'io.registry.' is reserved for the registry"));
    CHECK(error_of("container_create", R"({"image":"img","limits":{"memory_bytes":1}})") ==
          message("params.limits.memory_bytes: must be at least 6291456 (6 MiB)"));
    CHECK(error_of("container_create", R"({"image":"img","limits":{"cpus":0}})") ==
          message("params.limits.cpus: must be > 0 and <= 1024"));
    CHECK(error_of("container_create", R"({"image":"img","limits":{"pids":0}})") ==
          message("params.limits.pids: must be 1-4194304"));
    CHECK(error_of("container_create", R"({"image":"img","network":"host"})") ==
          message("params.network: must be one of none, default"));
    CHECK(error_of("container_create", R"({"image":"img","ttl_seconds":0})") ==
          message("params.ttl_seconds: must be 1-3600"));
    CHECK(error_of("container_create", R"({"image":"img","ttl_seconds":3601})") ==
          message("params.ttl_seconds: must be 1-3600"));
    CHECK(error_of("container_logs", R"({"container_id":"x","tail":-1})") ==
          message("params.tail: must be a non-negative integer"));
    CHECK(error_of("container_stop", R"({"container_id":"x","grace_seconds":301})") ==
          message("params.grace_seconds: must be 0-300"));
    CHECK(error_of("container_remove", R"({"force":true})") == message("params.container_id: is required"));
    CHECK(error_of("container_extend", R"({"container_id":"x","ttl_seconds":"1"})") ==
          message("params.ttl_seconds: must be an integer"));
    CHECK(error_of("container_list", R"({"state":"sleeping"})") ==
          message("params.state: must be one of created, running, exited, removed, lost"));
    CHECK(error_of("list_nodes", R"({"x":1})") == message("params.x: unknown field"));
    CHECK(error_of("container_create", R"({"preset":"nope"})") ==
          message("params.preset: no preset 'nope' (configured: busy)"));
    CHECK(error_of("container_create", R"({"preset":1})") == message("params.preset: must be a string"));
    CHECK(error_of("container_create", R"({"preset":"busy","image":""})") ==
          message("params.image: must be 1-255 characters without whitespace"));
    CHECK(error_of("image_pull", "{}") == message("params.reference: is required"));
    CHECK(f.a.containers().empty());

    CHECK(c.ask(req("n", "container_create", R"({"image":"nope"})"), "not_found") ==
          R"({"id":"n","type":"response","error":{"code":"not_found","message":"no such image: nope"}})");
    CHECK(c.ask(req("n", "container_stop", R"({"container_id":"foreign"})"), "not_found") ==
          R"({"id":"n","type":"response","error":{"code":"not_found","message":"no managed container 'foreign'"}})");
}

TEST_CASE("container protocol: a queued create, told its position, answered once created, cancelled by id or by its connection closing") {
    containers_fixture f;  // node a, capacity 2
    auto& c = *f.c;
    c.ask(req("1", "container_create", R"({"image":"img"})"));
    c.ask(req("2", "container_create", R"({"image":"img"})"));
    CHECK(c.ask(req("3", "container_create", R"({"image":"img","queue":false})"), "limit_exceeded") ==
          R"({"id":"3","type":"response","error":{"code":"limit_exceeded","message":"every online engine is at its capacity"}})");

    started<protocol::outcome> first(c.conn.handle(req("4", "container_create", R"({"image":"img","queue":true})")));
    started<protocol::outcome> second(c.conn.handle(req("5", "container_create", R"({"image":"img","queue":true})")));
    CHECK(!first.done());
    CHECK(!second.done());
    auto frames = c.out.take();
    REQUIRE(frames.size() == 2);
    CHECK(frames[0] == R"({"type":"event","event":"container_queued","request_id":"4","data":{"queue_id":"q1","position":1}})");
    CHECK(frames[1] == R"({"type":"event","event":"container_queued","request_id":"5","data":{"queue_id":"q2","position":2}})");

    // Cancelled: the one behind moves up, the create fails, the cancel succeeds.
    frames = c.send(req("6", "container_cancel_queued", R"({"queue_id":"q1"})"));
    REQUIRE(frames.size() == 3);
    CHECK(frames[0] == R"({"type":"event","event":"container_queued","request_id":"5","data":{"queue_id":"q2","position":1}})");
    CHECK(frames[1] == R"({"id":"4","type":"response","error":{"code":"unavailable","message":"queued container create q1 was cancelled"}})");
    CHECK(frames[2] == R"({"id":"6","type":"response","data":{"queue_id":"q1"}})");
    REQUIRE(first.done());
    CHECK(first.get().code == "unavailable");
    CHECK(c.ask(req("7", "container_cancel_queued", R"({"queue_id":"q1"})"), "not_found") ==
          R"({"id":"7","type":"response","error":{"code":"not_found","message":"no queued container create 'q1'"}})");

    // A slot frees: the queued create is answered with its container, then the removal.
    frames = c.send(req("8", "container_remove", R"({"container_id":"a-c1","force":true})"));
    REQUIRE(frames.size() == 2);
    CHECK(has(frames[0], R"({"id":"5","type":"response","data":{"container":{"lease_id":3,"container_id":"a-c3",)"));
    CHECK(has(frames[0], R"("state":"running")"));
    CHECK(has(frames[1], R"({"id":"8","type":"response","data":{"container":{"lease_id":1,)"));
    REQUIRE(second.done());
    CHECK(second.get().code == "ok");

    // A connection that closes takes its queued create with it.
    auto other = std::make_unique<client>(*f.srv, 2);
    started<protocol::outcome> orphan(other->conn.handle(req("9", "container_create", R"({"image":"img","queue":true})")));
    CHECK(!orphan.done());
    REQUIRE(f.mgr->queued().size() == 1);
    other->conn.close();
    REQUIRE(orphan.done());
    CHECK(orphan.get().code == "unavailable");
    CHECK(f.mgr->queued().empty());
    other.reset();

    CHECK(has(c.ask(req("10", "container_create", R"({"image":"img","queue":"yes"})"), "invalid_request"),
              "params.queue: "));
    CHECK(has(c.ask(req("11", "container_cancel_queued", "{}"), "invalid_request"), "params.queue_id: is required"));
}

TEST_CASE("container protocol: without an engine, every container action is unavailable") {
    containers_fixture f(false);
    const std::string expected =
        R"(","type":"response","error":{"code":"unavailable","message":"no container engine is configured on this server"}})";
    CHECK(f.c->ask(req("1", "container_create", R"({"image":"img"})"), "unavailable") == R"({"id":"1)" + expected);
    CHECK(f.c->ask(req("2", "container_list"), "unavailable") == R"({"id":"2)" + expected);
    CHECK(f.c->ask(req("3", "list_nodes"), "unavailable") == R"({"id":"3)" + expected);
    CHECK(f.c->ask(req("4", "image_pull", R"({"reference":"x"})"), "unavailable") == R"({"id":"4)" + expected);
    CHECK(f.c->ask(req("5", "container_logs", R"({"container_id":"x","follow":true})"), "unavailable") ==
          R"({"id":"5)" + expected);
    CHECK(f.c->ask(req("6", "container_cancel_queued", R"({"queue_id":"q1"})"), "unavailable") == R"({"id":"6)" + expected);
}

}  // namespace
