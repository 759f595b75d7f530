// Health checks in real time: registryd probes HTTP and TCP servers this
// test starts on loopback, ttl checks wait for report_health, and discovery
// filters by health (docs/protocol.md, "Health checks").
#include "harness.hpp"

#include <boost/asio/connect.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/read_until.hpp>
#include <boost/asio/streambuf.hpp>
#include <boost/asio/write.hpp>

#include <doctest/doctest.h>

#include <atomic>
#include <string>
#include <thread>

using it::dump;
using it::num;
using it::str;
using namespace std::chrono_literals;
namespace json = it::json;
namespace asio = boost::asio;
using tcp = asio::ip::tcp;

namespace {

// An HTTP server on 127.0.0.1 answering every request with `status`, one
// connection at a time, on its own thread; counts the requests it answered.
class status_server {
public:
    explicit status_server(int status) : status_(status), acceptor_(io_, tcp::endpoint(asio::ip::make_address("127.0.0.1"), 0)) {
        port_ = acceptor_.local_endpoint().port();
        thread_ = std::thread([this] { serve(); });
    }
    ~status_server() {
        stopping_ = true;
        boost::system::error_code ec;
        tcp::socket wake(io_);
        wake.connect(tcp::endpoint(asio::ip::make_address("127.0.0.1"), port_), ec);  // unblocks accept()
        thread_.join();
    }
    std::uint16_t port() const { return port_; }
    void set_status(int s) { status_ = s; }
    int requests() const { return requests_; }

private:
    void serve() {
        while (!stopping_) {
            tcp::socket s(io_);
            boost::system::error_code ec;
            acceptor_.accept(s, ec);
            if (ec || stopping_) continue;
            asio::streambuf in;
            asio::read_until(s, in, "\r\n\r\n", ec);
            if (ec) continue;
            const int status = status_;
            const std::string reply = "HTTP/1.1 " + std::to_string(status) + (status == 200 ? " OK" : " Service Unavailable") +
                                      "\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok";
            asio::write(s, asio::buffer(reply), ec);
            ++requests_;
        }
    }

    std::atomic<int> status_;
    std::atomic<int> requests_{0};
    std::atomic<bool> stopping_{false};
    asio::io_context io_;
    tcp::acceptor acceptor_;
    std::uint16_t port_ = 0;
    std::thread thread_;
};

// A loopback port nothing listens on (bound, then released).
std::uint16_t closed_port() {
    asio::io_context io;
    tcp::acceptor a(io, tcp::endpoint(asio::ip::make_address("127.0.0.1"), 0));
    return a.local_endpoint().port();
}

json::object service_with(std::string_view id, std::uint16_t port, json::array checks) {
    json::object svc = it::service("web", id);
    svc["endpoints"] = json::array{json::object{{"name", "http"}, {"address", "127.0.0.1"}, {"port", port}, {"protocol", "http"}}};
    svc["checks"] = std::move(checks);
    return svc;
}

json::object http_check(int fails, int passes, int interval_ms = 200) {
    return json::object{{"name", "web"},
                        {"kind", "http"},
                        {"endpoint", "http"},
                        {"path", "/healthz"},
                        {"interval_ms", interval_ms},
                        {"timeout_ms", 150},
                        {"failures_before_critical", fails},
                        {"successes_before_passing", passes}};
}

json::value subscribe_health(it::ws_client& sub) {
    json::value r = sub.call("subscribe", json::object{{"events", json::array{"health_check_result", "service_deregistered"}}});
    sub.expect_event("registry_loaded");
    return r;
}

}  // namespace

TEST_CASE("integration: an HTTP check turns critical after exactly failures_before_critical, passing after successes_before_passing") {
    it::registryd d;
    IT_DIAGNOSE(d);
    status_server server(503);
    it::ws_client w(d);
    it::ws_client sub(d);
    subscribe_health(sub);

    const json::value grant = w.call("register", it::registration(service_with("web-1", server.port(), {http_check(3, 2)}), 60));
    w.call("set_state", json::object{{"instance_id", "web-1"}, {"state", "running"}});
    const auto deadline = it::steady::now() + it::scaled(10s);
    while (server.requests() < 3 && it::steady::now() < deadline) std::this_thread::sleep_for(20ms);
    REQUIRE_MESSAGE(server.requests() >= 3, "the server saw ", server.requests(), " probes");

    const json::value critical = sub.expect_event("health_check_result", it::scaled(10s));
    INFO("event: ", dump(critical));
    CHECK(str(critical, "/data/check/name") == "web");
    CHECK(str(critical, "/data/check/status") == "critical");
    CHECK(str(critical, "/data/check/previous_status") == "unknown");
    CHECK(num(critical, "/data/check/count") == 3);
    CHECK(str(critical, "/data/check/output") == "HTTP 503 Service Unavailable");
    CHECK(server.requests() >= 3);
    json::value s = w.call("get_service", json::object{{"instance_id", "web-1"}});
    CHECK(str(s, "/service/state") == "failed");
    CHECK(str(s, "/service/failure_reason") == "health check 'web' critical: HTTP 503 Service Unavailable");
    CHECK(str(s, "/service/checks/0/result/status") == "critical");

    server.set_status(200);
    const int before = server.requests();
    const json::value passing = sub.expect_event("health_check_result", it::scaled(10s));
    INFO("event: ", dump(passing));
    CHECK(str(passing, "/data/check/status") == "healthy");
    CHECK(num(passing, "/data/check/count") == 2);
    CHECK(server.requests() >= before + 2);
    s = w.call("get_service", json::object{{"instance_id", "web-1"}});
    CHECK(str(s, "/service/state") == "running");
    CHECK(str(s, "/service/health/status") == "healthy");
    // Transitions only: more passing probes, no more events.
    const int now = server.requests();
    while (server.requests() < now + 3) std::this_thread::sleep_for(50ms);
    CHECK(!sub.next_event(300ms).has_value());
    (void)grant;
}

TEST_CASE("integration: a TCP check on a closed port is critical, and deregister_critical_after removes the instance") {
    it::registryd d;
    IT_DIAGNOSE(d);
    it::ws_client w(d);
    it::ws_client sub(d);
    subscribe_health(sub);
    const std::uint16_t port = closed_port();
    const json::object check{{"name", "port"},
                             {"kind", "tcp"},
                             {"address", "127.0.0.1:" + std::to_string(port)},
                             {"interval_ms", 200},
                             {"timeout_ms", 150},
                             {"deregister_critical_after_ms", 1000}};
    w.call("register", it::registration(service_with("db-1", port, {check}), 60));

    const json::value critical = sub.expect_event("health_check_result", it::scaled(10s));
    INFO("event: ", dump(critical));
    CHECK(str(critical, "/data/check/status") == "critical");
    CHECK(str(critical, "/data/check/output").find("cannot connect to 127.0.0.1:" + std::to_string(port)) == 0);
    CHECK(str(critical, "/data/health/status") == "critical");

    const json::value gone = sub.expect_event("service_deregistered", it::scaled(10s));
    INFO("event: ", dump(gone));
    CHECK(str(gone, "/data/service/instance_id") == "db-1");
    CHECK(str(gone, "/data/reason") == "health check 'port' critical for more than 1000 ms");
    CHECK(it::error_code(w.request("get_service", json::object{{"instance_id", "db-1"}})) == "not_found");
}

TEST_CASE("integration: a TTL check expires without reports and recovers through report_health") {
    it::registryd d;
    IT_DIAGNOSE(d);
    it::ws_client w(d);
    it::ws_client sub(d);
    subscribe_health(sub);
    const json::object check{{"name", "alive"}, {"kind", "ttl"}, {"interval_ms", 2000}};
    const json::value grant = w.call("register", it::registration(service_with("job-1", 9, {check}), 60));
    const auto lease = num(grant, "/lease_id");
    w.call("set_state", json::object{{"instance_id", "job-1"}, {"state", "running"}});

    const json::value ok = w.call("report_health", json::object{{"lease_id", lease}, {"instance_id", "job-1"},
                                                                {"status", "passing"}, {"output", "fine"}});
    CHECK(str(ok, "/health/status") == "healthy");
    CHECK(str(sub.expect_event("health_check_result"), "/data/check/status") == "healthy");

    const json::value expired = sub.expect_event("health_check_result", it::scaled(10s));
    INFO("event: ", dump(expired));
    CHECK(str(expired, "/data/check/status") == "critical");
    CHECK(str(expired, "/data/check/output") == "no report within 2000 ms");
    CHECK(str(w.call("get_service", json::object{{"instance_id", "job-1"}}), "/service/state") == "failed");

    // Only the lease holder reports.
    const json::value wrong = w.request("report_health", json::object{{"lease_id", lease + 100}, {"instance_id", "job-1"},
                                                                      {"status", "passing"}});
    CHECK(it::error_code(wrong) == "lease_not_found");
    const json::value bad = w.request("report_health", json::object{{"lease_id", lease}, {"instance_id", "job-1"},
                                                                    {"status", "fine"}});
    CHECK(it::error_code(bad) == "invalid_request");
    CHECK(it::error_message(bad) == "params.status: must be one of passing, warning, critical");

    const json::value back = w.call("report_health", json::object{{"lease_id", lease}, {"instance_id", "job-1"},
                                                                  {"status", "passing"}});
    CHECK(str(back, "/state") == "running");
    CHECK(str(sub.expect_event("health_check_result"), "/data/check/status") == "healthy");
}

TEST_CASE("integration: discovery filtered by health") {
    it::registryd d;
    IT_DIAGNOSE(d);
    status_server good(200);
    it::ws_client w(d);
    it::ws_client sub(d);
    subscribe_health(sub);
    w.call("register", it::registration(service_with("web-1", good.port(), {http_check(1, 1)}), 60));
    const json::object tcp_check{{"name", "port"}, {"kind", "tcp"}, {"endpoint", "http"}, {"interval_ms", 200},
                                 {"timeout_ms", 150}};
    w.call("register", it::registration(service_with("web-2", closed_port(), {tcp_check}), 60));
    w.call("register", it::registration(service_with("web-3", 9, {}), 60));  // no checks
    sub.expect_event("health_check_result", it::scaled(10s));
    sub.expect_event("health_check_result", it::scaled(10s));

    auto ids = [](const json::value& v, std::string_view key) {
        std::vector<std::string> out;
        for (const auto& s : it::arr(v, std::string("/") + std::string(key))) out.push_back(str(s, "/instance_id"));
        return out;
    };
    CHECK(ids(w.call("list_services", json::object{{"name", "web"}}), "services") ==
          std::vector<std::string>{"web-1", "web-2", "web-3"});
    CHECK(ids(w.call("list_services", json::object{{"name", "web"}, {"health", "passing"}}), "services") ==
          std::vector<std::string>{"web-1", "web-3"});
    CHECK(ids(w.call("get_service", json::object{{"name", "web"}, {"health", "passing_or_warning"}}), "services") ==
          std::vector<std::string>{"web-1", "web-3"});
    CHECK(ids(w.call("list_endpoints", json::object{{"service", "web"}, {"health", "passing"}}), "endpoints") ==
          std::vector<std::string>{"web-1", "web-3"});
    const json::value bad = w.request("list_services", json::object{{"health", "green"}});
    CHECK(it::error_message(bad) == "params.health: must be one of passing, passing_or_warning");
}
