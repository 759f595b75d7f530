// registry::client (clients/cpp) against the real registryd: registration
// kept alive by background keepalives, discovery, deregistration, watches,
// the callback form, and the reconnect story: a registryd restart after
// which the client re-registers and a watcher resumes from its last
// revision, and a lease lost under the client's feet that it replaces.
#include "cpp_client_support.hpp"
#include "harness.hpp"
#include "harness_tls.hpp"

#include <registry/client/client.hpp>

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/read_until.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/write.hpp>

#include <doctest/doctest.h>


#include <algorithm>
#include <csignal>
#include <filesystem>
#include <functional>

namespace asio = boost::asio;
namespace rc = registry::client;
using namespace std::chrono_literals;
using it::num;
using it::str;

using it::cpp_client::eventually;
using it::cpp_client::next_event;
using it::cpp_client::run;
using it::cpp_client::sleep;

namespace {

std::string url_of(const it::registryd& d) { return "ws://127.0.0.1:" + std::to_string(d.port()) + "/"; }

registry::service_instance api(std::string instance_id, std::uint16_t port = 8080) {
    registry::service_instance s;
    s.name = "api";
    s.instance_id = std::move(instance_id);
    s.version = "1.2.3";
    s.endpoints.push_back({"http", "127.0.0.1", port, "http"});
    s.metadata["team"] = "core";
    return s;
}

// The next event of `w` that is not a bookmark, bounded.
// SIGTERM and wait for the exit while the client keeps running (it answers
// the close handshake; a blocking terminate() would stall it).
asio::awaitable<bool> stop_daemon(it::registryd& d) {
    d.signal(SIGTERM);
    co_return co_await eventually([&] { return !d.running(); }, 15s);
}

}  // namespace

TEST_CASE("C++ client: register, discover, deregister against registryd, errors carry the protocol's code and message") {
    it::registryd d;
    IT_DIAGNOSE(d);
    asio::io_context io;
    rc::client c(io.get_executor(), {.url = url_of(d)});

    run(io, [&]() -> asio::awaitable<void> {
        REQUIRE(co_await c.connect());
        rc::result<rc::registration> reg = co_await c.register_service(api("api-1"), {.ttl = 30s});
        REQUIRE_MESSAGE(reg.ok(), reg.err().message);
        CHECK(reg->instance_id() == "api-1");
        CHECK(reg->lease_id() > 0);

        // What another connection sees.
        it::ws_client other(d);
        const auto seen = other.call("get_service", it::json::object{{"instance_id", "api-1"}});
        CHECK(str(seen, "/service/endpoints/0/address") == "127.0.0.1");
        CHECK(num(seen, "/service/lease/id") == static_cast<std::int64_t>(reg->lease_id()));

        rc::result<registry::service_instance> s = co_await c.get_service("api-1");
        REQUIRE(s.ok());
        CHECK(s->name == "api");
        CHECK(s->version == "1.2.3");
        CHECK(s->metadata.at("team") == "core");
        CHECK(s->lease.id == reg->lease_id());
        REQUIRE(s->endpoints.size() == 1);
        CHECK(s->endpoints[0].port == 8080);

        REQUIRE((co_await c.register_service(api("api-2", 8081))).ok());
        auto all = co_await c.find_service("api");
        REQUIRE(all.ok());
        CHECK(all->items.size() == 2);
        CHECK(all->revision >= 2);
        rc::endpoint_filter of_api{.service = "api"};  // a local (see watch_options below)
        auto eps = co_await c.list_endpoints(of_api);
        REQUIRE(eps.ok());
        REQUIRE(eps->items.size() == 2);
        CHECK(eps->items[1].instance_id == "api-2");
        CHECK(eps->items[1].port == 8081);
        CHECK(eps->items[1].protocol == "http");

        // An error as a value: the protocol's code and registryd's message.
        auto missing = co_await c.get_service("nope-1");
        REQUIRE_FALSE(missing.ok());
        CHECK(missing.err().is(rc::errc::not_found));
        CHECK(missing.err().code == rc::errc::not_found);
        CHECK(missing.err().message.find("nope-1") != std::string::npos);
        // ... and as an exception, with both.
        try {
            (void)missing.value();
            FAIL("value() of an error did not throw");
        } catch (const rc::exception& e) {
            CHECK(e.code() == rc::errc::not_found);
            CHECK(std::string(e.what()).find("nope-1") != std::string::npos);
        }
        registry::service_instance bad_name;
        bad_name.name = "bad name";
        auto bad = co_await c.register_service(bad_name);
        REQUIRE_FALSE(bad.ok());
        CHECK(bad.err().is(rc::errc::invalid_request));
        CHECK(bad.err().message.find("params.service.name") != std::string::npos);

        REQUIRE((co_await reg->deregister()).ok());
        CHECK((co_await c.get_service("api-1")).err().is(rc::errc::not_found));
        CHECK((co_await c.deregister("api-2")).ok());
        CHECK((co_await c.deregister("api-2")).err().is(rc::errc::not_found));
    });
}

TEST_CASE("C++ client: the callback form completes with the same result") {
    it::registryd d;
    IT_DIAGNOSE(d);
    asio::io_context io;
    rc::client c(io.get_executor(), {.url = url_of(d)});
    std::optional<rc::result<rc::registration>> registered;
    c.register_service(api("api-1"), {}, [&](rc::result<rc::registration> r) { registered = std::move(r); });
    const auto deadline = it::steady::now() + it::scaled(10s);
    while (!registered && it::steady::now() < deadline) io.run_one_for(100ms);
    REQUIRE(registered.has_value());
    REQUIRE_MESSAGE(registered->ok(), registered->err().message);
    std::optional<rc::result<registry::service_instance>> got;
    c.get_service("api-1", [&](rc::result<registry::service_instance> r) { got = std::move(r); });
    while (!got && it::steady::now() < deadline) io.run_one_for(100ms);
    REQUIRE(got.has_value());
    CHECK((*got)->instance_id == "api-1");
}

TEST_CASE("C++ client: the lease is kept alive in the background, well past its TTL") {
    it::registryd d;
    IT_DIAGNOSE(d);
    asio::io_context io;
    rc::client c(io.get_executor(), {.url = url_of(d)});
    run(io, [&]() -> asio::awaitable<void> {
        auto reg = co_await c.register_service(api("api-1"), {.ttl = 2s});
        REQUIRE(reg.ok());
        const std::int64_t first_expiry = reg->expires_at_ms();
        co_await sleep(it::scaled(5s));  // 2.5 TTLs: without keepalives the lease expires
        CHECK(reg->renewals() >= 3);
        CHECK(reg->expires_at_ms() > first_expiry + 2000);
        it::ws_client other(d);
        const auto seen = other.call("get_service", it::json::object{{"instance_id", "api-1"}});
        CHECK(num(seen, "/service/lease/id") == static_cast<std::int64_t>(reg->lease_id()));

        // Stopped, the lease runs out at its TTL.
        reg->stop();
        CHECK(co_await eventually(
            [&] { return it::error_code(other.request("get_service", it::json::object{{"instance_id", "api-1"}})) == "not_found"; },
            8s));
    });
}

TEST_CASE("C++ client: a lease lost under the client is replaced by a registration under a new lease") {
    it::registryd d;
    IT_DIAGNOSE(d);
    asio::io_context io;
    rc::client c(io.get_executor(), {.url = url_of(d)});
    run(io, [&]() -> asio::awaitable<void> {
        auto reg = co_await c.register_service(api("api-1"), {.ttl = 30s, .keepalive_interval = 200ms});
        REQUIRE(reg.ok());
        const std::uint64_t old_lease = reg->lease_id();
        it::ws_client other(d);
        other.call("deregister", it::json::object{{"instance_id", "api-1"}});
        REQUIRE(co_await eventually([&] { return reg->reregistrations() == 1; }, 10s));
        CHECK(reg->lease_id() != old_lease);
        const auto seen = other.call("get_service", it::json::object{{"instance_id", "api-1"}});
        CHECK(num(seen, "/service/lease/id") == static_cast<std::int64_t>(reg->lease_id()));
    });
}

TEST_CASE("C++ client: a watch delivers the snapshot and live events, resumes from a given revision, and a cancel ends it") {
    it::registryd d;
    IT_DIAGNOSE(d);
    asio::io_context io;
    rc::client c(io.get_executor(), {.url = url_of(d)});
    run(io, [&]() -> asio::awaitable<void> {
        REQUIRE((co_await c.register_service(api("api-1"))).ok());
        rc::watch_options w_opts{.services = {"api"}};  // GCC 12 miscompiles a braced temporary in co_await's operand: a local
        auto w = co_await c.watch(w_opts);
        REQUIRE(w.ok());
        rc::event loaded = co_await next_event(*w, c);
        CHECK(loaded.type == "registry_loaded");
        REQUIRE(loaded.services.size() == 1);
        CHECK(loaded.services[0].instance_id == "api-1");

        auto reg2 = co_await c.register_service(api("api-2", 8081));
        REQUIRE(reg2.ok());
        rc::event e = co_await next_event(*w, c);
        CHECK(e.type == "service_registered");
        REQUIRE(e.service.has_value());
        CHECK(e.service->instance_id == "api-2");
        CHECK(e.revision == 2);
        CHECK(w->last_revision() == 2);

        // From a revision: the replay of what came after it.
        rc::watch_options replay_opts{.services = {"api"}, .from_revision = 1};
        auto replay = co_await c.watch(replay_opts);
        REQUIRE(replay.ok());
        rc::event again = co_await next_event(*replay, c);
        CHECK(again.type == "service_registered");
        CHECK(again.revision == 2);
        CHECK(again.data.find("\"api-2\"") != std::string::npos);

        w->cancel();
        auto ended = co_await w->next();
        CHECK(ended.err().is(rc::errc::closed));
    });
}

TEST_CASE("C++ client: across a registryd restart the client reconnects, re-registers, and a watcher resumes without a resync") {
    it::registryd d;
    d.keep_port_across_restarts();
    IT_DIAGNOSE(d);
    asio::io_context io;
    std::vector<std::string> background;
    rc::client c(io.get_executor(), {.url = url_of(d), .reconnect_min = 50ms, .reconnect_max = 500ms,
                                     .on_background_error = [&](const rc::error& e) { background.push_back(e.message); }});
    run(io, [&]() -> asio::awaitable<void> {
        auto reg = co_await c.register_service(api("api-1"), {.ttl = 30s});
        REQUIRE(reg.ok());
        rc::watch_options w_opts{.services = {"api"}, .snapshot = false};
        auto w = co_await c.watch(w_opts);
        REQUIRE(w.ok());
        {
            it::ws_client other(d);
            other.call("register", it::registration(it::service("api", "api-2"), 300));
        }
        rc::event e = co_await next_event(*w, c);
        CHECK(e.type == "service_registered");
        CHECK(e.revision == 2);
        const std::uint64_t renewals = reg->renewals();

        REQUIRE(co_await stop_daemon(d));
        CHECK(co_await eventually([&] { return !c.is_connected(); }, 5s));
        co_await sleep(300ms);  // a few failed attempts
        d.start();
        REQUIRE(co_await eventually([&] { return c.is_connected(); }, 15s));
        // Re-registered under its lease (it outlived the outage).
        REQUIRE(co_await eventually([&] { return reg->renewals() > renewals; }, 10s));
        CHECK(reg->reregistrations() == 0);

        // The watcher is subscribed again from revision 2: the next change
        // arrives, with no resync and nothing repeated.
        {
            it::ws_client other(d);
            const auto r = other.call("register", it::registration(it::service("api", "api-3"), 300));
            CHECK(num(r, "/revision") == 3);
        }
        rc::event after = co_await next_event(*w, c);
        CHECK(after.type == "service_registered");
        CHECK(after.revision == 3);
        REQUIRE(after.service.has_value());
        CHECK(after.service->instance_id == "api-3");

        // Requests work on the new connection.
        auto s = co_await c.get_service("api-1");
        REQUIRE(s.ok());
        CHECK(s->lease.id == reg->lease_id());
    });
    MESSAGE("background errors: " << background.size());
}

TEST_CASE("C++ client: a lease that expired while registryd was down is registered anew after the restart, the watcher sees it go and come back") {
    it::registryd d;
    d.keep_port_across_restarts();
    IT_DIAGNOSE(d);
    asio::io_context io;
    rc::client c(io.get_executor(), {.url = url_of(d), .reconnect_min = 50ms, .reconnect_max = 500ms});
    run(io, [&]() -> asio::awaitable<void> {
        auto reg = co_await c.register_service(api("api-1"), {.ttl = 1s});
        REQUIRE(reg.ok());
        const std::uint64_t old_lease = reg->lease_id();
        rc::watch_options w_opts{.services = {"api"}, .snapshot = false};
        auto w = co_await c.watch(w_opts);
        REQUIRE(w.ok());

        REQUIRE(co_await stop_daemon(d));
        co_await sleep(it::scaled(3s));  // the lease's deadline passes while registryd is down
        d.start();

        // Whichever comes first after the restart (registryd expiring the
        // lease, or the client renewing it), the instance ends up alive
        // under a lease the client keeps renewing.
        REQUIRE(co_await eventually([&] { return c.is_connected(); }, 15s));
        std::vector<rc::event> seen;
        while (seen.empty() || seen.back().type != "service_registered") seen.push_back(co_await next_event(*w, c));
        // The event may come before the client has read the register's answer.
        CHECK(co_await eventually([&] { return reg->reregistrations() == 1; }, 5s));
        CHECK(reg->lease_id() != old_lease);
        REQUIRE(seen.size() == 3);
        CHECK(seen[0].type == "lease_expired");
        CHECK(seen[1].type == "service_deregistered");
        CHECK(seen[0].revision == seen[1].revision);
        CHECK(seen[2].revision > seen[1].revision);
        REQUIRE(seen[2].service.has_value());
        CHECK(seen[2].service->lease.id == reg->lease_id());
        co_await sleep(it::scaled(2500ms));  // past the TTL again: kept alive
        auto s = co_await c.get_service("api-1");
        REQUIRE(s.ok());
        CHECK(s->lease.id == reg->lease_id());
    });
}

TEST_CASE("C++ client: a URL that is not a WebSocket server, and a bad URL, are distinct errors") {
    asio::io_context io;
    rc::client bad_url(io.get_executor(), {.url = "http://127.0.0.1:1/"});
    it::registryd d;
    IT_DIAGNOSE(d);
    // registryd's plain HTTP side: /healthz does not upgrade... the upgrade
    // itself goes to any path, so a closed port stands for "nothing there".
    rc::client nothing(io.get_executor(), {.url = "ws://127.0.0.1:1/", .request_timeout = 2s});
    run(io, [&]() -> asio::awaitable<void> {
        auto r = co_await bad_url.connect();
        CHECK(r.err().is(rc::errc::connection_failed));
        CHECK(r.err().message.find("ws://") != std::string::npos);
        auto n = co_await nothing.connect();
        CHECK(n.err().is(rc::errc::connection_failed));
        auto g = co_await nothing.get_service("api-1");
        CHECK(g.err().is(rc::errc::not_connected));
        CHECK(g.err().message.find("127.0.0.1:1") != std::string::npos);
    });
}

// The upgrade as the client sends it, and a 401 as access control answers it
// (docs/protocol.md, "Authentication"): a one-page HTTP peer on loopback
// stands in for the daemon's answer, since only the client's side is checked.
namespace {

asio::awaitable<void> answer_upgrades(asio::ip::tcp::acceptor& acceptor, std::string answer, std::vector<std::string>& requests) {
    for (;;) {
        auto [err, socket] = co_await acceptor.async_accept(asio::as_tuple(asio::use_awaitable));
        if (err) co_return;
        std::string request;
        auto [rerr, n] = co_await asio::async_read_until(socket, asio::dynamic_buffer(request), "\r\n\r\n",
                                                          asio::as_tuple(asio::use_awaitable));
        if (rerr) continue;
        requests.push_back(request.substr(0, n));
        co_await asio::async_write(socket, asio::buffer(answer), asio::as_tuple(asio::use_awaitable));
    }
}

}  // namespace

TEST_CASE("C++ client: the upgrade carries the bearer token, a 401 is errc::unauthorized, other answers handshake_failed") {
    asio::io_context io;
    asio::ip::tcp::acceptor refusing(io, {asio::ip::make_address("127.0.0.1"), 0});
    asio::ip::tcp::acceptor not_websocket(io, {asio::ip::make_address("127.0.0.1"), 0});
    std::vector<std::string> refused_requests, other_requests;
    asio::co_spawn(io, answer_upgrades(refusing, "HTTP/1.1 401 Unauthorized\r\nContent-Length: 0\r\nConnection: close\r\n\r\n", refused_requests), asio::detached);
    asio::co_spawn(io, answer_upgrades(not_websocket, "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: AAAAAAAAAAAAAAAAAAAAAAAAAAA=\r\n\r\n", other_requests), asio::detached);
    const auto url = [](const asio::ip::tcp::acceptor& a) { return "ws://127.0.0.1:" + std::to_string(a.local_endpoint().port()) + "/v1/ws"; };
    rc::client with_token(io.get_executor(), {.url = url(refusing), .bearer_token = "s3cret", .request_timeout = 3s});
    rc::client without_token(io.get_executor(), {.url = url(refusing), .request_timeout = 3s});
    run(io, [&]() -> asio::awaitable<void> {
        auto r = co_await with_token.connect();
        REQUIRE_FALSE(r.ok());
        CHECK(r.err().is(rc::errc::unauthorized));
        CHECK(r.err().message.find("401") != std::string::npos);
        CHECK(r.err().message.find("token was refused") != std::string::npos);
        auto none = co_await without_token.connect();
        CHECK(none.err().is(rc::errc::unauthorized));
        CHECK(none.err().message.find("no bearer token") != std::string::npos);
        // A request waiting for a connection says why there is none.
        auto g = co_await with_token.get_service("api-1");
        CHECK(g.err().is(rc::errc::not_connected));
        CHECK(g.err().message.find("401") != std::string::npos);
        // Made only now: a client failing in the background since the start would be
        // in a backoff longer than the timeout by the time connect() is called.
        rc::client wrong_accept(io.get_executor(), {.url = url(not_websocket), .request_timeout = 3s});
        auto w = co_await wrong_accept.connect();
        CHECK(w.err().is(rc::errc::handshake_failed));
        CHECK(w.err().message.find("Sec-WebSocket-Accept") != std::string::npos);
    });
    REQUIRE_FALSE(refused_requests.empty());
    const auto& first = refused_requests.front();
    CHECK(first.starts_with("GET /v1/ws HTTP/1.1\r\n"));
    CHECK(first.find("\r\nUpgrade: websocket\r\n") != std::string::npos);
    CHECK(first.find("\r\nSec-WebSocket-Version: 13\r\n") != std::string::npos);
    const bool has_token = std::any_of(refused_requests.begin(), refused_requests.end(), [](const std::string& r) {
        return r.find("\r\nAuthorization: Bearer s3cret\r\n") != std::string::npos;
    });
    CHECK(has_token);
    const bool tokenless = std::any_of(refused_requests.begin(), refused_requests.end(), [](const std::string& r) {
        return r.find("Authorization") == std::string::npos;
    });
    CHECK(tokenless);
}

TEST_CASE("C++ client: after a restart that lost the data, the client registers anew and the watcher gets resync_required then a snapshot") {
    it::registryd d;
    d.keep_port_across_restarts();
    IT_DIAGNOSE(d);
    asio::io_context io;
    rc::client c(io.get_executor(), {.url = url_of(d), .reconnect_min = 50ms, .reconnect_max = 500ms});
    run(io, [&]() -> asio::awaitable<void> {
        auto reg = co_await c.register_service(api("api-1"), {.ttl = 30s});
        REQUIRE(reg.ok());
        {
            it::ws_client other(d);
            other.call("register", it::registration(it::service("api", "api-2"), 300));
            other.call("register", it::registration(it::service("api", "api-3"), 300));
        }
        rc::watch_options from_start{.services = {"api"}, .from_revision = 0};
        auto w = co_await c.watch(from_start);
        REQUIRE(w.ok());
        for (std::uint64_t rev = 1; rev <= 3; ++rev) CHECK((co_await next_event(*w, c)).revision == rev);

        REQUIRE(co_await stop_daemon(d));
        std::filesystem::remove_all(d.data_dir());  // registryd comes back empty, at revision 0
        d.start();

        // The watcher resumed from 3, a revision from the future for the new
        // registryd: resync_required, then the registry as it is now.
        rc::event resync = co_await next_event(*w, c);
        CHECK(resync.type == "resync_required");
        CHECK(resync.data.find("\"from_revision\":3") != std::string::npos);
        rc::event loaded = co_await next_event(*w, c);
        CHECK(loaded.type == "registry_loaded");
        // The client's registration is back, under a new lease (its own, or
        // the snapshot was taken just before it: then its event follows).
        std::vector<std::string> ids;
        for (const auto& s : loaded.services) ids.push_back(s.instance_id);
        if (ids.empty()) {
            rc::event again = co_await next_event(*w, c);
            CHECK(again.type == "service_registered");
            REQUIRE(again.service.has_value());
            ids.push_back(again.service->instance_id);
        }
        CHECK(ids == std::vector<std::string>{"api-1"});
        CHECK(co_await eventually([&] { return reg->reregistrations() == 1; }, 10s));
        auto s = co_await c.get_service("api-1");
        REQUIRE(s.ok());
        CHECK(s->lease.id == reg->lease_id());
    });
}

TEST_CASE("C++ client: over wss:// with a private CA and a bearer token against a registryd with TLS and access control") {
    const it::test_pki pki;
    const auto server = pki.server();
    const std::string token = "cpp-client-token-4b81d2";
    it::registryd d("tls:\n  cert_file: " + server.cert.string() + "\n  key_file: " + server.key.string() +
                        "\nauth:\n  tokens_file: \"{dir}/tokens.yaml\"\n",
                    false);
    d.write_file("tokens.yaml", "tokens:\n  - name: cpp-service\n    sha256: " + it::sha256_hex(token) +
                                    "\n    role: registrar\n");
    d.start();
    IT_DIAGNOSE(d);
    const std::string wss = "wss://localhost:" + std::to_string(d.port()) + "/";
    asio::io_context io;
    rc::client c(io.get_executor(), {.url = wss, .bearer_token = token, .ca_file = pki.ca_cert().string()});
    rc::client wrong(io.get_executor(),
                     {.url = wss, .bearer_token = "not-it", .ca_file = pki.ca_cert().string(), .request_timeout = 3s});
    rc::client untrusting(io.get_executor(), {.url = wss, .bearer_token = token, .request_timeout = 3s});

    run(io, [&]() -> asio::awaitable<void> {
        REQUIRE(co_await c.connect());
        auto reg = co_await c.register_service(api("api-1"), {.ttl = 30s});
        REQUIRE_MESSAGE(reg.ok(), reg.err().message);
        auto s = co_await c.get_service("api-1");
        REQUIRE(s.ok());
        CHECK(s->lease.holder == "cpp-service");
        auto refused = co_await wrong.connect();
        REQUIRE_FALSE(refused.ok());
        CHECK(refused.err().code == rc::errc::unauthorized);
        // Without the private CA the server's certificate is not trusted: no connection, and not a 401.
        auto untrusted = co_await untrusting.connect();
        REQUIRE_FALSE(untrusted.ok());
        CHECK(untrusted.err().code != rc::errc::unauthorized);
    });
}
