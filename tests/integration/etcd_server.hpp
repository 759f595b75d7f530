// A real etcd (Debian's etcd-server) for a test: one member on loopback
// ports of its own, a data directory in a temp dir, started by fork/exec and
// stopped by pid. stop() and start() keep the ports and the data, so a test
// can take etcd away and bring it back. With TLS files it serves https://
// only (--cert-file, --key-file, --trusted-ca-file, --client-cert-auth).
#pragma once

#include "harness.hpp"

#include <filesystem>
#include <optional>

#include <cstdint>
#include <string>
#include <sys/types.h>

namespace it {

// etcd's TLS: its certificate and key, the CA its clients' certificates must
// chain to, and a client certificate of that CA for its readiness check.
struct etcd_tls_files {
    std::filesystem::path cert_file, key_file, trusted_ca_file;
    std::filesystem::path client_cert, client_key;
};

class etcd_server {
public:
    explicit etcd_server(std::optional<etcd_tls_files> tls = std::nullopt);
    ~etcd_server();
    etcd_server(const etcd_server&) = delete;
    etcd_server& operator=(const etcd_server&) = delete;

    // http://127.0.0.1:PORT (https:// with TLS)
    std::string client_url() const;
    pid_t pid() const noexcept { return pid_; }
    void start();
    void stop();  // SIGKILL: etcd goes away as a crashed server does
    std::string log() const;

private:
    temp_dir dir_{"registry-etcd"};
    std::optional<etcd_tls_files> tls_;
    std::uint16_t client_port_ = 0;
    std::uint16_t peer_port_ = 0;
    pid_t pid_ = -1;
};

}  // namespace it
