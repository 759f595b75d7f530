// A remote deploy target over SSH (libssh2): TCP connect, handshake, host
// key check against known_hosts, public-key authentication, then exec
// channels (commands) or SFTP (uploads).
//
// Connections are kept per host and reused: an operation takes an idle one
// (or opens one) and gives it back when it succeeded, so a deployment's
// commands and upload, and the periodic health checks, share one session
// instead of paying a handshake each. A connection that turns out dead before
// a command was started is replaced and the command tried again. A host that
// refuses or does not answer the TCP connect is tried again with backoff
// (250 ms, 500 ms, 1 s) before the operation fails as unavailable.
//
// Uploads stream each file from disk in 1 MiB pieces: memory does not grow
// with the package.
//
// libssh2 runs in non-blocking mode on a socket owned by the io_context: a
// call that would block returns EAGAIN, and the coroutine waits for the
// socket to become readable or writable, whichever
// libssh2_session_block_directions() names, before calling again. Nothing
// blocks the event loop and nothing spins.
//
// Host keys: a key that does not match the known_hosts entry is always
// refused (host_key_rejected); a host that has no entry is refused too unless
// accept_unknown_host_key is set.
//
// Package scripts run as the host's run_as user (runuser or sudo -n when it
// is not the SSH user: remote_command.hpp), and an upload is given to it.
#pragma once

#include "deploy/remote_command.hpp"
#include "deploy/remote_host.hpp"

#include <registry/ports/deploy_target.hpp>

#include <chrono>
#include <filesystem>
#include <memory>
#include <string>
#include <vector>

namespace boost::asio {
class io_context;
}

namespace registryd {

class ssh_connection;

class ssh_target final : public registry::deploy_target {
public:
    ssh_target(boost::asio::io_context& ioc, remote_host host);
    ~ssh_target() override;
    ssh_target(const ssh_target&) = delete;
    ssh_target& operator=(const ssh_target&) = delete;

    const std::string& name() const override { return host_.name; }
    registry::location where() const override;
    std::string endpoint_address() const override;
    std::string prefix() const override { return host_.prefix; }

    registry::task<registry::result<registry::command_result>> run(registry::target_command command) override;
    // One exec channel for the whole sequence: every command on the host
    // starts the user's login shell (its rc files) once instead of each.
    registry::task<std::vector<registry::result<registry::command_result>>> run_sequence(
        std::vector<registry::sequenced_command> commands) override;
    registry::task<registry::result<void>> upload(std::filesystem::path from, std::string to) override;

private:
    remote_script_user script_user() const { return {host_.name, host_.run_as, host_.user}; }
    // An idle connection (the newest), or a new one; `reused` says which.
    registry::task<registry::result<std::unique_ptr<ssh_connection>>> checkout(bool& reused);
    void checkin(std::unique_ptr<ssh_connection> c);
    // Runs `text` with a fresh connection if an idle one was dead; `limit`
    // bounds it, `output_cap` is what is kept of each stream.
    registry::task<registry::result<registry::command_result>> exec(std::string text, std::chrono::milliseconds limit,
                                                                    std::size_t output_cap);

    boost::asio::io_context& ioc_;
    remote_host host_;
    struct idle_connection {
        std::unique_ptr<ssh_connection> connection;
        std::chrono::steady_clock::time_point since;
    };
    std::vector<idle_connection> idle_;
};

}  // namespace registryd
