#include "engine/docker_engine_connector.hpp"

namespace registryd {

registry::result<std::unique_ptr<registry::container_engine>> docker_engine_connector::connect(
    const std::string& endpoint) {
    auto parsed = engine_endpoint::parse(endpoint);
    if (!parsed) return registry::unexpected{parsed.err()};
    return std::unique_ptr<registry::container_engine>(
        std::make_unique<docker_engine>(ioc_, std::move(parsed).value(), options_));
}

}  // namespace registryd
