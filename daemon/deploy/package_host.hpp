// registryd's package_unpacker: deploy::unpack_package on a blocking_runner
// thread, so a large archive does not stall the event loop; and the
// deploy.package_dirs allow-list for deploy_package's path form.
#pragma once

#include "runtime/blocking_runner.hpp"

#include <registry/ports/package_unpacker.hpp>

#include <filesystem>
#include <vector>

namespace registryd {

class package_host final : public registry::package_unpacker {
public:
    // `package_dirs`: where a client-named archive may be (resolved with
    // realpath at construction; directories that do not exist are skipped).
    package_host(blocking_runner& runner, const std::vector<std::filesystem::path>& package_dirs);

    // The path resolved with realpath(3), which must be inside one of the
    // package dirs: symlinks and ".." cannot lead out of them.
    registry::result<std::filesystem::path> admit(const std::filesystem::path& requested) override;

    registry::task<registry::result<registry::deploy::unpacked_package>> unpack(
        registry::deploy::unpack_request request) override;
    void discard(const std::filesystem::path& staging) override;

private:
    blocking_runner& runner_;
    std::vector<std::filesystem::path> package_dirs_;  // canonical
};

}  // namespace registryd
