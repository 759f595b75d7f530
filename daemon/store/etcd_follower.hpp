// A standby's side of the etcd store (store/etcd_store_port.hpp, which
// says what it promises): following the writer's transactions through
// etcd's watch, and the read barrier.
#pragma once

#include "store/etcd_gateway.hpp"
#include "store/etcd_watch.hpp"

#include <registry/result.hpp>
#include <registry/task.hpp>

#include <cstdint>
#include <functional>
#include <memory>
#include <string>

namespace boost::asio {
class io_context;
}

namespace registryd {

class etcd_follower {
public:
    etcd_follower(boost::asio::io_context& io, std::shared_ptr<etcd_gateway> gateway);
    etcd_follower(const etcd_follower&) = delete;
    etcd_follower& operator=(const etcd_follower&) = delete;
    ~etcd_follower();  // stop()

    void follow(std::uint64_t after, std::function<void(etcd_txn_seen)> each, std::function<void(std::string)> lost);
    registry::task<registry::result<void>> read_barrier();
    void stop_following();
    // For good: following ends, waiting barriers fail, later ones too.
    void stop();

private:
    class impl;
    std::shared_ptr<impl> impl_;
};

}  // namespace registryd
