// The deploy targets a member of a cluster (several registryd on one etcd)
// offers the writer: its own host (the target "local.<member>") and the SSH
// hosts of its deploy.remote_hosts, which only it may reach (its network,
// its keys). The writer deploys to them as to its own targets: its deployer
// runs each command through the member (cluster/member_target.hpp), an HTTP
// request on the member's listener with the cluster's secret
// (cluster/engine_offer.hpp):
//
//   POST /v1/cluster/targets/<name>/run           a command (cluster/target_wire.hpp)
//                                                  -> 200 its result
//   POST /v1/cluster/targets/<name>/run_sequence  commands -> 200 their results
//   PUT  /v1/cluster/targets/<name>/upload?to=P   a package archive (.tar.gz),
//                                                  unpacked here as any package
//                                                  is, then uploaded to P -> 204
//
// The target's own failure (unreachable host, a refused host key) is 500
// with its error as JSON; the request's: 401 without the secret, 404 for a
// target not offered, 400 malformed, 413 over its bound, 503 while stopping.
#pragma once

#include "cluster/member_directory.hpp"
#include "config/config.hpp"
#include "deploy/local_target.hpp"
#include "deploy/package_host.hpp"
#include "deploy/ssh_target.hpp"
#include "runtime/blocking_runner.hpp"

#include <registry/deploy/package_archive.hpp>
#include <registry/ports/deploy_target.hpp>
#include <registry/result.hpp>
#include <registry/task.hpp>

#include <cstdint>
#include <filesystem>
#include <map>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

namespace boost::asio {
class io_context;
}

namespace registryd {

inline constexpr std::string_view target_call_path = "/v1/cluster/targets/";
// A run or run_sequence request's JSON: scripts are small.
inline constexpr std::uint64_t max_target_call_bytes = 1u << 20;

// The targets a member with configuration `cfg` offers (for its record):
// its host, reached at `advertised_host` (the host of the address it
// publishes), and its remote hosts.
std::vector<member_record::target> offered_targets(const config& cfg, std::string_view member,
                                                   std::string_view advertised_host);

// What serves the calls. Shared: a call in flight keeps it (and the target
// it runs on) alive past the standby that made it.
class target_offer {
public:
    target_offer(boost::asio::io_context& io, const config& cfg, std::string_view member, std::string secret);
    target_offer(const target_offer&) = delete;
    target_offer& operator=(const target_offer&) = delete;

    const std::string& secret() const noexcept { return secret_; }
    registry::deploy_target* find(std::string_view name) const;

    // A fresh path for an upload's body (in the deploy work dir), and the
    // most it may hold: the package's own bound.
    std::filesystem::path incoming();
    std::uint64_t max_upload_bytes() const noexcept { return limits_.max_total_bytes; }

    // Unpacks `archive` (checked as any package: package_archive.hpp),
    // uploads it to `to` on `target`, and removes both local copies.
    registry::task<registry::result<void>> upload(registry::deploy_target& target, std::filesystem::path archive,
                                                  std::string to);

private:
    std::string secret_;
    blocking_runner runner_;
    package_host unpacker_;
    std::filesystem::path work_dir_;
    registry::deploy::archive_limits limits_;
    std::uint64_t uploads_ = 0;
    local_target local_;
    std::vector<std::unique_ptr<ssh_target>> remote_;
    std::map<std::string, registry::deploy_target*, std::less<>> targets_;
};

}  // namespace registryd
