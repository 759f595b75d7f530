#include "package_host.hpp"

#include <filesystem>
#include <system_error>

namespace registryd {

registry::task<registry::result<registry::deploy::unpacked_package>> package_host::unpack(
    registry::deploy::unpack_request request) {
    // Not a coroutine: see local_target.cpp.
    std::function<registry::result<registry::deploy::unpacked_package>()> job = [r = std::move(request)] {
        return registry::deploy::unpack_package(r);
    };
    return runner_.run(std::move(job));
}

void package_host::discard(const std::filesystem::path& staging) {
    std::error_code ec;
    std::filesystem::remove_all(staging, ec);
}

}  // namespace registryd
