// GET /healthz names the store and says whether it can be reached: etcd lost
// with nothing written turns it 503 within a few probes and back to 200 when
// etcd returns; a write etcd cannot take fails with `unavailable` within
// request_timeout_ms and /healthz at 503 until etcd answers again.
#include "etcd_server.hpp"
#include "harness.hpp"

#include <doctest/doctest.h>

#include <csignal>
#include <filesystem>
#include <fstream>
#include <string>
#include <thread>

using namespace std::chrono_literals;

namespace {

constexpr int request_timeout_ms = 1500;

std::string etcd_config(const it::etcd_server& etcd) {
    return "store:\n  kind: etcd\n  etcd:\n    endpoints: [\"" + etcd.client_url() +
           "\"]\n    dial_timeout_ms: 500\n    request_timeout_ms: " + std::to_string(request_timeout_ms) + "\n";
}

// Polls /healthz until its status is `status`; the last answer.
it::http_response healthz_until(const it::registryd& d, int status, it::ms within) {
    const auto deadline = it::steady::now() + it::scaled(within);
    for (;;) {
        const it::http_response r = it::http_get(d.host(), d.port(), "/healthz");
        if (r.status == status || it::steady::now() > deadline) return r;
        std::this_thread::sleep_for(100ms);
    }
}

// Waits until every thread of `pid` is stopped (SIGSTOP is delivered
// asynchronously: a request sent right after kill() may still be answered).
void wait_stopped(pid_t pid) {
    const auto deadline = it::steady::now() + it::scaled(10s);
    const std::filesystem::path tasks = "/proc/" + std::to_string(pid) + "/task";
    for (;;) {
        bool all = true;
        for (const auto& t : std::filesystem::directory_iterator(tasks)) {
            std::ifstream in(t.path() / "stat");
            std::string stat((std::istreambuf_iterator<char>(in)), {});
            const auto close = stat.rfind(')');
            if (close == std::string::npos || close + 2 >= stat.size() || stat[close + 2] != 'T') all = false;
        }
        if (all) return;
        if (it::steady::now() > deadline) throw it::failure("etcd did not stop");
        std::this_thread::sleep_for(10ms);
    }
}

}  // namespace

TEST_CASE("healthz: the file store is named") {
    it::registryd d;
    const it::http_response r = it::http_get(d.host(), d.port(), "/healthz");
    CHECK(r.status == 200);
    CHECK(r.body == "ok\nstore: file\n");
}

TEST_CASE("healthz: etcd lost and back with nothing written: 503 with the reason, then 200 again") {
    it::etcd_server etcd;
    it::registryd d(etcd_config(etcd));
    IT_DIAGNOSE(d);
    it::http_response r = healthz_until(d, 200, 10s);
    INFO(r.body);
    CHECK(r.status == 200);
    CHECK(r.body.starts_with("ok\nstore: etcd, last contact 20"));

    etcd.stop();  // SIGKILL by pid
    r = healthz_until(d, 503, 10s);
    INFO(r.body);
    REQUIRE(r.status == 503);
    CHECK(r.body.starts_with("unavailable: etcd unreachable: " + etcd.client_url()));
    CHECK(r.body.find("connect") != std::string::npos);
    CHECK(r.body.find("\nstore: etcd, last contact 20") != std::string::npos);

    etcd.start();
    r = healthz_until(d, 200, 15s);
    INFO(r.body);
    CHECK(r.status == 200);
    // Nothing was written meanwhile: registryd takes changes again.
    it::ws_client c(d);
    c.call("register", it::registration(it::service("api", "api-1"), 300));
}

TEST_CASE("healthz: etcd frozen: a change fails with unavailable within request_timeout_ms, /healthz 503 until it thaws") {
    it::etcd_server etcd;
    it::registryd d(etcd_config(etcd));
    IT_DIAGNOSE(d);
    it::ws_client c(d);
    c.call("register", it::registration(it::service("api", "api-1"), 300));

    // SIGSTOP: etcd's socket still accepts connections, nothing answers them.
    REQUIRE(::kill(etcd.pid(), SIGSTOP) == 0);
    wait_stopped(etcd.pid());
    const auto t0 = it::steady::now();
    const it::json::value refused = c.request("register", it::registration(it::service("api", "api-2"), 300));
    const auto took = std::chrono::duration_cast<it::ms>(it::steady::now() - t0);
    INFO(it::dump(refused));
    MESSAGE("a register with etcd frozen failed after ", took.count(), " ms (request_timeout_ms ", request_timeout_ms, ")");
    CHECK(it::error_code(refused) == "unavailable");
    CHECK(took >= it::ms(request_timeout_ms - 100));
    CHECK(took <= it::ms(request_timeout_ms) + it::scaled(5s));

    const it::http_response frozen = healthz_until(d, 503, 10s);
    INFO(frozen.body);
    CHECK(frozen.status == 503);
    CHECK(frozen.body.starts_with("unavailable: store unreachable: "));
    REQUIRE(::kill(etcd.pid(), SIGCONT) == 0);
    // etcd answers again: the register in flight is written (re-sending it
    // converges whether or not etcd applied it), and registryd goes on.
    const it::http_response thawed = healthz_until(d, 200, 20s);
    INFO(thawed.body);
    CHECK(thawed.status == 200);
    CHECK(thawed.body.find("\nstore: etcd, last contact 20") != std::string::npos);
    CHECK(it::str(c.call("get_service", it::json::object{{"instance_id", "api-2"}}), "/service/name") == "api");
    c.call("register", it::registration(it::service("api", "api-3"), 300));
}
