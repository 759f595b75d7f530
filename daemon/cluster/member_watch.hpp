// The writer's view of the cluster's other members: reads their records
// (cluster/member_directory.hpp) every `poll` and hands them, with the
// cluster's secret, to what follows them (the engines and the deploy
// targets they offer: cluster/member_engines.hpp, member_targets.hpp). An
// etcd that cannot be asked changes nothing: what the members offered stays
// as it was until their records can be read again.
#pragma once

#include "cluster/member_directory.hpp"

#include <registry/task.hpp>

#include <chrono>
#include <functional>
#include <memory>
#include <stop_token>
#include <string>
#include <vector>

namespace boost::asio {
class io_context;
}

namespace registryd {

class member_watch {
public:
    using follower =
        std::function<registry::task<void>(const std::vector<member_record>& members, const std::string& secret)>;

    member_watch(boost::asio::io_context& io, std::shared_ptr<member_directory> directory,
                 std::chrono::milliseconds poll = std::chrono::milliseconds(1000));

    // Before run().
    void follow(follower f) { followers_.push_back(std::move(f)); }
    bool empty() const noexcept { return followers_.empty(); }

    // Until `stop`.
    registry::task<void> run(std::stop_token stop);

private:
    boost::asio::io_context& io_;
    std::shared_ptr<member_directory> directory_;
    std::chrono::milliseconds poll_;
    std::vector<follower> followers_;
};

}  // namespace registryd
