// The containers module (actions.cpp): container_create, container_list,
// container_get, container_logs, container_stop, container_remove,
// container_extend, container_cancel_queued, image_pull, list_nodes.
#pragma once

#include "../dispatch.hpp"

#include <memory>

namespace registry {
class container_manager;
class registry;
}

namespace registry::protocol {

// Adds the module's actions to `t`, answered by a module on `mgr` (which the
// caller owns from then on); without a manager, entries that only read
// params (the request parser's fuzzer).
std::unique_ptr<module> add_container_entries(dispatch_table& t, container_manager* mgr, class registry* reg);

}  // namespace registry::protocol
