// libFuzzer target: a package's manifest.yaml (lib/deploy/package_manifest),
// which comes inside an uploaded archive. Every problem is reported as a
// message; what parses names a package whose install directory is sane.
#include <registry/deploy/package_manifest.hpp>

#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string_view>

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    using namespace registry::deploy;
    const std::string_view yaml(reinterpret_cast<const char*>(data), size);
    package_manifest m;
    const auto problems = check_package_manifest(yaml, &m);
    for (const auto& p : problems) {
        if (p.empty()) std::abort();
    }
    if (problems.empty()) {
        const std::string dir = install_dir_name(m);
        if (dir.empty() || dir.find('/') != std::string::npos || dir == "." || dir == "..") std::abort();
    }
    return 0;
}
