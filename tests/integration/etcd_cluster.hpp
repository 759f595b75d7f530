// A real three-member etcd cluster (Debian's etcd-server) for a test: on
// loopback ports of its own, each member's data directory in one temp dir,
// started by fork/exec and stopped by pid. A member can be killed (SIGKILL)
// and started again with its data, by index, to take etcd's quorum or its
// leader away and bring them back. The election timeouts are short, so a
// lost leader is replaced within about a second.
#pragma once

#include "harness.hpp"

#include <array>
#include <cstdint>
#include <optional>
#include <string>
#include <sys/types.h>
#include <vector>

namespace it {

class etcd_cluster {
public:
    static constexpr std::size_t size = 3;

    // Starts every member and waits until each answers /health with a
    // leader elected (bounded; throws failure with the members' logs).
    etcd_cluster();
    ~etcd_cluster();  // SIGKILLs and reaps every member still running
    etcd_cluster(const etcd_cluster&) = delete;
    etcd_cluster& operator=(const etcd_cluster&) = delete;

    // http://127.0.0.1:PORT of every member, in index order.
    std::vector<std::string> client_urls() const;
    std::string client_url(std::size_t member) const;

    // SIGKILL member `i` (a crashed server) and reap it.
    void stop(std::size_t member);
    // Start member `i` again on its ports and data; waits until it answers
    // healthy when `wait` (it needs a quorum of the others for that).
    void start(std::size_t member, bool wait = true);
    void stop_all();
    // Start every stopped member, then wait until all are healthy.
    void start_all();
    bool running(std::size_t member) const { return members_[member].pid > 0; }
    pid_t pid(std::size_t member) const { return members_[member].pid; }

    // The member that is etcd's leader now (asked of each running member:
    // POST /v3/maintenance/status), or nullopt when none answers with one.
    std::optional<std::size_t> leader() const;

    // Waits until member `i` answers GET /health with "true" (it has a
    // leader and can serve a read); throws failure after `timeout`.
    void wait_healthy(std::size_t member, ms timeout = 20s);
    // The tail of every member's log, for failure messages.
    std::string logs(std::size_t max_bytes_each = 3000) const;

private:
    struct member {
        std::uint16_t client_port = 0;
        std::uint16_t peer_port = 0;
        pid_t pid = -1;
    };
    std::string name(std::size_t i) const { return "m" + std::to_string(i); }
    std::string peer_url(std::size_t i) const;

    temp_dir dir_{"registry-etcd-cluster"};
    std::string token_;
    std::array<member, size> members_;
};

}  // namespace it
