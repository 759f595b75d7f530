// registry-pack: builds {name}-{version}.tar.gz from a package source folder
// (packages/<name>/): validates manifest.yaml and the required scripts, writes
// a reproducible archive (sorted entries, owner 0, mtime 0) and checks the
// result the way registryd will, by unpacking it with the same code.
//
//   registry-pack SOURCE_DIR [OUTPUT_DIR]     prints the archive's path
//
// Exit status: 0 done, 1 the package is invalid, 2 usage.
#include <registry/deploy/package_archive.hpp>

#include <archive.h>
#include <archive_entry.h>

#include <sys/stat.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <iterator>
#include <string>
#include <vector>

namespace fs = std::filesystem;

namespace {

std::string read_file(const fs::path& p) {
    std::ifstream in(p, std::ios::binary);
    return {std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
}

int fail(const std::string& message) {
    std::cerr << "registry-pack: " << message << "\n";
    return 1;
}

// Writes every entry under `source`, sorted, with normalised metadata.
bool write_archive(const fs::path& source, const fs::path& out, std::string& error) {
    std::vector<fs::path> paths;
    for (auto it = fs::recursive_directory_iterator(source); it != fs::recursive_directory_iterator(); ++it) {
        paths.push_back(it->path().lexically_relative(source));
    }
    std::sort(paths.begin(), paths.end());
    archive* a = archive_write_new();
    archive_write_set_format_pax_restricted(a);
    archive_write_add_filter_gzip(a);
    archive_write_set_filter_option(a, "gzip", "timestamp", nullptr);  // no timestamp in the gzip header
    bool ok = archive_write_open_filename(a, out.c_str()) == ARCHIVE_OK;
    if (!ok) error = archive_error_string(a);
    for (const auto& rel : paths) {
        if (!ok) break;
        const fs::path full = source / rel;
        struct stat st {};
        if (::lstat(full.c_str(), &st) != 0) {
            error = "cannot stat " + full.string();
            ok = false;
            break;
        }
        archive_entry* e = archive_entry_new();
        archive_entry_set_pathname(e, rel.c_str());
        archive_entry_set_mtime(e, 0, 0);
        archive_entry_set_uid(e, 0);
        archive_entry_set_gid(e, 0);
        std::string data;
        if (S_ISDIR(st.st_mode)) {
            archive_entry_set_filetype(e, AE_IFDIR);
            archive_entry_set_perm(e, 0755);
        } else if (S_ISLNK(st.st_mode)) {
            archive_entry_set_filetype(e, AE_IFLNK);
            archive_entry_set_perm(e, 0777);
            archive_entry_set_symlink(e, fs::read_symlink(full).c_str());
        } else if (S_ISREG(st.st_mode)) {
            data = read_file(full);
            archive_entry_set_filetype(e, AE_IFREG);
            archive_entry_set_perm(e, (st.st_mode & 0111) ? 0755 : 0644);
            archive_entry_set_size(e, static_cast<la_int64_t>(data.size()));
        } else {
            error = full.string() + ": only files, directories and symlinks can be packed";
            ok = false;
        }
        if (ok && archive_write_header(a, e) != ARCHIVE_OK) {
            error = archive_error_string(a);
            ok = false;
        }
        if (ok && !data.empty() && archive_write_data(a, data.data(), data.size()) < 0) {
            error = archive_error_string(a);
            ok = false;
        }
        archive_entry_free(e);
    }
    if (archive_write_close(a) != ARCHIVE_OK && ok) {
        error = archive_error_string(a);
        ok = false;
    }
    archive_write_free(a);
    return ok;
}

}  // namespace

int main(int argc, char** argv) {
    if (argc < 2 || argc > 3 || std::string(argv[1]) == "--help") {
        std::cerr << "usage: registry-pack SOURCE_DIR [OUTPUT_DIR]\n";
        return 2;
    }
    const fs::path source = argv[1];
    const fs::path output_dir = argc == 3 ? fs::path(argv[2]) : fs::current_path();
    if (!fs::is_directory(source)) return fail(source.string() + " is not a directory");

    if (!fs::is_regular_file(source / "manifest.yaml")) return fail("manifest.yaml is missing");
    const auto problems = registry::deploy::check_package_manifest(read_file(source / "manifest.yaml"));
    if (!problems.empty()) {
        for (const auto& p : problems) std::cerr << "registry-pack: manifest.yaml: " << p << "\n";
        return 1;
    }
    auto manifest = registry::deploy::parse_package_manifest(read_file(source / "manifest.yaml")).value();

    std::error_code ec;
    fs::create_directories(output_dir, ec);
    const fs::path out = output_dir / (manifest.name + "-" + manifest.version + ".tar.gz");
    const fs::path partial = fs::path(out).concat(".partial");
    std::string error;
    if (!write_archive(source, partial, error)) {
        fs::remove(partial, ec);
        return fail(error);
    }

    // The archive must pass registryd's own checks.
    std::string scratch = (fs::temp_directory_path() / "registry-pack.XXXXXX").string();
    if (!::mkdtemp(scratch.data())) return fail("cannot create a temporary directory");
    auto unpacked = registry::deploy::unpack_package(
        {partial, fs::path(scratch) / "check", manifest.name, manifest.version, {}});
    fs::remove_all(scratch, ec);
    if (!unpacked) {
        fs::remove(partial, ec);
        return fail(unpacked.err().message);
    }
    fs::rename(partial, out, ec);
    if (ec) return fail("cannot rename to " + out.string() + ": " + ec.message());
    std::cout << out.string() << "\n";
    return 0;
}
