// https health checks in real time: registryd probes HTTPS servers this test
// starts on loopback with certificates of its own test PKIs, verifying the
// chain (the system's CAs and health.ca_file) and the host name, or not
// (tls_verify: false). docs/protocol.md, "Health checks".
#include "harness.hpp"
#include "harness_tls.hpp"

#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/read_until.hpp>
#include <boost/asio/ssl/context.hpp>
#include <boost/asio/ssl/stream.hpp>
#include <boost/asio/streambuf.hpp>
#include <boost/asio/write.hpp>

#include <doctest/doctest.h>

#include <atomic>
#include <map>
#include <string>
#include <thread>

using it::dump;
using it::str;
using namespace std::chrono_literals;
namespace json = it::json;
namespace asio = boost::asio;
namespace ssl = asio::ssl;
using tcp = asio::ip::tcp;

namespace {

// An HTTPS server on `address` answering every request 200 OK with the
// certificate `cert`, one connection at a time, on its own thread; counts
// the requests it answered (a refused handshake is no request).
class https_server {
public:
    https_server(const std::string& address, const it::test_pki::issued& cert)
        : tls_(ssl::context::tls_server), acceptor_(io_, tcp::endpoint(asio::ip::make_address(address), 0)) {
        tls_.use_certificate_chain_file(cert.cert.string());
        tls_.use_private_key_file(cert.key.string(), ssl::context::pem);
        address_ = address;
        port_ = acceptor_.local_endpoint().port();
        thread_ = std::thread([this] { serve(); });
    }
    ~https_server() {
        stopping_ = true;
        boost::system::error_code ec;
        tcp::socket wake(io_);
        wake.connect(tcp::endpoint(asio::ip::make_address(address_), port_), ec);  // unblocks accept()
        thread_.join();
    }
    std::string url() const { return "https://" + address_ + ":" + std::to_string(port_) + "/healthz"; }
    int requests() const { return requests_; }

private:
    void serve() {
        while (!stopping_) {
            ssl::stream<tcp::socket> s(io_, tls_);
            boost::system::error_code ec;
            acceptor_.accept(s.next_layer(), ec);
            if (ec || stopping_) continue;
            s.next_layer().set_option(asio::socket_base::linger(true, 0), ec);
            s.handshake(ssl::stream_base::server, ec);
            if (ec) continue;
            asio::streambuf in;
            asio::read_until(s, in, "\r\n\r\n", ec);
            if (ec) continue;
            const std::string reply = "HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok";
            asio::write(s, asio::buffer(reply), ec);
            ++requests_;
            s.shutdown(ec);
        }
    }

    ssl::context tls_;
    std::atomic<int> requests_{0};
    std::atomic<bool> stopping_{false};
    asio::io_context io_;
    tcp::acceptor acceptor_;
    std::string address_;
    std::uint16_t port_ = 0;
    std::thread thread_;
};

json::object https_check(const std::string& url, bool verify) {
    return json::object{{"name", "tls"},       {"kind", "http"},     {"url", url},           {"tls_verify", verify},
                        {"interval_ms", 300}, {"timeout_ms", 300}};
}

json::object service_checking(std::string_view id, json::object check) {
    json::object svc = it::service("secure", id);
    svc["checks"] = json::array{std::move(check)};
    return svc;
}

}  // namespace

TEST_CASE("integration: https checks verify the chain against health.ca_file and the host name, or not with tls_verify false") {
    it::test_pki trusted("registry health CA");
    it::test_pki other("some other CA");
    https_server good("127.0.0.1", trusted.server("good"));
    https_server untrusted("127.0.0.1", other.server("untrusted"));
    https_server wrong_name("127.0.0.2", trusted.server("wrong-name"));  // its certificate names 127.0.0.1 and localhost

    it::registryd d("health:\n  ca_file: " + trusted.ca_cert().string() + "\n");
    IT_DIAGNOSE(d);
    it::ws_client w(d);
    it::ws_client sub(d);
    sub.call("subscribe", json::object{{"events", json::array{"health_check_result"}}});
    sub.expect_event("registry_loaded");

    w.call("register", it::registration(service_checking("trusted", https_check(good.url(), true)), 60));
    w.call("register", it::registration(service_checking("untrusted", https_check(untrusted.url(), true)), 60));
    w.call("register", it::registration(service_checking("unverified", https_check(untrusted.url(), false)), 60));
    w.call("register", it::registration(service_checking("mismatch", https_check(wrong_name.url(), true)), 60));
    std::string by_name_url = good.url();  // a DNS name: SNI, and the name checked against the certificate's
    by_name_url.replace(8, 9, "localhost");
    w.call("register", it::registration(service_checking("by-name", https_check(by_name_url, true)), 60));

    std::map<std::string, json::value> first;  // each instance's first check result
    const auto deadline = it::steady::now() + it::scaled(15s);
    while (first.size() < 5 && it::steady::now() < deadline) {
        auto e = sub.next_event(it::scaled(1s));
        if (!e || str(*e, "/event") != "health_check_result") continue;
        first.try_emplace(str(*e, "/data/service/instance_id"), *e);
    }
    REQUIRE_MESSAGE(first.size() == 5, "results for ", first.size(), " of 5 instances");
    for (const auto& [id, e] : first) INFO(id, ": ", dump(e));

    CHECK(str(first["trusted"], "/data/check/status") == "healthy");
    CHECK(str(first["trusted"], "/data/check/output") == "HTTP 200 OK");
    CHECK(str(first["by-name"], "/data/check/status") == "healthy");
    CHECK(str(first["by-name"], "/data/check/output") == "HTTP 200 OK");
    CHECK(str(first["unverified"], "/data/check/status") == "healthy");
    CHECK(str(first["unverified"], "/data/check/output") == "HTTP 200 OK");

    const std::string untrusted_where = untrusted.url().substr(8, untrusted.url().find('/', 8) - 8);
    CHECK(str(first["untrusted"], "/data/check/status") == "critical");
    CHECK(str(first["untrusted"], "/data/check/output") ==
          "certificate verify failed: unable to get local issuer certificate (" + untrusted_where + ")");
    CHECK(str(first["mismatch"], "/data/check/status") == "critical");
    CHECK(str(first["mismatch"], "/data/check/output").starts_with("certificate verify failed: IP address mismatch ("));

    CHECK(good.requests() >= 1);
    CHECK(wrong_name.requests() == 0);  // refused before the request
}

TEST_CASE("integration: without health.ca_file a private CA's certificate is refused, and a bad ca_file stops registryd at start") {
    it::test_pki pki("registry health CA");
    https_server server("127.0.0.1", pki.server("server"));
    it::registryd d;
    IT_DIAGNOSE(d);
    it::ws_client w(d);
    it::ws_client sub(d);
    sub.call("subscribe", json::object{{"events", json::array{"health_check_result"}}});
    sub.expect_event("registry_loaded");
    w.call("register", it::registration(service_checking("private", https_check(server.url(), true)), 60));
    const json::value e = sub.expect_event("health_check_result", it::scaled(10s));
    INFO("event: ", dump(e));
    CHECK(str(e, "/data/check/status") == "critical");
    CHECK(str(e, "/data/check/output").starts_with("certificate verify failed: unable to get local issuer certificate"));

    it::registryd bad("health:\n  ca_file: {dir}/missing.pem\n", false);
    CHECK_THROWS_WITH_AS(bad.start(it::scaled(10s)), doctest::Contains("health.ca_file: cannot load"), it::failure);
}
