// registry::client (clients/cpp) given several URLs, against scripted
// WebSocket peers on loopback that answer each action as the test says (or
// never): what real registryd cannot be made to do on cue. A request still
// unanswered when the client leaves a standby for the writer fails with
// connection_lost after the bounded wait, while the write answered
// not_writer is sent again on the next URL; with one URL a not_writer
// answer is the result, without a reconnect.
#include "cpp_client_support.hpp"
#include "harness.hpp"

#include <registry/client/client.hpp>

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/beast/core/buffers_to_string.hpp>
#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/websocket/stream.hpp>

#include <doctest/doctest.h>

#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace rc = registry::client;
using tcp = asio::ip::tcp;
using namespace std::chrono_literals;

using it::cpp_client::eventually;
using it::cpp_client::run;

namespace {

constexpr auto use_tuple = asio::as_tuple(asio::use_awaitable);

// A WebSocket peer on 127.0.0.1 whose `script` gives the response frame to
// each request (by action and id), or nothing: never answered.
class scripted_peer {
public:
    using script = std::function<std::optional<std::string>(const std::string& action, const std::string& id)>;

    scripted_peer(asio::io_context& io, script s) : acceptor_(io, {asio::ip::make_address("127.0.0.1"), 0}), script_(std::move(s)) {
        asio::co_spawn(io, accept(), asio::detached);
    }
    ~scripted_peer() {
        boost::system::error_code ignored;
        acceptor_.close(ignored);
        for (auto* ws : *open_) beast::get_lowest_layer(*ws).close(ignored);
    }

    std::string url() const { return "ws://127.0.0.1:" + std::to_string(acceptor_.local_endpoint().port()) + "/"; }
    int connections = 0;
    std::vector<std::string> actions;  // every request received, in order

private:
    asio::awaitable<void> accept() {
        for (;;) {
            auto [err, socket] = co_await acceptor_.async_accept(use_tuple);
            if (err) co_return;
            asio::co_spawn(acceptor_.get_executor(), session(std::move(socket)), asio::detached);
        }
    }

    asio::awaitable<void> session(tcp::socket socket) {
        beast::websocket::stream<tcp::socket> ws(std::move(socket));
        auto [aerr] = co_await ws.async_accept(use_tuple);
        if (aerr) co_return;
        ++connections;
        open_->push_back(&ws);
        // The list outlives the peer: the io_context destroys this frame last.
        struct unlist {
            std::shared_ptr<std::vector<beast::websocket::stream<tcp::socket>*>> list;
            beast::websocket::stream<tcp::socket>* ws;
            ~unlist() { std::erase(*list, ws); }
        } guard{open_, &ws};
        for (;;) {
            beast::flat_buffer buf;
            auto [rerr, n] = co_await ws.async_read(buf, use_tuple);
            if (rerr) co_return;
            const it::json::value request = it::json::parse(beast::buffers_to_string(buf.data()));
            const std::string action = it::str(request, "/action");
            const std::string id = it::str(request, "/id");
            actions.push_back(action);
            if (auto answer = script_(action, id)) {
                ws.text(true);
                auto [werr, m] = co_await ws.async_write(asio::buffer(*answer), use_tuple);
                if (werr) co_return;
            }
        }
    }

    tcp::acceptor acceptor_;
    script script_;
    std::shared_ptr<std::vector<beast::websocket::stream<tcp::socket>*>> open_ =
        std::make_shared<std::vector<beast::websocket::stream<tcp::socket>*>>();
};

std::string not_writer(const std::string& id) {
    return R"({"id":")" + id +
           R"(","type":"response","error":{"code":"not_writer","message":"this registryd is a standby: scripted writes the registry; send writes there"}})";
}

std::string lease_granted(const std::string& id) {
    return R"({"id":")" + id +
           R"(","type":"response","data":{"lease_id":7,"instance_id":"api-1","ttl_seconds":30,"expires_at_ms":1,"revision":1,"created":true}})";
}

registry::service_instance api_1() {
    registry::service_instance s;
    s.name = "api";
    s.instance_id = "api-1";
    return s;
}

}  // namespace

TEST_CASE("C++ client scripted URLs: leaving a standby waits about a second for an unanswered request, which then fails connection_lost, and the write goes on to the writer") {
    asio::io_context io;
    // The standby never answers get_service; it refuses register.
    scripted_peer standby(io, [](const std::string& action, const std::string& id) -> std::optional<std::string> {
        if (action == "register") return not_writer(id);
        return std::nullopt;
    });
    scripted_peer writer(io, [](const std::string& action, const std::string& id) -> std::optional<std::string> {
        if (action == "register") return lease_granted(id);
        return std::nullopt;
    });
    struct move_seen {
        std::string from, to;
        rc::errc reason;
    };
    std::vector<move_seen> moves;
    rc::client c(io.get_executor(), {.urls = {standby.url(), writer.url()},
                                     .on_moved = [&](const std::string& from, const std::string& to, rc::errc why) {
                                         moves.push_back({from, to, why});
                                     }});
    run(io, [&]() -> asio::awaitable<void> {
        REQUIRE((co_await c.connect()).ok());
        CHECK(c.url() == standby.url());
        std::optional<rc::result<registry::service_instance>> read;
        c.get_service("api-1", [&](rc::result<registry::service_instance> r) { read = std::move(r); });
        REQUIRE(co_await eventually([&] { return standby.actions.size() == 1; }, 10s));

        const auto sent = it::steady::now();
        auto reg = co_await c.register_service(api_1(), {.ttl = 30s});
        const auto took = it::steady::now() - sent;
        REQUIRE_MESSAGE(reg.ok(), reg.err().message);
        CHECK(reg->lease_id() == 7);
        // It waited for the read's answer (which never came) for the bound.
        CHECK(took >= 900ms);
        REQUIRE(read.has_value());
        REQUIRE_FALSE(read->ok());
        CHECK(read->err().is(rc::errc::connection_lost));
        CHECK(c.url() == writer.url());
        CHECK(standby.actions == std::vector<std::string>{"get_service", "register"});
        CHECK(writer.actions == std::vector<std::string>{"register"});
        REQUIRE(moves.size() == 1);
        CHECK(moves[0].from == standby.url());
        CHECK(moves[0].to == writer.url());
        CHECK(moves[0].reason == rc::errc::not_writer);
        CHECK(standby.connections == 1);
        CHECK(writer.connections == 1);
    });
}

TEST_CASE("C++ client scripted URLs: with one URL a not_writer answer is the result, with no reconnect") {
    asio::io_context io;
    scripted_peer standby(io, [](const std::string& action, const std::string& id) -> std::optional<std::string> {
        if (action == "register") return not_writer(id);
        return std::nullopt;
    });
    int moved = 0;
    rc::client c(io.get_executor(), {.url = standby.url(),
                                     .on_moved = [&](const std::string&, const std::string&, rc::errc) { ++moved; }});
    run(io, [&]() -> asio::awaitable<void> {
        auto reg = co_await c.register_service(api_1(), {.ttl = 30s});
        REQUIRE_FALSE(reg.ok());
        CHECK(reg.err().is(rc::errc::not_writer));
        CHECK(reg.err().message.find("standby") != std::string::npos);
        CHECK(c.is_connected());
        CHECK(c.url() == standby.url());
        CHECK(standby.connections == 1);
        CHECK(standby.actions == std::vector<std::string>{"register"});
        CHECK(moved == 0);
    });
}
