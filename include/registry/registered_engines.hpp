// Container engines that register themselves as services: each service whose
// metadata declares it a container engine (engine_declaration.hpp) is a node
// of the container_manager while it is registered. Registering (durable or
// session-bound) adds the node; deregistering, or its lease expiring, removes
// it (container_manager::remove_node: its containers are lost, their leases
// dropped, nothing is killed; if it registers again, its containers are
// reconciled: valid leases adopted, expired ones reaped). After a restart the
// engine services in the store come back as nodes with the registry's
// snapshot, and their containers are adopted.
//
// It watches the registry's event stream; the engine clients come from the
// engine_connector port. At construction it adds a registration rule: a
// malformed declaration is invalid_request, and an engine taking the name of
// a configured engine (a node it did not add) is a conflict.
//
// Threading: like the registry, used from one thread.
#pragma once

#include <registry/container_manager.hpp>
#include <registry/engine_declaration.hpp>
#include <registry/error.hpp>
#include <registry/ports/engine_connector.hpp>
#include <registry/registry.hpp>
#include <registry/task.hpp>

#include <functional>
#include <map>
#include <memory>
#include <stop_token>
#include <string>
#include <vector>

namespace registry {

class registered_engines {
public:
    // A declaration that could not become a node (its name is a configured
    // engine's, the connector refused its address, or a stored one is
    // malformed): the service stays registered, the embedder logs it.
    using problem_handler = std::function<void(const std::string& instance_id, const error& why)>;

    registered_engines(registry& reg, container_manager& containers, engine_connector& connector,
                       problem_handler on_problem = {});
    ~registered_engines();
    registered_engines(const registered_engines&) = delete;
    registered_engines& operator=(const registered_engines&) = delete;

    // Follows the registry (its snapshot first) until `stop`.
    task<void> run(std::stop_token stop);

    // The nodes it added, by name.
    std::vector<std::string> names() const;

private:
    struct shared;  // what the registration rule needs, which may outlive this

    task<void> sync_all(const std::vector<service_ptr>& services);
    task<void> sync(service_ptr service);
    task<void> leave(std::string name, std::string reason);
    void report(const std::string& instance_id, const error& why) const;

    registry& reg_;
    container_manager& containers_;
    engine_connector& connector_;
    problem_handler on_problem_;
    std::shared_ptr<shared> shared_;
};

}  // namespace registry
