// The REPL module (actions.cpp): repl_languages, repl_execute, repl_cancel,
// repl_result, repl_history.
#pragma once

#include "../dispatch.hpp"

#include <memory>

namespace registry::repl {
class executor;
class result_store;
}

namespace registry::protocol {

// Adds the module's actions to `t`, answered by a module on `executor`
// (which the caller owns from then on); without one, entries that only read
// params (the request parser's fuzzer).
// `results`: where repl_result and repl_history find finished executions
// (null: none are kept).
std::unique_ptr<module> add_repl_entries(dispatch_table& t, repl::executor* executor,
                                         repl::result_store* results = nullptr);

}  // namespace registry::protocol
