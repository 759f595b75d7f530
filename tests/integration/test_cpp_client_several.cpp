// registry::client (clients/cpp) given several registryd on one real etcd
// (docs/protocol.md, "Several registryd"): a writer and two standbys. The
// client goes round robin past a dead URL without a backoff inside the
// round, a write answered not_writer moves it to the writer (writes sent at
// once all move along), a write refused by every URL completes with
// not_writer after one round, and after a kill -9 of the writer the client
// ends up on the standby that took over, its session-bound registration
// renewed under its lease and its watch resumed with nothing missing.
#include "cpp_client_support.hpp"
#include "harness.hpp"
#include "three_registryd.hpp"

#include <registry/client/client.hpp>

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/steady_timer.hpp>

#include <doctest/doctest.h>

#include <functional>
#include <set>
#include <string>
#include <vector>

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

registry::service_instance service(std::string name, std::string instance_id) {
    registry::service_instance s;
    s.name = std::move(name);
    s.instance_id = std::move(instance_id);
    s.endpoints.push_back({"http", "127.0.0.1", 8080, "http"});
    return s;
}

struct move_seen {
    std::string from, to;
    rc::errc reason;
};

}  // namespace

TEST_CASE("C++ client several registryd: url and urls, exactly one of them") {
    asio::io_context io;
    rc::client neither(io.get_executor(), {});
    rc::client both(io.get_executor(), {.url = "ws://127.0.0.1:1/", .urls = {"ws://127.0.0.1:2/"}});
    rc::client bad(io.get_executor(), {.urls = {"ws://127.0.0.1:1/", "http://127.0.0.1:2/"}});
    run(io, [&]() -> asio::awaitable<void> {
        auto n = co_await neither.connect();
        CHECK(n.err().is(rc::errc::connection_failed));
        CHECK(n.err().message.find("ws://") != std::string::npos);
        auto b = co_await both.get_service("api-1");
        CHECK(b.err().is(rc::errc::connection_failed));
        CHECK(b.err().message.find("url or urls, not both") != std::string::npos);
        auto u = co_await bad.connect();
        CHECK(u.err().is(rc::errc::connection_failed));
        CHECK(u.err().message.find("options.urls") != std::string::npos);
        CHECK(u.err().message.find("http://127.0.0.1:2/") != std::string::npos);
    });
}

TEST_CASE("C++ client several registryd: past a dead URL without a backoff, a write moves the client from a standby to the writer, writes sent at once all land there") {
    it::three_registryd r("/cpp-urls/", it::three_registryd::writes::refused);  // the clients move
    IT_DIAGNOSE(r.a);
    IT_DIAGNOSE(r.b);
    IT_DIAGNOSE(r.c);
    asio::io_context io;
    run(io, [&]() -> asio::awaitable<void> {
        // A dead URL first; a backoff of at least 10 s would come between
        // it and the standby if it were per URL and not per round.
        std::vector<move_seen> moves;
        rc::client c(io.get_executor(), {.urls = {"ws://127.0.0.1:1/", url_of(r.b), url_of(r.a)},
                                         .reconnect_min = 20s, .reconnect_max = 20s,
                                         .on_moved = [&](const std::string& from, const std::string& to, rc::errc why) {
                                             moves.push_back({from, to, why});
                                         }});
        auto connected = co_await c.connect();
        REQUIRE_MESSAGE(connected.ok(), connected.err().message);
        CHECK(c.url() == url_of(r.b));
        // A read is served by the standby: no move.
        CHECK((co_await c.get_service("nope-1")).err().is(rc::errc::not_found));
        CHECK(c.url() == url_of(r.b));

        auto reg = co_await c.register_service(service("api", "api-1"), {.ttl = 30s});
        REQUIRE_MESSAGE(reg.ok(), reg.err().message);
        CHECK(c.url() == url_of(r.a));
        REQUIRE(moves.size() == 1);
        CHECK(moves[0].from == url_of(r.b));
        CHECK(moves[0].to == url_of(r.a));
        CHECK(moves[0].reason == rc::errc::not_writer);
        it::ws_client on_c(r.c);
        const auto seen = on_c.call("get_service", it::json::object{{"instance_id", "api-1"}});
        CHECK(num(seen, "/service/lease/id") == static_cast<std::int64_t>(reg->lease_id()));

        // Once on the writer it stays: more writes, no more moves.
        REQUIRE((co_await c.deregister("api-1")).ok());
        CHECK(moves.size() == 1);
    });

    run(io, [&]() -> asio::awaitable<void> {
        // Ten writes sent at once to a standby: all answered not_writer, all
        // move along (standby c, standby b, then the writer a).
        std::vector<move_seen> moves;
        rc::client c(io.get_executor(), {.urls = {url_of(r.c), url_of(r.b), url_of(r.a)},
                                         .on_moved = [&](const std::string& from, const std::string& to, rc::errc why) {
                                             moves.push_back({from, to, why});
                                         }});
        REQUIRE((co_await c.connect()).ok());
        CHECK(c.url() == url_of(r.c));
        std::vector<std::optional<rc::result<rc::registration>>> results(10);
        for (std::size_t i = 0; i < results.size(); ++i) {
            c.register_service(service("web", "web-" + std::to_string(i)), {.ttl = 30s},
                               [&results, i](rc::result<rc::registration> res) { results[i] = std::move(res); });
        }
        // A read sent meanwhile is answered too.
        rc::endpoint_filter any;  // a local: GCC 12 destroys a braced temporary in co_await's operand twice
        auto read = co_await c.list_endpoints(any);
        CHECK_MESSAGE(read.ok(), read.err().message);
        REQUIRE(co_await eventually([&] { return std::all_of(results.begin(), results.end(), [](const auto& x) { return x.has_value(); }); }, 20s));
        for (const auto& res : results) CHECK_MESSAGE(res->ok(), res->err().message);
        CHECK(c.url() == url_of(r.a));
        REQUIRE(moves.size() == 2);
        CHECK(moves[0].from == url_of(r.c));
        CHECK(moves[0].to == url_of(r.b));
        CHECK(moves[1].from == url_of(r.b));
        CHECK(moves[1].to == url_of(r.a));
        for (const auto& m : moves) CHECK(m.reason == rc::errc::not_writer);
        it::ws_client on_b(r.b);
        CHECK(it::arr(on_b.call("list_services", it::json::object{{"name", "web"}}), "/services").size() == 10);
    });

    run(io, [&]() -> asio::awaitable<void> {
        // Only standbys: a write is tried once on each, then not_writer.
        std::vector<move_seen> moves;
        rc::client c(io.get_executor(), {.urls = {url_of(r.b), url_of(r.c)},
                                         .on_moved = [&](const std::string& from, const std::string& to, rc::errc why) {
                                             moves.push_back({from, to, why});
                                         }});
        auto refused = co_await c.register_service(service("api", "api-2"), {.ttl = 30s});
        REQUIRE_FALSE(refused.ok());
        CHECK(refused.err().is(rc::errc::not_writer));
        CHECK(refused.err().message.find("standby") != std::string::npos);
        REQUIRE(moves.size() == 1);
        CHECK(moves[0].from == url_of(r.b));
        CHECK(moves[0].to == url_of(r.c));
        CHECK(c.url() == url_of(r.c));
        // Reads go on where it is.
        auto read = co_await c.find_service("web");
        REQUIRE_MESSAGE(read.ok(), read.err().message);
        CHECK(read->items.size() == 10);
        CHECK(c.url() == url_of(r.c));
    });
}

TEST_CASE("C++ client several registryd: after a kill -9 of the writer the client ends up on the new writer, its session-bound registration renewed and its watch resumed with nothing missing") {
    it::three_registryd r("/cpp-urls/", it::three_registryd::writes::refused);  // the clients move
    IT_DIAGNOSE(r.a);
    IT_DIAGNOSE(r.b);
    IT_DIAGNOSE(r.c);
    asio::io_context io;
    std::vector<move_seen> moves;
    std::vector<std::string> background;
    rc::client c(io.get_executor(), {.urls = {url_of(r.a), url_of(r.b), url_of(r.c)},
                                     .reconnect_min = 50ms, .reconnect_max = 500ms,
                                     .on_background_error = [&](const rc::error& e) { background.push_back(e.message); },
                                     .on_moved = [&](const std::string& from, const std::string& to, rc::errc why) {
                                         moves.push_back({from, to, why});
                                     }});
    run(io, [&]() -> asio::awaitable<void> {
        auto reg = co_await c.register_service(service("api", "api-1"), {.ttl = 30s, .session_bound = true});
        REQUIRE_MESSAGE(reg.ok(), reg.err().message);
        CHECK(c.url() == url_of(r.a));
        const std::uint64_t lease = reg->lease_id();
        rc::watch_options w_opts{.services = {"web"}, .snapshot = false};
        auto w = co_await c.watch(w_opts);
        REQUIRE_MESSAGE(w.ok(), w.err().message);
        std::uint64_t before = 0;
        {
            it::ws_client writes(r.a);
            for (int i = 1; i <= 3; ++i) {
                before = static_cast<std::uint64_t>(
                    num(writes.call("register", it::registration(it::service("web", "web-" + std::to_string(i)), 300)), "/revision"));
            }
        }
        // At once, whether or not the client got those events yet.
        r.a.kill9();

        it::registryd* writer = nullptr;
        REQUIRE(co_await eventually(
            [&] {
                for (auto* d : {&r.b, &r.c}) {
                    if (it::three_registryd::logged(*d, "elected the registry's writer") && it::three_registryd::logged(*d, "\"listening\"")) writer = d;
                }
                return writer != nullptr;
            },
            20s));
        // Changes on the new writer while the client may still be moving.
        std::vector<std::uint64_t> after;
        for (int attempt = 0; after.empty(); ++attempt) {  // until its listener is up
            try {
                it::ws_client writes(*writer);
                for (int i = 4; i <= 6; ++i) {
                    after.push_back(static_cast<std::uint64_t>(
                        num(writes.call("register", it::registration(it::service("web", "web-" + std::to_string(i)), 300)), "/revision")));
                }
            } catch (const it::failure&) {
                after.clear();
                REQUIRE(attempt < 100);
            }
            if (after.empty()) co_await sleep(100ms);
        }

        // The client is on the new writer, its registration renewed there
        // under the same lease (no re-registration under a new one).
        INFO("background errors: " << background.size() << (background.empty() ? "" : ", last: " + background.back()));
        REQUIRE(co_await eventually([&] { return c.is_connected() && c.url() == url_of(*writer); }, 20s));
        {
            it::ws_client check(*writer);
            REQUIRE(co_await eventually(
                [&] {
                    const auto got = check.request("get_service", it::json::object{{"instance_id", "api-1"}});
                    return it::error_code(got).empty() &&
                           num(got, "/data/service/lease/id") == static_cast<std::int64_t>(lease) &&
                           it::boolean(got, "/data/service/lease/session_bound");
                },
                20s));
        }
        CHECK(reg->reregistrations() == 0);
        CHECK(reg->lease_id() == lease);
        REQUIRE_FALSE(moves.empty());
        CHECK(moves.front().from == url_of(r.a));
        CHECK(moves.front().reason == rc::errc::connection_lost);
        CHECK(moves.back().to == url_of(*writer));

        // Every event once, in order: web-1..3 from the old writer, web-4..6
        // from the new one.
        std::vector<std::string> ids;
        std::uint64_t last = 0;
        while (ids.size() < 6) {
            rc::event e = co_await next_event(*w, c);
            CHECK(e.type == "service_registered");
            CHECK(e.revision > last);
            last = e.revision;
            REQUIRE(e.service.has_value());
            ids.push_back(e.service->instance_id);
            if (ids.size() == 3) CHECK(e.revision == before);
            if (ids.size() > 3) CHECK(e.revision == after[ids.size() - 4]);
        }
        CHECK(ids == std::vector<std::string>{"web-1", "web-2", "web-3", "web-4", "web-5", "web-6"});
        // Nothing more (no duplicate): a bounded wait for a stray event.
        asio::steady_timer quiet(c.get_executor(), 500ms);
        bool stray = false;
        quiet.async_wait([&](boost::system::error_code) { w->cancel(); });
        for (;;) {
            auto e = co_await w->next();
            if (!e) break;
            if (e->type != "bookmark") stray = true;
        }
        CHECK_FALSE(stray);

        // Writes go on on the new writer.
        REQUIRE((co_await c.deregister("web-1")).ok());
        CHECK(c.url() == url_of(*writer));
    });
}
