// A real etcd (Debian's etcd-server) for a test: one member on loopback
// ports of its own, a data directory in a temp dir, started by fork/exec and
// stopped by pid. stop() and start() keep the ports and the data, so a test
// can take etcd away and bring it back.
#pragma once

#include "harness.hpp"

#include <cstdint>
#include <string>
#include <sys/types.h>

namespace it {

class etcd_server {
public:
    etcd_server();
    ~etcd_server();
    etcd_server(const etcd_server&) = delete;
    etcd_server& operator=(const etcd_server&) = delete;

    // http://127.0.0.1:PORT
    std::string client_url() const;
    void start();
    void stop();  // SIGKILL: etcd goes away as a crashed server does
    std::string log() const;

private:
    temp_dir dir_{"registry-etcd"};
    std::uint16_t client_port_ = 0;
    std::uint16_t peer_port_ = 0;
    pid_t pid_ = -1;
};

// Whether etcd can run here (the etcd binary is installed).
bool etcd_available();

}  // namespace it
