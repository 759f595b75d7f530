// writer_link, a standby's upstream connection for one client's writes,
// against a real registryd: the link itself (no standby) on an io_context run
// by the test. Relayed requests are answered through `deliver`; the token is
// the client's; a session-bound registration ends with the link; a lost
// connection answers what was in flight; TLS verifies the writer.
#include "harness.hpp"
#include "harness_tls.hpp"
#include "io_driver.hpp"

#include "cluster/writer_link.hpp"

#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/ssl/context.hpp>
#include <doctest/doctest.h>

#include <algorithm>
#include <csignal>
#include <exception>
#include <memory>
#include <optional>
#include <string>
#include <thread>
#include <utility>
#include <vector>

using namespace std::chrono_literals;
using it::str;
namespace json = it::json;
using registryd::writer_link;
using registryd::writer_link_options;
using outcome = it::outcome<registry::result<void>>;

namespace {

struct delivered {
    std::string text;
    bool is_response = false;
};

// A link and what it delivered, on an io_context the test runs.
struct relay {
    boost::asio::io_context io;
    std::vector<delivered> got;
    bool accept = true;  // what deliver answers
    std::shared_ptr<writer_link> link;

    relay(std::string url, std::string token = {}, writer_link_options opts = {}) {
        link = std::make_shared<writer_link>(io, std::move(url), std::move(token), opts,
                                             [this](std::string text, bool is_response) {
                                                 got.push_back({std::move(text), is_response});
                                                 return accept;
                                             });
    }

    template <typename Pred>
    bool until(Pred pred, it::ms timeout) { return it::run_io_until(io, pred, timeout); }
    void run_for(it::ms d) { it::run_io_for(io, d); }

    std::shared_ptr<outcome> start(const std::string& id, std::string_view action, json::object params = {}) {
        json::object req;
        req["id"] = id;
        req["type"] = "request";
        req["action"] = json::string_view(action.data(), action.size());
        req["params"] = std::move(params);
        auto out = std::make_shared<outcome>();
        it::run_into(link->forward(id, json::serialize(req)), out);
        return out;
    }

    registry::result<void> forward(const std::string& id, std::string_view action, json::object params = {},
                                   it::ms timeout = 10s) {
        auto out = start(id, action, std::move(params));
        REQUIRE_MESSAGE(until([&] { return out->done; }, timeout), "forward() did not complete in time");
        return std::move(*out->value);
    }

    // The response delivered for `id` (a response frame with that id).
    std::optional<json::value> response(const std::string& id, it::ms timeout = 10s) {
        std::optional<json::value> found;
        until(
            [&] {
                for (const auto& d : got) {
                    if (!d.is_response) continue;
                    json::value v = it::parse(d.text);
                    if (it::has(v, "/id") && it::at(v, "/id").is_string() && str(v, "/id") == id) {
                        found = std::move(v);
                        return true;
                    }
                }
                return false;
            },
            timeout);
        return found;
    }

    // forward + response, which must carry data.
    json::value call(const std::string& id, std::string_view action, json::object params = {}) {
        auto sent = forward(id, action, std::move(params));
        const std::string why = sent.ok() ? std::string() : sent.err().message;
        REQUIRE_MESSAGE(sent.ok(), why);
        auto r = response(id);
        REQUIRE_MESSAGE(r.has_value(), "no response for ", id);
        INFO(it::dump(*r));
        REQUIRE(it::has(*r, "/data"));
        return it::at(*r, "/data");
    }
};

std::string url_of(const it::registryd& d, std::string_view scheme = "ws") {
    return std::string(scheme) + "://" + d.host() + ":" + std::to_string(d.port()) + "/";
}

std::string token_of(std::string_view who) { return "it-token-" + std::string(who) + "-7c1e2b"; }

}  // namespace

TEST_CASE("writer link: relays a register and a get_service, responses delivered as responses") {
    it::registryd d;
    IT_DIAGNOSE(d);
    relay r(url_of(d));
    CHECK_FALSE(r.link->open());

    const json::value reg = r.call("a\"1", "register", it::registration(it::service("api", "api-1"), 30));
    CHECK(it::num(reg, "/lease_id") > 0);
    CHECK(it::boolean(reg, "/created"));
    CHECK(r.link->open());

    const json::value got = r.call("a\"2", "get_service", json::object{{"instance_id", "api-1"}});
    CHECK(str(got, "/service/instance_id") == "api-1");
    // Only the two responses came, each flagged as one.
    REQUIRE(r.got.size() == 2);
    CHECK(r.got[0].is_response);
    CHECK(r.got[1].is_response);

    // A normal client of the writer sees the registration.
    it::ws_client w(d);
    CHECK(str(w.call("get_service", json::object{{"instance_id", "api-1"}}), "/service/instance_id") == "api-1");

    // Events a relayed request starts are delivered, not as responses.
    r.call("s", "subscribe");
    w.call("register", it::registration(it::service("api", "api-2"), 30));
    REQUIRE(r.until([&] { return r.got.size() >= 4 && !r.got.back().is_response; }, 10s));
    CHECK(r.got.back().text.starts_with(R"({"type":"event")"));

    r.link->close();
    r.link->close();  // idempotent
    CHECK_FALSE(r.link->open());
    auto after = r.forward("late", "get_service", json::object{{"instance_id", "api-1"}});
    REQUIRE_FALSE(after.ok());
    CHECK(after.err().code == registry::errc::unavailable);
}

TEST_CASE("writer link: the client's bearer token is the one the writer checks") {
    const std::string entry = "tokens:\n  - name: reg\n    sha256: " + it::sha256_hex(token_of("reg")) +
                              "\n    role: registrar\n";
    it::registryd d("auth:\n  tokens_file: \"{dir}/tokens.yaml\"\n", false);
    d.write_file("tokens.yaml", entry);
    d.start();
    IT_DIAGNOSE(d);

    relay good(url_of(d), token_of("reg"));
    CHECK(it::num(good.call("1", "register", it::registration(it::service("api", "api-1"), 30)), "/lease_id") > 0);

    relay bad(url_of(d), "not-a-token");
    auto refused = bad.forward("1", "register", it::registration(it::service("api", "api-2"), 30));
    REQUIRE_FALSE(refused.ok());
    INFO(refused.err().message);
    CHECK(refused.err().code == registry::errc::unavailable);
    CHECK(refused.err().message.find(url_of(d)) != std::string::npos);
    CHECK(refused.err().message.find("401") != std::string::npos);
    CHECK(refused.err().message.find("the token is not valid") != std::string::npos);  // the body says why
    CHECK(refused.err().message.find("not-a-token") == std::string::npos);
    CHECK(bad.got.empty());  // nothing was sent, nothing is answered through deliver

    relay none(url_of(d));
    auto anonymous = none.forward("1", "get_service", json::object{{"instance_id", "api-1"}});
    REQUIRE_FALSE(anonymous.ok());
    CHECK(anonymous.err().message.find("401") != std::string::npos);
}

TEST_CASE("writer link: a session-bound registration made through it ends its grace period after close()") {
    it::registryd d("log:\n  level: debug\nregistry:\n  session_grace_seconds: 1\n");
    IT_DIAGNOSE(d);
    it::ws_client w(d);
    relay r(url_of(d));
    r.call("1", "register", it::registration(it::service("sess", "sess-1"), 60, true));
    CHECK(it::boolean(w.call("get_service", json::object{{"instance_id", "sess-1"}}), "/service/lease/session_bound"));

    // Still there while the link is open, past the grace period.
    r.run_for(1500ms);
    CHECK(str(w.call("get_service", json::object{{"instance_id", "sess-1"}}), "/service/instance_id") == "sess-1");

    r.link->close();
    r.run_for(100ms);  // the close frame goes out
    const auto deadline = it::steady::now() + it::scaled(10s);
    std::string code;
    while (it::steady::now() < deadline) {
        code = it::error_code(w.request("get_service", json::object{{"instance_id", "sess-1"}}));
        if (code == "not_found") break;
        std::this_thread::sleep_for(100ms);
    }
    CHECK(code == "not_found");
    // close() sent a close frame with 1000 (the writer logs the peer's close).
    const std::string log = d.diagnostics(1 << 20);
    CHECK(log.find(R"("msg":"connection closed by peer","conn":)") != std::string::npos);
    CHECK(log.find(R"(,"code":1000})") != std::string::npos);
}

TEST_CASE("writer link: the writer's pings are answered, so a quiet link stays open") {
    it::registryd d("timeouts:\n  idle_seconds: 2\n");
    IT_DIAGNOSE(d);
    writer_link_options o;
    o.silence_timeout = 1800ms;  // the writer pings after 1 s of quiet
    relay r(url_of(d), {}, o);
    r.call("1", "register", it::registration(it::service("api", "api-1"), 30));
    r.run_for(it::scaled(5s));
    CHECK(r.link->open());
    CHECK(r.got.size() == 1);
    CHECK(str(r.call("2", "get_service", json::object{{"instance_id", "api-1"}}), "/service/instance_id") == "api-1");
}

TEST_CASE("writer link: kill -9 with a request in flight answers it unavailable, and a later forward reconnects") {
    it::registryd d;
    d.keep_port_across_restarts();
    IT_DIAGNOSE(d);
    relay r(url_of(d));
    r.call("1", "register", it::registration(it::service("api", "api-1"), 30));

    // Stopped, the writer cannot answer what is written to it now.
    d.signal(SIGSTOP);
    const auto sent = r.forward("2\n", "get_service", json::object{{"instance_id", "api-1"}});
    REQUIRE(sent.ok());
    const auto twice = r.forward("2\n", "get_service", json::object{{"instance_id", "api-1"}});
    REQUIRE(twice.ok());
    d.kill9();

    REQUIRE(r.until([&] { return r.got.size() >= 3; }, 10s));
    REQUIRE(r.got.size() == 3);  // one per request in flight, the repeated id twice
    for (std::size_t i = 1; i < 3; ++i) {
        const json::value e = it::parse(r.got[i].text);
        INFO(r.got[i].text);
        CHECK(r.got[i].is_response);
        CHECK(str(e, "/id") == "2\n");
        CHECK(str(e, "/type") == "response");
        CHECK(str(e, "/error/code") == "unavailable");
        CHECK(str(e, "/error/message").find("the connection to the writer " + url_of(d) + " was lost") == 0);
        CHECK(str(e, "/error/message").find("may or may not have been carried out") != std::string::npos);
    }
    CHECK_FALSE(r.link->open());

    d.start();
    CHECK(it::num(r.call("3", "register", it::registration(it::service("api", "api-3"), 30)), "/lease_id") > 0);
    CHECK(r.link->open());
}

TEST_CASE("writer link: a silent writer is dropped after silence_timeout, and in-flight requests are answered") {
    it::registryd d;
    IT_DIAGNOSE(d);
    writer_link_options o;
    o.silence_timeout = 1000ms;
    relay r(url_of(d), {}, o);
    r.call("1", "register", it::registration(it::service("api", "api-1"), 30));
    d.signal(SIGSTOP);
    REQUIRE(r.forward("2", "get_service", json::object{{"instance_id", "api-1"}}).ok());
    const auto sent_at = it::steady::now();
    auto lost = r.response("2", 10s);
    d.signal(SIGCONT);
    REQUIRE(lost.has_value());
    CHECK(it::steady::now() - sent_at >= 900ms);
    CHECK(str(*lost, "/error/code") == "unavailable");
    CHECK(str(*lost, "/error/message").find("nothing from the writer for 1000 ms") != std::string::npos);
}

TEST_CASE("writer link: retired (another writer now), its request in flight is answered with the cause and it takes no more") {
    it::registryd d;
    IT_DIAGNOSE(d);
    relay r(url_of(d));
    r.call("1", "register", it::registration(it::service("api", "api-1"), 30));
    d.signal(SIGSTOP);
    REQUIRE(r.forward("2", "get_service", json::object{{"instance_id", "api-1"}}).ok());
    r.link->retire("another registryd writes the registry now (ws://127.0.0.1:1/)");
    d.signal(SIGCONT);
    auto lost = r.response("2", 1s);
    REQUIRE(lost.has_value());
    CHECK(str(*lost, "/error/code") == "unavailable");
    CHECK(str(*lost, "/error/message").find("another registryd writes the registry now") != std::string::npos);
    CHECK(str(*lost, "/error/message").find("may or may not have been carried out") != std::string::npos);
    CHECK_FALSE(r.link->open());
    const auto refused = r.forward("3", "get_service", json::object{{"instance_id", "api-1"}});
    REQUIRE_FALSE(refused.ok());
    CHECK(refused.err().message.find("is closed") != std::string::npos);
}

TEST_CASE("writer link: a response many times the read buffer arrives whole, as do the ones after it") {
    it::registryd d;
    IT_DIAGNOSE(d);
    relay r(url_of(d));
    json::object svc = it::service("big", "big-1");
    json::object metadata;  // 64 values of 4000 bytes: a response four times the read buffer
    for (int i = 0; i < 64; ++i) metadata["k" + std::to_string(i)] = std::string(4000, static_cast<char>('a' + i % 26));
    svc["metadata"] = std::move(metadata);
    r.call("1", "register", it::registration(svc, 30));
    const json::value got = r.call("2", "get_service", json::object{{"instance_id", "big-1"}});
    CHECK(it::at(got, "/service/metadata").as_object().size() == 64);
    CHECK(str(got, "/service/metadata/k63") == std::string(4000, static_cast<char>('a' + 63 % 26)));
    CHECK(str(r.call("3", "get_service", json::object{{"instance_id", "big-1"}}), "/service/instance_id") == "big-1");
}

TEST_CASE("writer link: a message over max_frame_bytes fails the link") {
    it::registryd d;
    IT_DIAGNOSE(d);
    writer_link_options o;
    o.max_frame_bytes = 400;
    relay r(url_of(d), {}, o);
    json::object svc = it::service("big", "big-1");
    svc["metadata"] = json::object{{"blob", std::string(1000, 'x')}};
    r.call("1", "register", it::registration(svc, 30));  // the response is short
    REQUIRE(r.forward("2", "get_service", json::object{{"instance_id", "big-1"}}).ok());
    auto lost = r.response("2");
    REQUIRE(lost.has_value());
    CHECK(str(*lost, "/error/code") == "unavailable");
    CHECK(str(*lost, "/error/message").find("larger than 400 bytes") != std::string::npos);
    CHECK_FALSE(r.link->open());
}

TEST_CASE("writer link: nothing listening or no upgrade: forward() fails within open_timeout") {
    writer_link_options o;
    o.open_timeout = 1000ms;
    SUBCASE("refused") {
        const std::uint16_t port = it::free_port();
        const std::string url = "ws://127.0.0.1:" + std::to_string(port) + "/";
        relay r(url, {}, o);
        const auto start = it::steady::now();
        auto res = r.forward("1", "get_service", json::object{{"instance_id", "x"}});
        REQUIRE_FALSE(res.ok());
        INFO(res.err().message);
        CHECK(res.err().code == registry::errc::unavailable);
        CHECK(res.err().message.find(url) != std::string::npos);
        CHECK(res.err().message.find("refused") != std::string::npos);
        CHECK(it::steady::now() - start < it::scaled(2s));
        CHECK(r.got.empty());
    }
    SUBCASE("a listener that never answers the upgrade") {
        boost::asio::io_context other;
        boost::asio::ip::tcp::acceptor mute(other, {boost::asio::ip::make_address("127.0.0.1"), 0});
        const std::string url = "ws://127.0.0.1:" + std::to_string(mute.local_endpoint().port()) + "/";
        relay r(url, {}, o);
        const auto start = it::steady::now();
        auto res = r.forward("1", "get_service", json::object{{"instance_id", "x"}});
        REQUIRE_FALSE(res.ok());
        INFO(res.err().message);
        CHECK(res.err().message.find("timed out after 1000 ms") != std::string::npos);
        CHECK(it::steady::now() - start >= 900ms);
        CHECK(it::steady::now() - start < it::scaled(3s));
    }
    SUBCASE("close() while it opens fails the waiting forward() at once, and nothing is delivered") {
        boost::asio::io_context other;
        boost::asio::ip::tcp::acceptor mute(other, {boost::asio::ip::make_address("127.0.0.1"), 0});
        relay r("ws://127.0.0.1:" + std::to_string(mute.local_endpoint().port()) + "/", {}, o);
        auto waiting = r.start("1", "get_service", json::object{{"instance_id", "x"}});
        r.run_for(100ms);
        REQUIRE_FALSE(waiting->done);
        r.link->close();
        REQUIRE(r.until([&] { return waiting->done; }, 500ms));
        REQUIRE_FALSE(waiting->value->ok());
        CHECK(waiting->value->err().message.find("the client's connection ended") != std::string::npos);
        r.run_for(1500ms);  // past open_timeout
        CHECK(r.got.empty());
    }
}

TEST_CASE("writer link: wss:// verifies the writer with the CA, and without a TLS context it fails clearly") {
    it::test_pki pki;
    const auto server = pki.server();
    it::registryd d("tls:\n  cert_file: " + server.cert.string() + "\n  key_file: " + server.key.string() + "\n");
    IT_DIAGNOSE(d);

    boost::asio::ssl::context ctx(boost::asio::ssl::context::tls_client);
    ctx.load_verify_file(pki.ca_cert().string());
    ctx.set_verify_mode(boost::asio::ssl::verify_peer);
    writer_link_options o;
    o.tls = &ctx;
    relay r(url_of(d, "wss"), {}, o);
    CHECK(it::num(r.call("1", "register", it::registration(it::service("api", "api-1"), 30)), "/lease_id") > 0);
    CHECK(str(r.call("2", "get_service", json::object{{"instance_id", "api-1"}}), "/service/instance_id") == "api-1");

    relay bare(url_of(d, "wss"));
    auto no_ctx = bare.forward("1", "get_service", json::object{{"instance_id", "api-1"}});
    REQUIRE_FALSE(no_ctx.ok());
    INFO(no_ctx.err().message);
    CHECK(no_ctx.err().message.find("TLS context") != std::string::npos);

    // A CA that did not sign the writer's certificate: the handshake fails.
    it::test_pki stranger("another CA");
    boost::asio::ssl::context wrong(boost::asio::ssl::context::tls_client);
    wrong.load_verify_file(stranger.ca_cert().string());
    wrong.set_verify_mode(boost::asio::ssl::verify_peer);
    writer_link_options wo;
    wo.tls = &wrong;
    relay untrusted(url_of(d, "wss"), {}, wo);
    auto bad = untrusted.forward("1", "get_service", json::object{{"instance_id", "api-1"}});
    REQUIRE_FALSE(bad.ok());
    INFO(bad.err().message);
    CHECK(bad.err().message.find("TLS handshake") != std::string::npos);
}

TEST_CASE("writer link: the writer's close frame (SIGTERM) ends the link, and the writer exits cleanly") {
    it::registryd d("timeouts:\n  handshake_seconds: 30\n  shutdown_seconds: 30\n");
    IT_DIAGNOSE(d);
    relay r(url_of(d));
    r.call("1", "register", it::registration(it::service("api", "api-1"), 30));
    REQUIRE(r.link->open());
    const auto start = it::steady::now();
    d.signal(SIGTERM);
    CHECK(r.until([&] { return !r.link->open(); }, 10s));
    std::optional<it::exit_status> exit;
    REQUIRE(r.until([&] { return (exit = d.wait_exit(10ms)).has_value(); }, 20s));
    CHECK(exit->clean());
    CHECK(it::steady::now() - start < it::scaled(10s));
    CHECK(r.got.size() == 1);  // nothing was in flight: nothing more delivered
}

TEST_CASE("writer link: requests that come while it opens wait for it and go out in order") {
    it::registryd d;
    IT_DIAGNOSE(d);
    relay r(url_of(d));
    constexpr int n = 40;
    std::vector<std::shared_ptr<outcome>> sent;
    for (int i = 0; i < n; ++i) {
        sent.push_back(r.start("r" + std::to_string(i), "register",
                               it::registration(it::service("api", "api-" + std::to_string(i)), 30)));
    }
    CHECK_FALSE(r.link->open());  // all queued before the connection is open
    REQUIRE(r.until([&] { return std::all_of(sent.begin(), sent.end(), [](const auto& o) { return o->done; }); }, 15s));
    for (const auto& o : sent) CHECK(o->value->ok());
    // The writer applies a register before it first suspends (lib/registry/registry.cpp):
    // the revisions follow the order the frames arrived in.
    std::int64_t last_revision = 0;
    for (int i = 0; i < n; ++i) {
        auto resp = r.response("r" + std::to_string(i));
        REQUIRE(resp.has_value());
        const std::int64_t rev = it::num(*resp, "/data/revision");
        CHECK(rev > last_revision);
        last_revision = rev;
    }
}
