// What an action needs to be allowed, by family. Every action of the
// dispatch table declares one; access control, when it comes, grants
// families to clients and checks them where the table dispatches.
#pragma once

#include <cstdint>
#include <string_view>

namespace registry::protocol {

enum class permission_family : std::uint8_t {
    discover,        // read the registry and follow it: get_service, list_services, list_endpoints,
                     // subscribe, unsubscribe
    register_,       // change service instances: register, keepalive, deregister, set_state
    containers_read, // container_list, container_get, container_logs, list_nodes
    containers_write,// container_create, container_stop, container_remove, container_extend, image_pull
    deploy,          // deploy_package, service_action, undeploy, package_upload_begin/_chunk/_status
    repl,            // repl_languages, repl_execute, repl_cancel
};

}  // namespace registry::protocol
