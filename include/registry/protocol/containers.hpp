// The container actions of the protocol (docs/protocol.md, "Containers"),
// for an embedder with a container manager. Without them, the actions
// answer `unavailable`.
#pragma once

#include <registry/protocol/connection.hpp>

namespace registry {
class container_manager;
}

namespace registry::protocol {

// Registers the container actions into `srv`'s dispatch table, answered by
// `mgr`, which must outlive the server. Before the first connection.
void add_container_actions(server& srv, container_manager& mgr);

}  // namespace registry::protocol
