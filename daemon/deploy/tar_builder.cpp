#include "deploy/tar_builder.hpp"

#include <archive.h>
#include <archive_entry.h>

#include <set>
#include <stdexcept>
#include <utility>
#include <vector>

namespace registryd {

namespace {

// A fixed timestamp keeps archives reproducible (and tests deterministic).
constexpr time_t entry_mtime = 1'700'000'000;

// Splits a relative path into its components; rejects what could escape the
// destination directory.
std::vector<std::string> components(std::string_view path) {
    if (path.empty()) throw std::invalid_argument("tar_builder: empty path");
    if (path.front() == '/') throw std::invalid_argument("tar_builder: absolute path '" + std::string(path) + "'");
    std::vector<std::string> parts;
    std::size_t start = 0;
    while (start <= path.size()) {
        std::size_t end = path.find('/', start);
        if (end == std::string_view::npos) end = path.size();
        std::string_view part = path.substr(start, end - start);
        if (part == "..") throw std::invalid_argument("tar_builder: '..' in path '" + std::string(path) + "'");
        if (!part.empty() && part != ".") parts.emplace_back(part);
        start = end + 1;
    }
    if (parts.empty()) throw std::invalid_argument("tar_builder: path '" + std::string(path) + "' names no entry");
    return parts;
}

std::string join(const std::vector<std::string>& parts, std::size_t n) {
    std::string out;
    for (std::size_t i = 0; i < n; ++i) {
        if (i) out += '/';
        out += parts[i];
    }
    return out;
}

}  // namespace

struct tar_builder::impl {
    impl() : a(archive_write_new()) {
        if (!a) throw std::runtime_error("tar_builder: archive_write_new failed");
        check(archive_write_set_format_pax_restricted(a), "set format");
        check(archive_write_set_bytes_in_last_block(a, 1), "set block size");
        check(archive_write_open(a, this, nullptr, &impl::write_cb, nullptr), "open");
    }
    ~impl() {
        if (a) archive_write_free(a);
    }

    static la_ssize_t write_cb(struct archive*, void* self, const void* buffer, size_t length) {
        static_cast<impl*>(self)->out.append(static_cast<const char*>(buffer), length);
        return static_cast<la_ssize_t>(length);
    }

    void check(int rc, const char* what) const {
        if (rc != ARCHIVE_OK) {
            const char* msg = a ? archive_error_string(a) : nullptr;
            throw std::runtime_error(std::string("tar_builder: ") + what + ": " + (msg ? msg : "libarchive error"));
        }
    }

    void ensure_open() const {
        if (finished) throw std::logic_error("tar_builder: already finished");
    }

    void write_entry(const std::string& path, unsigned type, std::uint32_t mode, std::string_view contents) {
        struct archive_entry* e = archive_entry_new();
        if (!e) throw std::runtime_error("tar_builder: archive_entry_new failed");
        archive_entry_set_pathname(e, path.c_str());
        archive_entry_set_filetype(e, type);
        archive_entry_set_perm(e, static_cast<mode_t>(mode & 07777));
        archive_entry_set_uid(e, 0);
        archive_entry_set_gid(e, 0);
        archive_entry_set_uname(e, "root");
        archive_entry_set_gname(e, "root");
        archive_entry_set_mtime(e, entry_mtime, 0);
        archive_entry_set_size(e, type == AE_IFREG ? static_cast<la_int64_t>(contents.size()) : 0);
        const int rc = archive_write_header(a, e);
        archive_entry_free(e);
        check(rc, "write header");
        if (type == AE_IFREG && !contents.empty()) {
            const la_ssize_t n = archive_write_data(a, contents.data(), contents.size());
            if (n < 0 || static_cast<std::size_t>(n) != contents.size()) check(ARCHIVE_FATAL, "write data");
        }
    }

    void add_parents(const std::vector<std::string>& parts) {
        for (std::size_t n = 1; n < parts.size(); ++n) {
            std::string dir = join(parts, n);
            if (dirs.insert(dir).second) write_entry(dir + "/", AE_IFDIR, 0755, {});
        }
    }

    struct archive* a;
    std::string out;
    std::set<std::string> dirs;
    bool finished = false;
};

tar_builder::tar_builder() : impl_(std::make_unique<impl>()) {}

tar_builder::~tar_builder() = default;

tar_builder& tar_builder::add_file(std::string_view path, std::string_view contents, std::uint32_t mode) {
    impl_->ensure_open();
    const auto parts = components(path);
    impl_->add_parents(parts);
    impl_->write_entry(join(parts, parts.size()), AE_IFREG, mode, contents);
    return *this;
}

tar_builder& tar_builder::add_directory(std::string_view path, std::uint32_t mode) {
    impl_->ensure_open();
    const auto parts = components(path);
    impl_->add_parents(parts);
    std::string dir = join(parts, parts.size());
    if (impl_->dirs.insert(dir).second) impl_->write_entry(dir + "/", AE_IFDIR, mode, {});
    return *this;
}

std::string tar_builder::finish() {
    impl_->ensure_open();
    impl_->finished = true;
    impl_->check(archive_write_close(impl_->a), "close");
    return std::exchange(impl_->out, {});
}

}  // namespace registryd
