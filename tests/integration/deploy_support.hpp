// Helpers for the deployment tests: example packages built with the real
// registry-pack from a copy of packages/static-site (with a free port and a
// version of the test's choosing), a registryd configured to install under a
// temp prefix, and the cleanup of the servers the deployed packages started.
#pragma once

#include "deploy_user.hpp"
#include "harness.hpp"

#include <sys/types.h>

#include <cstdint>
#include <filesystem>
#include <string>
#include <vector>

namespace it::deploy {

// A TCP port nobody listens on right now.
using ::it::free_port;  // harness.hpp

struct package_options {
    std::string name = "static-site";
    std::string version = "1.0.0";
    std::uint16_t port = 0;
    bool healthy = true;                      // false: health.sh always exits 2
    bool stop_fails = false;                  // true: stop.sh says "cannot stop: busy", exits 3, stops nothing
    std::vector<std::string> commands = {"python3"};
    std::vector<std::string> libraries;
    std::vector<std::string> depends_on;
    std::string deadline = "10s";
    std::string interval = "300ms";
    int failing_checks = 0;      // health.sh exits 2 on its first N runs in a version's directory
    bool count_checks = false;   // health.sh counts its runs in run/checks (always with failing_checks)
    std::string health_prelude;  // sh lines health.sh runs first (after counting)
    std::string health_yaml;     // more lines under health: ("  failures_before_critical: 3\n")
    bool symlinks = false;       // www/latest.html -> index.html, www/site.conf -> ../config/site.conf
    std::uint64_t padding_bytes = 0;  // a file of random bytes, www/padding.bin
    bool print_uid = false;      // start.sh ends with "start.sh ran as uid N gid N"
};

// Copies packages/static-site into `work`, applies `o`, packs it with
// registry-pack; returns the archive's path.
std::filesystem::path build_package(const std::filesystem::path& work, const package_options& o);

// The json array of deployment_progress events buffered on `client` for
// request `id`, in order; other events are dropped.
std::vector<json::value> progress_events(ws_client& client, const std::string& id);
std::vector<std::string> stages(const std::vector<json::value>& events);

// Kills (SIGKILL, by pid) every server a deployed package recorded in
// {prefix}/*/run/pid: the packages' processes outlive registryd on purpose.
void kill_package_servers(const std::filesystem::path& prefix);

// How many of the sockets process `other` has open the server a package
// installed in `install_dir` started (its run/pid) has open too; -1 when
// there is no such server.
int shared_sockets(const std::filesystem::path& install_dir, pid_t other);

// The real uid of the server a package installed in `install_dir` started
// (its run/pid, from /proc); -1 when there is no such server.
long server_uid(const std::filesystem::path& install_dir);

// How many times health.sh ran in `install_dir` (its run/checks, with
// count_checks or failing_checks); 0 before the first.
int health_runs(const std::filesystem::path& install_dir);

// GET / on 127.0.0.1:port; "" when nothing answers.
std::string fetch_index(std::uint16_t port);

}  // namespace it::deploy

namespace it::deploy {

// A real sshd (openssh-server) on a loopback port, owned by the test: its
// own config, an ed25519 host key, an authorized client key and
// internal-sftp, all in a temp dir. Stopped by pid on destruction.
class sshd {
public:
    sshd();
    ~sshd();
    sshd(const sshd&) = delete;
    sshd& operator=(const sshd&) = delete;

    std::uint16_t port() const { return port_; }
    std::string user() const;
    const std::filesystem::path& client_key() const { return client_key_; }
    // known_hosts files: with the real host key, with another key, empty.
    const std::filesystem::path& known_hosts() const { return known_hosts_; }
    const std::filesystem::path& wrong_known_hosts() const { return wrong_known_hosts_; }
    const std::filesystem::path& empty_known_hosts() const { return empty_known_hosts_; }
    std::string log() const;
    // How many SSH connections sshd accepted (its "Accepted publickey" lines).
    int accepted_connections() const;

    // The host goes away: sshd and every session it runs are killed (by
    // pid), so nothing answers on the port; start() brings it back on the
    // same port with the same keys.
    void stop();
    void start();

private:
    temp_dir dir_{"registry-sshd"};
    std::uint16_t port_ = 0;
    pid_t pid_ = -1;
    std::filesystem::path client_key_, known_hosts_, wrong_known_hosts_, empty_known_hosts_;
};

// A `deploy.remote_hosts` entry of registryd's YAML for `ssh`: the host
// `name`, checked against `known_hosts`, installing under `prefix`.
std::string remote_host_yaml(const std::string& name, const sshd& ssh, const std::filesystem::path& known_hosts,
                             const std::filesystem::path& prefix);

}  // namespace it::deploy
