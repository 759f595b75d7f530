// Where the registry's writer is reached, as the standbys learn it: the
// writer key's value (store/etcd_store_port.hpp, campaign and advertise) is
// a name for logs and not_writer messages, followed, once the writer
// listens, by " at " and the URL a standby relays its clients' writes to.
#pragma once

#include "config/config.hpp"

#include <optional>
#include <string>
#include <string_view>

namespace registryd {

// store.etcd.advertise_url, or ws:// (wss:// with tls) and the address
// `bound` (the listener's, its real port); nullopt when that is a wildcard
// (0.0.0.0, ::), which no other machine can connect to.
std::optional<std::string> advertised_url(const config& cfg, const listen_address& bound);

std::string holder_at(std::string_view name, std::string_view url);

// The URL of holder_at(); nullopt for a holder that has published none.
std::optional<std::string> url_of_holder(std::string_view holder);

}  // namespace registryd
