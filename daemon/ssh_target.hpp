// A remote deploy target over SSH (libssh2). Every operation opens its own
// connection: TCP connect, handshake, host key check against known_hosts,
// public-key authentication, then exec channels (commands) or SFTP (uploads).
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
#pragma once

#include "remote_host.hpp"

#include <registry/ports/deploy_target.hpp>

#include <filesystem>
#include <string>

namespace boost::asio {
class io_context;
}

namespace registryd {

class ssh_target final : public registry::deploy_target {
public:
    ssh_target(boost::asio::io_context& ioc, remote_host host);

    const std::string& name() const override { return host_.name; }
    registry::location where() const override;
    std::string endpoint_address() const override;
    std::string prefix() const override { return host_.prefix; }

    registry::task<registry::result<registry::command_result>> run(registry::target_command command) override;
    registry::task<registry::result<void>> upload(std::filesystem::path from, std::string to) override;

private:
    boost::asio::io_context& ioc_;
    remote_host host_;
};

}  // namespace registryd
