// container_manager's state and the work it runs, one seam per file:
//   node_pool.*     the nodes and the choice of one for a new container
//   create_queue.*  creates waiting for a free slot (container_request::queue)
//   lease_book.*    the leases and held containers, and their store records
//   node_watch.cpp  heartbeats: a node's online state, reconciled as it comes online
//   reaper.cpp      the sweep that stops and removes what has expired
//   streams.cpp     logs, log follows and image pulls
//   container_manager.cpp  the public calls (create, stop, remove, extend, ...)
#pragma once

#include "create_queue.hpp"
#include "event_relay.hpp"
#include "lease_book.hpp"
#include "node_pool.hpp"

#include <registry/async_scope.hpp>
#include <registry/container_manager.hpp>

#include <optional>
#include <stop_token>
#include <string>
#include <utility>
#include <vector>

namespace registry {

struct container_manager::impl {
    impl(class registry& r, class clock& c, class store& s, std::vector<container_node> n,
         container_manager_options o)
        : reg(r), clk(c), st(s), opt(std::move(o)), pool(std::move(n)), book(r), queue(r, c, pool, book, opt) {
        book.on_change = [this] { queue.wake(); };
    }

    using node_ptr = containers::node_ptr;

    class registry& reg;
    class clock& clk;
    class store& st;
    container_manager_options opt;
    containers::node_pool pool;
    containers::lease_book book;
    containers::create_queue queue;

    std::stop_token stopping;  // run()'s: ends the work below
    bool running = false;      // run() has started the nodes
    async_scope work;          // heartbeats, reaper, waiters, reaps, stream producers

    // A managed container and its node. A lease whose engine the configuration
    // no longer names is kept (open()), but nothing can be done to it.
    result<std::pair<container_ptr, node_ptr>> locate(std::string_view container_id) const;

    // usage.cpp: `c`'s usage with one more stats sample of it (as it was when the engine does not answer).
    task<resource_usage> sampled(containers::node& n, const container_ptr& c);

    // Waits for a running container's exit and records it.
    void watch_exit(const container_ptr& c);
    task<void> wait_for_exit(node_ptr n, std::uint64_t lease_id, std::string container_id);

    // ---- node_watch.cpp
    // Its heartbeat (which brings it online), and its work ending with the manager's.
    void start_node(const node_ptr& n);
    task<void> heartbeat(node_ptr np);
    // Adopts the node's containers that carry our instance label, forgets the
    // leases whose container is gone; the reaper takes the expired ones.
    task<void> come_online(containers::node& n);
    // Every container of the node is lost: its lease is dropped (a node that
    // comes back is reconciled: its containers are adopted or reaped then).
    task<void> go_offline(containers::node& n, std::string reason);

    // ---- reaper.cpp
    task<void> reaper();
    milliseconds max_sleep() const;
    task<result<void>> stop_and_remove(container_engine& engine, const std::string& id);
    task<void> reap(std::uint64_t lease_id);
    task<void> reap_attempts(std::uint64_t lease_id);
    task<void> reap_held(containers::held_key key);
    task<void> reap_held_attempts(containers::held_key key);
    enum class reap_result { removed, failed, given_up };
    template <typename NodeOf>
    task<reap_result> remove_with_retries(NodeOf node_of, const std::string& container_id, error& last);
    void report_reap(const std::string& engine, const std::string& container_id, std::uint64_t lease_id,
                     reap_result reaped, const error& last) const;
    task<void> report_reap_failure(container_ptr c, const error& last);

    // ---- streams.cpp
    template <typename T, typename ToEvent>
    task<std::optional<error>> relay_stream(task<result<engine_stream<T>>> opening, detail::event_relay& relay,
                                            ToEvent to_event);
    task<void> produce_logs(detail::event_relay_ptr relay, node_ptr n, container_ptr c,
                            std::optional<std::size_t> tail);
    task<void> produce_pulls(detail::event_relay_ptr relay, std::string reference, std::vector<node_ptr> targets);
    std::shared_ptr<event> pull_event(const containers::node& n, const std::string& reference,
                                      std::optional<pull_progress> progress, std::optional<error> failure);
};

}  // namespace registry
