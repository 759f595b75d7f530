// libFuzzer target: a package archive (lib/deploy/package_archive), the
// hostile tarball of an upload, unpacked into a scratch directory. Nothing
// may be written outside the staging directory, and a failed unpack leaves
// no staging directory behind.
#include <registry/deploy/package_archive.hpp>

#include <unistd.h>

#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <string>

namespace fs = std::filesystem;

namespace {

// One scratch directory per process, under TMPDIR, removed at exit. The path
// is never destroyed: a static path would be destroyed before the atexit
// handler that was registered inside its own initialisation runs, and the
// handler would remove nothing (every run left its directory behind).
const fs::path& scratch() {
    static const fs::path& dir = *[] {
        auto* d = new fs::path(fs::temp_directory_path() / ("registry-fuzz-archive-" + std::to_string(::getpid())));
        fs::remove_all(*d);
        fs::create_directories(*d / "box");
        std::atexit([] { std::error_code ec; fs::remove_all(scratch(), ec); });
        return d;
    }();
    return dir;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    const fs::path box = scratch() / "box";
    const fs::path archive = scratch() / "package.tar.gz";
    {
        std::ofstream out(archive, std::ios::binary | std::ios::trunc);
        out.write(reinterpret_cast<const char*>(data), static_cast<std::streamsize>(size));
    }
    registry::deploy::unpack_request req;
    req.archive = archive;
    req.staging = box / "staging";
    req.limits.max_total_bytes = 8 << 20;  // keep one run small
    req.limits.max_entries = 256;
    auto unpacked = registry::deploy::unpack_package(req);
    if (!unpacked && fs::exists(req.staging)) std::abort();
    // Only the staging directory may exist in the box.
    for (const auto& entry : fs::directory_iterator(box)) {
        if (entry.path() != req.staging) std::abort();
    }
    fs::remove_all(req.staging);
    return 0;
}
