#include "observability/audit_log.hpp"

#include "observability/log.hpp"

#include <boost/asio/post.hpp>

#include <cerrno>
#include <chrono>
#include <cstdio>
#include <ctime>
#include <system_error>

#include <fcntl.h>
#include <unistd.h>

namespace registryd {

namespace {

// Past this, a line is written at once rather than at the end of the turn.
constexpr std::size_t flush_at_bytes = 64 * 1024;
// What stays buffered while writes fail (a full disk); lines beyond are dropped.
constexpr std::size_t max_buffered_bytes = 4 << 20;

int open_append(const std::filesystem::path& p) {
    return ::open(p.c_str(), O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0600);
}

void append_time(std::string& out) {
    using namespace std::chrono;
    const auto ms = duration_cast<milliseconds>(system_clock::now().time_since_epoch()).count();
    std::time_t secs = static_cast<std::time_t>(ms / 1000);
    std::tm tm{};
    gmtime_r(&secs, &tm);
    char buf[40];
    const int n = std::snprintf(buf, sizeof buf, "%04d-%02d-%02dT%02d:%02d:%02d.%03dZ", tm.tm_year + 1900,
                                tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec, static_cast<int>(ms % 1000));
    out.append(buf, static_cast<std::size_t>(n));
}

void field(std::string& out, std::string_view key, std::string_view value) {
    out += ",\"";
    out += key;
    out += "\":";
    log::append_json_string(out, log::clip(value));
}

}  // namespace

audit_log::audit_log(boost::asio::io_context& ioc, std::filesystem::path file)
    : ioc_(ioc), path_(std::move(file)), self_(std::make_shared<audit_log*>(this)) {
    fd_ = open_append(path_);
    if (fd_ < 0) throw std::system_error(errno, std::generic_category(), "cannot open audit.file " + path_.string());
}

audit_log::~audit_log() {
    *self_ = nullptr;
    flush();
    if (fd_ >= 0) {
        ::fsync(fd_);
        ::close(fd_);
    }
}

bool audit_log::audited(const registry::protocol::outcome& o, std::optional<registry::protocol::permission_family> family) {
    using enum registry::protocol::permission_family;
    if (o.code == "forbidden" || o.code == "rate_limited") return true;
    if (!family || o.action == "package_upload_status") return false;
    // Of the discover family, the notifications' changes (the rest reads).
    if (o.action == "webhook_create" || o.action == "webhook_delete" || o.action == "notification_dead_letters_retry" ||
        o.action == "notification_dead_letters_clear") {
        return true;
    }
    return *family == register_ || *family == containers_write || *family == repl || *family == deploy;
}

void audit_log::begin_line(const std::string_view* identity, std::string_view source, std::string_view action) {
    buffer_ += "{\"time\":\"";
    append_time(buffer_);
    buffer_ += '"';
    if (identity) {
        field(buffer_, "identity", *identity);
    } else {
        buffer_ += ",\"identity\":null";
    }
    field(buffer_, "source", source);
    field(buffer_, "action", action);
}

void audit_log::end_line() {
    buffer_ += "}\n";
    if (buffer_.size() >= flush_at_bytes) {
        flush();
    } else if (!flush_posted_) {
        flush_posted_ = true;
        boost::asio::post(ioc_, [self = self_] {
            if (audit_log* log = *self) {
                log->flush_posted_ = false;
                log->flush();
            }
        });
    }
}

void audit_log::request(const registry::protocol::outcome& o, std::string_view source) {
    if (buffer_.size() >= max_buffered_bytes) {
        ++dropped_;
        return;
    }
    begin_line(&o.identity, source, o.action.empty() ? std::string_view("none") : o.action);
    field(buffer_, "target", o.target);
    field(buffer_, "request_id", o.request_id);
    field(buffer_, "code", o.code);
    end_line();
}

void audit_log::upgrade_refused(std::string_view source, std::string_view code, std::string_view reason) {
    if (buffer_.size() >= max_buffered_bytes) {
        ++dropped_;
        return;
    }
    begin_line(nullptr, source, "upgrade");  // no identity was established
    field(buffer_, "code", code);
    field(buffer_, "reason", reason);
    end_line();
}

void audit_log::flush() {
    std::size_t done = 0;
    while (done < buffer_.size()) {
        const ssize_t n = ::write(fd_, buffer_.data() + done, buffer_.size() - done);
        if (n < 0 && errno == EINTR) continue;
        if (n <= 0) {
            // Kept for the next flush (a full disk may get room); past
            // max_buffered_bytes new lines are dropped and counted.
            log::error("audit log write failed", {{"file", path_.string()},
                                                  {"error", std::generic_category().message(errno)},
                                                  {"buffered_bytes", buffer_.size() - done},
                                                  {"lines_dropped", dropped_}});
            buffer_.erase(0, done);
            return;
        }
        done += static_cast<std::size_t>(n);
    }
    buffer_.clear();
}

bool audit_log::reopen(std::string& why) {
    flush();
    const int fresh = open_append(path_);
    if (fresh < 0) {
        why = "cannot open " + path_.string() + ": " + std::generic_category().message(errno);
        return false;
    }
    ::fsync(fd_);
    ::close(fd_);
    fd_ = fresh;
    return true;
}

}  // namespace registryd
