#include "deploy/upload_dir.hpp"

#include <openssl/evp.h>

#include <cerrno>
#include <cstring>
#include <fcntl.h>
#include <stdexcept>
#include <system_error>
#include <unistd.h>
#include <utility>

namespace registryd {

using registry::errc;
using registry::fail;
using registry::result;

struct upload_dir::file {
    int fd = -1;
    EVP_MD_CTX* digest = EVP_MD_CTX_new();

    file() = default;
    file(const file&) = delete;
    file& operator=(const file&) = delete;
    ~file() {
        if (fd >= 0) ::close(fd);
        EVP_MD_CTX_free(digest);
    }
};

namespace {

std::string system_message(int err) { return std::error_code(err, std::generic_category()).message(); }

}  // namespace

upload_dir::upload_dir(blocking_runner& runner, std::filesystem::path dir) : runner_(runner), dir_(std::move(dir)) {
    std::error_code ec;
    std::filesystem::remove_all(dir_, ec);
    std::filesystem::create_directories(dir_, ec);
    if (ec) throw std::runtime_error("cannot create the upload directory " + dir_.string() + ": " + ec.message());
}

upload_dir::~upload_dir() {
    for (const auto& entry : files_) {
        std::error_code ec;
        std::filesystem::remove(path(entry.first), ec);
    }
}

std::filesystem::path upload_dir::path(const std::string& id) const { return dir_ / (id + ".tar.gz"); }

// Not coroutines: the jobs capture their arguments outside any coroutine
// frame (see local_target.cpp).
registry::task<result<void>> upload_dir::create(std::string id) {
    auto f = std::make_shared<file>();
    files_[id] = f;
    std::function<result<void>()> job = [f, p = path(id)]() -> result<void> {
        if (!f->digest || EVP_DigestInit_ex(f->digest, EVP_sha256(), nullptr) != 1) {
            return fail(errc::internal, "cannot start a SHA-256 digest");
        }
        f->fd = ::open(p.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
        if (f->fd < 0) return fail(errc::unavailable, "creating " + p.string() + ": " + system_message(errno));
        return {};
    };
    return runner_.run(std::move(job));
}

registry::task<result<void>> upload_dir::append(std::string id, std::string data) {
    auto it = files_.find(id);
    std::shared_ptr<file> f = it == files_.end() ? nullptr : it->second;
    std::function<result<void>()> job = [f, p = path(id), data = std::move(data)]() -> result<void> {
        if (!f || f->fd < 0) return fail(errc::internal, p.string() + " is not open");
        for (std::size_t done = 0; done < data.size();) {
            const ssize_t n = ::write(f->fd, data.data() + done, data.size() - done);
            if (n < 0 && errno == EINTR) continue;
            if (n < 0) return fail(errc::unavailable, "writing " + p.string() + ": " + system_message(errno));
            done += static_cast<std::size_t>(n);
        }
        if (EVP_DigestUpdate(f->digest, data.data(), data.size()) != 1) {
            return fail(errc::internal, "SHA-256 update failed");
        }
        return {};
    };
    return runner_.run(std::move(job));
}

registry::task<result<std::string>> upload_dir::sha256(std::string id) {
    auto it = files_.find(id);
    std::shared_ptr<file> f = it == files_.end() ? nullptr : it->second;
    std::function<result<std::string>()> job = [f]() -> result<std::string> {
        if (!f) return fail(errc::internal, "no such upload file");
        // The file is complete: it is closed before anything reads it.
        if (::close(std::exchange(f->fd, -1)) != 0) {
            return fail(errc::unavailable, "closing an upload: " + system_message(errno));
        }
        unsigned char md[EVP_MAX_MD_SIZE];
        unsigned int len = 0;
        if (EVP_DigestFinal_ex(f->digest, md, &len) != 1) return fail(errc::internal, "SHA-256 final failed");
        static constexpr char hex[] = "0123456789abcdef";
        std::string out;
        for (unsigned int i = 0; i < len; ++i) {
            out += hex[md[i] >> 4];
            out += hex[md[i] & 0xf];
        }
        return out;
    };
    return runner_.run(std::move(job));
}

void upload_dir::remove(const std::string& id) {
    files_.erase(id);  // a job still running holds its own reference
    std::error_code ec;
    std::filesystem::remove(path(id), ec);
}

}  // namespace registryd
