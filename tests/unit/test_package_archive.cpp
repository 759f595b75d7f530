// unpack_package against a corpus of hostile archives, each built here with
// libarchive's writer (no binary blobs in git). Every one must be refused
// with invalid_package and a message saying why, the staging directory must
// be gone, and nothing else in the sandbox may have changed.
#include <registry/deploy/package_archive.hpp>

#include <archive.h>
#include <archive_entry.h>

#include <doctest/doctest.h>

#include <sys/stat.h>
#include <sys/sysmacros.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <functional>
#include <set>
#include <string>
#include <vector>

namespace {

namespace fs = std::filesystem;
using namespace registry::deploy;

class sandbox {
public:
    sandbox() {
        std::string pattern = (fs::temp_directory_path() / "package_archive_test.XXXXXX").string();
        REQUIRE(::mkdtemp(pattern.data()) != nullptr);
        root_ = pattern;
        fs::create_directories(root_ / "work");
        fs::create_directories(root_ / "outside");
        std::ofstream(root_ / "outside" / "sentinel") << "untouched";
    }
    ~sandbox() {
        std::error_code ec;
        fs::remove_all(root_, ec);
    }
    const fs::path& root() const { return root_; }
    fs::path staging() const { return root_ / "work" / "staging"; }
    fs::path archive() const { return root_ / "work" / "pkg.tar.gz"; }

    // Every path in the sandbox but the staging directory's contents, with its type.
    std::set<std::string> listing() const {
        std::set<std::string> out;
        for (auto it = fs::recursive_directory_iterator(root_); it != fs::recursive_directory_iterator(); ++it) {
            const auto rel = fs::relative(it->path(), root_).string();
            out.insert(rel + ":" + std::to_string(static_cast<int>(it->symlink_status().type())));
        }
        return out;
    }

private:
    fs::path root_;
};

// Builds a tar (gzip unless told otherwise) entry by entry.
class tar_builder {
public:
    explicit tar_builder(const fs::path& file, bool gzip = true) : a_(archive_write_new()) {
        archive_write_set_format_pax_restricted(a_);
        if (gzip) archive_write_add_filter_gzip(a_);
        REQUIRE(archive_write_open_filename(a_, file.c_str()) == ARCHIVE_OK);
    }
    ~tar_builder() { close(); }

    tar_builder& file(const std::string& path, const std::string& data, int perm = 0644) {
        return add(path, AE_IFREG, perm, [&](archive_entry* e) { archive_entry_set_size(e, static_cast<la_int64_t>(data.size())); },
                   &data);
    }
    tar_builder& dir(const std::string& path) { return add(path, AE_IFDIR, 0755, nullptr); }
    tar_builder& symlink(const std::string& path, const std::string& target) {
        return add(path, AE_IFLNK, 0777, [&](archive_entry* e) { archive_entry_set_symlink(e, target.c_str()); });
    }
    tar_builder& hardlink(const std::string& path, const std::string& target) {
        return add(path, AE_IFREG, 0644, [&](archive_entry* e) {
            archive_entry_set_hardlink(e, target.c_str());
            archive_entry_set_size(e, 0);
        });
    }
    // A sparse file of `size` bytes with data only in its first and last 16
    // (the writer skips the hole in the bytes it is given).
    tar_builder& sparse(const std::string& path, std::size_t size) {
        const std::string data(size, 'x');
        return add(path, AE_IFREG, 0644, [&](archive_entry* e) {
            archive_entry_set_size(e, static_cast<la_int64_t>(size));
            archive_entry_sparse_add_entry(e, 0, 16);
            archive_entry_sparse_add_entry(e, static_cast<la_int64_t>(size) - 16, 16);
        }, &data);
    }
    tar_builder& special(const std::string& path, unsigned type) {
        return add(path, type, 0644, [](archive_entry* e) { archive_entry_set_rdev(e, ::makedev(1, 3)); });
    }
    // A valid package (name demo, version 1.0.0) unless parts are left out.
    tar_builder& package(const std::string& manifest = default_manifest(), bool stop_script = true) {
        file("manifest.yaml", manifest);
        file("scripts/start.sh", "#!/bin/sh\nexit 0\n", 0755);
        if (stop_script) file("scripts/stop.sh", "#!/bin/sh\nexit 0\n", 0755);
        return *this;
    }
    static std::string default_manifest() {
        return "name: demo\nversion: 1.0.0\nservice:\n  type: managed_process\n";
    }
    void close() {
        if (!a_) return;
        archive_write_close(a_);
        archive_write_free(a_);
        a_ = nullptr;
    }

private:
    tar_builder& add(const std::string& path, unsigned type, int perm, const std::function<void(archive_entry*)>& tweak,
                     const std::string* data = nullptr) {
        archive_entry* e = archive_entry_new();
        archive_entry_set_pathname(e, path.c_str());
        archive_entry_set_filetype(e, type);
        archive_entry_set_perm(e, static_cast<mode_t>(perm));
        archive_entry_set_mtime(e, 1700000000, 0);
        if (tweak) tweak(e);
        REQUIRE(archive_write_header(a_, e) == ARCHIVE_OK);
        if (data && !data->empty()) archive_write_data(a_, data->data(), data->size());
        archive_entry_free(e);
        return *this;
    }

    archive* a_;
};

struct hostile_case {
    hostile_case(std::string n, std::function<void(const sandbox&)> b, std::string e)
        : name(std::move(n)), build(std::move(b)), expected(std::move(e)) {}

    std::string name;
    std::function<void(const sandbox&)> build;  // writes sb.archive()
    std::string expected;                        // a substring of the error message
    archive_limits limits;
    std::optional<std::string> want_name;
    std::optional<std::string> want_version;
};

std::vector<hostile_case> corpus() {
    std::vector<hostile_case> c;
    auto simple = [&](std::string name, std::function<void(tar_builder&, const sandbox&)> add, std::string expected) {
        c.emplace_back(std::move(name),
                       [add](const sandbox& sb) {
                           tar_builder t(sb.archive());
                           t.package();
                           add(t, sb);
                       },
                       std::move(expected));
    };
    simple("absolute path", [](tar_builder& t, const sandbox& sb) { t.file((sb.root() / "outside" / "pwned").string(), "x"); },
           "absolute path");
    simple("dot-dot path", [](tar_builder& t, const sandbox&) { t.file("../../outside/pwned", "x"); }, "path contains '..'");
    simple("dot-dot in the middle", [](tar_builder& t, const sandbox&) { t.file("bin/../../pwned", "x"); },
           "path contains '..'");
    simple("absolute symlink", [](tar_builder& t, const sandbox&) { t.symlink("bin/passwd", "/etc/passwd"); },
           "symlink points outside the package");
    simple("relative symlink escaping", [](tar_builder& t, const sandbox&) { t.symlink("bin/up", "../../outside"); },
           "symlink points outside the package");
    simple("symlink escaping through another symlink",
           [](tar_builder& t, const sandbox&) { t.symlink("here", ".").symlink("up", "here/.."); },
           "symlink points outside the package");
    simple("write through a symlink",
           [](tar_builder& t, const sandbox&) { t.dir("config").symlink("cfg", "config").file("cfg/evil", "x"); },
           "path goes through the symlink 'cfg'");
    simple("absolute hard link", [](tar_builder& t, const sandbox&) { t.hardlink("bin/shadow", "/etc/shadow"); },
           "hard link points outside the package");
    simple("dot-dot hard link", [](tar_builder& t, const sandbox&) { t.hardlink("bin/x", "../outside/sentinel"); },
           "hard link points outside the package");
    simple("hard link to nothing", [](tar_builder& t, const sandbox&) { t.hardlink("bin/x", "bin/missing"); },
           "is not a regular file earlier in the package");
    simple("character device", [](tar_builder& t, const sandbox&) { t.special("dev/null", AE_IFCHR); },
           "device nodes are not allowed");
    simple("block device", [](tar_builder& t, const sandbox&) { t.special("dev/sda", AE_IFBLK); },
           "device nodes are not allowed");
    simple("FIFO", [](tar_builder& t, const sandbox&) { t.special("run/pipe", AE_IFIFO); }, "FIFOs are not allowed");
    simple("duplicate entry", [](tar_builder& t, const sandbox&) { t.file("scripts/start.sh", "#!/bin/sh\nrm -rf /\n"); },
           "duplicate entry");
    simple("file replaced by a symlink", [](tar_builder& t, const sandbox&) { t.symlink("manifest.yaml", "scripts/start.sh"); },
           "duplicate entry");
    simple("path through a file", [](tar_builder& t, const sandbox&) { t.file("manifest.yaml/x", "x"); },
           "path goes through the file 'manifest.yaml'");
    simple("very long path", [](tar_builder& t, const sandbox&) { t.file(std::string(2000, 'a'), "x"); },
           "path longer than 1024 bytes");

    hostile_case many{"too many entries", [](const sandbox& sb) {
                          tar_builder t(sb.archive());
                          t.package();
                          for (int i = 0; i < 40; ++i) t.file("data/f" + std::to_string(i), "x");
                      },
                      "more than 20 entries"};
    many.limits.max_entries = 20;
    c.push_back(many);

    hostile_case big{"too many bytes", [](const sandbox& sb) {
                         tar_builder t(sb.archive());
                         t.package();
                         std::string noise(3 << 20, '\0');
                         unsigned x = 12345;
                         for (auto& ch : noise) ch = static_cast<char>((x = x * 1103515245 + 12345) >> 24);
                         t.file("data/blob", noise);
                     },
                     "unpacked size exceeds 2097152 bytes"};
    big.limits.max_total_bytes = 2 << 20;
    c.push_back(big);

    c.emplace_back("decompression bomb", [](const sandbox& sb) {
                     tar_builder t(sb.archive());
                     t.package();
                     t.file("data/zeros", std::string(64 << 20, '\0'));
                 },
                 "compression ratio exceeds 200:1");

    c.emplace_back("missing manifest", [](const sandbox& sb) {
                     tar_builder t(sb.archive());
                     t.file("scripts/start.sh", "").file("scripts/stop.sh", "");
                 },
                 "manifest.yaml is missing");
    c.emplace_back("manifest is a symlink", [](const sandbox& sb) {
                     tar_builder t(sb.archive());
                     t.symlink("manifest.yaml", "config/m.yaml").file("scripts/start.sh", "").file("scripts/stop.sh", "");
                 },
                 "manifest.yaml is missing (or not a regular file)");
    c.emplace_back("missing stop script", [](const sandbox& sb) {
                     tar_builder t(sb.archive());
                     t.package(tar_builder::default_manifest(), false);
                 },
                 "scripts/stop.sh is missing");
    c.emplace_back("missing health script", [](const sandbox& sb) {
                     tar_builder t(sb.archive());
                     t.package(tar_builder::default_manifest() + "health:\n  script: scripts/health.sh\n");
                 },
                 "health.script 'scripts/health.sh' is not a file in the package");
    c.emplace_back("invalid manifest", [](const sandbox& sb) {
                     tar_builder t(sb.archive());
                     t.package("name: demo\nservice:\n  ports: [{name: http, port: 99999}]\n");
                 },
                 "manifest.yaml: version: is required; service.ports[0].port: must be 1-65535");

    hostile_case other_name{"name differs from the request", [](const sandbox& sb) { tar_builder(sb.archive()).package(); },
                            "the manifest names package 'demo', not 'api'"};
    other_name.want_name = "api";
    c.push_back(other_name);
    hostile_case other_version{"version differs from the request",
                               [](const sandbox& sb) { tar_builder(sb.archive()).package(); },
                               "the manifest has version '1.0.0', not '2.0.0'"};
    other_version.want_version = "2.0.0";
    c.push_back(other_version);

    c.emplace_back("sparse file", [](const sandbox& sb) { tar_builder(sb.archive()).package().sparse("data/holes", 256 << 10); },
                   "entry 'data/holes': sparse files are not allowed");
    // Targets receive hard links as copies: 5 x 40 KiB against a 128 KiB cap.
    hostile_case links{"hard links beyond the size cap", [](const sandbox& sb) {
                           tar_builder t(sb.archive());
                           t.package().file("data/blob", std::string(40 << 10, 'b'));
                           for (int i = 0; i < 4; ++i) t.hardlink("data/link" + std::to_string(i), "data/blob");
                       },
                       "entry 'data/link2': unpacked size exceeds 131072 bytes"};
    links.limits.max_total_bytes = 128 << 10;
    c.push_back(links);
    c.emplace_back("the archive is a FIFO", [](const sandbox& sb) { REQUIRE(::mkfifo(sb.archive().c_str(), 0644) == 0); },
                   "pkg.tar.gz is not a regular file (a FIFO)");
    c.emplace_back("the archive is a directory", [](const sandbox& sb) { fs::create_directory(sb.archive()); },
                   "pkg.tar.gz is not a regular file (a directory)");
    c.emplace_back("not an archive", [](const sandbox& sb) { std::ofstream(sb.archive()) << "this is not a tarball"; },
                 "not a readable tar.gz archive");
    c.emplace_back("truncated archive", [](const sandbox& sb) {
                     {
                         tar_builder t(sb.archive());
                         t.package();
                         std::string noise(256 << 10, '\0');
                         unsigned x = 7;
                         for (auto& ch : noise) ch = static_cast<char>((x = x * 1103515245 + 12345) >> 24);
                         t.file("data/blob", noise);
                     }
                     fs::resize_file(sb.archive(), fs::file_size(sb.archive()) / 2);
                 },
                 "data/blob");
    return c;
}

}  // namespace

TEST_CASE("package archive: a corpus of hostile archives is refused, nothing written outside staging") {
    const auto cases = corpus();
    CHECK(cases.size() >= 15);
    for (const auto& hc : cases) {
        CAPTURE(hc.name);
        sandbox sb;
        hc.build(sb);
        const auto before = sb.listing();
        unpack_request req{sb.archive(), sb.staging(), hc.want_name, hc.want_version, hc.limits};
        auto r = unpack_package(req);
        REQUIRE_FALSE(r.ok());
        CHECK(r.err().code == registry::errc::invalid_package);
        INFO(r.err().message);
        CHECK(r.err().message.find(hc.expected) != std::string::npos);
        CHECK_FALSE(fs::exists(fs::symlink_status(sb.staging())));
        CHECK(sb.listing() == before);
        CHECK(fs::exists(sb.root() / "outside" / "sentinel"));
        CHECK_FALSE(fs::exists(fs::symlink_status(sb.root() / "outside" / "pwned")));
        CHECK_FALSE(fs::exists(fs::symlink_status(sb.root() / "pwned")));
    }
}

TEST_CASE("package archive: a valid package unpacks, setuid bits are dropped, inside links are kept") {
    sandbox sb;
    {
        tar_builder t(sb.archive());
        t.file("./manifest.yaml", "name: demo\nversion: 1.0.0\nservice: {ports: [{name: http, port: 8080}]}\n"
                                  "health: {script: scripts/health.sh, interval: 1s}\n")
            .file("scripts/start.sh", "#!/bin/sh\n", 0755)
            .file("scripts/stop.sh", "#!/bin/sh\n", 0755)
            .file("scripts/health.sh", "#!/bin/sh\n", 0755)
            .file("bin/tool", "ELF", 04755 | 02000)
            .symlink("bin/alias", "tool")
            .symlink("config/tool", "../bin/tool")
            .hardlink("bin/copy", "bin/tool");
    }
    auto r = unpack_package({sb.archive(), sb.staging(), std::string("demo"), std::string("1.0.0"), {}});
    INFO((r.ok() ? std::string() : r.err().message));
    REQUIRE(r.ok());
    CHECK(r->manifest.name == "demo");
    CHECK(r->manifest.ports.size() == 1);
    CHECK(r->entries == 8);
    const auto tool = sb.staging() / "bin" / "tool";
    struct stat st {};
    REQUIRE(::stat(tool.c_str(), &st) == 0);
    CHECK((st.st_mode & 07777) == 0755);
    CHECK(st.st_nlink == 2);
    CHECK(fs::read_symlink(sb.staging() / "bin" / "alias") == "tool");
    CHECK(fs::read_symlink(sb.staging() / "config" / "tool") == "../bin/tool");
    std::ifstream in(sb.staging() / "config" / "tool");
    std::string content;
    std::getline(in, content);
    CHECK(content == "ELF");
}
