// The container manager's leases: the managed containers by lease id (each
// durable in the store under its lease_key, every change recorded through the
// registry), the lease ids handed out, the deadlines of leases lost with their
// node, and the held containers (in memory only: their labels are the
// durable copy).
#pragma once

#include <registry/container_manager.hpp>
#include <registry/ports/store.hpp>

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <set>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace registry::containers {

struct lease_slot {
    container_ptr c;
    bool reaping = false;
    bool expiry_announced = false;
    time_point retry_at{};  // after a failed sweep
};

struct held_slot {
    time_point expires_at{};
    bool reaping = false;
    time_point retry_at{};  // after a failed sweep
};
using held_key = std::pair<std::string, std::string>;  // node name, container id

class lease_book {
public:
    explicit lease_book(class registry& reg) : reg_(reg) {}

    // Called after each change is recorded (put, drop, lose_node): a node's
    // load may have dropped (the create queue's wake).
    std::function<void()> on_change;

    // Loads the leases, the lease counter and the lost deadlines stored.
    task<result<void>> open(store& st);

    // The lease's current container; nullptr once it is dropped.
    container_ptr current(std::uint64_t lease_id) const;
    // The managed container with this engine id.
    container_ptr find(std::string_view container_id) const;
    std::map<std::uint64_t, lease_slot>& slots() noexcept { return leases_; }
    const std::map<std::uint64_t, lease_slot>& slots() const noexcept { return leases_; }
    // Containers created or running on the node.
    std::size_t load(std::string_view engine) const;

    // A new lease id, durable before any container carries it.
    task<result<std::uint64_t>> reserve_lease_id();
    // A lease id found on an engine is never handed out again.
    void note_lease_id(std::uint64_t lease_id) { next_lease_id_ = std::max(next_lease_id_, lease_id + 1); }

    // Records `next` as its lease's container, with `events`.
    task<result<std::uint64_t>> put(container_ptr next, std::vector<std::shared_ptr<event>> events,
                                    std::string_view what);
    // Forgets the lease; `events` get the container in its final state.
    task<result<std::uint64_t>> drop(std::uint64_t lease_id, std::vector<std::shared_ptr<event>> events,
                                     std::string_view what);

    // Every lease on the node is lost (container_state_changed to lost with
    // `reason`, the lease dropped); each deadline still ahead is kept, since
    // the labels have only the one at create.
    task<void> lose_node(std::string_view engine, const std::string& reason, time_point now);
    // The deadline of a lease lost with its node, until forgotten once past.
    std::optional<time_point> lost_deadline(std::uint64_t lease_id) const;
    task<void> forget_past_lost_deadlines(time_point now);

    // Held containers (container_manager::hold).
    std::map<held_key, held_slot>& held() noexcept { return held_; }
    const std::map<held_key, held_slot>& held() const noexcept { return held_; }
    // A held container found on its node keeps its lease (the one in memory if
    // it is held already, else its label's); false for one whose expiry label
    // is unreadable: not ours to touch.
    bool adopt_held(const std::string& engine, const container_summary& s);
    // Releases the node's held containers that are not in `found`.
    void forget_held_missing(std::string_view engine, const std::set<std::string>& found);

private:
    void changed() const {
        if (on_change) on_change();
    }

    class registry& reg_;
    std::map<std::uint64_t, lease_slot> leases_;
    std::map<std::string, std::uint64_t, std::less<>> by_container_;
    std::uint64_t next_lease_id_ = 1;
    // The deadlines of leases lost with their node, extensions included: a
    // container's labels only have its deadline at create, so re-adoption
    // takes the later of the two. Kept (durably) until they pass.
    std::map<std::uint64_t, time_point> lost_deadlines_;
    std::map<held_key, held_slot> held_;
};

}  // namespace registry::containers
