// The `auth` and `http` sections of registryd's configuration: who may
// connect and what they may do (docs/protocol.md, "Authentication and
// authorization"), and which web pages may open a connection.
// registryd.example.yaml documents every key.
#pragma once

#include <chrono>
#include <cstddef>
#include <filesystem>
#include <map>
#include <string>
#include <string_view>
#include <vector>

namespace YAML {
class Node;
}

namespace registryd {

struct auth_config {
    // `auth: {disabled: true}`: no tokens, every connection anonymous, on any
    // listen address (said explicitly, since it exposes everything).
    bool disabled = false;
    std::filesystem::path tokens_file;  // required unless disabled
    // Custom roles: name → permission families (access/role_table.hpp).
    std::map<std::string, std::vector<std::string>, std::less<>> roles;
    // Failed authentications from one source address within the window;
    // past them, upgrades from it are refused with 429 until it ends.
    std::size_t max_failed_attempts = 10;
    std::chrono::seconds failed_attempt_window{60};
};

struct http_config {
    // Origins (scheme://host[:port]) a browser page may connect from; "*"
    // for any. Empty: only registryd's own origin (the Origin matches the
    // Host the request was addressed to). No Origin header (not a browser):
    // always allowed.
    std::vector<std::string> allowed_origins;
    // GET /metrics needs a token (any role) when auth is on.
    bool metrics_token_required = false;
};

void read_auth_section(auth_config& out, const YAML::Node& v, std::string_view origin);
void read_http_section(http_config& out, const YAML::Node& v, std::string_view origin);

// Whether the transport is encrypted. TLS HOOK: the tls part (config `tls`)
// makes this `return cfg.tls.has_value();` once merged.
struct config;
bool transport_encrypted(const config& cfg);

// Loopback addresses (127.0.0.0/8, ::1) and "localhost".
bool is_loopback_host(std::string_view host);

}  // namespace registryd
