// The `notifications` section of registryd's configuration: the webhooks
// that receive the registry's changes (docs/protocol.md, "Notifications";
// registryd.example.yaml documents every key). Either a list of webhooks or
// a mapping with `webhooks:` and the delivery's bounds.
#pragma once

#include <registry/notifier.hpp>

#include <filesystem>
#include <string_view>

namespace YAML {
class Node;
}

namespace registryd {

struct notifications_config {
    // The webhooks and the bounds of their outboxes and retries; each url
    // parses (notify/webhook_url.hpp).
    registry::notifier_options delivery;
    // PEM CA certificates that https receivers' certificates must chain to;
    // empty: the system's trust store.
    std::filesystem::path ca_file;
};

inline constexpr std::size_t max_webhooks = 64;

// The notifier's options: `delivery`, with the URL check of the webhooks
// identities make (notify/webhook_url.hpp: what the poster takes).
registry::notifier_options notifier_options_from(const notifications_config& c);

// Applies the `notifications` node of a configuration file. Throws
// config_error naming the key path (e.g. "notifications.webhooks[1].url").
void read_notifications_section(notifications_config& out, const YAML::Node& section, std::string_view origin);

}  // namespace registryd
