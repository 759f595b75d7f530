// A remote deploy target as configured (deploy.remote_hosts in the YAML).
#pragma once

#include <chrono>
#include <cstdint>
#include <filesystem>
#include <string>

namespace registryd {

struct remote_host {
    std::string name;     // the target's name in deploy_package
    std::string host;     // address to connect to
    std::uint16_t port = 22;
    std::string user;
    std::filesystem::path identity_file;    // private key (OpenSSH format, no passphrase)
    std::filesystem::path public_key_file;  // empty: identity_file + ".pub"
    std::filesystem::path known_hosts;
    bool accept_unknown_host_key = false;
    std::string prefix = "/opt";
    std::string endpoint_address;           // empty: host
    std::chrono::seconds connect_timeout{10};
    // Who the package scripts run as (empty in the YAML: deploy.run_as).
    std::string run_as;
};

}  // namespace registryd
