// containers.policy on a real registryd and a real Podman service: an image
// outside the allowed patterns and a memory request above the ceiling are
// refused naming the field, nothing is created; an allowed create runs with
// every capability dropped and no-new-privileges, as Podman's inspect and
// the container's own /proc/self/status show.
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
using it::str;

std::string policy_config(const std::string& uri) {
    return "containers:\n"
           "  instance_id: it-policy\n"
           "  heartbeat_interval_ms: 200\n"
           "  heartbeat_timeout_ms: 1000\n"
           "  stop_grace_seconds: 1\n"
           "  policy:\n"
           "    images: [\"localhost/registry-busybox:*\"]\n"
           "    max_limits: {memory_bytes: 64MiB, pids: 32}\n"
           "  engines:\n"
           "    - name: p1\n"
           "      endpoint: " + uri + "\n";
}

std::string inspect(const rt::podman_service& p, const std::string& id, const std::string& format) {
    auto r = p.podman({"inspect", "--format", format, id});
    REQUIRE_MESSAGE(r.exit_code == 0, r.output);
    while (!r.output.empty() && (r.output.back() == '\n' || r.output.back() == '\r')) r.output.pop_back();
    return r.output;
}

bool eventually(const std::function<bool()>& done, it::ms timeout) {
    const auto deadline = it::steady::now() + it::scaled(timeout);
    while (it::steady::now() < deadline) {
        if (done()) return true;
        std::this_thread::sleep_for(100ms);
    }
    return done();
}

}  // namespace

TEST_CASE("container policy: images outside the patterns and limits over the ceilings are refused, allowed ones run hardened") {
    rt::podman_service p1;
    it::registryd d(policy_config(p1.uri()));
    IT_DIAGNOSE(d);
    it::ws_client ws(d);
    REQUIRE(eventually(
        [&] {
            auto nodes = ws.call("list_nodes");
            return !arr(nodes, "/nodes").empty() && str(nodes, "/nodes/0/status") == "online";
        },
        15s));
    const std::string containers_before = p1.podman({"ps", "-aq"}).output;

    // The image is on the engine, under a name the policy does not allow.
    REQUIRE(p1.podman({"tag", rt::test_image, "localhost/other:1"}).exit_code == 0);
    auto image = ws.request("container_create", {{"image", "localhost/other:1"}, {"command", {"true"}}});
    CHECK(it::error_code(image) == "invalid_request");
    CHECK(str(image, "/error/message") ==
          "params.image: 'localhost/other:1' is not allowed by the container policy (allowed: "
          "localhost/registry-busybox:*)");

    auto memory = ws.request("container_create", {{"image", rt::test_image},
                                                  {"command", {"true"}},
                                                  {"limits", {{"memory_bytes", (64 << 20) + 1}}}});
    CHECK(it::error_code(memory) == "invalid_request");
    CHECK(str(memory, "/error/message") ==
          "params.limits.memory_bytes: must be at most 67108864 (the container policy's ceiling)");
    CHECK(p1.podman({"ps", "-aq"}).output == containers_before);  // nothing was created
    CHECK(arr(ws.call("container_list"), "/containers").empty());

    // Allowed: the ceilings fill in the limits left out; no capability, no privilege gain.
    auto made = ws.call("container_create",
                        {{"image", rt::test_image},
                         {"command", {"sh", "-c", "grep -E '^(CapEff|CapBnd|NoNewPrivs):' /proc/self/status; sleep 30"}},
                         {"ttl_seconds", 60}},
                        it::scaled(60s));
    const std::string id = str(made, "/container/container_id");
    auto got = ws.call("container_get", {{"container_id", id}});
    CHECK(it::num(got, "/container/limits/memory_bytes") == 64 << 20);
    CHECK(it::num(got, "/container/limits/pids") == 32);
    CHECK(inspect(p1, id, "{{.HostConfig.Memory}}") == std::to_string(64 << 20));
    CHECK(inspect(p1, id, "{{.HostConfig.PidsLimit}}") == "32");
    const std::string cap_drop = inspect(p1, id, "{{json .HostConfig.CapDrop}}");
    // Podman lists ALL as the capabilities it would otherwise have granted.
    for (const char* cap : {"CAP_CHOWN", "CAP_NET_RAW", "CAP_SETUID", "CAP_SETGID", "CAP_DAC_OVERRIDE"}) {
        CHECK_MESSAGE(cap_drop.find(cap) != std::string::npos, cap_drop);
    }
    const std::string effective = inspect(p1, id, "{{json .EffectiveCaps}}");
    CHECK_MESSAGE((effective == "null" || effective == "[]"), effective);
    const std::string security = inspect(p1, id, "{{json .HostConfig.SecurityOpt}}");
    CHECK_MESSAGE(security.find("no-new-privileges") != std::string::npos, security);
    CHECK(inspect(p1, id, "{{.HostConfig.Privileged}}") == "false");
    CHECK(inspect(p1, id, "{{.HostConfig.NetworkMode}}") == "none");
    CHECK(inspect(p1, id, "{{json .Mounts}}") == "[]");

    std::string status;
    REQUIRE(eventually(
        [&] {
            auto logs = ws.call("container_logs", {{"container_id", id}});
            status.clear();
            for (const auto& chunk : arr(logs, "/output")) status += str(chunk, "/data");
            return status.find("NoNewPrivs") != std::string::npos;
        },
        20s));
    CHECK_MESSAGE(status.find("CapEff:\t0000000000000000") != std::string::npos, status);
    CHECK_MESSAGE(status.find("CapBnd:\t0000000000000000") != std::string::npos, status);
    CHECK_MESSAGE(status.find("NoNewPrivs:\t1") != std::string::npos, status);
    ws.call("container_remove", {{"container_id", id}, {"force", true}});
}
