#include "deploy/package_packer.hpp"

#include <archive.h>
#include <archive_entry.h>

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <memory>
#include <string>
#include <system_error>
#include <utility>
#include <vector>

namespace registryd {

namespace {

namespace fs = std::filesystem;
using registry::errc;
using registry::fail;

// As tar_builder's: reproducible archives.
constexpr time_t entry_mtime = 1'700'000'000;
constexpr std::size_t piece_bytes = 64 * 1024;

struct archive_deleter {
    void operator()(archive* a) const noexcept { archive_write_free(a); }
};
struct entry_deleter {
    void operator()(archive_entry* e) const noexcept { archive_entry_free(e); }
};

struct fd_closer {
    int fd = -1;
    ~fd_closer() {
        if (fd >= 0) ::close(fd);
    }
};

class packer {
public:
    packer(const fs::path& from, const fs::path& to, archive* a) : from_(from), to_(to), a_(a) {}

    registry::result<void> tree(const fs::path& dir, const std::string& prefix) {
        std::error_code ec;
        std::vector<fs::path> children;
        for (fs::directory_iterator it(dir, ec), end; !ec && it != end; it.increment(ec)) {
            children.push_back(it->path());
        }
        if (ec) return io_error(prefix.empty() ? "." : prefix, "listing the directory", ec);
        std::sort(children.begin(), children.end(),
                  [](const fs::path& x, const fs::path& y) { return x.filename().native() < y.filename().native(); });
        for (const fs::path& child : children) {
            const std::string name = prefix + child.filename().native();
            const fs::file_status st = fs::symlink_status(child, ec);
            if (ec) return io_error(name, "stat", ec);
            const auto perm = static_cast<mode_t>(st.permissions()) & 0777;
            switch (st.type()) {
                case fs::file_type::directory: {
                    auto r = header(name + "/", AE_IFDIR, perm, 0, nullptr);
                    if (!r) return r;
                    r = tree(child, name + "/");
                    if (!r) return r;
                    break;
                }
                case fs::file_type::symlink: {
                    const fs::path target = fs::read_symlink(child, ec);
                    if (ec) return io_error(name, "readlink", ec);
                    auto r = header(name, AE_IFLNK, 0777, 0, target.c_str());
                    if (!r) return r;
                    break;
                }
                case fs::file_type::regular: {
                    auto r = file(child, name);
                    if (!r) return r;
                    break;
                }
                default: return not_packed(name, st.type());
            }
        }
        return {};
    }

private:
    registry::result<void> file(const fs::path& p, const std::string& name) {
        // Not blocking on open (it was a regular file when looked at, but may
        // since have been replaced by a FIFO), not following a link.
        fd_closer f{::open(p.c_str(), O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC)};
        if (f.fd < 0) return io_error(name, "open", std::error_code(errno, std::generic_category()));
        struct stat st{};
        if (::fstat(f.fd, &st) != 0) return io_error(name, "stat", std::error_code(errno, std::generic_category()));
        if (!S_ISREG(st.st_mode)) return not_packed(name, fs::file_type::unknown);
        auto r = header(name, AE_IFREG, static_cast<mode_t>(st.st_mode & 0777), st.st_size, nullptr);
        if (!r) return r;
        std::vector<char> buf(piece_bytes);
        auto left = static_cast<std::uint64_t>(st.st_size);
        while (left > 0) {
            const ssize_t n = ::read(f.fd, buf.data(), static_cast<std::size_t>(std::min<std::uint64_t>(left, buf.size())));
            if (n < 0 && errno == EINTR) continue;
            if (n < 0) return io_error(name, "read", std::error_code(errno, std::generic_category()));
            if (n == 0) return fail(errc::internal, where(name) + ": it shrank while it was being packed");
            const la_ssize_t w = archive_write_data(a_, buf.data(), static_cast<std::size_t>(n));
            if (w != n) return archive_error(name);
            left -= static_cast<std::uint64_t>(n);
        }
        return {};
    }

    registry::result<void> header(const std::string& name, unsigned type, mode_t perm, la_int64_t size,
                                  const char* link_target) {
        std::unique_ptr<archive_entry, entry_deleter> e(archive_entry_new());
        if (!e) return fail(errc::internal, where(name) + ": out of memory");
        archive_entry_set_pathname(e.get(), name.c_str());
        archive_entry_set_filetype(e.get(), type);
        archive_entry_set_perm(e.get(), perm);
        archive_entry_set_uid(e.get(), 0);
        archive_entry_set_gid(e.get(), 0);
        archive_entry_set_mtime(e.get(), entry_mtime, 0);
        archive_entry_set_size(e.get(), size);
        if (link_target) archive_entry_set_symlink(e.get(), link_target);
        if (archive_write_header(a_, e.get()) != ARCHIVE_OK) return archive_error(name);
        return {};
    }

    std::string where(const std::string& name) const { return "packing " + from_.string() + ": " + name; }

    registry::result<void> io_error(const std::string& name, const char* what, const std::error_code& ec) const {
        return fail(errc::internal, where(name) + ": " + what + ": " + ec.message());
    }

    registry::result<void> archive_error(const std::string& name) const {
        const char* s = archive_error_string(a_);
        return fail(errc::internal, where(name) + ": writing " + to_.string() + ": " + (s ? s : "libarchive error"));
    }

    registry::result<void> not_packed(const std::string& name, fs::file_type type) const {
        const char* what = type == fs::file_type::fifo        ? "a FIFO"
                           : type == fs::file_type::socket    ? "a socket"
                           : type == fs::file_type::block     ? "a block device"
                           : type == fs::file_type::character ? "a character device"
                                                              : "not a regular file, a directory or a symlink";
        return fail(errc::invalid_package,
                    where(name) + ": " + what + " (a package has regular files, directories and symlinks only)");
    }

    const fs::path& from_;
    const fs::path& to_;
    archive* a_;
};

registry::result<void> pack(const fs::path& from, const fs::path& to, int fd) {
    std::unique_ptr<archive, archive_deleter> a(archive_write_new());
    if (!a) return fail(errc::internal, "packing " + from.string() + ": out of memory");
    const auto failed = [&](const char* what) {
        const char* s = archive_error_string(a.get());
        return fail(errc::internal, "packing " + from.string() + " into " + to.string() + ": " + what + ": " +
                                        (s ? s : "libarchive error"));
    };
    if (archive_write_set_format_pax_restricted(a.get()) != ARCHIVE_OK) return failed("tar format");
    if (archive_write_add_filter_gzip(a.get()) != ARCHIVE_OK) return failed("gzip");
    // No time in gzip's header either: the same tree packs the same.
    archive_write_set_filter_option(a.get(), "gzip", "timestamp", nullptr);
    if (archive_write_set_bytes_in_last_block(a.get(), 1) != ARCHIVE_OK) return failed("block size");
    if (archive_write_open_fd(a.get(), fd) != ARCHIVE_OK) return failed("open");
    packer p(from, to, a.get());
    auto r = p.tree(from, "");
    if (!r) return r;
    if (archive_write_close(a.get()) != ARCHIVE_OK) return failed("close");
    return {};
}

}  // namespace

registry::result<void> pack_directory(const fs::path& from, const fs::path& to) {
    std::error_code ec;
    if (!fs::is_directory(from, ec)) {
        return fail(errc::invalid_package, "packing " + from.string() + ": not a directory");
    }
    fd_closer out{::open(to.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644)};
    if (out.fd < 0) {
        return fail(errc::internal, "packing " + from.string() + ": creating " + to.string() + ": " +
                                        std::strerror(errno));
    }
    auto r = pack(from, to, out.fd);
    if (r && ::close(std::exchange(out.fd, -1)) != 0) {
        r = fail(errc::internal, "packing " + from.string() + ": writing " + to.string() + ": " + std::strerror(errno));
    }
    if (!r) fs::remove(to, ec);
    return r;
}

}  // namespace registryd
