// TLS on the real registryd (config `tls`), with a CA and certificates made
// by the test with the openssl command line: wss:// and https://, plain
// clients refused cleanly, mutual TLS and the subject as an identity of the
// tokens file, certificate reload on SIGHUP.
#include "harness.hpp"
#include "harness_tls.hpp"

#include <doctest/doctest.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <csignal>
#include <filesystem>
#include <string>
#include <thread>

using it::str;
using namespace std::chrono_literals;
namespace fs = std::filesystem;
namespace json = it::json;

namespace {

std::string tls_config(const it::test_pki::issued& server, const fs::path& client_ca = {}) {
    std::string y = "log:\n  level: debug\ntimeouts:\n  handshake_seconds: 30\ntls:\n  cert_file: " +
                    server.cert.string() + "\n  key_file: " + server.key.string() + "\n";
    if (!client_ca.empty()) y += "  client_ca_file: " + client_ca.string() + "\n";
    return y;
}

// The captured stderr contains `text` within `timeout`.
bool log_shows(const it::registryd& d, std::string_view text, it::ms timeout = 5s) {
    const auto deadline = it::steady::now() + it::scaled(timeout);
    do {
        if (d.diagnostics(1 << 20).find(text) != std::string::npos) return true;
        std::this_thread::sleep_for(20ms);
    } while (it::steady::now() < deadline);
    return false;
}

// Connects to the daemon and sends nothing; returns how long until the
// server closed the connection (or `limit` if it did not).
it::ms silent_connection_lifetime(const it::registryd& d, it::ms limit) {
    const int fd = ::socket(AF_INET, SOCK_STREAM, 0);
    REQUIRE(fd >= 0);
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_port = htons(d.port());
    ::inet_pton(AF_INET, d.host().c_str(), &a.sin_addr);
    REQUIRE(::connect(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) == 0);
    const auto start = it::steady::now();
    pollfd p{fd, POLLIN, 0};
    char b[64];
    while (it::steady::now() - start < limit) {
        if (::poll(&p, 1, 100) > 0 && ::read(fd, b, sizeof b) <= 0) break;
    }
    ::close(fd);
    return std::chrono::duration_cast<it::ms>(it::steady::now() - start);
}

}  // namespace

TEST_CASE("tls: a connection that never starts the TLS handshake is closed after timeouts.handshake_seconds") {
    const it::test_pki pki;
    const auto server = pki.server();
    it::registryd d("timeouts:\n  handshake_seconds: 1\ntls:\n  cert_file: " + server.cert.string() +
                    "\n  key_file: " + server.key.string() + "\n");
    IT_DIAGNOSE(d);
    const it::ms lived = silent_connection_lifetime(d, it::scaled(20s));
    CHECK(lived >= 900ms);
    CHECK(lived < it::scaled(10s));
    CHECK(it::https_get(d.host(), d.port(), "/healthz", it::tls_options{pki.ca_cert(), {}, {}}).status == 200);
}

TEST_CASE("tls: wss round trip, https /healthz, plain clients refused at once") {
    const it::test_pki pki;
    const auto server = pki.server();
    it::registryd d(tls_config(server));
    IT_DIAGNOSE(d);
    const it::tls_options trust{pki.ca_cert(), {}, {}};

    it::wss_client c(d, trust);
    CHECK(c.peer_fingerprint() == it::certificate_fingerprint(server.cert));
    json::object svc = it::service("web", "web-1");
    svc["metadata"] = json::object{{"zone", "a"}};
    const json::value reg = c.call("register", it::registration(svc, 30));
    CHECK(it::num(reg, "/lease_id") > 0);
    const json::value got = c.call("get_service", json::object{{"name", "web"}});
    REQUIRE(it::arr(got, "/services").size() == 1);
    CHECK(str(got, "/services/0/instance_id") == "web-1");
    CHECK(str(got, "/services/0/metadata/zone") == "a");
    // A response of several TLS records (16 KiB each).
    for (int i = 0; i < 30; ++i) {
        json::object big = it::service("big", "big-" + std::to_string(i));
        big["metadata"] = json::object{{"blob", std::string(4000, 'x')}};
        c.call("register", it::registration(big, 30));
    }
    CHECK(it::arr(c.call("get_service", json::object{{"name", "big"}}), "/services").size() == 30);

    const it::http_response health = it::https_get(d.host(), d.port(), "/healthz", trust);
    CHECK(health.status == 200);
    CHECK(health.body.starts_with("ok\n"));  // then the store line

    // Plain HTTP and ws:// get a 400 that says why, well before the 30 s
    // handshake timeout.
    const auto start = it::steady::now();
    const it::http_response plain = it::http_get(d.host(), d.port(), "/healthz", 10s);
    CHECK(plain.status == 400);
    CHECK(plain.body.find("TLS only") != std::string::npos);
    std::string ws_error;
    try {
        it::ws_client ws(d);
    } catch (const it::failure& e) {
        ws_error = e.what();
    }
    CHECK(ws_error.find("handshake") != std::string::npos);
    CHECK(it::steady::now() - start < 10s);
    // The daemon is unharmed.
    CHECK(c.call("get_service", json::object{{"name", "web"}}).is_object());
}

TEST_CASE("tls: mutual TLS requires a client certificate from the configured CA") {
    const it::test_pki pki;
    const it::test_pki other("another CA");
    const auto server = pki.server();
    it::registryd d(tls_config(server, pki.ca_cert()));
    IT_DIAGNOSE(d);

    it::tls_options no_cert{pki.ca_cert(), {}, {}};
    CHECK_THROWS_AS(it::wss_client(d, no_cert), it::failure);
    CHECK_THROWS_AS(it::https_get(d.host(), d.port(), "/healthz", no_cert), it::failure);
    CHECK(log_shows(d, "peer did not return a certificate"));

    const auto foreign = other.client("/CN=mallory", "mallory");
    it::tls_options foreign_cert{pki.ca_cert(), foreign.cert, foreign.key};
    CHECK_THROWS_AS(it::wss_client(d, foreign_cert), it::failure);
    CHECK(log_shows(d, "certificate verify failed"));

    const auto alice = pki.client("/CN=alice/O=Example", "alice");
    it::tls_options alice_cert{pki.ca_cert(), alice.cert, alice.key};
    it::wss_client c(d, alice_cert);
    CHECK(c.call("register", it::registration(it::service("api", "api-1"), 30)).is_object());
    CHECK(it::https_get(d.host(), d.port(), "/healthz", alice_cert).status == 200);
    // The subject the upgrade hands to the authenticator: RFC 2253, most
    // specific first.
    CHECK(log_shows(d, "\"subject\":\"O=Example,CN=alice\""));
}

TEST_CASE("tls: SIGHUP reloads the certificate, open connections keep theirs, a bad file keeps the old one") {
    const it::test_pki pki;
    const auto first = pki.server("first");
    const auto second = pki.server("second");
    // registryd reads the files under fixed names the test replaces.
    const fs::path cert = pki.dir() / "live.pem";
    const fs::path key = pki.dir() / "live.key";
    fs::copy_file(first.cert, cert);
    fs::copy_file(first.key, key);
    it::registryd d(tls_config({cert, key}));
    IT_DIAGNOSE(d);
    const it::tls_options trust{pki.ca_cert(), {}, {}};

    it::wss_client before(d, trust);
    CHECK(before.peer_fingerprint() == it::certificate_fingerprint(first.cert));

    fs::copy_file(second.cert, cert, fs::copy_options::overwrite_existing);
    fs::copy_file(second.key, key, fs::copy_options::overwrite_existing);
    d.signal(SIGHUP);
    REQUIRE(log_shows(d, "SIGHUP: reloaded"));
    it::wss_client after(d, trust);
    CHECK(after.peer_fingerprint() == it::certificate_fingerprint(second.cert));
    CHECK(before.call("register", it::registration(it::service("old", "old-1"), 30)).is_object());
    CHECK(after.call("register", it::registration(it::service("new", "new-1"), 30)).is_object());

    // A key that does not match the certificate: refused, the second stays.
    fs::copy_file(first.key, key, fs::copy_options::overwrite_existing);
    d.signal(SIGHUP);
    REQUIRE(log_shows(d, "\"what\":\"certificates\",\"error\":\"tls.key_file"));
    it::wss_client still(d, trust);
    CHECK(still.peer_fingerprint() == it::certificate_fingerprint(second.cert));
    CHECK(d.running());
}

TEST_CASE("tls: a client certificate's subject names an identity of the tokens file, with its role") {
    const it::test_pki pki;
    const auto server = pki.server();
    it::registryd d(tls_config(server, pki.ca_cert()) + "auth:\n  tokens_file: \"{dir}/tokens.yaml\"\n", false);
    d.write_file("tokens.yaml",
                 "tokens:\n"
                 "  - name: build-agent\n    subject: \"O=Example,CN=build-agent\"\n    role: registrar\n"
                 "  - name: dashboard\n    subject: \"O=Example,CN=dashboard\"\n    role: reader\n");
    d.start();
    IT_DIAGNOSE(d);

    const auto agent = pki.client("/CN=build-agent/O=Example", "agent");
    it::wss_client a(d, it::tls_options{pki.ca_cert(), agent.cert, agent.key});
    const json::value registered = a.call("register", it::registration(it::service("api", "api-1"), 30));
    CHECK(it::has(registered, "/lease_id"));
    const json::value held = a.call("get_service", json::object{{"instance_id", "api-1"}});
    CHECK(str(held, "/service/lease/holder") == "build-agent");

    const auto dash = pki.client("/CN=dashboard/O=Example", "dashboard");
    it::wss_client r(d, it::tls_options{pki.ca_cert(), dash.cert, dash.key});
    const json::value refused = r.request("deregister", json::object{{"instance_id", "api-1"}});
    CHECK(it::error_code(refused) == "forbidden");
    CHECK(str(refused, "/error/message").find("'dashboard'") != std::string::npos);

    // A certificate of the CA whose subject no entry names is no identity: 401 at the upgrade.
    const auto stranger = pki.client("/CN=stranger/O=Example", "stranger");
    CHECK_THROWS_AS(it::wss_client(d, it::tls_options{pki.ca_cert(), stranger.cert, stranger.key}), it::failure);
}
