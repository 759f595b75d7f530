// The REPL actions of the protocol (docs/protocol.md, "REPL execution"), for
// an embedder with REPL execution enabled. Without them, the actions answer
// `unavailable`.
#pragma once

#include <registry/protocol/connection.hpp>

namespace registry::repl {
class executor;
}

namespace registry::protocol {

// Registers repl_languages, repl_execute and repl_cancel into `srv`'s
// dispatch table, answered by `executor`, which must outlive the server.
// Before the first connection.
void add_repl_actions(server& srv, repl::executor& executor);

}  // namespace registry::protocol
