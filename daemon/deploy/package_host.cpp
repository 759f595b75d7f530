#include "deploy/package_host.hpp"

#include <algorithm>
#include <filesystem>
#include <system_error>

namespace registryd {

package_host::package_host(blocking_runner& runner, const std::vector<std::filesystem::path>& package_dirs)
    : runner_(runner) {
    for (const auto& d : package_dirs) {
        std::error_code ec;
        auto canonical = std::filesystem::weakly_canonical(d, ec);  // it may be created later
        package_dirs_.push_back(ec ? d.lexically_normal() : std::move(canonical));
    }
}

registry::result<std::filesystem::path> package_host::admit(const std::filesystem::path& requested) {
    if (package_dirs_.empty()) {
        return registry::fail(registry::errc::forbidden,
                              "deploy_package's path form is disabled (deploy.package_dirs is empty): upload the "
                              "package with package_upload_begin instead");
    }
    // Inside: a directory is a proper prefix, component by component.
    auto allowed = [this](const std::filesystem::path& p) {
        return std::any_of(package_dirs_.begin(), package_dirs_.end(), [&](const std::filesystem::path& dir) {
            auto ends = std::mismatch(dir.begin(), dir.end(), p.begin(), p.end());
            return ends.first == dir.end() && ends.second != p.end();
        });
    };
    std::error_code ec;
    const std::filesystem::path real = std::filesystem::canonical(requested, ec);
    if (!ec && allowed(real)) return real;
    if (ec && allowed(requested.lexically_normal())) {
        return registry::fail(registry::errc::not_found, "cannot read " + requested.string() + ": " + ec.message());
    }
    std::string dirs;
    for (const auto& dir : package_dirs_) dirs += (dirs.empty() ? "" : ", ") + dir.string();
    return registry::fail(registry::errc::forbidden,
                          requested.string() + (ec || real == requested ? "" : " (" + real.string() + ")") + " is not inside deploy.package_dirs (" + dirs + ")");
}

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
