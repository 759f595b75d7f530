// TLS for the integration harness: a private PKI made with the `openssl`
// command line in a temp dir the test owns, a synchronous wss:// client and
// https:// GET (Beast over Asio's SSL stream), with or without a client
// certificate. Every wait is bounded, as in harness.hpp.
#pragma once

#include "harness.hpp"

#include <filesystem>
#include <memory>
#include <string>
#include <string_view>

namespace it {

// A CA and the certificates it signs (EC P-256), as PEM files in its own
// temp dir. Throws failure when `openssl` fails.
class test_pki {
public:
    explicit test_pki(std::string ca_name = "registry test CA");
    test_pki(const test_pki&) = delete;
    test_pki& operator=(const test_pki&) = delete;

    struct issued {
        std::filesystem::path cert;  // PEM
        std::filesystem::path key;   // PEM, unencrypted
    };
    // A server certificate for 127.0.0.1 / localhost; `file` names the files.
    issued server(std::string_view file = "server") const;
    // A server certificate for 127.0.0.1 / localhost that is a client's too:
    // etcd's JSON gateway dials etcd's own gRPC port with it.
    issued server_and_client(std::string_view file) const;
    // A client certificate with subject `subject` ("/CN=alice/O=Example").
    issued client(std::string_view subject, std::string_view file) const;

    const std::filesystem::path& ca_cert() const { return ca_cert_; }
    const std::filesystem::path& dir() const { return dir_.path(); }

private:
    issued sign(std::string_view subject, std::string_view file, std::string_view extensions) const;

    temp_dir dir_;
    std::filesystem::path ca_cert_;
    std::filesystem::path ca_key_;
};

// The hex SHA-256 of `s` (a tokens file holds those of its tokens).
std::string sha256_hex(std::string_view s);

// The hex SHA-256 of a PEM certificate file's DER form.
std::string certificate_fingerprint(const std::filesystem::path& pem);

struct tls_options {
    std::filesystem::path ca_file;    // verify the server with this CA (required)
    std::filesystem::path cert_file;  // a client certificate, when set
    std::filesystem::path key_file;
    ms timeout = 5s;
};

// A synchronous wss:// client. The constructor connects, completes the TLS
// handshake and the WebSocket upgrade, or throws failure saying which step
// failed and why.
class wss_client {
public:
    wss_client(const std::string& host, std::uint16_t port, const tls_options& opts);
    wss_client(const registryd& d, const tls_options& opts) : wss_client(d.host(), d.port(), opts) {}
    ~wss_client();
    wss_client(const wss_client&) = delete;
    wss_client& operator=(const wss_client&) = delete;

    // One request; the whole response frame (events are skipped).
    json::value request(std::string_view action, json::object params = {}, ms timeout = default_timeout);
    // request, and its "data"; throws failure on an error response.
    json::value call(std::string_view action, json::object params = {}, ms timeout = default_timeout);
    // The hex SHA-256 of the certificate the server presented.
    const std::string& peer_fingerprint() const;

private:
    struct impl;
    std::unique_ptr<impl> impl_;
};

// GET over https:// on its own connection (Connection: close).
http_response https_get(const std::string& host, std::uint16_t port, std::string_view target, const tls_options& opts);

}  // namespace it
