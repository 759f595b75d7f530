// The audit log (audit.file; docs/protocol.md, "Audit log"): one JSON object
// a line for every mutating request and every refusal (forbidden,
// rate_limited, and the 401 at the upgrade):
//
//   {"time":"2026-12-04T21:20:23.123Z","identity":"ci-deploy","source":"10.0.0.7",
//    "action":"deploy_package","target":"web@1.2.0","request_id":"7","code":"ok"}
//
// Nothing secret goes in: no token, no params beyond what names the target.
//
// Lines are appended to a buffer and written (one write(2)) at the end of the
// event-loop turn that made them, or at once past 64 KiB: the loop never
// waits on the disk for more than one append to the page cache. fsync policy:
// the file is fsync'd when it is reopened (SIGHUP) and when registryd stops;
// a line written survives a crash of registryd, and a crash of the host loses
// at most what the kernel had not yet written back.
//
// SIGHUP reopens the path (logrotate: mv audit.log audit.log.1, then HUP):
// new lines go to a new file there; if it cannot be opened, the old one stays.
#pragma once

#include <registry/protocol/connection.hpp>
#include <registry/protocol/permission.hpp>

#include <boost/asio/io_context.hpp>

#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <memory>
#include <optional>
#include <string>
#include <string_view>

namespace registryd {

class audit_log {
public:
    // Opens `file` for appending (created with mode 0600). Throws
    // std::system_error naming the file when it cannot.
    audit_log(boost::asio::io_context& ioc, std::filesystem::path file);
    ~audit_log();  // writes what is buffered, fsyncs
    audit_log(const audit_log&) = delete;
    audit_log& operator=(const audit_log&) = delete;

    // Whether a request with this outcome is audited: a mutating action
    // (families register, containers.write, repl, deploy; not
    // package_upload_status, a read), or a refusal (forbidden, rate_limited).
    static bool audited(const registry::protocol::outcome& o, std::optional<registry::protocol::permission_family> family);

    // The request's line (call it for the outcomes audited() accepts).
    void request(const registry::protocol::outcome& o, std::string_view source);

    // A WebSocket upgrade refused before any identity was established (the
    // 401 with WWW-Authenticate: Bearer): `code` "unauthorized", `reason`
    // what was wrong ("missing token", "unknown token"; never the token).
    void upgrade_refused(std::string_view source, std::string_view code, std::string_view reason);

    // SIGHUP: writes and fsyncs what is buffered, then opens the path again.
    // False with `why` if it cannot (the old file is kept).
    bool reopen(std::string& why);

    // Writes what is buffered now.
    void flush();

    const std::filesystem::path& path() const noexcept { return path_; }
    std::uint64_t lines_dropped() const noexcept { return dropped_; }

private:
    void begin_line(const std::string_view* identity, std::string_view source, std::string_view action);
    void end_line();

    boost::asio::io_context& ioc_;
    std::filesystem::path path_;
    int fd_ = -1;
    std::string buffer_;
    bool flush_posted_ = false;
    std::uint64_t dropped_ = 0;  // lines lost to write errors
    // Posted flushes check it: the log may be gone by the time they run.
    std::shared_ptr<audit_log*> self_;
};

}  // namespace registryd
