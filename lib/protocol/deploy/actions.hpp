// The deploy module (actions.cpp): deploy_package, service_action, undeploy,
// package_upload_begin, package_upload_chunk, package_upload_status.
#pragma once

#include "../dispatch.hpp"

#include <memory>

namespace registry::protocol {

// Adds the module's actions to `t`, answered by the returned module (which
// the caller owns from then on, and gives a deployer and uploads); reading
// only: entries that only read params (the request parser's fuzzer).
std::unique_ptr<module> add_deploy_entries(dispatch_table& t, bool reading_only);

}  // namespace registry::protocol
