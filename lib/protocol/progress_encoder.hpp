// The deployment_progress event (docs/protocol.md, "Deployment"), shared by
// the deploy and upload actions (deploy_actions.cpp defines it).
#pragma once

#include <registry/deploy/deployer.hpp>

#include <string>
#include <string_view>

namespace registry::protocol {

// {"type":"event","event":"deployment_progress","request_id":..,"data":{..}}
std::string encode_progress(std::string_view request_id, const deploy::progress& p);

}  // namespace registry::protocol
