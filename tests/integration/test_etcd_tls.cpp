// registryd on etcd over TLS (store.etcd.tls, https:// endpoints) against a
// real etcd started with --cert-file, --key-file, --trusted-ca-file and
// --client-cert-auth: etcd's certificate verified against ca_file and the
// endpoint's name, registryd's own client certificate presented.
#include "etcd_server.hpp"
#include "harness.hpp"
#include "harness_tls.hpp"

#include <doctest/doctest.h>

#include <string>

using it::str;
using namespace std::chrono_literals;
namespace json = it::json;

namespace {

struct tls_etcd {
    it::test_pki pki{"etcd test CA"};
    it::test_pki::issued server = pki.server_and_client("etcd");
    it::test_pki::issued client = pki.client("/CN=registryd", "registryd");
    it::etcd_server etcd{it::etcd_tls_files{server.cert, server.key, pki.ca_cert(), client.cert, client.key}};
};

std::string tls_config(const it::etcd_server& etcd, const std::string& tls_lines) {
    return "store:\n  kind: etcd\n  etcd:\n    endpoints: [\"" + etcd.client_url() +
           "\"]\n    dial_timeout_ms: 1000\n    request_timeout_ms: 3000\n    tls:\n" + tls_lines;
}

std::string files(const std::filesystem::path& ca, const it::test_pki::issued& client) {
    return "      ca_file: " + ca.string() + "\n      cert_file: " + client.cert.string() +
           "\n      key_file: " + client.key.string() + "\n";
}

}  // namespace

TEST_CASE("etcd over TLS: registryd registers through https:// with a client certificate and restarts with its state") {
    tls_etcd t;
    REQUIRE(t.etcd.client_url().starts_with("https://"));
    const std::string config = tls_config(t.etcd, files(t.pki.ca_cert(), t.client));
    {
        it::registryd d(config);
        IT_DIAGNOSE(d);
        it::ws_client c(d);
        c.call("register", it::registration(it::service("api", "api-1"), 300));
        c.close();
        CHECK(d.terminate().clean());
    }
    it::registryd again(config);
    IT_DIAGNOSE(again);
    it::ws_client c(again);
    const json::value listed = c.call("list_services");
    REQUIRE(it::arr(listed, "/services").size() == 1);
    CHECK(str(listed, "/services/0/instance_id") == "api-1");
}

TEST_CASE("etcd over TLS: a CA that did not sign etcd's certificate stops registryd at start, saying why") {
    tls_etcd t;
    it::test_pki other("another CA");
    it::registryd d(tls_config(t.etcd, files(other.ca_cert(), t.client)), false);
    CHECK_THROWS(d.start(it::scaled(15s)));
    INFO(d.diagnostics());
    CHECK(d.diagnostics().find("etcd unreachable") != std::string::npos);
    CHECK(d.diagnostics().find("certificate verify failed") != std::string::npos);
    CHECK(d.diagnostics().find("unable to get local issuer certificate") != std::string::npos);
}

TEST_CASE("etcd over TLS: a server name etcd's certificate does not carry is refused") {
    tls_etcd t;
    it::registryd d(tls_config(t.etcd, files(t.pki.ca_cert(), t.client) + "      server_name: etcd.example\n"), false);
    CHECK_THROWS(d.start(it::scaled(15s)));
    INFO(d.diagnostics());
    CHECK(d.diagnostics().find("hostname mismatch") != std::string::npos);
}

TEST_CASE("etcd over TLS: without a client certificate, etcd's --client-cert-auth turns registryd away") {
    tls_etcd t;
    it::registryd d(tls_config(t.etcd, "      ca_file: " + t.pki.ca_cert().string() + "\n"), false);
    CHECK_THROWS(d.start(it::scaled(15s)));
    INFO(d.diagnostics());
    CHECK(d.diagnostics().find("etcd unreachable") != std::string::npos);
}

TEST_CASE("etcd over TLS: a bad tls section stops registryd with exit 2 naming the key") {
    auto exits_naming = [](const std::string& config, const std::string& key) {
        it::registryd d(config, false);
        CHECK_THROWS(d.start(it::scaled(10s)));
        REQUIRE(d.last_exit());
        CHECK(d.last_exit()->code == 2);
        INFO(d.diagnostics());
        CHECK(d.diagnostics().find(key) != std::string::npos);
    };
    it::test_pki pki;
    const auto client = pki.client("/CN=registryd", "registryd");
    const std::string base = "store:\n  kind: etcd\n  etcd:\n";
    exits_naming(base + "    endpoints: [\"http://127.0.0.1:2379\"]\n    tls:\n      ca_file: " + pki.ca_cert().string() + "\n",
                 "store.etcd.tls: needs https:// endpoints");
    exits_naming(base + "    endpoints: [\"https://127.0.0.1:2379\"]\n    tls:\n      ca_file: /nonexistent/ca.pem\n",
                 "store.etcd.tls.ca_file");
    exits_naming(base + "    endpoints: [\"https://127.0.0.1:2379\"]\n    tls:\n      cert_file: " + client.cert.string() + "\n",
                 "cert_file and key_file go together");
    exits_naming(base + "    endpoints: [\"https://127.0.0.1:2379\", \"http://127.0.0.1:2380\"]\n",
                 "must all be http:// or all https://");
}
