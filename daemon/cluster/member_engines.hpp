// The writer's side of the engines the other members of the cluster offer
// (cluster/engine_offer.hpp): each becomes a node of the writer's container
// manager while its member's record (cluster/member_directory.hpp) lists it,
// reached through that member (an engine tunnel). The container manager
// decides the rest as for any node: a node that leaves (its member stopped,
// died and its etcd lease ran out, or stopped offering it) has its
// containers lost, nothing killed; one that comes back (the member restarted,
// here or elsewhere, under the same name) has them reconciled and adopted.
//
// An offered engine named like one of this registryd's configured engines
// is ignored (the configured one is used), as is one a member offers under
// a name another member offered first: both are logged once.
#pragma once

#include "cluster/member_directory.hpp"
#include "engine/docker_engine.hpp"

#include <registry/container_manager.hpp>
#include <registry/task.hpp>

#include <functional>
#include <map>
#include <memory>
#include <set>
#include <string>
#include <string_view>
#include <vector>

namespace boost::asio {
class io_context;
namespace ssl {
class context;
}
}  // namespace boost::asio

namespace registryd {

struct member_engines_options {
    std::string self;                  // this registryd's member name: its own record is skipped
    std::set<std::string> configured;  // this registryd's own engines
    docker_engine_options engine;      // as for a configured engine (timeouts)
    std::shared_ptr<boost::asio::ssl::context> tls;  // verifies a wss:// member
};

class member_engines {
public:
    // `on_change`: an engine joined (engine not null) or left (null); called
    // after the container manager took the change (the REPL's slots follow it).
    using change_handler = std::function<void(const std::string& name, registry::container_engine* engine,
                                              std::size_t capacity)>;

    member_engines(boost::asio::io_context& io, registry::container_manager& containers,
                   member_engines_options options, change_handler on_change = {});
    member_engines(const member_engines&) = delete;
    member_engines& operator=(const member_engines&) = delete;

    // Follows the members' records (cluster/member_watch.hpp): engines
    // join and leave as they say.
    registry::task<void> sync(const std::vector<member_record>& members, const std::string& secret);

    // The engine of an offered node, while it is one; null otherwise.
    registry::container_engine* engine(std::string_view name) const;

private:
    struct node {
        std::string member;
        std::string url;
        std::size_t capacity = 0;
        std::shared_ptr<docker_engine> engine;
    };

    std::shared_ptr<docker_engine> connect(const std::string& name, const member_record& m, std::string& why);
    void warn_once(const std::string& key, const std::string& message, const std::string& engine,
                   const std::string& member);

    boost::asio::io_context& io_;
    registry::container_manager& containers_;
    member_engines_options options_;
    change_handler on_change_;
    std::string secret_;  // the cluster's
    std::map<std::string, node, std::less<>> nodes_;
    // Every engine made, by name and member URL: one that left stays alive
    // (an operation the REPL started on it may still be finishing) and is
    // used again if it comes back from the same address.
    std::map<std::string, std::shared_ptr<docker_engine>> engines_;
    std::set<std::string> warned_;  // what was logged once
};

}  // namespace registryd
