// Discovery's health filter through registry::client (clients/cpp) against
// the real registryd: an instance whose TCP check is critical is left out of
// find_service and list_endpoints with health passing, an instance without
// checks is not (docs/protocol.md, "Health checks").
#include "cpp_client_support.hpp"
#include "harness.hpp"

#include <registry/client/client.hpp>

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>

#include <doctest/doctest.h>

// GCC 12 warns that an Asio coroutine frame is freed by its own operator
// delete after a "mismatched" allocation: a false positive
// (awaitable_frame_base's new and delete are a pair; clients/cpp/CMakeLists.txt).
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic ignored "-Wmismatched-new-delete"
#endif

#include <algorithm>
#include <functional>
#include <string>
#include <vector>

namespace asio = boost::asio;
namespace rc = registry::client;
using namespace std::chrono_literals;
namespace json = it::json;
using it::str;

using it::cpp_client::run;

namespace {

// A loopback port nothing listens on (bound, then released).
std::uint16_t closed_port() {
    asio::io_context io;
    asio::ip::tcp::acceptor a(io, asio::ip::tcp::endpoint(asio::ip::make_address("127.0.0.1"), 0));
    return a.local_endpoint().port();
}

template <typename T>
std::vector<std::string> ids(const std::vector<T>& items) {
    std::vector<std::string> out;
    for (const auto& i : items) out.push_back(i.instance_id);
    std::sort(out.begin(), out.end());
    return out;
}

// web-1's check is critical, web-2 has none.
asio::awaitable<void> discover(rc::client& c) {
    auto all = co_await c.find_service("web");
    REQUIRE(all.ok());
    CHECK(ids(all->items) == std::vector<std::string>{"web-1", "web-2"});
    auto passing = co_await c.find_service("web", registry::health_filter::passing);
    REQUIRE(passing.ok());
    CHECK(ids(passing->items) == std::vector<std::string>{"web-2"});
    auto lenient = co_await c.find_service("web", registry::health_filter::passing_or_warning, asio::use_awaitable);
    REQUIRE(lenient.ok());
    CHECK(ids(lenient->items) == std::vector<std::string>{"web-2"});

    // Named: GCC 12 destroys a braced temporary argument of co_await twice (test_cpp_client.cpp).
    const rc::endpoint_filter of_web{.service = "web"};
    const rc::endpoint_filter healthy_web{.service = "web", .health = registry::health_filter::passing};
    auto eps = co_await c.list_endpoints(of_web);
    REQUIRE(eps.ok());
    CHECK(ids(eps->items) == std::vector<std::string>{"web-1", "web-2"});
    auto healthy_eps = co_await c.list_endpoints(healthy_web);
    REQUIRE(healthy_eps.ok());
    CHECK(ids(healthy_eps->items) == std::vector<std::string>{"web-2"});
    c.close();
}

}  // namespace

TEST_CASE("C++ client: find_service and list_endpoints filtered by health") {
    it::registryd d;
    IT_DIAGNOSE(d);
    it::ws_client w(d);
    it::ws_client sub(d);
    sub.call("subscribe", json::object{{"events", json::array{"health_check_result"}}});
    sub.expect_event("registry_loaded");
    const std::uint16_t port = closed_port();
    for (const std::string id : {"web-1", "web-2"}) {
        json::object svc = it::service("web", id);
        svc["endpoints"] = json::array{json::object{{"name", "http"}, {"address", "127.0.0.1"}, {"port", port}, {"protocol", "http"}}};
        if (id == "web-1") {
            svc["checks"] = json::array{json::object{{"name", "port"}, {"kind", "tcp"}, {"endpoint", "http"},
                                                     {"interval_ms", 200}, {"timeout_ms", 150}}};
        }
        w.call("register", it::registration(std::move(svc), 60));
    }
    const json::value critical = sub.expect_event("health_check_result", it::scaled(10s));
    REQUIRE(str(critical, "/data/check/status") == "critical");

    asio::io_context io;
    rc::client c(io.get_executor(), {.url = "ws://127.0.0.1:" + std::to_string(d.port()) + "/"});
    run(io, [&] { return discover(c); });
}
