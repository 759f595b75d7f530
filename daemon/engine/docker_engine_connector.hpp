// registry::engine_connector for registryd: a Docker Engine API client
// (docker_engine) for each container engine that registers itself as a
// service, with the same options as the configured engines'.
#pragma once

#include "engine/docker_engine.hpp"

#include <registry/ports/engine_connector.hpp>

#include <boost/asio/io_context.hpp>

namespace registryd {

class docker_engine_connector final : public registry::engine_connector {
public:
    docker_engine_connector(boost::asio::io_context& ioc, docker_engine_options options)
        : ioc_(ioc), options_(std::move(options)) {}

    registry::result<std::unique_ptr<registry::container_engine>> connect(const std::string& endpoint) override;

private:
    boost::asio::io_context& ioc_;
    docker_engine_options options_;
};

}  // namespace registryd
