// The engines the container manager runs containers on: each a node with a
// capacity and an online state (its heartbeat's), configured or added while
// running, and the choice of a node for a new container.
#pragma once

#include <registry/container_manager.hpp>

#include <memory>
#include <optional>
#include <stop_token>
#include <string>
#include <string_view>
#include <vector>

namespace registry::containers {

struct stop_requester {
    std::stop_source* source;
    void operator()() const noexcept { source->request_stop(); }
};

// Shared by the tasks working on it: a node that leaves (remove_node) stays
// alive, with its engine, until the last of them has finished.
struct node {
    node(container_node c, std::shared_ptr<container_engine> e) : cfg(std::move(c)), owned(std::move(e)) {
        if (owned) cfg.engine = owned.get();
    }
    container_node cfg;
    std::shared_ptr<container_engine> owned;  // added with add_node: its engine client
    bool online = false;
    bool left = false;  // remove_node
    // Creates in flight that have taken a slot here and whose container is
    // not recorded yet (lease_book::load counts it from then on).
    std::size_t creating = 0;
    std::optional<time_point> last_heartbeat;
    // Requested when the node leaves or the manager stops: ends its
    // heartbeat, exit waiters and log follows.
    std::stop_source leaving;
    std::optional<std::stop_callback<stop_requester>> stop_with_manager;

    std::stop_token token() const { return leaving.get_token(); }
};
using node_ptr = std::shared_ptr<node>;

class lease_book;

class node_pool {
public:
    explicit node_pool(std::vector<container_node> configured);

    node_ptr find(std::string_view name) const;
    const std::vector<node_ptr>& all() const noexcept { return nodes_; }  // configured ones first, then as added
    void add(node_ptr n) { nodes_.push_back(std::move(n)); }
    void erase(const node_ptr& n) { std::erase(nodes_, n); }

    // The node `wanted` names, or the one with the lowest load (its
    // recorded containers and its creates in flight) relative to its
    // capacity (ties go to the first configured). not_found, unavailable
    // (offline, or none online), limit_exceeded (at capacity).
    result<node_ptr> schedule(const std::optional<std::string>& wanted, const lease_book& leases) const;

private:
    std::vector<node_ptr> nodes_;
};

}  // namespace registry::containers
