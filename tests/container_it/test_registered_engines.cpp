// A second real Podman API service that registers itself with registryd as a
// service of kind container_engine: a node while it is registered (durably
// or session-bound), its containers lost but left running when it leaves and
// adopted again when it comes back; malformed declarations and a configured
// engine's name are refused at registration.
#include "harness.hpp"
#include "podman_harness.hpp"

#include <doctest/doctest.h>

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

bool eventually(const std::function<bool()>& done, it::ms timeout) {
    const auto deadline = it::steady::now() + it::scaled(timeout);
    while (it::steady::now() < deadline) {
        if (done()) return true;
        std::this_thread::sleep_for(100ms);
    }
    return done();
}

// The node named so in list_nodes, or null.
json::value node(it::ws_client& ws, const std::string& name) {
    auto nodes = ws.call("list_nodes");
    for (const auto& n : arr(nodes, "/nodes")) {
        if (str(n, "/name") == name) return n;
    }
    return nullptr;
}

bool online(it::ws_client& ws, const std::string& name) {
    auto n = node(ws, name);
    return !n.is_null() && str(n, "/status") == "online";
}

bool running(const rt::podman_service& p, const std::string& id) {
    auto r = p.podman({"inspect", "--format", "{{.State.Running}}", id});
    return r.exit_code == 0 && r.output.starts_with("true");
}

bool listed(it::ws_client& ws, const std::string& id) {
    auto containers = ws.call("container_list");
    for (const auto& c : arr(containers, "/containers")) {
        if (str(c, "/container_id") == id) return true;
    }
    return false;
}

std::uint16_t port_of(const std::string& tcp_uri) {
    return static_cast<std::uint16_t>(std::stoi(tcp_uri.substr(tcp_uri.rfind(':') + 1)));
}

// register's params for an engine at 127.0.0.1:port.
json::object engine_registration(const std::string& id, std::uint16_t port, const std::string& capacity,
                                 bool session_bound) {
    json::object ep{{"name", "engine"}, {"address", "127.0.0.1"}, {"port", port}, {"protocol", "tcp"}};
    json::object service{{"name", "podman"},
                         {"instance_id", id},
                         {"endpoints", json::array{ep}},
                         {"metadata", json::object{{"kind", "container_engine"}, {"capacity", capacity}}}};
    return {{"service", service}, {"ttl_seconds", 30}, {"session_bound", session_bound}};
}

json::value state_event(it::ws_client& ws, const std::string& id, const std::string& state) {
    const auto deadline = it::steady::now() + it::scaled(15s);
    while (it::steady::now() < deadline) {
        auto e = ws.next_event(std::chrono::duration_cast<it::ms>(deadline - it::steady::now()));
        if (!e) break;
        if (str(*e, "/event") == "container_state_changed" && str(*e, "/data/container/container_id") == id &&
            str(*e, "/data/state") == state) {
            return *e;
        }
    }
    throw it::failure("no container_state_changed " + state + " of " + id);
}

TEST_CASE("a Podman registered as a container_engine service is a node until it leaves") {
    rt::podman_service p1;
    rt::podman_service p2(rt::podman_service::listen_on::tcp);
    it::registryd d(
        "registry:\n"
        "  session_grace_seconds: 1\n"
        "containers:\n"
        "  instance_id: it-registered\n"
        "  heartbeat_interval_ms: 200\n"
        "  heartbeat_timeout_ms: 1000\n"
        "  accept_registered_engines: true\n"
        "  engines:\n"
        "    - name: p1\n"
        "      endpoint: " + p1.uri() + "\n"
        "      capacity: 4\n");
    IT_DIAGNOSE(d);
    it::ws_client ws(d);
    REQUIRE(eventually([&] { return online(ws, "p1"); }, 15s));
    ws.call("subscribe", {{"events", json::array{"container_state_changed"}}, {"snapshot", false}});
    const std::uint16_t port = port_of(p2.uri());

    // Malformed, and a configured engine's name: refused, nothing added.
    it::ws_client agent(d);
    auto bad = agent.request("register", engine_registration("p2", port, "lots", false));
    CHECK(it::error_code(bad) == "invalid_request");
    CHECK(str(bad, "/error/message") == "service.metadata.capacity: must be a whole number 1-10000");
    auto taken = agent.request("register", engine_registration("p1", port, "2", false));
    CHECK(it::error_code(taken) == "conflict");
    CHECK(arr(ws.call("list_nodes"), "/nodes").size() == 1);

    auto granted = agent.call("register", engine_registration("p2", port, "2", false));
    CHECK(str(granted, "/instance_id") == "p2");
    REQUIRE(eventually([&] { return online(ws, "p2"); }, 15s));
    auto n = node(ws, "p2");
    CHECK(str(n, "/endpoint") == "tcp://127.0.0.1:" + std::to_string(port));
    CHECK(num(n, "/capacity") == 2);
    CHECK(num(n, "/running") == 0);
    CHECK(it::now_ms() - num(n, "/last_heartbeat_ms") < 5000);

    json::object params{{"image", rt::test_image},
                        {"command", json::array{"sleep", "300"}},
                        {"ttl_seconds", 120},
                        {"engine", "p2"}};
    auto made = ws.call("container_create", params, it::scaled(60s));
    const std::string id = str(made, "/container/container_id");
    CHECK(str(made, "/container/engine") == "p2");
    CHECK(str(made, "/container/state") == "running");
    CHECK(running(p2, id));
    CHECK(p1.podman({"container", "exists", id}).exit_code != 0);
    CHECK(num(node(ws, "p2"), "/running") == 1);
    auto extended = ws.call("container_extend", {{"container_id", id}, {"ttl_seconds", 600}});
    const std::int64_t deadline = num(extended, "/expires_at_ms");
    CHECK(deadline > num(made, "/container/expires_at_ms"));

    // Deregistered: the node leaves, the container is lost to registryd but keeps running.
    agent.call("deregister", {{"instance_id", "p2"}});
    auto lost = state_event(ws, id, "lost");
    CHECK(str(lost, "/data/reason") == "engine left: deregistered");
    CHECK(node(ws, "p2").is_null());
    CHECK(!listed(ws, id));
    CHECK(running(p2, id));
    auto refused = ws.request("container_create", params);
    CHECK(it::error_code(refused) == "not_found");

    // Back, session-bound this time: reconciled, its container adopted with its lease.
    agent.call("register", engine_registration("p2", port, "2", true));
    REQUIRE(eventually([&] { return online(ws, "p2"); }, 15s));
    REQUIRE(eventually([&] { return listed(ws, id); }, 10s));
    auto containers = ws.call("container_list");
    for (const auto& c : arr(containers, "/containers")) {
        if (str(c, "/container_id") != id) continue;
        CHECK(num(c, "/expires_at_ms") == deadline);  // the extension, not the label's deadline
        CHECK(str(c, "/engine") == "p2");
    }

    // Its connection gone, the session-bound lease ends after the grace: the node leaves again.
    agent.close();
    auto lost_again = state_event(ws, id, "lost");
    CHECK(str(lost_again, "/data/reason") == "engine left: lease_expired");
    CHECK(node(ws, "p2").is_null());
    CHECK(running(p2, id));
}

TEST_CASE("a registered engine comes back as a node after a registryd restart, its containers adopted") {
    rt::podman_service p1;
    rt::podman_service p2(rt::podman_service::listen_on::tcp);
    it::registryd d(
        "containers:\n"
        "  instance_id: it-registered-restart\n"
        "  heartbeat_interval_ms: 200\n"
        "  heartbeat_timeout_ms: 1000\n"
        "  accept_registered_engines: true\n"
        "  engines:\n"
        "    - name: p1\n"
        "      endpoint: " + p1.uri() + "\n");
    IT_DIAGNOSE(d);
    std::string id;
    std::int64_t expiry = 0;
    {
        it::ws_client ws(d);
        auto reg = engine_registration("p2", port_of(p2.uri()), "3", false);
        reg["ttl_seconds"] = 600;
        ws.call("register", reg);
        REQUIRE(eventually([&] { return online(ws, "p2"); }, 15s));
        json::object params{{"image", rt::test_image},
                            {"command", json::array{"sleep", "300"}},
                            {"ttl_seconds", 120},
                            {"engine", "p2"}};
        auto made = ws.call("container_create", params, it::scaled(60s));
        id = str(made, "/container/container_id");
        expiry = num(made, "/container/expires_at_ms");
    }
    d.kill9();
    d.start();
    it::ws_client ws(d);
    REQUIRE(eventually([&] { return online(ws, "p2"); }, 15s));
    CHECK(num(node(ws, "p2"), "/capacity") == 3);
    REQUIRE(eventually([&] { return listed(ws, id); }, 10s));
    auto containers = ws.call("container_list");
    REQUIRE(arr(containers, "/containers").size() == 1);
    CHECK(str(containers, "/containers/0/state") == "running");
    CHECK(num(containers, "/containers/0/expires_at_ms") == expiry);
    CHECK(running(p2, id));
}

}  // namespace
