// The deployment and upload actions of the protocol (docs/protocol.md,
// "Deployment"), for an embedder with a deployer and package uploads.
// Without them, the actions answer `unavailable`.
#pragma once

#include <registry/protocol/connection.hpp>

namespace registry::deploy {
class deployer;
class package_uploads;
}  // namespace registry::deploy

namespace registry::protocol {

// Registers deploy_package, service_action and undeploy (answered by `d`)
// and package_upload_* (by `u`) into `srv`'s dispatch table; a null one
// leaves its actions `unavailable`. Both must outlive the server. Before the
// first connection.
void add_deploy_actions(server& srv, deploy::deployer* d, deploy::package_uploads* u);

}  // namespace registry::protocol
