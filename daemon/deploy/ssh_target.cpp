#include "deploy/ssh_target.hpp"

#include "deploy/remote_command.hpp"
#include "observability/log.hpp"

#include <boost/asio/connect.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/steady_timer.hpp>

#include <libssh2.h>
#include <libssh2_sftp.h>

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <coroutine>
#include <cstring>
#include <iterator>
#include <memory>
#include <mutex>
#include <vector>

namespace registryd {

namespace {

namespace asio = boost::asio;
using tcp = asio::ip::tcp;
using registry::errc;
using registry::fail;

constexpr std::size_t output_cap = remote_output_cap;

void append_capped(std::string& out, const char* data, std::size_t n, std::size_t cap) {
    out.append(data, n);
    if (out.size() > cap) out.erase(0, out.size() - cap);
}

int knownhost_key_type(int hostkey_type) {
    switch (hostkey_type) {
        case LIBSSH2_HOSTKEY_TYPE_RSA: return LIBSSH2_KNOWNHOST_KEY_SSHRSA;
        case LIBSSH2_HOSTKEY_TYPE_DSS: return LIBSSH2_KNOWNHOST_KEY_SSHDSS;
        case LIBSSH2_HOSTKEY_TYPE_ECDSA_256: return LIBSSH2_KNOWNHOST_KEY_ECDSA_256;
        case LIBSSH2_HOSTKEY_TYPE_ECDSA_384: return LIBSSH2_KNOWNHOST_KEY_ECDSA_384;
        case LIBSSH2_HOSTKEY_TYPE_ECDSA_521: return LIBSSH2_KNOWNHOST_KEY_ECDSA_521;
        case LIBSSH2_HOSTKEY_TYPE_ED25519: return LIBSSH2_KNOWNHOST_KEY_ED25519;
        default: return LIBSSH2_KNOWNHOST_KEY_UNKNOWN;
    }
}

// Waits until the socket is ready in one of `directions`: both waits are
// started, the first to complete cancels the other and resumes the waiter.
struct readiness {
    tcp::socket& socket;
    int directions;
    boost::system::error_code ec;

    struct shared {
        bool done = false;
        std::coroutine_handle<> waiter;
        boost::system::error_code* ec;
        tcp::socket* socket;
    };

    bool await_ready() const noexcept { return false; }
    void await_suspend(std::coroutine_handle<> h) {
        auto st = std::make_shared<shared>(shared{false, h, &ec, &socket});
        auto on_ready = [st](const boost::system::error_code& e) {
            if (st->done) return;
            st->done = true;
            *st->ec = e;
            boost::system::error_code ignored;
            st->socket->cancel(ignored);
            st->waiter.resume();
        };
        const bool in = directions & LIBSSH2_SESSION_BLOCK_INBOUND;
        const bool out = directions & LIBSSH2_SESSION_BLOCK_OUTBOUND;
        if (in || !out) socket.async_wait(tcp::socket::wait_read, on_ready);
        if (out) socket.async_wait(tcp::socket::wait_write, on_ready);
    }
    void await_resume() const noexcept {}
};

void init_libssh2() {
    static std::once_flag once;
    std::call_once(once, [] { libssh2_init(0); });
}

// Suspends for `d` on the event loop.
struct pause {
    asio::steady_timer timer;
    pause(asio::io_context& ioc, std::chrono::milliseconds d) : timer(ioc, d) {}
    bool await_ready() const noexcept { return false; }
    void await_suspend(std::coroutine_handle<> h) {
        timer.async_wait([h](const boost::system::error_code&) { h.resume(); });
    }
    void await_resume() const noexcept {}
};

constexpr std::size_t upload_piece = 1024 * 1024;  // read from disk and handed to SFTP at a time
constexpr std::size_t max_idle_connections = 4;
constexpr auto idle_lifetime = std::chrono::seconds(120);

}  // namespace

// One SSH connection, used by one operation at a time.
class ssh_connection {
public:
    ssh_connection(asio::io_context& ioc, const remote_host& host)
        : host_(host), socket_(ioc), timer_(ioc), deadline_(std::make_shared<deadline_state>(deadline_state{false, &socket_})) {}
    ~ssh_connection() {
        deadline_->socket = nullptr;  // a deadline handler already queued must not touch it
        if (sftp_) libssh2_sftp_shutdown(sftp_);
        if (session_) libssh2_session_free(session_);
    }
    ssh_connection(const ssh_connection&) = delete;
    ssh_connection& operator=(const ssh_connection&) = delete;

    // Whether the TCP connection was made (a failed open() that got this far
    // reached the host: not worth retrying).
    bool reached() const noexcept { return reached_; }

    // Ends the deadline of the operation that completed (the connection is
    // idle now).
    void idle() { timer_.cancel(); }

    // Bounds everything that follows (until the next deadline or idle()):
    // when it passes, the socket is closed and the pending step fails.
    void deadline(std::chrono::milliseconds d) {
        timer_.expires_after(d);
        timer_.async_wait([st = deadline_](const boost::system::error_code& ec) {
            if (ec || !st->socket) return;
            st->expired = true;
            boost::system::error_code ignored;
            st->socket->close(ignored);
        });
    }

    registry::task<registry::result<void>> open() {
        init_libssh2();
        const std::string where = host_.user + "@" + host_.host + ":" + std::to_string(host_.port);
        {
            tcp::resolver resolver(socket_.get_executor());
            boost::system::error_code ec;
            auto endpoints = resolver.resolve(host_.host, std::to_string(host_.port), ec);
            if (ec) co_return fail(errc::unavailable, "ssh " + where + ": cannot resolve: " + ec.message());
            connect_awaiter c{socket_, *endpoints.begin(), {}};
            co_await c;
            if (c.ec) co_return fail(errc::unavailable, "ssh " + where + ": cannot connect: " + c.ec.message());
            reached_ = true;
        }
        session_ = libssh2_session_init();
        if (!session_) co_return fail(errc::internal, "libssh2_session_init failed");
        libssh2_session_set_blocking(session_, 0);
        int rc = 0;
        while ((rc = libssh2_session_handshake(session_, socket_.native_handle())) == LIBSSH2_ERROR_EAGAIN) {
            auto ok = co_await wait();
            if (!ok) co_return lost(where, "handshake");
        }
        if (rc != 0) co_return fail(errc::unavailable, "ssh " + where + ": handshake failed: " + last_error());

        auto verified = verify_host_key(where);
        if (!verified) {
            log::info("ssh host key rejected", {{"target", host_.name}, {"host", host_.host}, {"port", host_.port},
                                                {"outcome", "refused"}, {"message", verified.err().message}});
            co_return verified;
        }

        const std::string pub = host_.public_key_file.empty() ? host_.identity_file.string() + ".pub"
                                                              : host_.public_key_file.string();
        while ((rc = libssh2_userauth_publickey_fromfile_ex(session_, host_.user.c_str(),
                                                           static_cast<unsigned>(host_.user.size()), pub.c_str(),
                                                           host_.identity_file.c_str(), "")) == LIBSSH2_ERROR_EAGAIN) {
            auto ok = co_await wait();
            if (!ok) co_return lost(where, "authentication");
        }
        if (rc != 0) {
            co_return fail(errc::unavailable, "ssh " + where + ": public-key authentication failed with " +
                                                  host_.identity_file.string() + ": " + last_error());
        }
        co_return registry::result<void>{};
    }

    // `started`: set once the channel is open, from when the command may run.
    // `cap`: how much of each stream is kept (the tail).
    registry::task<registry::result<registry::command_result>> exec(const std::string& command, bool& started,
                                                                    std::size_t cap = output_cap) {
        LIBSSH2_CHANNEL* channel = nullptr;
        for (;;) {
            channel = libssh2_channel_open_session(session_);
            if (channel || libssh2_session_last_errno(session_) != LIBSSH2_ERROR_EAGAIN) break;
            auto ok = co_await wait();
            if (!ok) co_return lost(host_.name, "opening a channel");
        }
        if (!channel) co_return fail(errc::unavailable, "ssh " + host_.name + ": cannot open a channel: " + last_error());
        started = true;
        std::unique_ptr<LIBSSH2_CHANNEL, int (*)(LIBSSH2_CHANNEL*)> owned(channel, libssh2_channel_free);
        int rc = 0;
        while ((rc = libssh2_channel_exec(channel, command.c_str())) == LIBSSH2_ERROR_EAGAIN) {
            auto ok = co_await wait();
            if (!ok) co_return lost(host_.name, "exec");
        }
        if (rc != 0) co_return fail(errc::unavailable, "ssh " + host_.name + ": exec failed: " + last_error());
        registry::command_result r;
        char buf[16384];
        for (;;) {
            const ssize_t out = libssh2_channel_read(channel, buf, sizeof buf);
            if (out > 0) append_capped(r.stdout_text, buf, static_cast<std::size_t>(out), cap);
            const ssize_t err = libssh2_channel_read_stderr(channel, buf, sizeof buf);
            if (err > 0) append_capped(r.stderr_text, buf, static_cast<std::size_t>(err), cap);
            if (out > 0 || err > 0) continue;
            // Reading one stream may have taken the other's packets off the
            // socket: what libssh2 holds already would never wake a wait.
            if (libssh2_poll_channel_read(channel, 0) || libssh2_poll_channel_read(channel, 1)) continue;
            if (libssh2_channel_eof(channel)) break;
            if ((out < 0 && out != LIBSSH2_ERROR_EAGAIN) || (err < 0 && err != LIBSSH2_ERROR_EAGAIN)) {
                co_return fail(errc::unavailable, "ssh " + host_.name + ": reading the output: " + last_error());
            }
            auto ok = co_await wait();
            if (!ok) co_return lost(host_.name, "running the command");
        }
        while ((rc = libssh2_channel_close(channel)) == LIBSSH2_ERROR_EAGAIN) {
            auto ok = co_await wait();
            if (!ok) co_return lost(host_.name, "closing the channel");
        }
        while ((rc = libssh2_channel_wait_closed(channel)) == LIBSSH2_ERROR_EAGAIN) {
            auto ok = co_await wait();
            if (!ok) co_return lost(host_.name, "closing the channel");
        }
        char* signal = nullptr;
        libssh2_channel_get_exit_signal(channel, &signal, nullptr, nullptr, nullptr, nullptr, nullptr);
        r.exit_code = signal ? -1 : libssh2_channel_get_exit_status(channel);
        if (signal) libssh2_free(session_, signal);
        co_return r;
    }

    // `started`: set once something may have been created on the host.
    registry::task<registry::result<void>> upload(const std::filesystem::path& from, const std::string& to, bool& started) {
        namespace fs = std::filesystem;
        while (!sftp_) {  // the SFTP channel stays open for the connection's next uploads
            sftp_ = libssh2_sftp_init(session_);
            if (sftp_ || libssh2_session_last_errno(session_) != LIBSSH2_ERROR_EAGAIN) break;
            auto ok = co_await wait();
            if (!ok) co_return lost(host_.name, "starting SFTP");
        }
        if (!sftp_) co_return fail(errc::unavailable, "ssh " + host_.name + ": SFTP is not available: " + last_error());
        started = true;
        auto made = co_await mkdir(to, 0755);
        if (!made) co_return made;
        // Paths are taken lexically: fs::relative would resolve a symlink to
        // its target (and upload `latest.html -> index.html` as index.html).
        // The iterator does not follow directory links.
        std::vector<fs::path> entries;
        for (auto it = fs::recursive_directory_iterator(from); it != fs::recursive_directory_iterator(); ++it) {
            entries.push_back(it->path().lexically_relative(from));
        }
        std::string links;  // symlinks are made over exec: SFTP servers disagree on SYMLINK's argument order
        for (const auto& rel : entries) {
            const fs::path local = from / rel;
            const std::string remote = to + "/" + rel.string();
            const auto st = fs::symlink_status(local);
            if (fs::is_symlink(st)) {
                links += "ln -s " + sh_quote(fs::read_symlink(local).string()) + " " + sh_quote(remote) + " || exit 1\n";
            } else if (fs::is_directory(st)) {
                auto r = co_await mkdir(remote, 0755);
                if (!r) co_return r;
            } else {
                auto r = co_await put(local, remote, static_cast<long>(st.permissions() & fs::perms::mask));
                if (!r) co_return r;
            }
        }
        if (!links.empty()) {
            bool ran = false;
            auto r = co_await exec(links, ran);
            if (!r) co_return registry::unexpected{r.err()};
            if (r->exit_code != 0) co_return fail(errc::deployment_failed, "ssh " + host_.name + ": creating symlinks: " + r->stderr_text);
        }
        co_return registry::result<void>{};
    }

private:
    struct connect_awaiter {
        tcp::socket& socket;
        tcp::endpoint endpoint;
        boost::system::error_code ec;
        bool await_ready() const noexcept { return false; }
        void await_suspend(std::coroutine_handle<> h) {
            socket.async_connect(endpoint, [this, h](const boost::system::error_code& e) {
                ec = e;
                h.resume();
            });
        }
        void await_resume() const noexcept {}
    };

    // Waits for what libssh2 is blocked on; false when the connection is gone.
    registry::task<bool> wait() {
        readiness r{socket_, libssh2_session_block_directions(session_), {}};
        co_await r;
        co_return !r.ec && !deadline_->expired;
    }

    registry::unexpected lost(const std::string& where, const std::string& step) const {
        return fail(errc::unavailable, "ssh " + where + ": " + (deadline_->expired ? "timed out during " : "connection lost during ") + step);
    }

    // A failed SFTP step: the connection lost (unavailable, like any
    // unreachable host) or the host refusing it (deployment_failed).
    errc sftp_error() const {
        switch (libssh2_session_last_errno(session_)) {
            case LIBSSH2_ERROR_SOCKET_SEND:
            case LIBSSH2_ERROR_SOCKET_RECV:
            case LIBSSH2_ERROR_SOCKET_DISCONNECT:
            case LIBSSH2_ERROR_SOCKET_TIMEOUT:
            case LIBSSH2_ERROR_CHANNEL_CLOSED:
            case LIBSSH2_ERROR_CHANNEL_EOF_SENT:
            case LIBSSH2_ERROR_CHANNEL_FAILURE:
            case LIBSSH2_ERROR_TIMEOUT:
                return errc::unavailable;
            default:
                return errc::deployment_failed;
        }
    }

    std::string last_error() const {
        char* msg = nullptr;
        libssh2_session_last_error(session_, &msg, nullptr, 0);
        return msg ? msg : "unknown error";
    }

    registry::result<void> verify_host_key(const std::string& where) {
        std::size_t len = 0;
        int type = 0;
        const char* key = libssh2_session_hostkey(session_, &len, &type);
        if (!key) return fail(errc::unavailable, "ssh " + where + ": no host key");
        LIBSSH2_KNOWNHOSTS* known = libssh2_knownhost_init(session_);
        if (!known) return fail(errc::internal, "libssh2_knownhost_init failed");
        std::unique_ptr<LIBSSH2_KNOWNHOSTS, void (*)(LIBSSH2_KNOWNHOSTS*)> owned(known, libssh2_knownhost_free);
        if (libssh2_knownhost_readfile(known, host_.known_hosts.c_str(), LIBSSH2_KNOWNHOST_FILE_OPENSSH) < 0) {
            return fail(errc::host_key_rejected, "ssh " + where + ": cannot read known_hosts " + host_.known_hosts.string());
        }
        libssh2_knownhost* found = nullptr;
        const int check = libssh2_knownhost_checkp(
            known, host_.host.c_str(), host_.port, key, len,
            LIBSSH2_KNOWNHOST_TYPE_PLAIN | LIBSSH2_KNOWNHOST_KEYENC_RAW | knownhost_key_type(type), &found);
        if (check == LIBSSH2_KNOWNHOST_CHECK_MATCH) return {};
        if (check == LIBSSH2_KNOWNHOST_CHECK_MISMATCH) {
            return fail(errc::host_key_rejected, "ssh " + where + ": the host key does not match " +
                                                     host_.known_hosts.string() + " (refused)");
        }
        if (check == LIBSSH2_KNOWNHOST_CHECK_NOTFOUND && host_.accept_unknown_host_key) return {};
        return fail(errc::host_key_rejected, "ssh " + where + ": the host is not in " + host_.known_hosts.string() +
                                                 " (refused; accept_unknown_host_key is off)");
    }

    registry::task<registry::result<void>> mkdir(const std::string& path, long mode) {
        int rc = 0;
        while ((rc = libssh2_sftp_mkdir_ex(sftp_, path.c_str(), static_cast<unsigned>(path.size()), mode)) ==
               LIBSSH2_ERROR_EAGAIN) {
            auto ok = co_await wait();
            if (!ok) co_return lost(host_.name, "mkdir " + path);
        }
        if (rc != 0) co_return fail(sftp_error(), "sftp mkdir " + path + " on " + host_.name + ": " + last_error());
        co_return registry::result<void>{};
    }

    // Streams the file: one piece in memory at a time.
    registry::task<registry::result<void>> put(const std::filesystem::path& local, const std::string& remote, long mode) {
        const int fd = ::open(local.c_str(), O_RDONLY | O_CLOEXEC | O_NOFOLLOW | O_NONBLOCK);
        if (fd < 0) co_return fail(errc::internal, "cannot read " + local.string());
        struct fd_closer {
            int fd;
            ~fd_closer() { ::close(fd); }
        } closer{fd};
        LIBSSH2_SFTP_HANDLE* h = nullptr;
        for (;;) {
            h = libssh2_sftp_open_ex(sftp_, remote.c_str(), static_cast<unsigned>(remote.size()),
                                     LIBSSH2_FXF_WRITE | LIBSSH2_FXF_CREAT | LIBSSH2_FXF_EXCL, mode, LIBSSH2_SFTP_OPENFILE);
            if (h || libssh2_session_last_errno(session_) != LIBSSH2_ERROR_EAGAIN) break;
            auto ok = co_await wait();
            if (!ok) co_return lost(host_.name, "open " + remote);
        }
        if (!h) co_return fail(sftp_error(), "sftp open " + remote + " on " + host_.name + ": " + last_error());
        if (buffer_.size() < upload_piece) buffer_.resize(upload_piece);
        for (;;) {
            const ssize_t got = ::read(fd, buffer_.data(), buffer_.size());
            if (got < 0 && errno == EINTR) continue;
            if (got < 0) co_return fail(errc::internal, "cannot read " + local.string() + ": " + std::strerror(errno));
            if (got == 0) break;
            std::size_t sent = 0;
            while (sent < static_cast<std::size_t>(got)) {
                const ssize_t n = libssh2_sftp_write(h, buffer_.data() + sent, static_cast<std::size_t>(got) - sent);
                if (n == LIBSSH2_ERROR_EAGAIN) {
                    auto ok = co_await wait();
                    if (!ok) co_return lost(host_.name, "writing " + remote);
                    continue;
                }
                if (n < 0) co_return fail(sftp_error(), "sftp write " + remote + ": " + last_error());
                sent += static_cast<std::size_t>(n);
            }
        }
        int rc = 0;
        while ((rc = libssh2_sftp_close_handle(h)) == LIBSSH2_ERROR_EAGAIN) {
            auto ok = co_await wait();
            if (!ok) co_return lost(host_.name, "closing " + remote);
        }
        if (rc != 0) co_return fail(sftp_error(), "sftp close " + remote + ": " + last_error());
        co_return registry::result<void>{};
    }

    const remote_host& host_;
    tcp::socket socket_;
    asio::steady_timer timer_;
    struct deadline_state {
        bool expired = false;
        tcp::socket* socket = nullptr;  // null once the connection is gone
    };
    std::shared_ptr<deadline_state> deadline_;
    LIBSSH2_SESSION* session_ = nullptr;
    LIBSSH2_SFTP* sftp_ = nullptr;
    bool reached_ = false;
    std::vector<char> buffer_;  // an upload's piece in flight
};

ssh_target::ssh_target(asio::io_context& ioc, remote_host host) : ioc_(ioc), host_(std::move(host)) {}

ssh_target::~ssh_target() = default;

registry::location ssh_target::where() const {
    registry::location l;
    l.remote = true;
    l.host = host_.host;
    l.ssh_user = host_.user;
    l.ssh_port = host_.port;
    return l;
}

std::string ssh_target::endpoint_address() const { return host_.endpoint_address.empty() ? host_.host : host_.endpoint_address; }

registry::task<registry::result<std::unique_ptr<ssh_connection>>> ssh_target::checkout(bool& reused) {
    const auto now = std::chrono::steady_clock::now();
    while (!idle_.empty()) {
        idle_connection c = std::move(idle_.back());
        idle_.pop_back();
        if (now - c.since < idle_lifetime) {
            reused = true;
            co_return std::move(c.connection);
        }
    }
    reused = false;
    const std::chrono::milliseconds backoff[] = {std::chrono::milliseconds(250), std::chrono::milliseconds(500),
                                                 std::chrono::milliseconds(1000)};
    for (std::size_t attempt = 0;; ++attempt) {
        auto c = std::make_unique<ssh_connection>(ioc_, host_);
        c->deadline(std::chrono::duration_cast<std::chrono::milliseconds>(host_.connect_timeout));
        auto opened = co_await c->open();
        if (opened) co_return std::move(c);
        // Only a host that could not be reached at all is tried again: a
        // refused key or login will be refused again.
        if (c->reached() || attempt == std::size(backoff)) co_return registry::unexpected{opened.err()};
        pause wait_a_little(ioc_, backoff[attempt]);
        co_await wait_a_little;
    }
}

void ssh_target::checkin(std::unique_ptr<ssh_connection> c) {
    c->idle();
    if (idle_.size() >= max_idle_connections) return;
    idle_.push_back({std::move(c), std::chrono::steady_clock::now()});
}

registry::task<registry::result<registry::command_result>> ssh_target::exec(std::string text, std::chrono::milliseconds limit,
                                                                          std::size_t cap) {
    for (;;) {
        bool reused = false;
        auto c = co_await checkout(reused);
        if (!c) co_return registry::unexpected{c.err()};
        (*c)->deadline(limit);
        bool started = false;
        auto r = co_await (*c)->exec(text, started, cap);
        if (!r && reused && !started) continue;  // the idle connection was dead: a fresh one
        if (!r) co_return r;
        checkin(std::move(*c));
        co_return r;
    }
}

registry::task<registry::result<registry::command_result>> ssh_target::run(registry::target_command command) {
    // The remote `timeout` ends the command; the connection gets a margin on top.
    const auto limit = std::chrono::duration_cast<std::chrono::milliseconds>(host_.connect_timeout) + command.timeout +
                       std::chrono::seconds(5);
    auto r = co_await exec(remote_command(command, script_user()), limit, output_cap);
    if (r && (r->exit_code == 124 || r->exit_code == 137)) r->timed_out = true;
    co_return r;
}

registry::task<std::vector<registry::result<registry::command_result>>> ssh_target::run_sequence(
    std::vector<registry::sequenced_command> commands) {
    std::vector<registry::result<registry::command_result>> out;
    if (commands.empty()) co_return out;
    auto limit = std::chrono::duration_cast<std::chrono::milliseconds>(host_.connect_timeout) + std::chrono::seconds(5);
    for (const auto& c : commands) limit += c.command.timeout + std::chrono::seconds(2);
    auto r = co_await exec("exec /bin/sh -c " + sh_quote(sequence_script(commands, script_user())), limit,
                           commands.size() * (2 * output_cap + 64));
    out = parse_sequence(host_.name, r);
    co_return out;
}

registry::task<registry::result<void>> ssh_target::upload(std::filesystem::path from, std::string to) {
    for (;;) {
        bool reused = false;
        auto c = co_await checkout(reused);
        if (!c) co_return registry::unexpected{c.err()};
        (*c)->deadline(std::chrono::duration_cast<std::chrono::milliseconds>(host_.connect_timeout) + std::chrono::minutes(10));
        bool started = false;
        auto r = co_await (*c)->upload(from, to, started);
        if (!r && reused && !started) continue;
        if (!r) co_return r;
        checkin(std::move(*c));
        break;
    }
    // The package's files become the script user's (start.sh writes into its directory).
    const std::string give = give_to_script_user(script_user(), to);
    if (give.empty()) co_return registry::result<void>{};
    auto given = co_await exec(give, std::chrono::duration_cast<std::chrono::milliseconds>(host_.connect_timeout) +
                                         std::chrono::minutes(1),
                               output_cap);
    if (!given) co_return registry::unexpected{given.err()};
    if (given->exit_code != 0) {
        const std::string why =
            given->stderr_text.empty() ? "exit " + std::to_string(given->exit_code) : given->stderr_text;
        // 126: the user check's refusal, which says what to do.
        const auto code = given->exit_code == 126 ? registry::errc::requirement_not_met : registry::errc::deployment_failed;
        co_return registry::fail(code, "ssh " + host_.name + ": giving " + to + " to " + host_.run_as + ": " + why);
    }
    co_return registry::result<void>{};
}

}  // namespace registryd
