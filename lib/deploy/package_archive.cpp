// Hostile-archive extraction. Every entry's path is normalised and checked
// before anything is created, and everything is created with *at() calls
// relative to the staging directory's descriptor: parents are directories
// this function made itself (a path through a symlink is refused), files are
// opened O_EXCL|O_NOFOLLOW, so a crafted entry cannot reach outside.
#include <registry/deploy/package_archive.hpp>

#include <archive.h>
#include <archive_entry.h>

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <map>
#include <memory>
#include <vector>

namespace registry::deploy {

namespace {

namespace fs = std::filesystem;

enum class kind { directory, file, symlink };

struct fd_closer {
    int fd = -1;
    ~fd_closer() {
        if (fd >= 0) ::close(fd);
    }
};

struct archive_closer {
    void operator()(archive* a) const { archive_read_free(a); }
};

unexpected refuse(std::string_view entry, std::string_view why) {
    return fail(errc::invalid_package, "entry '" + std::string(entry) + "': " + std::string(why));
}

std::vector<std::string> split(std::string_view p) {
    std::vector<std::string> parts;
    std::size_t start = 0;
    while (start <= p.size()) {
        const std::size_t end = std::min(p.find('/', start), p.size());
        if (end > start) parts.emplace_back(p.substr(start, end - start));
        start = end + 1;
    }
    return parts;
}

// The entry's path relative to the package root ("./a//b/" -> "a/b"); an
// error for absolute paths and "..". Empty for the root itself.
result<std::string> entry_path(std::string_view raw, std::size_t max_bytes) {
    if (raw.size() > max_bytes) return refuse(raw.substr(0, 64), "path longer than " + std::to_string(max_bytes) + " bytes");
    if (!raw.empty() && raw.front() == '/') return refuse(raw, "absolute path");
    std::string out;
    for (const auto& part : split(raw)) {
        if (part == ".") continue;
        if (part == "..") return refuse(raw, "path contains '..'");
        if (!out.empty()) out += '/';
        out += part;
    }
    return out;
}

// A symlink may climb out of its own directory with leading "..", then only
// descend: lexically inside the package and, since every directory on the
// way up is a real one, physically inside too.
bool symlink_stays_inside(const std::string& link_path, std::string_view target) {
    if (target.empty() || target.front() == '/') return false;
    auto depth = static_cast<std::ptrdiff_t>(split(link_path).size()) - 1;  // directories above the link
    bool descending = false;
    for (const auto& part : split(target)) {
        if (part == ".") continue;
        if (part == "..") {
            if (descending || --depth < 0) return false;
        } else {
            descending = true;
        }
    }
    return true;
}

class extractor {
public:
    extractor(const unpack_request& req, int root) : req_(req), root_(root) {}

    result<unpacked_package> run() {
        fd_closer in{open_archive()};
        if (in.fd < 0) return unexpected{opened_.err()};
        std::unique_ptr<archive, archive_closer> a(archive_read_new());
        if (!a) return fail(errc::internal, "libarchive: out of memory");
        archive_read_support_filter_gzip(a.get());
        archive_read_support_format_tar(a.get());
        if (archive_read_open_fd(a.get(), in.fd, 64 * 1024) != ARCHIVE_OK) {
            return fail(errc::invalid_package, "not a readable tar.gz archive: " + error_of(a.get()));
        }
        for (;;) {
            archive_entry* e = nullptr;
            const int r = archive_read_next_header(a.get(), &e);
            if (r == ARCHIVE_EOF) break;
            if (r < ARCHIVE_WARN) return fail(errc::invalid_package, "not a readable tar.gz archive: " + error_of(a.get()));
            if (++entries_ > req_.limits.max_entries) {
                return fail(errc::invalid_package, "more than " + std::to_string(req_.limits.max_entries) + " entries");
            }
            auto done = entry(a.get(), e);
            if (!done) return unexpected{done.err()};
        }
        return finish();
    }

private:
    static std::string kind_of(mode_t mode) {
        if (S_ISFIFO(mode)) return "a FIFO";
        if (S_ISDIR(mode)) return "a directory";
        if (S_ISCHR(mode) || S_ISBLK(mode)) return "a device";
        if (S_ISSOCK(mode)) return "a socket";
        return "unknown type";
    }

    // The archive, opened without blocking (a FIFO's open would wait for a
    // writer forever) and only if it is a regular file; -1 with opened_ set
    // to the error otherwise.
    int open_archive() {
        const std::string& name = req_.archive.string();
        const int fd = ::open(name.c_str(), O_RDONLY | O_NONBLOCK | O_NOCTTY | O_CLOEXEC);
        if (fd < 0) {
            opened_ = fail(errc::invalid_package, "not a readable tar.gz archive: " + name + ": " + std::strerror(errno));
            return -1;
        }
        struct stat st {};
        if (::fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
            opened_ = fail(errc::invalid_package, name + " is not a regular file (" + kind_of(st.st_mode) + ")");
            ::close(fd);
            return -1;
        }
        // Reads of a regular file never block; libarchive expects a blocking descriptor.
        ::fcntl(fd, F_SETFL, ::fcntl(fd, F_GETFL) & ~O_NONBLOCK);
        return fd;
    }

    static std::string error_of(archive* a) {
        const char* s = archive_error_string(a);
        return s ? s : "unknown error";
    }

    result<void> entry(archive* a, archive_entry* e) {
        const char* raw_name = archive_entry_pathname(e);
        const std::string_view raw = raw_name ? raw_name : "";
        auto rel = entry_path(raw, req_.limits.max_path_bytes);
        if (!rel) return unexpected{rel.err()};
        const std::string& path = *rel;
        const auto type = archive_entry_filetype(e);
        const char* hardlink = archive_entry_hardlink(e);
        if (path.empty()) {
            if (type == AE_IFDIR) return {};  // "./": the package root
            return refuse(raw, "names the package root");
        }
        if (!hardlink) {
            switch (type) {
                case AE_IFCHR: case AE_IFBLK: return refuse(raw, "device nodes are not allowed");
                case AE_IFIFO: return refuse(raw, "FIFOs are not allowed");
                case AE_IFSOCK: return refuse(raw, "sockets are not allowed");
                case AE_IFREG: case AE_IFDIR: case AE_IFLNK: break;
                default: return refuse(raw, "unsupported entry type");
            }
        }
        auto parents = make_parents(raw, path);
        if (!parents) return parents;
        if (auto it = seen_.find(path); it != seen_.end()) {
            if (it->second == kind::directory && type == AE_IFDIR && !hardlink) return {};
            return refuse(raw, "duplicate entry");
        }
        if (hardlink) return link(raw, path, hardlink);
        if (type == AE_IFDIR) return directory(raw, path, archive_entry_perm(e));
        if (type == AE_IFLNK) return symlink(raw, path, archive_entry_symlink(e));
        return file(a, e, raw, path);
    }

    // Creates the missing parents of `path`; refuses a parent that is a file
    // or a symlink.
    result<void> make_parents(std::string_view raw, const std::string& path) {
        std::string prefix;
        auto parts = split(path);
        parts.pop_back();
        for (const auto& part : parts) {
            if (!prefix.empty()) prefix += '/';
            prefix += part;
            auto it = seen_.find(prefix);
            if (it == seen_.end()) {
                if (::mkdirat(root_, prefix.c_str(), 0755) != 0) return os_error(raw, "mkdir");
                seen_.emplace(prefix, kind::directory);
            } else if (it->second == kind::symlink) {
                return refuse(raw, "path goes through the symlink '" + prefix + "'");
            } else if (it->second == kind::file) {
                return refuse(raw, "path goes through the file '" + prefix + "'");
            }
        }
        return {};
    }

    unexpected os_error(std::string_view raw, std::string_view what) {
        return fail(errc::internal, "entry '" + std::string(raw) + "': " + std::string(what) + ": " + std::strerror(errno));
    }

    result<void> directory(std::string_view raw, const std::string& path, mode_t perm) {
        if (::mkdirat(root_, path.c_str(), (perm & 0777) | 0700) != 0) return os_error(raw, "mkdir");
        seen_.emplace(path, kind::directory);
        return {};
    }

    result<void> symlink(std::string_view raw, const std::string& path, const char* target) {
        if (!target || !symlink_stays_inside(path, target)) {
            return refuse(raw, "symlink points outside the package (" + std::string(target ? target : "") + ")");
        }
        if (::symlinkat(target, root_, path.c_str()) != 0) return os_error(raw, "symlink");
        seen_.emplace(path, kind::symlink);
        return {};
    }

    result<void> link(std::string_view raw, const std::string& path, std::string_view target) {
        auto rel = entry_path(target, req_.limits.max_path_bytes);
        if (!rel || rel->empty()) return refuse(raw, "hard link points outside the package (" + std::string(target) + ")");
        auto it = seen_.find(*rel);
        if (it == seen_.end() || it->second != kind::file) {
            return refuse(raw, "hard link target '" + *rel + "' is not a regular file earlier in the package");
        }
        // A target receives the link as a copy of the file: it counts in full.
        const std::uint64_t size = file_bytes_[*rel];
        if (size > req_.limits.max_total_bytes - bytes_) return too_large(raw);
        bytes_ += size;
        if (::linkat(root_, rel->c_str(), root_, path.c_str(), 0) != 0) return os_error(raw, "link");
        seen_.emplace(path, kind::file);
        file_bytes_[path] = size;
        return {};
    }

    unexpected too_large(std::string_view raw) const {
        return fail(errc::invalid_package, "entry '" + std::string(raw) + "': unpacked size exceeds " +
                                               std::to_string(req_.limits.max_total_bytes) + " bytes");
    }

    result<void> file(archive* a, archive_entry* e, std::string_view raw, const std::string& path) {
        const auto& lim = req_.limits;
        // A sparse member's holes are not in the archive's data but take disk
        // once a target copies the file: refused, like any data with a gap.
        if (archive_entry_sparse_count(e) > 0) return refuse(raw, "sparse files are not allowed");
        if (archive_entry_size_is_set(e) && static_cast<std::uint64_t>(archive_entry_size(e)) > lim.max_total_bytes - bytes_) {
            return too_large(raw);
        }
        // Mode bits beyond rwx (setuid, setgid, sticky) are dropped.
        const mode_t mode = (archive_entry_perm(e) & 0777) | 0600;
        fd_closer out{::openat(root_, path.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, mode)};
        if (out.fd < 0) return os_error(raw, "create");
        seen_.emplace(path, kind::file);
        std::uint64_t written = 0;
        for (;;) {
            const void* block = nullptr;
            std::size_t size = 0;
            la_int64_t offset = 0;
            const int r = archive_read_data_block(a, &block, &size, &offset);
            if (r == ARCHIVE_EOF) break;
            if (r < ARCHIVE_WARN) {
                return fail(errc::invalid_package, "entry '" + std::string(raw) + "': " + error_of(a));
            }
            if (offset < 0 || static_cast<std::uint64_t>(offset) != written) {
                return refuse(raw, "sparse files are not allowed (a hole at byte " + std::to_string(written) + ")");
            }
            written += size;
            file_bytes_[path] = written;
            bytes_ += size;
            if (bytes_ > lim.max_total_bytes) {
                return fail(errc::invalid_package, "unpacked size exceeds " + std::to_string(lim.max_total_bytes) + " bytes");
            }
            const auto compressed = static_cast<std::uint64_t>(std::max<la_int64_t>(archive_filter_bytes(a, -1), 1));
            const auto unpacked = static_cast<std::uint64_t>(archive_filter_bytes(a, 0));
            if (unpacked > lim.ratio_floor_bytes && unpacked / compressed > lim.max_ratio) {
                return fail(errc::invalid_package, "compression ratio exceeds " + std::to_string(lim.max_ratio) +
                                                       ":1 (a decompression bomb?)");
            }
            if (::pwrite(out.fd, block, size, offset) != static_cast<ssize_t>(size)) return os_error(raw, "write");
        }
        // The umask may have narrowed the mode; the package's rwx bits are its intent.
        if (::fchmod(out.fd, mode) != 0) return os_error(raw, "chmod");
        return {};
    }

    bool is_file(const std::string& path) const {
        auto it = seen_.find(path);
        return it != seen_.end() && it->second == kind::file;
    }

    result<unpacked_package> finish() {
        if (!is_file("manifest.yaml")) return fail(errc::invalid_package, "manifest.yaml is missing (or not a regular file)");
        auto text = read_manifest();
        if (!text) return unexpected{text.err()};
        auto manifest = parse_package_manifest(*text);
        if (!manifest) return unexpected{manifest.err()};
        // A container package runs its image: it has no scripts to require.
        for (const char* required : {"scripts/start.sh", "scripts/stop.sh"}) {
            if (!manifest->is_container() && !is_file(required)) {
                return fail(errc::invalid_package, std::string(required) + " is missing (or not a regular file)");
            }
        }
        if (manifest->health && !manifest->is_container() && !is_file(manifest->health->script)) {
            return fail(errc::invalid_package, "health.script '" + manifest->health->script + "' is not a file in the package");
        }
        if (req_.name && *req_.name != manifest->name) {
            return fail(errc::invalid_package, "the manifest names package '" + manifest->name + "', not '" + *req_.name + "'");
        }
        if (req_.version && *req_.version != manifest->version) {
            return fail(errc::invalid_package,
                        "the manifest has version '" + manifest->version + "', not '" + *req_.version + "'");
        }
        return unpacked_package{std::move(*manifest), entries_, bytes_};
    }

    result<std::string> read_manifest() {
        fd_closer in{::openat(root_, "manifest.yaml", O_RDONLY | O_NOFOLLOW | O_CLOEXEC)};
        if (in.fd < 0) return os_error("manifest.yaml", "open");
        std::string text;
        char buf[8192];
        for (;;) {
            const ssize_t n = ::read(in.fd, buf, sizeof buf);
            if (n < 0) return os_error("manifest.yaml", "read");
            if (n == 0) break;
            text.append(buf, static_cast<std::size_t>(n));
            if (text.size() > req_.limits.max_manifest_bytes) {
                return fail(errc::invalid_package, "manifest.yaml is larger than " +
                                                       std::to_string(req_.limits.max_manifest_bytes) + " bytes");
            }
        }
        return text;
    }

    const unpack_request& req_;
    int root_;
    result<void> opened_;
    std::map<std::string, kind> seen_;
    std::map<std::string, std::uint64_t> file_bytes_;  // regular files' sizes, for their hard links
    std::size_t entries_ = 0;
    std::uint64_t bytes_ = 0;
};

}  // namespace

result<unpacked_package> unpack_package(const unpack_request& request) {
    if (::mkdir(request.staging.c_str(), 0700) != 0) {
        return fail(errc::internal, "cannot create staging directory " + request.staging.string() + ": " + std::strerror(errno));
    }
    auto outcome = [&]() -> result<unpacked_package> {
        fd_closer root{::open(request.staging.c_str(), O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC)};
        if (root.fd < 0) return fail(errc::internal, "cannot open staging directory: " + std::string(std::strerror(errno)));
        return extractor(request, root.fd).run();
    }();
    if (!outcome) {
        std::error_code ec;
        fs::remove_all(request.staging, ec);
    }
    return outcome;
}

}  // namespace registry::deploy
