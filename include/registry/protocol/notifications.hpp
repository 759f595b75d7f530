// The notification actions of the protocol (docs/protocol.md,
// "Notifications"): an admin's view of the webhooks' dead letters, and
// sending them again. Without them, the actions answer `unknown_action`.
#pragma once

#include <registry/protocol/connection.hpp>

namespace registry {
class notifier;
}

namespace registry::protocol {

// Registers notification_dead_letters, notification_dead_letters_retry and
// notification_dead_letters_clear, answered by `n` (which must outlive the
// server). Before the first connection.
void add_notification_actions(server& srv, notifier& n);

}  // namespace registry::protocol
