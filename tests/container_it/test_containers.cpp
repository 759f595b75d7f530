// registryd managing containers on real Podman API services: the protocol's
// container actions end to end, leases reaped and extended, a registryd
// killed and restarted while its containers run, an engine that goes away,
// and a cluster of registryd on etcd whose writer dies. Each test starts its own Podman service(s) (podman_harness) and its
// own registryd (integration harness); both clean up everything they made.
#include "cluster_secret.hpp"
#include "engine/engine_http.hpp"
#include "etcd_server.hpp"
#include "harness.hpp"
#include "harness_tls.hpp"
#include "io_driver.hpp"
#include "podman_harness.hpp"


#include <doctest/doctest.h>

#include <fstream>
#include <functional>
#include <string>
#include <thread>
#include <utility>
#include <vector>

namespace {

namespace json = it::json;
namespace rt = registry_test;
using namespace std::chrono_literals;
using it::arr;
using it::num;
using it::str;

struct engine_config {
    std::string name;
    std::string uri;
};

std::string config(const std::string& instance, const std::vector<engine_config>& engines) {
    std::string yaml =
        "containers:\n"
        "  instance_id: " + instance + "\n"
        "  heartbeat_interval_ms: 200\n"
        "  heartbeat_timeout_ms: 1000\n"
        "  stop_grace_seconds: 1\n"
        "  reap_backoff_ms: 200\n"
        "  sweep_interval_ms: 1000\n"
        "  presets:\n"
        "    sleeper: {image: " + std::string(rt::test_image) + ", command: [sleep, \"300\"], limits: {pids: 16, memory_bytes: 32MiB}}\n"
        "  engines:" + std::string(engines.empty() ? " []" : "") + "\n";
    for (const auto& e : engines) {
        yaml += "    - name: " + e.name + "\n      endpoint: " + e.uri + "\n      capacity: 4\n";
    }
    return yaml;
}

bool exists(const rt::podman_service& p, const std::string& id) {
    return p.podman({"container", "exists", id}).exit_code == 0;
}

std::string inspect(const rt::podman_service& p, const std::string& id, const std::string& format) {
    auto r = p.podman({"inspect", "--format", format, id});
    REQUIRE_MESSAGE(r.exit_code == 0, r.output);
    while (!r.output.empty() && (r.output.back() == '\n' || r.output.back() == '\r')) r.output.pop_back();
    return r.output;
}

// Polls `done` every 100 ms until it holds or `timeout` passes.
bool eventually(const std::function<bool()>& done, it::ms timeout) {
    const auto deadline = it::steady::now() + it::scaled(timeout);
    while (it::steady::now() < deadline) {
        if (done()) return true;
        std::this_thread::sleep_for(100ms);
    }
    return done();
}

void wait_online(it::ws_client& ws, const std::string& node, bool online = true) {
    const bool reached = eventually(
        [&] {
            auto nodes = ws.call("list_nodes");
            for (const auto& n : arr(nodes, "/nodes")) {
                if (str(n, "/name") == node) return (str(n, "/status") == "online") == online;
            }
            return false;
        },
        15s);
    REQUIRE_MESSAGE(reached, "engine " << node << " did not go " << (online ? "online" : "offline"));
}

// Every event the client received, kept, so a test can look back as well as wait.
struct event_log {
    it::ws_client& ws;
    std::vector<json::value> seen;

    json::value wait_for(const std::function<bool(const json::value&)>& match, it::ms timeout,
                         const std::string& what) {
        for (const auto& e : seen) {
            if (match(e)) return e;
        }
        const auto deadline = it::steady::now() + it::scaled(timeout);
        while (it::steady::now() < deadline) {
            auto e = ws.next_event(std::chrono::duration_cast<it::ms>(deadline - it::steady::now()));
            if (!e) break;
            seen.push_back(*e);
            if (match(*e)) return *e;
        }
        std::string all;
        for (const auto& e : seen) all += it::dump(e) + "\n";
        throw it::failure("no " + what + " within " + std::to_string(timeout.count()) + " ms; events:\n" + all);
    }

    json::value state(const std::string& id, const std::string& state, it::ms timeout = 15s) {
        return wait_for(
            [&](const json::value& e) {
                return str(e, "/event") == "container_state_changed" &&
                       str(e, "/data/container/container_id") == id && str(e, "/data/state") == state;
            },
            timeout, "container_state_changed " + state + " of " + id);
    }
};

// The JSON log line registryd wrote when it reaped `id`, if it has.
bool reap_log_line(const it::registryd& d, const std::string& id, json::value& out) {
    std::ifstream in(d.dir() / "registryd.stderr");
    std::string text;
    while (std::getline(in, text)) {
        if (text.find("\"container reaped\"") == std::string::npos || text.find(id) == std::string::npos) continue;
        out = it::parse(text);
        return str(out, "/container_id") == id;
    }
    return false;
}

json::array strings(std::initializer_list<const char*> items) {
    json::array a;
    for (const char* s : items) a.emplace_back(s);
    return a;
}

json::value create(it::ws_client& ws, json::array command, int ttl_seconds, const char* engine = nullptr) {
    json::object params{{"image", rt::test_image}, {"command", std::move(command)}, {"ttl_seconds", ttl_seconds}};
    if (engine) params["engine"] = engine;
    return ws.call("container_create", std::move(params), it::scaled(60s));
}

void subscribe_containers(it::ws_client& ws) {
    ws.call("subscribe", {{"events", strings({"container_state_changed", "lease_expired", "container_reap_failed"})},
                          {"snapshot", false}});
}

TEST_CASE("create, follow the logs, see the exit code, remove") {
    rt::podman_service p1;
    it::registryd d(config("it-logs", {{"p1", p1.uri()}}));
    IT_DIAGNOSE(d);
    it::ws_client ws(d);
    wait_online(ws, "p1");
    subscribe_containers(ws);
    event_log events{ws, {}};

    auto made = create(ws, strings({"sh", "-c", "echo hello; sleep 2; echo world >&2; exit 3"}), 60);
    const std::string id = str(made, "/container/container_id");
    CHECK(str(made, "/container/state") == "running");
    CHECK(str(made, "/container/engine") == "p1");
    CHECK(str(made, "/container/image") == rt::test_image);
    const std::int64_t expires = num(made, "/container/expires_at_ms");
    CHECK(expires - num(made, "/container/created_at_ms") == 60000);
    events.state(id, "created");
    events.state(id, "running");
    // The labels that make it recognisably ours.
    CHECK(inspect(p1, id, "{{index .Config.Labels \"io.registry.instance\"}}") == "it-logs");
    CHECK(inspect(p1, id, "{{index .Config.Labels \"io.registry.lease\"}}") ==
          std::to_string(num(made, "/container/lease_id")));
    CHECK(inspect(p1, id, "{{index .Config.Labels \"io.registry.expires_at_ms\"}}") == std::to_string(expires));

    auto follow = ws.call("container_logs", {{"container_id", id}, {"follow", true}});
    const std::string sub = str(follow, "/subscription");
    std::string out, err;
    events.wait_for(
        [&](const json::value& e) {
            if (str(e, "/event") != "container_log" || str(e, "/subscription") != sub) return false;
            if (it::has(e, "/data/end")) return true;
            (str(e, "/data/stream") == "stdout" ? out : err) += str(e, "/data/data");
            return false;
        },
        20s, "the end of the log stream");
    CHECK(out == "hello\n");
    CHECK(err == "world\n");

    auto exited = events.state(id, "exited");
    CHECK(num(exited, "/data/container/exit_code") == 3);
    CHECK(str(exited, "/data/previous_state") == "running");

    auto tail = ws.call("container_logs", {{"container_id", id}, {"tail", 1}});
    REQUIRE(arr(tail, "/output").size() == 1);
    CHECK(str(tail, "/output/0/data") == "world\n");

    auto removed = ws.call("container_remove", {{"container_id", id}});
    CHECK(str(removed, "/container/state") == "removed");
    events.state(id, "removed");
    CHECK(!exists(p1, id));
    CHECK(arr(ws.call("container_list"), "/containers").empty());

    // Only managed containers can be addressed.
    auto other = p1.podman({"create", rt::test_image, "sleep", "1"});
    REQUIRE(other.exit_code == 0);
    std::string foreign = other.output.substr(0, other.output.find('\n'));
    auto refused = ws.request("container_remove", {{"container_id", foreign}});
    CHECK(it::error_code(refused) == "not_found");
    CHECK(exists(p1, foreign));
}

TEST_CASE("container_get: the engine's start and finish times, exit code, limits and labels, across a restart, and presets") {
    rt::podman_service p1;
    it::registryd d(config("it-get", {{"p1", p1.uri()}}));
    IT_DIAGNOSE(d);
    json::object params{{"image", rt::test_image},
                        {"name", "it-get"},
                        {"command", strings({"sh", "-c", "sleep 1; exit 3"})},
                        {"labels", {{"team", "core"}}},
                        {"limits", {{"memory_bytes", 64 << 20}, {"cpus", 0.5}, {"pids", 32}}},
                        {"ttl_seconds", 120}};
    const std::int64_t before = it::now_ms();
    std::string id;
    json::value exited;
    {
        it::ws_client ws(d);
        wait_online(ws, "p1");
        auto made = ws.call("container_create", params, it::scaled(60s));
        id = str(made, "/container/container_id");
        CHECK(num(made, "/container/started_at_ms") >= before - 1000);
        CHECK(!it::has(made, "/container/finished_at_ms"));
        REQUIRE(eventually([&] { return str(ws.call("container_get", {{"container_id", id}}), "/container/state") == "exited"; },
                           20s));
        exited = ws.call("container_get", {{"container_id", id}});
    }
    CHECK(num(exited, "/container/exit_code") == 3);
    CHECK(str(exited, "/container/name") == "it-get");
    CHECK(str(exited, "/container/engine") == "p1");
    CHECK(str(exited, "/container/image") == rt::test_image);
    CHECK(it::dump(exited.at_pointer("/container/command")) == R"(["sh","-c","sleep 1; exit 3"])");
    CHECK(it::dump(exited.at_pointer("/container/labels")) == R"({"team":"core"})");
    CHECK(num(exited, "/container/limits/memory_bytes") == 67108864);
    CHECK(exited.at_pointer("/container/limits/cpus").to_number<double>() == 0.5);
    CHECK(num(exited, "/container/limits/pids") == 32);
    CHECK(!it::has(exited, "/container/error"));
    // The engine's own times, to the millisecond of what Podman reports.
    const std::int64_t started = num(exited, "/container/started_at_ms");
    const std::int64_t finished = num(exited, "/container/finished_at_ms");
    CHECK(finished - started >= 900);
    CHECK(finished <= it::now_ms());
    CHECK(inspect(p1, id, "{{.State.StartedAt.UnixMilli}}") == std::to_string(started));
    CHECK(inspect(p1, id, "{{.State.FinishedAt.UnixMilli}}") == std::to_string(finished));

    // Kept in the store: a registryd killed and started again has them all.
    d.kill9();
    d.start();
    it::ws_client ws(d);
    wait_online(ws, "p1");
    auto again = ws.call("container_get", {{"container_id", id}});
    CHECK(it::dump(again) == it::dump(exited));

    auto refused = ws.request("container_get", {{"container_id", "nope"}});
    CHECK(it::error_code(refused) == "not_found");
    ws.call("container_remove", {{"container_id", id}});

    // A preset of the configuration, with a limit overridden.
    auto preset = ws.call("container_create", {{"preset", "sleeper"}, {"limits", {{"pids", 8}}}, {"ttl_seconds", 30}},
                          it::scaled(60s));
    const std::string preset_id = str(preset, "/container/container_id");
    CHECK(str(preset, "/container/image") == rt::test_image);
    CHECK(inspect(p1, preset_id, "{{json .Config.Cmd}}") == R"(["sleep","300"])");
    CHECK(inspect(p1, preset_id, "{{.HostConfig.PidsLimit}}") == "8");
    CHECK(inspect(p1, preset_id, "{{.HostConfig.Memory}}") == std::to_string(32 << 20));
    auto got = ws.call("container_get", {{"container_id", preset_id}});
    CHECK(it::dump(got.at_pointer("/container/command")) == R"(["sleep","300"])");
    auto unknown = ws.request("container_create", {{"preset", "ubuntu"}});
    CHECK(it::error_code(unknown) == "invalid_request");
    CHECK(str(unknown, "/error/message") == "params.preset: no preset 'ubuntu' (configured: sleeper)");
    ws.call("container_remove", {{"container_id", preset_id}, {"force", true}});
}

TEST_CASE("an expired lease is reaped, an extended one survives") {
    rt::podman_service p1;
    it::registryd d(config("it-reap", {{"p1", p1.uri()}}));
    IT_DIAGNOSE(d);
    it::ws_client ws(d);
    wait_online(ws, "p1");
    subscribe_containers(ws);
    event_log events{ws, {}};

    // The one to extend first, with room for a slow create on a loaded
    // machine: its lease must not run out before the extend arrives.
    auto kept = create(ws, strings({"sleep", "300"}), 5);
    const std::string kept_id = str(kept, "/container/container_id");
    auto extended = ws.call("container_extend", {{"container_id", kept_id}, {"ttl_seconds", 60}});
    CHECK(num(extended, "/expires_at_ms") >= it::now_ms() + 59000);
    auto doomed = create(ws, strings({"sleep", "300"}), 2);
    const std::string doomed_id = str(doomed, "/container/container_id");

    auto expired = events.wait_for(
        [&](const json::value& e) {
            return str(e, "/event") == "lease_expired" && str(e, "/data/container/container_id") == doomed_id;
        },
        10s, "lease_expired");
    CHECK(num(expired, "/data/lease_id") == num(doomed, "/container/lease_id"));
    CHECK(it::now_ms() >= num(doomed, "/container/expires_at_ms"));
    auto reaped = events.state(doomed_id, "removed");
    CHECK(str(reaped, "/data/reason") == "lease_expired");
    CHECK(!exists(p1, doomed_id));
    // Besides its events, the reaping left an info line in registryd's log.
    json::value line;
    CHECK(eventually([&] { return reap_log_line(d, doomed_id, line); }, 5s));
    CHECK(str(line, "/level") == "info");
    CHECK(str(line, "/msg") == "container reaped");
    CHECK(str(line, "/action") == "reap");
    CHECK(str(line, "/status") == "removed");
    CHECK(num(line, "/timestamp") >= num(doomed, "/container/expires_at_ms"));
    CHECK(num(line, "/timestamp") <= it::now_ms());
    CHECK(num(line, "/lease_id") == num(doomed, "/container/lease_id"));
    CHECK(str(line, "/engine") == "p1");

    // Well past its first deadline, the extended one still runs.
    const std::int64_t past_first_deadline = num(kept, "/container/expires_at_ms") + 1500;
    if (it::now_ms() < past_first_deadline) std::this_thread::sleep_for(it::ms(past_first_deadline - it::now_ms()));
    CHECK(inspect(p1, kept_id, "{{.State.Running}}") == "true");
    auto listed = ws.call("container_list");
    REQUIRE(arr(listed, "/containers").size() == 1);
    CHECK(str(listed, "/containers/0/container_id") == kept_id);
    CHECK(num(listed, "/containers/0/expires_at_ms") == num(extended, "/expires_at_ms"));
    for (const auto& e : events.seen) CHECK(str(e, "/event") != "container_reap_failed");
}

TEST_CASE("registryd killed and restarted while containers run: adopted, then reaped on time") {
    rt::podman_service p1;
    it::registryd d(config("it-restart", {{"p1", p1.uri()}}));
    IT_DIAGNOSE(d);
    std::string short_id, long_id;
    std::int64_t long_expiry = 0;
    std::int64_t short_expiry = 0;
    {
        it::ws_client ws(d);
        wait_online(ws, "p1");
        auto short_lived = create(ws, strings({"sleep", "300"}), 3);
        short_id = str(short_lived, "/container/container_id");
        short_expiry = num(short_lived, "/container/expires_at_ms");
        auto long_lived = create(ws, strings({"sleep", "300"}), 25);
        long_id = str(long_lived, "/container/container_id");
        long_expiry = num(long_lived, "/container/expires_at_ms");
    }
    d.kill9();
    // The short lease runs out while registryd is down.
    std::this_thread::sleep_for(it::ms(short_expiry - it::now_ms() + 1000));
    REQUIRE(exists(p1, short_id));
    d.start();
    it::ws_client ws(d);
    CHECK(eventually([&] { return !exists(p1, short_id); }, 10s));
    REQUIRE(exists(p1, long_id));
    CHECK(inspect(p1, long_id, "{{.State.Running}}") == "true");
    wait_online(ws, "p1");
    auto listed = ws.call("container_list");
    REQUIRE(arr(listed, "/containers").size() == 1);
    CHECK(str(listed, "/containers/0/container_id") == long_id);
    CHECK(str(listed, "/containers/0/state") == "running");
    CHECK(num(listed, "/containers/0/expires_at_ms") == long_expiry);

    CHECK(it::now_ms() < long_expiry - 1000);
    CHECK(eventually([&] { return !exists(p1, long_id); }, 40s));
    CHECK(it::now_ms() >= long_expiry);
    CHECK(arr(ws.call("container_list"), "/containers").empty());
}

TEST_CASE("an engine stopped mid-run: its containers are lost, new work goes to the other") {
    rt::podman_service p1;
    rt::podman_service p2;
    it::registryd d(config("it-nodes", {{"p1", p1.uri()}, {"p2", p2.uri()}}));
    IT_DIAGNOSE(d);
    it::ws_client ws(d);
    wait_online(ws, "p1");
    wait_online(ws, "p2");
    subscribe_containers(ws);
    event_log events{ws, {}};

    auto first = create(ws, strings({"sleep", "300"}), 120);
    auto second = create(ws, strings({"sleep", "300"}), 120);
    CHECK(str(first, "/container/engine") == "p1");
    CHECK(str(second, "/container/engine") == "p2");  // the lower load
    const std::string lost_id = str(second, "/container/container_id");

    auto nodes = ws.call("list_nodes");
    REQUIRE(arr(nodes, "/nodes").size() == 2);
    CHECK(str(nodes, "/nodes/1/name") == "p2");
    CHECK(num(nodes, "/nodes/1/running") == 1);
    CHECK(num(nodes, "/nodes/1/capacity") == 4);
    CHECK(it::now_ms() - num(nodes, "/nodes/1/last_heartbeat_ms") < 5000);

    p2.stop_service();
    auto lost = events.state(lost_id, "lost", 10s);
    CHECK(str(lost, "/data/previous_state") == "running");
    wait_online(ws, "p2", false);

    auto third = create(ws, strings({"sleep", "300"}), 120);
    CHECK(str(third, "/container/engine") == "p1");
    auto refused = ws.request("container_create", {{"image", rt::test_image}, {"engine", "p2"}});
    CHECK(it::error_code(refused) == "unavailable");
    auto listed = ws.call("container_list");
    CHECK(arr(listed, "/containers").size() == 2);
    for (const auto& c : arr(listed, "/containers")) CHECK(str(c, "/engine") == "p1");
}

// The value of the sample line `name` (labels as written) on /metrics; -1 when absent.
double scrape(const it::registryd& d, const std::string& name) {
    const it::http_response r = it::http_get(d.host(), d.port(), "/metrics");
    REQUIRE(r.status == 200);
    const std::string prefix = "\n" + name + " ";
    const auto at = r.body.find(prefix);
    if (at == std::string::npos) return -1;
    return std::stod(r.body.substr(at + prefix.size()));
}

// The first line of registryd's log with this "msg" that contains `needle`.
bool log_line(const it::registryd& d, const std::string& msg, const std::string& needle, json::value& out) {
    std::ifstream in(d.dir() / "registryd.stderr");
    std::string text;
    while (std::getline(in, text)) {
        if (text.find("\"msg\":\"" + msg + "\"") == std::string::npos || text.find(needle) == std::string::npos)
            continue;
        out = it::parse(text);
        return true;
    }
    return false;
}

TEST_CASE("operability: containers by state and reaps on /metrics, an engine online and offline in the log") {
    rt::podman_service p1;
    it::registryd d(config("it-ops", {{"p1", p1.uri()}}));
    IT_DIAGNOSE(d);
    it::ws_client ws(d);
    wait_online(ws, "p1");
    json::value online;
    CHECK(eventually([&] { return log_line(d, "container engine online", "\"engine\":\"p1\"", online); }, 5s));
    CHECK(str(online, "/level") == "info");
    CHECK(scrape(d, "registryd_containers{state=\"running\"}") == 0);
    CHECK(scrape(d, "registryd_container_reaps_total") == 0);

    auto doomed = create(ws, strings({"sleep", "300"}), 4);
    const std::string doomed_id = str(doomed, "/container/container_id");
    CHECK(scrape(d, "registryd_containers{state=\"running\"}") == 1);
    CHECK(eventually([&] { return scrape(d, "registryd_container_reaps_total") == 1; }, 15s));
    CHECK(scrape(d, "registryd_containers{state=\"running\"}") == 0);
    CHECK(scrape(d, "registryd_container_reap_failures_total") == 0);
    json::value expired;
    CHECK(log_line(d, "container lease expired", doomed_id, expired));
    CHECK(str(expired, "/engine") == "p1");
    CHECK(num(expired, "/lease_id") == num(doomed, "/container/lease_id"));

    p1.stop_service();
    wait_online(ws, "p1", false);
    json::value offline;
    CHECK(eventually([&] { return log_line(d, "container engine offline", "\"engine\":\"p1\"", offline); }, 5s));
    CHECK(str(offline, "/level") == "info");
    CHECK(str(offline, "/reason").rfind("engine offline: ", 0) == 0);
}

TEST_CASE("container usage: container_get samples a running container, its stop's event and record keep the last figures") {
    rt::podman_service p1;
    it::registryd d(config("it-usage", {{"p1", p1.uri()}}));
    IT_DIAGNOSE(d);
    it::ws_client ws(d);
    wait_online(ws, "p1");
    ws.call("subscribe", {});
    auto made = ws.call("container_create",
                        {{"image", rt::test_image},
                         {"command", strings({"sh", "-c", "i=0; while [ $i -lt 200000 ]; do i=$((i+1)); done; sleep 300"})},
                         {"ttl_seconds", 120}},
                        it::scaled(60s));
    const std::string id = str(made, "/container/container_id");
    // The busy loop takes a few hundred ms of CPU: container_get sees it grow.
    std::int64_t cpu = 0;
    REQUIRE(eventually([&] {
        const auto got = ws.call("container_get", {{"container_id", id}});
        if (!it::has(got, "/container/usage/cpu_ms")) return false;
        cpu = num(got, "/container/usage/cpu_ms");
        return cpu >= 100;
    }, 20s));
    CHECK(num(ws.call("container_get", {{"container_id", id}}), "/container/usage/memory_peak_bytes") > 0);

    auto stopped = ws.call("container_stop", {{"container_id", id}, {"grace_seconds", 0}}, it::scaled(30s));
    INFO(it::dump(stopped));
    CHECK(str(stopped, "/container/state") == "exited");
    CHECK(num(stopped, "/container/usage/cpu_ms") >= cpu);
    // The exited event carries them.
    bool seen = false;
    const auto deadline = it::steady::now() + it::scaled(10s);
    while (!seen && it::steady::now() < deadline) {
        auto e = ws.next_event(std::chrono::duration_cast<it::ms>(deadline - it::steady::now()));
        if (!e) break;
        if (str(*e, "/event") == "container_state_changed" && str(*e, "/data/container/state") == "exited") {
            CHECK(num(*e, "/data/container/usage/cpu_ms") >= cpu);
            seen = true;
        }
    }
    CHECK(seen);
    ws.call("container_remove", {{"container_id", id}});
}

}  // namespace

// Several registryd on one etcd (docs/protocol.md, "Several registryd"): the
// writer runs the containers, on the engines every registryd of the cluster
// is configured with, and keeps their records in etcd.
TEST_CASE("several registryd: a container created through a standby runs under the writer, every registryd lists it, and after a kill -9 of the writer the standby taking over adopts it and reaps it on time") {
    rt::podman_service p1;
    it::etcd_server etcd;
    const std::string cfg = config("it-cluster", {{"p1", p1.uri()}}) +
                            "store:\n  kind: etcd\n  etcd:\n    endpoints: [\"" + etcd.client_url() +
                            "\"]\n    prefix: /containers/\n    request_timeout_ms: 2000\n    writer_lease_ttl_seconds: 2\n";
    it::registryd a(cfg);
    IT_DIAGNOSE(a);
    it::registryd b(cfg, false);
    IT_DIAGNOSE(b);
    b.spawn();
    b.wait_ready();
    REQUIRE(eventually([&] { return b.diagnostics(100000).find("://127.0.0.1:" + std::to_string(a.port()) + "/") != std::string::npos; }, 5s));

    std::string id;
    std::int64_t expiry = 0;
    {
        it::ws_client sub(b);
        subscribe_containers(sub);
        event_log events{sub, {}};
        it::ws_client on_b(b);
        wait_online(on_b, "p1");  // list_nodes, relayed to the writer
        const json::value created = create(on_b, strings({"sleep", "300"}), 12);
        id = str(created, "/container/container_id");
        expiry = num(created, "/container/expires_at_ms");
        CHECK(events.state(id, "running").is_object());  // the writer's event, on the standby's subscription
        const json::value listed = on_b.call("container_list");
        REQUIRE(arr(listed, "/containers").size() == 1);
        CHECK(str(listed, "/containers/0/container_id") == id);
        CHECK(str(listed, "/containers/0/engine") == "p1");
    }
    a.kill9();
    b.wait_writer(15s);
    it::ws_client ws(b);
    wait_online(ws, "p1");
    // Adopted from its record in etcd: the same lease, the same deadline.
    const json::value listed = ws.call("container_list");
    REQUIRE(arr(listed, "/containers").size() == 1);
    CHECK(str(listed, "/containers/0/container_id") == id);
    CHECK(str(listed, "/containers/0/state") == "running");
    CHECK(num(listed, "/containers/0/expires_at_ms") == expiry);
    REQUIRE(exists(p1, id));
    CHECK(eventually([&] { return !exists(p1, id); }, 30s));
    CHECK(it::now_ms() >= expiry);
}

// Several registryd on one etcd, each with engines only it may reach
// (docs/protocol.md, "Engines of the cluster"): a standby offers the writer
// its engine, and the writer runs containers on it through the standby.
namespace {

std::string member_config(const std::string& member, const std::vector<engine_config>& engines,
                          const it::etcd_server& etcd) {
    return config("it-members", engines) + "store:\n  kind: etcd\n  etcd:\n    endpoints: [\"" + etcd.client_url() +
           "\"]\n    prefix: /members/\n    request_timeout_ms: 2000\n    writer_lease_ttl_seconds: 2\n    member: " +
           member + "\n";
}

// A request through `member`'s engine tunnel, by registryd's own engine
// client (cluster/engine_offer.hpp), with `authorization` as its credential.
registry::result<registryd::http_response> through_tunnel(const it::registryd& member, const std::string& engine,
                                                          const std::string& authorization, std::string target) {
    it::io_loop l;
    registryd::engine_endpoint where;
    where.type = registryd::engine_endpoint::kind::tcp;
    where.host = member.host();
    where.port = member.port();
    registryd::http_client_options o;
    o.tunnel = registryd::http_client_options::tunnel_options{"/v1/cluster/engines/" + engine,
                                                              "registry-engine-tunnel", authorization};
    registryd::engine_http_client client(l.io, where, o);
    return l.await(client.request(registryd::http_request{"GET", std::move(target), {}, {}, false}), 20s);
}

}  // namespace

TEST_CASE("engines of the cluster: the writer runs containers on the engine a standby offers, through the standby, loses them when the standby dies and adopts them when it comes back under its name") {
    rt::podman_service p1;
    it::etcd_server etcd;
    it::registryd a(member_config("a", {}, etcd));  // the writer: no engine of its own
    IT_DIAGNOSE(a);
    it::registryd b(member_config("b", {{"p1", p1.uri()}}, etcd), false);
    IT_DIAGNOSE(b);
    b.keep_port_across_restarts();
    b.spawn();
    b.wait_ready();

    it::ws_client on_a(a);
    wait_online(on_a, "p1");
    const std::string b_url = "ws://127.0.0.1:" + std::to_string(b.port()) + "/";
    {
        const json::value nodes = on_a.call("list_nodes");
        REQUIRE(arr(nodes, "/nodes").size() == 1);
        CHECK(str(nodes, "/nodes/0/endpoint") == "member b at " + b_url);
    }
    subscribe_containers(on_a);
    event_log events{on_a, {}};

    // Made through the writer and through the standby (relayed to the
    // writer): both run on p1, reached through b.
    const json::value first = create(on_a, strings({"sh", "-c", "echo through b; sleep 300"}), 120);
    const std::string id1 = str(first, "/container/container_id");
    CHECK(str(first, "/container/engine") == "p1");
    CHECK(str(first, "/container/state") == "running");
    std::string id2;
    {
        it::ws_client on_b(b);
        const json::value second = create(on_b, strings({"sleep", "300"}), 120);
        id2 = str(second, "/container/container_id");
        CHECK(arr(on_b.call("container_list"), "/containers").size() == 2);
    }
    REQUIRE(exists(p1, id1));
    REQUIRE(exists(p1, id2));
    CHECK(inspect(p1, id1, "{{index .Config.Labels \"io.registry.instance\"}}") == "it-members");
    // A stream through the tunnel: the container's output.
    CHECK(eventually(
        [&] {
            const json::value out = on_a.call("container_logs", {{"container_id", id1}, {"tail", 1}});
            return !arr(out, "/output").empty() && str(out, "/output/0/data") == "through b\n";
        },
        10s));
    const std::int64_t expiry = num(first, "/container/expires_at_ms");

    // b dies: its record's lease runs out, the writer's node leaves, its
    // containers are lost (and left running on the engine).
    b.kill9();
    const json::value lost = events.state(id1, "lost", 20s);
    // Lost when the writer cannot reach the engine through b any more, or
    // when b's record is gone, whichever comes first.
    CHECK(str(lost, "/data/reason").find("member b") != std::string::npos);
    events.state(id2, "lost", 5s);
    CHECK(exists(p1, id1));

    // b comes back under the same name: the node is back and the containers
    // are adopted with their leases.
    b.spawn();
    b.wait_ready();
    wait_online(on_a, "p1");
    CHECK(eventually(
        [&] {
            const json::value listed = on_a.call("container_list");
            if (arr(listed, "/containers").size() != 2) return false;
            for (const auto& c : arr(listed, "/containers")) {
                if (str(c, "/state") != "running") return false;
            }
            return true;
        },
        20s));
    const json::value got = on_a.call("container_get", {{"container_id", id1}});
    CHECK(num(got, "/container/expires_at_ms") == expiry);

    // Removed through the writer, on b's engine.
    on_a.call("container_remove", {{"container_id", id1}, {"force", true}});
    on_a.call("container_remove", {{"container_id", id2}, {"force", true}});
    CHECK(!exists(p1, id1));
    CHECK(!exists(p1, id2));
}

TEST_CASE("engines of the cluster: an engine tunnel needs the cluster's secret and an engine the member offers") {
    rt::podman_service p1;
    it::etcd_server etcd;
    it::registryd a(member_config("a", {}, etcd));
    IT_DIAGNOSE(a);
    it::registryd b(member_config("b", {{"p1", p1.uri()}}, etcd), false);
    IT_DIAGNOSE(b);
    b.spawn();
    b.wait_ready();
    const std::string secret = it::cluster_secret(etcd, "/members/");
    CHECK(secret.size() == 64);
    const std::string proof = "Cluster " + secret;

    // The engine's own answer, through b.
    auto ping = through_tunnel(b, "p1", proof, "/v1.41/_ping");
    REQUIRE_MESSAGE(ping.ok(), ping.err().message);
    CHECK(ping->status == 200);
    CHECK(ping->body == "OK");

    auto wrong = through_tunnel(b, "p1", "Cluster " + std::string(64, '0'), "/v1.41/_ping");
    REQUIRE(!wrong.ok());
    CHECK(wrong.err().message.find("upgrade refused: 401: an engine tunnel needs the cluster's secret") !=
          std::string::npos);
    auto bearer = through_tunnel(b, "p1", "Bearer " + secret, "/v1.41/_ping");
    REQUIRE(!bearer.ok());
    CHECK(bearer.err().message.find("upgrade refused: 401") != std::string::npos);
    auto unknown = through_tunnel(b, "p2", proof, "/v1.41/_ping");
    REQUIRE(!unknown.ok());
    CHECK(unknown.err().message.find("upgrade refused: 404: this registryd offers no container engine named 'p2'") !=
          std::string::npos);
    // The writer offers nothing (it uses the others' engines).
    auto writer = through_tunnel(a, "p1", proof, "/v1.41/_ping");
    REQUIRE(!writer.ok());
    CHECK(writer.err().message.find("upgrade refused: 404: this registryd offers no container engines") !=
          std::string::npos);
}

TEST_CASE("engines of the cluster: over TLS the writer reaches the engine through the standby's wss:// listener, verified with relay_ca_file") {
    rt::podman_service p1;
    it::etcd_server etcd;
    const it::test_pki pki;
    const auto server = pki.server();
    const std::string tls = "tls:\n  cert_file: " + server.cert.string() + "\n  key_file: " + server.key.string() + "\n";
    const std::string trust = "    relay_ca_file: " + pki.ca_cert().string() + "\n";
    // The REPL attaches to its containers: the engine's hijacked stream, which
    // ends when the engine closes it, crosses the tunnel too.
    const std::string repl = "repl:\n  enabled: true\n  languages:\n    - name: sh\n      image: " +
                             std::string(rt::test_image) +
                             "\n      source_file: main.sh\n      run: [sh, \"{source}\"]\n"
                             "      defaults: {timeout_ms: 20000, output_bytes: 65536, memory_bytes: 128MiB, pids: 64, "
                             "cpu_millicores: 1000}\n";
    it::registryd a(member_config("a", {}, etcd) + trust + tls + repl);
    IT_DIAGNOSE(a);
    it::registryd b(member_config("b", {{"p1", p1.uri()}}, etcd) + trust + tls + repl, false);
    IT_DIAGNOSE(b);
    b.spawn();
    b.wait_ready();

    it::wss_client on_a(a, it::tls_options{pki.ca_cert(), {}, {}});
    const bool online = eventually(
        [&] {
            const json::value nodes = on_a.call("list_nodes");
            return !arr(nodes, "/nodes").empty() && str(nodes, "/nodes/0/status") == "online";
        },
        15s);
    REQUIRE(online);
    CHECK(str(on_a.call("list_nodes"), "/nodes/0/endpoint") ==
          "member b at wss://127.0.0.1:" + std::to_string(b.port()) + "/");
    const json::value made = on_a.call(
        "container_create",
        {{"image", rt::test_image}, {"command", strings({"sh", "-c", "echo over tls; sleep 300"})}, {"ttl_seconds", 60}},
        it::scaled(60s));
    const std::string id = str(made, "/container/container_id");
    CHECK(str(made, "/container/state") == "running");
    REQUIRE(exists(p1, id));
    CHECK(eventually(
        [&] {
            const json::value out = on_a.call("container_logs", {{"container_id", id}, {"tail", 1}});
            return !arr(out, "/output").empty() && str(out, "/output/0/data") == "over tls\n";
        },
        10s));
    on_a.call("container_remove", {{"container_id", id}, {"force", true}});
    CHECK(!exists(p1, id));

    const json::value started = on_a.call("repl_execute", {{"language", "sh"}, {"code", "echo attached over tls; exit 4"}});
    const std::string execution = str(started, "/execution_id");
    json::value result;
    CHECK(eventually(
        [&] {
            result = on_a.call("repl_result", {{"execution_id", execution}});
            return str(result, "/state") == "finished";
        },
        30s));
    INFO(it::dump(result));
    CHECK(num(result, "/exit_code") == 4);
    CHECK(str(result, "/stdout") == "attached over tls\n");
}
