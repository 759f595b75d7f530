// A standby relays what only the writer serves (cluster/session_relay.hpp):
// its clients' writes go to the writer over a connection of their own, with
// their token, so that a registration made through any registryd is answered
// by every other one at once; a session-bound registration lives on the
// client's connection to the standby and ends after its grace when that
// connection (or the standby) dies; after a failover the standbys relay to
// the new writer. Against a real etcd and three registryd.
#include "harness.hpp"
#include "harness_tls.hpp"
#include "three_registryd.hpp"

#include <doctest/doctest.h>

#include <filesystem>
#include <fstream>
#include <string>
#include <thread>

using it::num;
using it::str;
using namespace std::chrono_literals;
namespace json = it::json;

namespace {

std::string token_of(std::string_view who) { return "it-relay-token-" + std::string(who) + "-8d1e"; }

it::client_options as(const std::string& token) {
    it::client_options o;
    o.headers = {{"Authorization", "Bearer " + token}};
    return o;
}

// Polls `ok` until it holds.
template <typename Pred>
bool eventually(Pred ok, it::ms timeout) {
    const auto deadline = it::steady::now() + it::scaled(timeout);
    while (it::steady::now() < deadline) {
        if (ok()) return true;
        std::this_thread::sleep_for(50ms);
    }
    return ok();
}

}  // namespace

TEST_CASE("etcd relay: registrations, keepalives and deregistrations through a standby are the writer's, answered at once everywhere") {
    it::three_registryd r("/relay/");
    IT_DIAGNOSE(r.a);
    IT_DIAGNOSE(r.b);
    IT_DIAGNOSE(r.c);
    it::ws_client sub_a(r.a);
    sub_a.call("subscribe", json::object{{"snapshot", false}});
    it::ws_client on_a(r.a), on_b(r.b), on_c(r.c);
    for (int i = 0; i < 20; ++i) {
        const std::string id = "api-" + std::to_string(i);
        const json::value grant = on_b.call("register", it::registration(it::service("api", id), 300));
        const double revision = num(grant, "/revision");
        // Sent after the relayed answer: the writer and the other standby have it.
        CHECK(str(on_a.call("get_service", json::object{{"instance_id", id}}), "/service/instance_id") == id);
        CHECK(str(on_c.call("get_service", json::object{{"instance_id", id}}), "/service/instance_id") == id);
        // So does the standby it went through (its read barrier).
        CHECK(str(on_b.call("get_service", json::object{{"instance_id", id}}), "/service/instance_id") == id);
        const json::value e = sub_a.expect_event("service_registered");
        CHECK(num(e, "/revision") == revision);
    }
    const json::value first = on_c.call("get_service", json::object{{"instance_id", "api-0"}});
    const json::value renewed = on_c.call("keepalive", json::object{{"lease_id", num(first, "/service/lease/id")}});
    INFO(it::dump(renewed));
    CHECK(num(renewed, "/ttl_seconds") == 300);
    on_c.call("deregister", json::object{{"instance_id", "api-0"}});
    CHECK(it::error_code(on_a.request("get_service", json::object{{"instance_id", "api-0"}})) == "not_found");
    CHECK(it::error_code(on_b.request("get_service", json::object{{"instance_id", "api-0"}})) == "not_found");

    // Bad requests are the writer's to refuse, with its codes and messages.
    const json::value invalid = on_b.request("register", json::object{{"ttl_seconds", 30}});
    INFO(it::dump(invalid));
    CHECK(it::error_code(invalid) == "invalid_request");
    CHECK(str(invalid, "/error/message").find("service") != std::string::npos);
    // So are the subsystems': the writer's container manager (no engine
    // here: none of the three registryd offers one) answers.
    CHECK(it::arr(on_c.call("container_list"), "/containers").empty());
    const json::value container = on_c.request("container_get", json::object{{"container_id", "0123abcd"}});
    INFO(it::dump(container));
    CHECK(it::error_code(container) == "not_found");
    // The writer counts what it answered; the standby what it relayed.
    CHECK(it::http_get(r.b.host(), r.b.port(), "/metrics").body.find(R"(code="relayed")") != std::string::npos);
}

TEST_CASE("etcd relay: a session-bound registration made through a standby ends after its grace when the client's connection to the standby closes, or the standby dies") {
    it::three_registryd r("/relay-session/", it::three_registryd::writes::relayed, "registry:\n  session_grace_seconds: 1\n");
    IT_DIAGNOSE(r.a);
    IT_DIAGNOSE(r.b);
    IT_DIAGNOSE(r.c);
    it::ws_client sub(r.a);
    sub.call("subscribe", json::object{{"snapshot", false}});
    {
        it::ws_client on_b(r.b);
        on_b.call("register", it::registration(it::service("sess", "sess-1"), 30, true));
        const json::value got = on_b.call("get_service", json::object{{"instance_id", "sess-1"}});
        CHECK(it::boolean(got, "/service/lease/session_bound"));
        sub.expect_event("service_registered");
        // Alive as long as the client's connection to the standby is.
        std::this_thread::sleep_for(1500ms);
        CHECK_FALSE(sub.next_event(100ms).has_value());
    }
    const auto closed = it::steady::now();
    const json::value ended = sub.expect_event("lease_expired", 10s);
    CHECK(str(ended, "/data/instance_id") == "sess-1");
    CHECK(str(ended, "/data/reason") == "session_closed");
    sub.expect_event("service_deregistered");
    const auto took = std::chrono::duration_cast<it::ms>(it::steady::now() - closed);
    MESSAGE("expired " << took.count() << " ms after the client closed its connection to the standby (grace 1 s)");
    CHECK(took >= 900ms);

    // The standby killed under a client: the same, after the grace.
    it::ws_client on_c(r.c);
    on_c.call("register", it::registration(it::service("sess", "sess-2"), 30, true));
    sub.expect_event("service_registered");
    r.c.kill9();
    const json::value ended2 = sub.expect_event("lease_expired", 10s);
    CHECK(str(ended2, "/data/instance_id") == "sess-2");
    CHECK(str(ended2, "/data/reason") == "session_closed");
}

TEST_CASE("etcd relay: after a kill -9 of the writer the remaining standby relays to the new writer") {
    it::three_registryd r("/relay-failover/");
    IT_DIAGNOSE(r.a);
    IT_DIAGNOSE(r.b);
    IT_DIAGNOSE(r.c);
    {
        it::ws_client on_b(r.b);
        on_b.call("register", it::registration(it::service("api", "api-1"), 300));
    }
    r.a.kill9();
    // One of the standbys becomes the writer; the other relays to it.
    it::registryd* writer = nullptr;
    it::registryd* standby = nullptr;
    REQUIRE(eventually(
        [&] {
            for (auto* d : {&r.b, &r.c}) {
                if (it::three_registryd::logged(*d, "elected the registry's writer")) {
                    writer = d;
                    standby = d == &r.b ? &r.c : &r.b;
                    return true;
                }
            }
            return false;
        },
        15s));
    it::three_registryd::wait_logged(*standby, " at ws://127.0.0.1:" + std::to_string(writer->port()) + "/");
    it::ws_client through(*standby);
    // Until the new writer listens a write may be refused (unavailable); then it is relayed.
    json::value answer;
    REQUIRE(eventually(
        [&] {
            answer = through.request("register", it::registration(it::service("api", "api-2"), 300));
            return it::error_code(answer).empty();
        },
        10s));
    it::ws_client on_writer(*writer);
    CHECK(str(on_writer.call("get_service", json::object{{"instance_id", "api-2"}}), "/service/instance_id") == "api-2");
    CHECK(str(on_writer.call("get_service", json::object{{"instance_id", "api-1"}}), "/service/instance_id") == "api-1");
}

TEST_CASE("etcd relay: with access control the writer sees the client's own identity, and what the client may not do is refused by the standby") {
    it::temp_dir dir;
    const auto tokens = dir.path() / "tokens.yaml";
    {
        std::ofstream out(tokens);
        for (const auto& [name, role] : {std::pair{"svc-a", "registrar"}, std::pair{"dash", "reader"}}) {
            out << (std::string_view(name) == "svc-a" ? "tokens:\n" : "") << "  - name: " << name
                << "\n    sha256: " << it::sha256_hex(token_of(name)) << "\n    role: " << role << "\n";
        }
    }
    it::three_registryd r("/relay-auth/", it::three_registryd::writes::relayed,
                          "auth:\n  tokens_file: \"" + tokens.string() + "\"\n");
    IT_DIAGNOSE(r.a);
    IT_DIAGNOSE(r.b);
    it::ws_client svc(r.b, as(token_of("svc-a")));
    svc.call("register", it::registration(it::service("api", "api-1"), 300));
    // The writer saw the client, not the standby.
    CHECK(str(svc.call("get_service", json::object{{"instance_id", "api-1"}}), "/service/lease/holder") == "svc-a");
    it::ws_client dash(r.b, as(token_of("dash")));
    const json::value refused = dash.request("register", it::registration(it::service("api", "api-2"), 300));
    INFO(it::dump(refused));
    CHECK(it::error_code(refused) == "forbidden");
    CHECK(str(refused, "/error/message").find("'dash' lacks the permission 'register'") != std::string::npos);
    // Its own instance, deregistered through the other standby.
    it::ws_client other(r.c, as(token_of("svc-a")));
    other.call("deregister", json::object{{"instance_id", "api-1"}});
    CHECK(it::error_code(dash.request("get_service", json::object{{"instance_id", "api-1"}})) == "not_found");
}

TEST_CASE("etcd relay: a bad advertise_url or relay_ca_file is refused at start, naming the option") {
    {
        // A file that is there but holds no certificate: registryd exits 1 at start, naming it.
        it::temp_dir dir;
        const auto garbage = dir.path() / "ca.pem";
        std::ofstream(garbage) << "not a certificate\n";
        std::string failure;
        try {
            it::registryd d{"store:\n  kind: etcd\n  etcd:\n    endpoints: [\"http://127.0.0.1:1\"]\n    relay_ca_file: " +
                            garbage.string() + "\n"};
        } catch (const std::exception& e) {
            failure = e.what();
        }
        INFO(failure);
        CHECK(failure.find("exited with status 1") != std::string::npos);
        CHECK(failure.find("store.etcd.relay_ca_file " + garbage.string()) != std::string::npos);
    }
    for (const auto& [option, expected] :
         {std::pair<std::string, std::string>{"advertise_url: http://10.0.0.5:8080/", "store.etcd.advertise_url"},
          std::pair<std::string, std::string>{"advertise_url: ws:///", "must be a ws:// or wss:// URL with a host"},
          std::pair<std::string, std::string>{"relay_ca_file: /nonexistent/ca.pem", "no such file: /nonexistent/ca.pem"}}) {
        std::string failure;
        try {
            it::registryd d{"store:\n  kind: etcd\n  etcd:\n    endpoints: [\"http://127.0.0.1:1\"]\n    " + option + "\n"};
        } catch (const std::exception& e) {
            failure = e.what();
        }
        INFO(option, " → ", failure);
        CHECK(failure.find("exited with status 2") != std::string::npos);
        CHECK(failure.find(expected) != std::string::npos);
    }
}

TEST_CASE("etcd relay: with TLS the writer publishes a wss:// address and standbys relay over TLS, and with mutual TLS they answer not_writer") {
    const it::test_pki pki;
    const auto server = pki.server();
    const std::string tls = "tls:\n  cert_file: " + server.cert.string() + "\n  key_file: " + server.key.string() + "\n";
    const std::string trust_ca = "    relay_ca_file: " + pki.ca_cert().string() + "\n";
    {
        it::three_registryd r("/relay-tls/", it::three_registryd::writes::relayed, tls, trust_ca);
        IT_DIAGNOSE(r.a);
        IT_DIAGNOSE(r.b);
        CHECK(it::three_registryd::logged(r.b, "wss://127.0.0.1:" + std::to_string(r.a.port()) + "/"));
        const it::tls_options trust{pki.ca_cert(), {}, {}};
        it::wss_client through(r.b, trust);
        CHECK(through.call("register", it::registration(it::service("api", "api-1"), 300)).is_object());
        it::wss_client on_c(r.c, trust);
        CHECK(str(on_c.call("get_service", json::object{{"instance_id", "api-1"}}), "/service/instance_id") == "api-1");
    }
    {
        const auto alice = pki.client("/CN=alice/O=Example", "alice");
        it::three_registryd r("/relay-mtls/", it::three_registryd::writes::relayed,
                              tls + "  client_ca_file: " + pki.ca_cert().string() + "\n", trust_ca);
        IT_DIAGNOSE(r.b);
        const it::tls_options as_alice{pki.ca_cert(), alice.cert, alice.key};
        it::wss_client through(r.b, as_alice);
        const json::value refused = through.request("register", it::registration(it::service("api", "api-1"), 300));
        INFO(it::dump(refused));
        CHECK(it::error_code(refused) == "not_writer");
        it::wss_client on_a(r.a, as_alice);
        CHECK(on_a.call("register", it::registration(it::service("api", "api-1"), 300)).is_object());
    }
}
