// The REPL actions of the protocol (docs/protocol.md, "REPL execution"), for
// an embedder with REPL execution enabled. Without them, the actions answer
// `unavailable`.
#pragma once

#include <registry/protocol/connection.hpp>

namespace registry::repl {
class executor;
class result_store;
}

namespace registry::protocol {

// Registers repl_languages, repl_execute, repl_cancel, repl_result and
// repl_history into `srv`'s dispatch table, answered by `executor` and
// `results` (where finished executions are kept; null: none are, and
// repl_result finds only the ones still running), which must outlive the
// server. Before the first connection.
void add_repl_actions(server& srv, repl::executor& executor, repl::result_store* results = nullptr);

}  // namespace registry::protocol
