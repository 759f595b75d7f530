// The services module (actions.cpp): register, keepalive, deregister,
// set_state, get_service, list_services, list_endpoints, subscribe,
// unsubscribe. The server registers it at start-up.
#pragma once

#include "../dispatch.hpp"

#include <memory>

namespace registry {
class registry;
}

namespace registry::protocol {

class listing_cache;

// Adds the module's actions to `t`, answered by a module on `reg` (which the
// caller owns from then on); without a registry, entries that only read
// params (the request parser's fuzzer).
std::unique_ptr<module> add_services_actions(dispatch_table& t, class registry* reg, listing_cache* listings,
                                             const limits* lims);

}  // namespace registry::protocol
