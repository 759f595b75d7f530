// Rate limits and the audit log on the real registryd (docs/protocol.md,
// "Rate limits", "Audit log"). Access control is off here (no tokens on this
// branch): every client is "anonymous", told apart by its address. The
// forbidden and 401 lines are covered by the daemon's unit tests of the
// audit writer (tests/daemon/test_audit_log.cpp).
#include "harness.hpp"

#include <doctest/doctest.h>

#include <csignal>
#include <filesystem>
#include <fstream>
#include <string>
#include <thread>
#include <vector>

using it::num;
using it::str;
using namespace std::chrono_literals;
namespace json = it::json;
namespace fs = std::filesystem;

namespace {

std::vector<std::string> lines_of(const fs::path& p) {
    std::ifstream in(p);
    std::vector<std::string> out;
    for (std::string line; std::getline(in, line);) out.push_back(line);
    return out;
}

// The file's lines once it has `n` (lines reach the file at the end of the
// daemon's event-loop turn); fails after a generous deadline.
std::vector<std::string> wait_lines(const fs::path& p, std::size_t n) {
    const auto deadline = it::steady::now() + it::scaled(10s);
    for (;;) {
        auto lines = lines_of(p);
        if (lines.size() >= n) return lines;
        if (it::steady::now() > deadline) {
            throw it::failure("audit log " + p.string() + " has " + std::to_string(lines.size()) + " lines, not " +
                              std::to_string(n));
        }
        std::this_thread::sleep_for(20ms);
    }
}

std::string audit_config(const fs::path& file, const std::string& more = {}) {
    return "audit:\n  file: " + file.string() + "\n" + more;
}

}  // namespace

TEST_CASE("integration: a flood gets rate_limited with retry_after_ms, and the connection stays usable") {
    it::temp_dir logs;
    const fs::path audit = logs.path() / "audit.log";
    it::registryd d{audit_config(audit, "rate_limits:\n  requests_per_second: 4\n  burst: 5\n")};
    IT_DIAGNOSE(d);
    it::ws_client w(d);

    // Pipelined: the burst is admitted, the rest refused.
    std::vector<std::string> ids;
    for (int i = 0; i < 12; ++i) ids.push_back(w.send_request("get_service", json::object{{"name", "web"}}));
    int admitted = 0;
    std::int64_t retry_after = -1;
    std::string refused_id;
    for (const auto& id : ids) {
        const json::value r = w.wait_response(id);
        const std::string code = it::error_code(r);
        if (code == "not_found") {
            ++admitted;
            continue;
        }
        REQUIRE(code == "rate_limited");
        CHECK(it::error_message(r).find("rate limit of address 127.0.0.1") != std::string::npos);
        retry_after = num(r, "/error/retry_after_ms");
        CHECK(retry_after > 0);
        CHECK(retry_after <= 250);  // one token every 250 ms
        if (refused_id.empty()) refused_id = id;
    }
    // The burst at least (more only if tokens came back while they were sent), and not all.
    CHECK(admitted >= 5);
    REQUIRE(admitted < 12);
    REQUIRE(retry_after > 0);

    // After the wait it was told, the same connection is served again.
    std::this_thread::sleep_for(std::chrono::milliseconds(retry_after));
    CHECK(it::error_code(w.request("get_service", json::object{{"name", "web"}})) == "not_found");

    // Counted by reason, and audited (a refusal, though of a read).
    const it::http_response m = it::http_get(d.host(), d.port(), "/metrics");
    REQUIRE(m.status == 200);
    CHECK(m.body.find("registryd_refusals_total{reason=\"rate_limited\"} " + std::to_string(12 - admitted)) !=
          std::string::npos);
    CHECK(m.body.find("registryd_refusals_total{reason=\"forbidden\"} 0") != std::string::npos);
    const auto lines = wait_lines(audit, static_cast<std::size_t>(12 - admitted));
    CHECK(lines.size() == static_cast<std::size_t>(12 - admitted));
    const json::value first = it::parse(lines.front());
    CHECK(str(first, "/action") == "get_service");
    CHECK(str(first, "/code") == "rate_limited");
    CHECK(str(first, "/request_id") == refused_id);
    CHECK(str(first, "/identity") == "anonymous");
}

TEST_CASE("integration: a family's limit refuses that family only") {
    it::registryd d{"rate_limits:\n  families:\n    register: {requests_per_second: 1, burst: 2}\n"};
    IT_DIAGNOSE(d);
    it::ws_client w(d);
    CHECK(it::error_code(w.request("register", it::registration(it::service("web", "web-1"), 30))).empty());
    CHECK(it::error_code(w.request("register", it::registration(it::service("web", "web-2"), 30))).empty());
    const json::value refused = w.request("register", it::registration(it::service("web", "web-3"), 30));
    REQUIRE(it::error_code(refused) == "rate_limited");
    CHECK(num(refused, "/error/retry_after_ms") > 0);
    CHECK(num(refused, "/error/retry_after_ms") <= 1000);
    // Discovery is not held back, and the refused registration did nothing.
    CHECK(it::error_code(w.request("get_service", json::object{{"instance_id", "web-3"}})) == "not_found");
    CHECK(it::error_code(w.request("get_service", json::object{{"instance_id", "web-1"}})).empty());
}

TEST_CASE("integration: the audit log holds one line per mutating request, none for reads") {
    it::temp_dir logs;
    const fs::path audit = logs.path() / "audit.log";
    it::registryd d{audit_config(audit)};
    IT_DIAGNOSE(d);
    it::ws_client w(d);

    const std::string reg_id = w.send_request("register", it::registration(it::service("web", "web-1"), 30));
    const json::value reg = w.wait_response(reg_id);
    REQUIRE(it::error_code(reg).empty());
    const std::int64_t lease = num(reg, "/data/lease_id");
    // Reads: no lines.
    w.call("get_service", json::object{{"instance_id", "web-1"}});
    w.call("list_services");
    w.call("subscribe", json::object{{"snapshot", false}});
    const std::string keep_id = w.send_request("keepalive", json::object{{"lease_id", lease}});
    REQUIRE(it::error_code(w.wait_response(keep_id)).empty());
    const std::string state_id =
        w.send_request("set_state", json::object{{"instance_id", "web-1"}, {"state", "running"}});
    REQUIRE(it::error_code(w.wait_response(state_id)).empty());
    const std::string gone_id = w.send_request("deregister", json::object{{"instance_id", "web-1"}});
    REQUIRE(it::error_code(w.wait_response(gone_id)).empty());
    const std::string missing_id = w.send_request("deregister", json::object{{"instance_id", "nope"}});
    REQUIRE(it::error_code(w.wait_response(missing_id)) == "not_found");

    const auto lines = wait_lines(audit, 5);
    w.call("list_endpoints");                                                    // one more read...
    std::this_thread::sleep_for(200ms);                                          // ...given time to show
    REQUIRE(lines_of(audit).size() == 5);  // ...and it did not

    struct expected {
        std::string action, target, request_id, code;
    };
    const std::vector<expected> want{{"register", "web-1", reg_id, "ok"},
                                     {"keepalive", "lease " + std::to_string(lease), keep_id, "ok"},
                                     {"set_state", "web-1", state_id, "ok"},
                                     {"deregister", "web-1", gone_id, "ok"},
                                     {"deregister", "nope", missing_id, "not_found"}};
    for (std::size_t i = 0; i < want.size(); ++i) {
        INFO(lines[i]);
        const json::value line = it::parse(lines[i]);
        CHECK(it::obj(line, "").size() == 7);  // time, identity, source, action, target, request_id, code: nothing else
        CHECK(str(line, "/time").size() == 24);
        CHECK(str(line, "/identity") == "anonymous");
        CHECK(str(line, "/source").starts_with("127.0.0.1:"));
        CHECK(str(line, "/action") == want[i].action);
        CHECK(str(line, "/target") == want[i].target);
        CHECK(str(line, "/request_id") == want[i].request_id);
        CHECK(str(line, "/code") == want[i].code);
    }
}

TEST_CASE("integration: SIGHUP reopens the audit log after a rename (logrotate)") {
    it::temp_dir logs;
    const fs::path audit = logs.path() / "audit.log";
    const fs::path rotated = logs.path() / "audit.log.1";
    it::registryd d{audit_config(audit)};
    IT_DIAGNOSE(d);
    it::ws_client w(d);
    w.call("register", it::registration(it::service("web", "web-1"), 30));
    wait_lines(audit, 1);

    fs::rename(audit, rotated);
    d.signal(SIGHUP);
    // The daemon creates the file again when it handles the signal.
    const auto deadline = it::steady::now() + it::scaled(10s);
    while (!fs::exists(audit)) {
        REQUIRE_MESSAGE(it::steady::now() < deadline, "audit.log was not created again after SIGHUP");
        std::this_thread::sleep_for(20ms);
    }
    w.call("deregister", json::object{{"instance_id", "web-1"}});
    const auto fresh = wait_lines(audit, 1);
    CHECK(fresh.size() == 1);
    CHECK(str(it::parse(fresh[0]), "/action") == "deregister");
    const auto old = lines_of(rotated);
    REQUIRE(old.size() == 1);
    CHECK(str(it::parse(old[0]), "/action") == "register");
    CHECK(d.running());  // SIGHUP reloads, it does not stop the daemon
}

TEST_CASE("integration: an audit.file that cannot be opened stops registryd at start, naming it") {
    it::registryd d{"audit:\n  file: /nonexistent-dir/audit.log\n", false};
    CHECK_THROWS(d.start(it::scaled(10s)));
    CHECK(d.diagnostics().find("/nonexistent-dir/audit.log") != std::string::npos);
}
