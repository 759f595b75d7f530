// The writer's side of the deploy targets the other members of the cluster
// offer (cluster/target_offer.hpp): each becomes a target of the writer's
// deployer, reached through its member (cluster/member_target.hpp), and the
// deployer adopts the deployments stored for it (deployer::adopt_target):
// their health checks and operations run through the member. So after a
// failover the new writer controls what the old one deployed on its own
// host, once the old one is back as a member (or on another member that
// offers the same target).
//
// A target that leaves (its member stopped, or died and its etcd lease ran
// out) stays the deployer's: its deployments stay as they are, their
// checks unknown, until a member offers it again. An offered target named
// like one of this registryd's own is ignored (its own is used), as is one
// a member offers under a name another member offered first: both logged once.
#pragma once

#include "cluster/member_directory.hpp"
#include "cluster/member_target.hpp"
#include "runtime/blocking_runner.hpp"

#include <registry/deploy/deployer.hpp>
#include <registry/task.hpp>

#include <map>
#include <memory>
#include <set>
#include <string>
#include <vector>

namespace boost::asio {
class io_context;
}

namespace registryd {

struct member_targets_options {
    std::string self;                  // this registryd's member name: its own record is skipped
    std::set<std::string> configured;  // this registryd's own targets' names
    member_target_options target;
};

class member_targets {
public:
    member_targets(boost::asio::io_context& io, registry::deploy::deployer& deployer, member_targets_options options);
    member_targets(const member_targets&) = delete;
    member_targets& operator=(const member_targets&) = delete;

    // Follows the members' records (cluster/member_watch.hpp).
    registry::task<void> sync(const std::vector<member_record>& members, const std::string& secret);

private:
    struct known {
        std::unique_ptr<member_target> target;
        bool adopted = false;  // the deployer took its stored deployments
    };

    void log_once(const std::string& key, bool warning, const std::string& message, const std::string& target,
                  const std::string& member);

    boost::asio::io_context& io_;
    registry::deploy::deployer& deployer_;
    member_targets_options options_;
    blocking_runner runner_;  // packs uploads
    std::map<std::string, known, std::less<>> targets_;  // never removed: the deployer holds them
    std::set<std::string> logged_;
};

}  // namespace registryd
