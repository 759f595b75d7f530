// registryd's create queue on a real Podman API service (docs/protocol.md,
// "Queued creates"): a create with queue: true waits behind a full node,
// told its position, and is created when the first container is removed; a
// queued create whose connection closes is not created; one cut short by a
// restart is dropped with a log line.
#include "harness.hpp"
#include "podman_harness.hpp"

#include <doctest/doctest.h>

#include <fstream>
#include <functional>
#include <string>
#include <thread>

namespace {

namespace json = it::json;
namespace rt = registry_test;
using namespace std::chrono_literals;
using it::arr;
using it::num;
using it::str;

std::string config(const std::string& uri) {
    return "containers:\n"
           "  instance_id: it-queue\n"
           "  heartbeat_interval_ms: 200\n"
           "  heartbeat_timeout_ms: 1000\n"
           "  stop_grace_seconds: 1\n"
           "  max_queued: 2\n"
           "  max_queued_per_identity: 0\n"
           "  engines:\n"
           "    - name: p1\n      endpoint: " + uri + "\n      capacity: 1\n";
}

bool eventually(const std::function<bool()>& done, it::ms timeout) {
    const auto deadline = it::steady::now() + it::scaled(timeout);
    while (it::steady::now() < deadline) {
        if (done()) return true;
        std::this_thread::sleep_for(100ms);
    }
    return done();
}

void wait_online(it::ws_client& ws) {
    REQUIRE_MESSAGE(eventually([&] { return str(ws.call("list_nodes"), "/nodes/0/status") == "online"; }, 15s),
                    "engine p1 did not go online");
}

json::object sleeper(bool queue) {
    json::array command;
    command.emplace_back("sleep");
    command.emplace_back("300");
    return {{"image", rt::test_image}, {"command", std::move(command)}, {"ttl_seconds", 120}, {"queue", queue}};
}

// The container_queued event of request `id`.
json::value queued_event(it::ws_client& ws, const std::string& id) {
    for (;;) {
        auto e = ws.next_event(it::scaled(15s));
        if (!e) throw it::failure("no container_queued event for request " + id);
        if (str(*e, "/event") == "container_queued" && str(*e, "/request_id") == id) return *e;
    }
}

double queue_depth(const it::registryd& d) {
    const it::http_response r = it::http_get(d.host(), d.port(), "/metrics");
    REQUIRE(r.status == 200);
    const std::string prefix = "\nregistryd_container_create_queue_depth ";
    const auto at = r.body.find(prefix);
    if (at == std::string::npos) return -1;
    return std::stod(r.body.substr(at + prefix.size()));
}

bool exists(const rt::podman_service& p, const std::string& id) {
    return p.podman({"container", "exists", id}).exit_code == 0;
}

bool log_has(const it::registryd& d, const std::string& needle) {
    std::ifstream in(d.dir() / "registryd.stderr");
    std::string line;
    while (std::getline(in, line)) {
        if (line.find(needle) != std::string::npos) return true;
    }
    return false;
}

TEST_CASE("create queue: a create waits behind a full node and is created when the first container is removed") {
    rt::podman_service p1;
    it::registryd d(config(p1.uri()));
    IT_DIAGNOSE(d);
    it::ws_client ws(d);
    wait_online(ws);

    auto first = ws.call("container_create", sleeper(false), it::scaled(60s));
    const std::string first_id = str(first, "/container/container_id");
    CHECK(str(first, "/container/state") == "running");
    auto refused = ws.request("container_create", sleeper(false), it::scaled(60s));
    CHECK(it::error_code(refused) == "limit_exceeded");

    const std::string waiting = ws.send_request("container_create", sleeper(true));
    auto told = queued_event(ws, waiting);
    const std::string queue_id = str(told, "/data/queue_id");
    CHECK(num(told, "/data/position") == 1);
    CHECK(queue_depth(d) == 1);
    // Nothing is created while it waits.
    ws.pump(it::ms(500));
    CHECK(arr(ws.call("container_list"), "/containers").size() == 1);

    auto removed = ws.call("container_remove", {{"container_id", first_id}, {"force", true}}, it::scaled(60s));
    CHECK(str(removed, "/container/state") == "removed");
    auto answered = ws.wait_response(waiting, it::scaled(60s));
    REQUIRE_MESSAGE(it::has(answered, "/data"), it::dump(answered));
    const std::string second_id = str(answered, "/data/container/container_id");
    CHECK(str(answered, "/data/container/state") == "running");
    CHECK(str(answered, "/data/container/engine") == "p1");
    CHECK(exists(p1, second_id));
    CHECK(!exists(p1, first_id));
    CHECK(queue_depth(d) == 0);
    auto cancel_gone = ws.request("container_cancel_queued", {{"queue_id", queue_id}});
    CHECK(it::error_code(cancel_gone) == "not_found");

    // A queued create whose connection closes leaves the queue and is never created.
    {
        it::ws_client other(d);
        const std::string id = other.send_request("container_create", sleeper(true));
        CHECK(num(queued_event(other, id), "/data/position") == 1);
        CHECK(queue_depth(d) == 1);
        other.abort();
    }
    CHECK(eventually([&] { return queue_depth(d) == 0; }, 10s));
    ws.call("container_remove", {{"container_id", second_id}, {"force", true}}, it::scaled(60s));
    ws.pump(it::ms(1000));
    CHECK(arr(ws.call("container_list"), "/containers").empty());

    // Cancelled by id: answered unavailable, nothing created.
    ws.call("container_create", sleeper(false), it::scaled(60s));
    const std::string third = ws.send_request("container_create", sleeper(true));
    const std::string third_queue = str(queued_event(ws, third), "/data/queue_id");
    CHECK(str(ws.call("container_cancel_queued", {{"queue_id", third_queue}}), "/queue_id") == third_queue);
    auto cancelled = ws.wait_response(third);
    CHECK(it::error_code(cancelled) == "unavailable");
    CHECK(arr(ws.call("container_list"), "/containers").size() == 1);

    // Cut short by a restart: dropped, with a log line saying so.
    const std::string fourth = ws.send_request("container_create", sleeper(true));
    const std::string fourth_queue = str(queued_event(ws, fourth), "/data/queue_id");
    d.kill9();
    d.start();
    CHECK(log_has(d, "\"msg\":\"queued container create dropped\""));
    CHECK(log_has(d, "\"queue_id\":\"" + fourth_queue + "\""));
    CHECK(queue_depth(d) == 0);
}

}  // namespace
