// The REPL module (actions.cpp): repl_languages, repl_execute, repl_cancel.
#pragma once

#include "../dispatch.hpp"

#include <memory>

namespace registry::repl {
class executor;
}

namespace registry::protocol {

// Adds the module's actions to `t`, answered by a module on `executor`
// (which the caller owns from then on); without one, entries that only read
// params (the request parser's fuzzer).
std::unique_ptr<module> add_repl_entries(dispatch_table& t, repl::executor* executor);

}  // namespace registry::protocol
