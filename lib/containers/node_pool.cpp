#include "node_pool.hpp"

#include "lease_book.hpp"

namespace registry::containers {

node_pool::node_pool(std::vector<container_node> configured) {
    for (auto& cfg : configured) nodes_.push_back(std::make_shared<node>(std::move(cfg), nullptr));
}

namespace {

std::size_t used(const node& n, const lease_book& leases) { return leases.load(n.cfg.name) + n.creating; }

}  // namespace

node_ptr node_pool::find(std::string_view name) const {
    for (const auto& n : nodes_) {
        if (n->cfg.name == name) return n;
    }
    return nullptr;
}

result<node_ptr> node_pool::schedule(const std::optional<std::string>& wanted, const lease_book& leases) const {
    if (wanted) {
        node_ptr n = find(*wanted);
        if (!n) return fail(errc::not_found, "no engine '" + *wanted + "'");
        if (!n->online) return fail(errc::unavailable, "engine '" + *wanted + "' is offline");
        if (used(*n, leases) >= n->cfg.capacity) {
            return fail(errc::limit_exceeded, "engine '" + *wanted + "' is at its capacity of " +
                                                  std::to_string(n->cfg.capacity) + " containers");
        }
        return n;
    }
    node_ptr best;
    double best_ratio = 0;
    bool any_online = false;
    for (const auto& n : nodes_) {
        if (!n->online) continue;
        any_online = true;
        const std::size_t in_use = used(*n, leases);
        if (in_use >= n->cfg.capacity) continue;
        const double ratio = static_cast<double>(in_use) / static_cast<double>(n->cfg.capacity);
        if (!best || ratio < best_ratio) {
            best = n;
            best_ratio = ratio;
        }
    }
    if (!best) {
        return any_online ? fail(errc::limit_exceeded, "every online engine is at its capacity")
                          : fail(errc::unavailable, "no container engine is online");
    }
    return best;
}

}  // namespace registry::containers
