// The engine-connector port: a container_engine client for an address that
// is only known at run time (a container engine registered as a service,
// registered_engines.hpp). The library cannot make one itself; registryd
// makes a Docker Engine API client (daemon/docker_engine_connector).
#pragma once

#include <registry/ports/container_engine.hpp>
#include <registry/result.hpp>

#include <memory>
#include <string>

namespace registry {

class engine_connector {
public:
    virtual ~engine_connector() = default;

    // A client for the engine at `endpoint` ("tcp://host:port"); it connects
    // when first used. invalid_request: an address the embedder cannot use.
    virtual result<std::unique_ptr<container_engine>> connect(const std::string& endpoint) = 0;
};

}  // namespace registry
