// A package's tree packed into a .tar.gz (deploy/package_packer.hpp), and
// unpacked by what a target unpacks packages with.
#include "deploy/package_packer.hpp"

#include <registry/deploy/package_archive.hpp>

#include <doctest/doctest.h>

#include <sys/stat.h>
#include <unistd.h>

#include <cstdint>
#include <cstdlib>
#include <fstream>
#include <iterator>
#include <random>
#include <string>

namespace {

namespace fs = std::filesystem;

struct temp_dir {
    fs::path path;
    temp_dir() {
        std::string pattern = (fs::temp_directory_path() / "package_packer_test.XXXXXX").string();
        REQUIRE(::mkdtemp(pattern.data()) != nullptr);
        path = pattern;
    }
    ~temp_dir() {
        std::error_code ec;
        fs::remove_all(path, ec);
    }
};

void write(const fs::path& p, const std::string& contents, fs::perms mode = fs::perms(0644)) {
    fs::create_directories(p.parent_path());
    std::ofstream(p, std::ios::binary) << contents;
    fs::permissions(p, mode);
}

std::string read(const fs::path& p) {
    std::ifstream in(p, std::ios::binary);
    return {std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
}

fs::perms mode_of(const fs::path& p) { return fs::symlink_status(p).permissions() & fs::perms::all; }

// A valid package under `root`, with a nested directory, a relative symlink
// and a 3 MiB file that does not compress.
std::string make_package(const fs::path& root) {
    write(root / "manifest.yaml", "name: demo\nversion: 1.0.0\nservice:\n  type: managed_process\n");
    write(root / "scripts/start.sh", "#!/bin/sh\nexec ./bin/demo\n", fs::perms(0755));
    write(root / "scripts/stop.sh", "#!/bin/sh\nexit 0\n", fs::perms(0750));
    write(root / "config/nested/deeper/settings.conf", "a=1\n", fs::perms(0600));
    fs::create_directories(root / "empty");
    fs::permissions(root / "empty", fs::perms(0700));
    fs::create_symlink("nested/deeper/settings.conf", root / "config/current.conf");
    std::mt19937_64 rng(42);
    std::string big(3 * 1024 * 1024, '\0');
    for (std::size_t i = 0; i < big.size(); i += 8) {
        const std::uint64_t v = rng();
        for (std::size_t j = 0; j < 8; ++j) big[i + j] = static_cast<char>(v >> (8 * j));
    }
    write(root / "bin/demo", big, fs::perms(0755));
    return big;
}

}  // namespace

TEST_CASE("package packer: a tree packed and unpacked is the same tree: contents, modes, links") {
    temp_dir tmp;
    const fs::path from = tmp.path / "from";
    const std::string big = make_package(from);
    const fs::path archive = tmp.path / "demo-1.0.0.tar.gz";

    auto packed = registryd::pack_directory(from, archive);
    REQUIRE_MESSAGE(packed, (packed ? "" : packed.err().message));
    CHECK(fs::file_size(archive) > big.size());  // random bytes do not compress

    registry::deploy::unpack_request req;
    req.archive = archive;
    req.staging = tmp.path / "unpacked";
    req.name = "demo";
    req.version = "1.0.0";
    auto unpacked = registry::deploy::unpack_package(req);
    REQUIRE_MESSAGE(unpacked, (unpacked ? "" : unpacked.err().message));
    CHECK(unpacked->manifest.name == "demo");

    const fs::path to = req.staging;
    CHECK(read(to / "manifest.yaml") == read(from / "manifest.yaml"));
    CHECK(read(to / "scripts/start.sh") == "#!/bin/sh\nexec ./bin/demo\n");
    CHECK(mode_of(to / "scripts/start.sh") == fs::perms(0755));
    CHECK(mode_of(to / "scripts/stop.sh") == fs::perms(0750));
    CHECK(read(to / "config/nested/deeper/settings.conf") == "a=1\n");
    CHECK(mode_of(to / "config/nested/deeper/settings.conf") == fs::perms(0600));
    CHECK(fs::is_directory(to / "empty"));
    REQUIRE(fs::is_symlink(to / "config/current.conf"));
    CHECK(fs::read_symlink(to / "config/current.conf") == "nested/deeper/settings.conf");
    CHECK(read(to / "config/current.conf") == "a=1\n");
    CHECK(read(to / "bin/demo") == big);
    CHECK(mode_of(to / "bin/demo") == fs::perms(0755));

    // Every path, and nothing else.
    std::size_t paths = 0;
    for (auto it = fs::recursive_directory_iterator(from); it != fs::recursive_directory_iterator(); ++it) {
        ++paths;
        CHECK_MESSAGE(fs::exists(fs::symlink_status(to / fs::relative(it->path(), from))), it->path().string());
    }
    std::size_t unpacked_paths = 0;
    for (auto it = fs::recursive_directory_iterator(to); it != fs::recursive_directory_iterator(); ++it) ++unpacked_paths;
    CHECK(paths == unpacked_paths);

    // The same tree packs the same.
    const fs::path again = tmp.path / "again.tar.gz";
    REQUIRE(registryd::pack_directory(from, again));
    CHECK(read(again) == read(archive));
}

TEST_CASE("package packer: a FIFO in the tree is refused by name, and the archive is removed") {
    temp_dir tmp;
    const fs::path from = tmp.path / "from";
    make_package(from);
    REQUIRE(::mkfifo((from / "scripts/pipe").c_str(), 0644) == 0);
    const fs::path archive = tmp.path / "out.tar.gz";
    auto packed = registryd::pack_directory(from, archive);
    REQUIRE_FALSE(packed);
    CHECK(packed.err().code == registry::errc::invalid_package);
    CHECK(packed.err().message.find("scripts/pipe") != std::string::npos);
    CHECK(packed.err().message.find("FIFO") != std::string::npos);
    CHECK_FALSE(fs::exists(archive));
}

TEST_CASE("package packer: an archive that exists already is left alone") {
    temp_dir tmp;
    const fs::path from = tmp.path / "from";
    make_package(from);
    const fs::path archive = tmp.path / "out.tar.gz";
    write(archive, "someone else's");
    auto packed = registryd::pack_directory(from, archive);
    REQUIRE_FALSE(packed);
    CHECK(packed.err().code == registry::errc::internal);
    CHECK(packed.err().message.find(archive.string()) != std::string::npos);
    CHECK(read(archive) == "someone else's");

    auto missing = registryd::pack_directory(tmp.path / "nowhere", tmp.path / "x.tar.gz");
    REQUIRE_FALSE(missing);
    CHECK(missing.err().code == registry::errc::invalid_package);
    CHECK_FALSE(fs::exists(tmp.path / "x.tar.gz"));
}
