// registryd's package_unpacker: deploy::unpack_package on a blocking_runner
// thread, so a large archive does not stall the event loop.
#pragma once

#include "blocking_runner.hpp"

#include <registry/ports/package_unpacker.hpp>

namespace registryd {

class package_host final : public registry::package_unpacker {
public:
    explicit package_host(blocking_runner& runner) : runner_(runner) {}

    registry::task<registry::result<registry::deploy::unpacked_package>> unpack(
        registry::deploy::unpack_request request) override;
    void discard(const std::filesystem::path& staging) override;

private:
    blocking_runner& runner_;
};

}  // namespace registryd
