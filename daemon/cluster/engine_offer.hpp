// The container engines a member of a cluster (several registryd on one
// etcd) offers the writer: the engines in its own configuration, which only
// it may reach (a local Podman socket). The writer runs their containers as
// nodes of its container manager (cluster/member_engines.hpp) and reaches
// each engine through the member: an HTTP upgrade on the member's listener
// (`GET /v1/cluster/engines/<name>`, `Upgrade: registry-engine-tunnel`,
// `Authorization: Cluster <secret>`) turns the connection into a byte
// stream to the engine (cluster/engine_tunnel.hpp), over which the writer
// speaks the engine's API as to a local engine. The secret is the cluster's
// (cluster/member_directory.hpp, kept in etcd): what may reach etcd is
// trusted with the registry already.
#pragma once

#include "engine/engine_http.hpp"

#include <openssl/crypto.h>

#include <map>
#include <string>
#include <string_view>

namespace registryd {

inline constexpr std::string_view engine_tunnel_path = "/v1/cluster/engines/";
inline constexpr std::string_view engine_tunnel_protocol = "registry-engine-tunnel";
inline constexpr std::string_view cluster_auth_scheme = "Cluster ";

struct engine_offer {
    std::string secret;
    std::map<std::string, engine_endpoint, std::less<>> engines;  // by name
};

// The Authorization header's value that proves the cluster's secret.
inline std::string cluster_authorization(std::string_view secret) {
    return std::string(cluster_auth_scheme) + std::string(secret);
}

// Whether `authorization` (the header's value) proves `secret`; compared in
// constant time.
inline bool proves_cluster_secret(std::string_view authorization, std::string_view secret) {
    if (secret.empty() || !authorization.starts_with(cluster_auth_scheme)) return false;
    authorization.remove_prefix(cluster_auth_scheme.size());
    return authorization.size() == secret.size() &&
           CRYPTO_memcmp(authorization.data(), secret.data(), secret.size()) == 0;
}

}  // namespace registryd
