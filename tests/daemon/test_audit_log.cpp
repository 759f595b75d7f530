// The audit log's writer (observability/audit_log.hpp): which outcomes it
// records, the line of a request and of a refused upgrade, buffering to the
// end of the loop's turn, reopening after a rename; the refusal counters and
// the config sections of rate limits and the audit log. The refusals that
// need an identity (forbidden) or the authenticator (401) are audited here
// from their outcome and call; the integration tests run the daemon.
#include "config/config.hpp"
#include "observability/audit_log.hpp"
#include "observability/metrics.hpp"

#include <registry/protocol/connection.hpp>

#include <boost/asio/io_context.hpp>

#include <doctest/doctest.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include <unistd.h>

using registry::protocol::outcome;
using registry::protocol::permission_family;
namespace fs = std::filesystem;

namespace {

struct scratch {
    fs::path dir;
    scratch() {
        std::string templ = (fs::temp_directory_path() / "registryd-audit-XXXXXX").string();
        REQUIRE(::mkdtemp(templ.data()) != nullptr);
        dir = templ;
    }
    ~scratch() { fs::remove_all(dir); }
};

std::vector<std::string> lines_of(const fs::path& p) {
    std::ifstream in(p);
    std::vector<std::string> out;
    for (std::string line; std::getline(in, line);) out.push_back(line);
    return out;
}

// The line without its "time" member (checked apart).
std::string untimed(const std::string& line) {
    REQUIRE(line.starts_with(R"({"time":")"));
    const auto end = line.find('"', 9);
    REQUIRE(end != std::string::npos);
    const std::string time = line.substr(9, end - 9);
    CHECK(time.size() == 24);  // 2026-12-04T21:20:23.123Z
    CHECK(time[10] == 'T');
    CHECK(time.back() == 'Z');
    return "{" + line.substr(end + 2);
}

}  // namespace

TEST_CASE("audit log: mutating requests and refusals are audited, reads are not") {
    using enum permission_family;
    auto o = [](std::string_view action, std::string_view code) { return outcome{action, code}; };
    CHECK(registryd::audit_log::audited(o("register", "ok"), register_));
    CHECK(registryd::audit_log::audited(o("keepalive", "lease_not_found"), register_));
    CHECK(registryd::audit_log::audited(o("container_stop", "ok"), containers_write));
    CHECK(registryd::audit_log::audited(o("repl_execute", "ok"), repl));
    CHECK(registryd::audit_log::audited(o("package_upload_chunk", "ok"), deploy));
    CHECK_FALSE(registryd::audit_log::audited(o("package_upload_status", "ok"), deploy));
    CHECK_FALSE(registryd::audit_log::audited(o("get_service", "ok"), discover));
    CHECK_FALSE(registryd::audit_log::audited(o("container_list", "ok"), containers_read));
    CHECK_FALSE(registryd::audit_log::audited(o("repl_languages", "ok"), repl_read));
    CHECK_FALSE(registryd::audit_log::audited(o("", "invalid_request"), std::nullopt));
    // Refusals whatever the action.
    CHECK(registryd::audit_log::audited(o("get_service", "rate_limited"), discover));
    CHECK(registryd::audit_log::audited(o("container_list", "forbidden"), containers_read));
}

TEST_CASE("audit log: one JSON line per request, written at the end of the loop's turn") {
    scratch s;
    boost::asio::io_context ioc;
    const fs::path file = s.dir / "audit.log";
    {
        registryd::audit_log log(ioc, file);
        CHECK((fs::status(file).permissions() & fs::perms::all) == (fs::perms::owner_read | fs::perms::owner_write));
        log.request(outcome{"deploy_package", "ok", "ci-deploy", "7", "web@1.2.0"}, "10.0.0.7:51234");
        log.request(outcome{"register", "forbidden", "dashboard", "r\"1", ""}, "10.0.0.8:40000");
        log.upgrade_refused("10.0.0.9:1234", "unauthorized", "unknown token");
        CHECK(lines_of(file).empty());  // buffered until the turn ends
        ioc.poll();
        const auto lines = lines_of(file);
        REQUIRE(lines.size() == 3);
        CHECK(untimed(lines[0]) ==
              R"({"identity":"ci-deploy","source":"10.0.0.7:51234","action":"deploy_package","target":"web@1.2.0","request_id":"7","code":"ok"})");
        CHECK(untimed(lines[1]) ==
              R"({"identity":"dashboard","source":"10.0.0.8:40000","action":"register","target":"","request_id":"r\"1","code":"forbidden"})");
        CHECK(untimed(lines[2]) ==
              R"({"identity":null,"source":"10.0.0.9:1234","action":"upgrade","code":"unauthorized","reason":"unknown token"})");
        log.request(outcome{"repl_execute", "rate_limited", "runner", "9", "python"}, "10.0.0.7:51235");
    }
    // Destroyed with a line buffered: written, not lost.
    const auto lines = lines_of(file);
    REQUIRE(lines.size() == 4);
    CHECK(untimed(lines[3]) ==
          R"({"identity":"runner","source":"10.0.0.7:51235","action":"repl_execute","target":"python","request_id":"9","code":"rate_limited"})");
}

TEST_CASE("audit log: reopened after a rename (logrotate), new lines go to the new file") {
    scratch s;
    boost::asio::io_context ioc;
    const fs::path file = s.dir / "audit.log";
    registryd::audit_log log(ioc, file);
    log.request(outcome{"register", "ok", "a", "1", "web-1"}, "127.0.0.1:1");
    ioc.poll();
    fs::rename(file, s.dir / "audit.log.1");
    log.request(outcome{"register", "ok", "a", "2", "web-2"}, "127.0.0.1:1");  // still the old file's
    std::string why;
    REQUIRE(log.reopen(why));
    log.request(outcome{"register", "ok", "a", "3", "web-3"}, "127.0.0.1:1");
    ioc.restart();  // poll() ran out of work before: the context stopped
    ioc.poll();
    const auto old_lines = lines_of(s.dir / "audit.log.1");
    const auto new_lines = lines_of(file);
    REQUIRE(old_lines.size() == 2);
    REQUIRE(new_lines.size() == 1);
    CHECK(new_lines[0].find(R"("request_id":"3")") != std::string::npos);

    // A path that cannot be opened: refused, the open file kept.
    fs::remove(file);
    fs::remove_all(s.dir);
    CHECK_FALSE(log.reopen(why));
    CHECK(why.find("cannot open") != std::string::npos);
}

TEST_CASE("audit log: a file that cannot be opened is an error naming it") {
    boost::asio::io_context ioc;
    CHECK_THROWS_WITH_AS(registryd::audit_log(ioc, "/nonexistent-dir/audit.log"),
                         doctest::Contains("cannot open audit.file /nonexistent-dir/audit.log"), std::system_error);
}

TEST_CASE("metrics: refusals by reason, from request codes and the upgrade") {
    registryd::metrics m;
    m.request("register", "forbidden", 0.001);
    m.request("get_service", "rate_limited", 0.001);
    m.request("get_service", "rate_limited", 0.001);
    m.request("get_service", "not_found", 0.001);
    m.refusal("unauthorized");
    const std::string text = m.render({});
    CHECK(text.find("registryd_refusals_total{reason=\"unauthorized\"} 1\n") != std::string::npos);
    CHECK(text.find("registryd_refusals_total{reason=\"forbidden\"} 1\n") != std::string::npos);
    CHECK(text.find("registryd_refusals_total{reason=\"rate_limited\"} 2\n") != std::string::npos);
}

TEST_CASE("config: rate_limits and audit") {
    using registry::protocol::permission_family;
    registryd::config c;
    // The defaults: on, tighter for the expensive families.
    CHECK(c.rate_limits.requests.per_second == 10000);
    CHECK(c.rate_limits.family(permission_family::repl).per_second == 10);
    CHECK_FALSE(c.rate_limits.family(permission_family::discover).limited());
    CHECK(c.audit.file.empty());

    registryd::apply_yaml(c,
                          "rate_limits:\n  requests_per_second: 2.5\n  burst: 10\n  max_callers: 100\n"
                          "  families:\n    register: {requests_per_second: 1, burst: 3}\n"
                          "audit:\n  file: /tmp/x/audit.log\n",
                          "t.yaml");
    CHECK(c.rate_limits.requests.per_second == 2.5);
    CHECK(c.rate_limits.requests.burst == 10);
    CHECK(c.rate_limits.max_callers == 100);
    CHECK(c.rate_limits.family(permission_family::register_).per_second == 1);
    CHECK(c.rate_limits.family(permission_family::register_).burst == 3);
    CHECK(c.rate_limits.family(permission_family::repl).per_second == 10);  // untouched
    CHECK(c.audit.file == "/tmp/x/audit.log");

    registryd::apply_yaml(c, "rate_limits:\n  enabled: false\n", "t.yaml");
    CHECK_FALSE(c.rate_limits.any());

    CHECK_THROWS_WITH_AS(registryd::apply_yaml(c, "rate_limits:\n  families:\n    root: {burst: 2}\n", "t.yaml"),
                         doctest::Contains("rate_limits.families.root: is not a permission family"),
                         registryd::config_error);
    CHECK_THROWS_WITH_AS(registryd::apply_yaml(c, "rate_limits:\n  burst: 0.5\n", "t.yaml"),
                         doctest::Contains("rate_limits.burst: must be at least 1"), registryd::config_error);
    CHECK_THROWS_WITH_AS(registryd::apply_yaml(c, "rate_limits:\n  requests_per_second: fast\n", "t.yaml"),
                         doctest::Contains("rate_limits.requests_per_second: must be a number"),
                         registryd::config_error);
}
