// The create queue: container_create requests with `queue` that found every
// eligible node at capacity, waiting in FIFO order for a slot.
//
// No thread and no polling: whatever may free a slot (the lease book
// recording a change, a create in flight giving its slot back, a node coming
// online or growing) calls wake(), which hands the free slots to the waiters
// in queue order and resumes them. A request is never overtaken by a later
// one that could use the slot it waits for (a later one may go ahead only to
// a node the earlier one did not ask for). A slot is taken for the waiter
// when it is handed out (node::creating), so two waiters never get the same.
//
// Each waiting request is stored (keyspace::container_queue) until it leaves
// the queue, so that a restart finds the ones it cut short: open() drops them
// and reports them (container_manager_options::on_queue_dropped).
#pragma once

#include "node_pool.hpp"

#include <registry/container_manager.hpp>
#include <registry/identity.hpp>
#include <registry/ports/store.hpp>

#include <coroutine>
#include <cstddef>
#include <cstdint>
#include <deque>
#include <memory>
#include <optional>
#include <stop_token>
#include <string>
#include <string_view>
#include <vector>

namespace registry::containers {

class lease_book;

class create_queue {
public:
    struct entry;
    using entry_ptr = std::shared_ptr<entry>;

    create_queue(class registry& reg, class clock& clk, node_pool& pool, lease_book& book,
                 const container_manager_options& opt)
        : reg_(reg), clk_(clk), pool_(pool), book_(book), opt_(opt) {}

    // Drops the requests stored by the registryd before a restart (their
    // records removed, each reported to on_queue_dropped).
    task<result<void>> open(store& st);

    // Puts a request at the end of the queue, durably, and tells the listener
    // its position. limit_exceeded: the queue, or the owner's share of it, is full.
    task<result<entry_ptr>> enqueue(const container_request& request, queue_listener listener);

    // Waits for the entry's turn: a node with a slot taken for it
    // (node::creating; the caller gives it back), or why it left the queue.
    // Then forgets its stored record.
    task<result<node_ptr>> wait(entry_ptr e);

    // A slot may have freed: hands out what is free, in queue order.
    void wake();

    // Takes an entry out (its waiter fails with unavailable).
    result<void> cancel(std::string_view queue_id, const identity& by);
    // Every waiter fails with `why` (the manager stopping).
    void fail_all(const error& why);

    std::vector<queued_create> list() const;
    std::size_t size() const noexcept { return entries_.size(); }

private:
    void leave(entry_ptr e, result<node_ptr> outcome, std::vector<entry_ptr>& done);
    void report_positions();
    static void resume(std::vector<entry_ptr>& done);

    class registry& reg_;
    class clock& clk_;
    node_pool& pool_;
    lease_book& book_;
    const container_manager_options& opt_;
    std::deque<entry_ptr> entries_;
    std::uint64_t next_id_ = 1;
    bool waking_ = false;  // wake() is handing out slots
    bool again_ = false;   // wake() was called meanwhile
};

// Gives a node's slot taken by a create in flight back (node::creating),
// unless release() says its container now counts in the node's load; a slot
// given back may let a queued create go.
class creating_slot {
public:
    creating_slot(node_ptr n, create_queue& q) : node_(std::move(n)), queue_(&q) {}
    creating_slot(const creating_slot&) = delete;
    creating_slot& operator=(const creating_slot&) = delete;
    ~creating_slot() {
        if (!node_) return;
        --node_->creating;
        queue_->wake();
    }
    // The container is recorded (lease_book::load counts it from now on).
    void release() noexcept {
        if (node_) --node_->creating;
        node_.reset();
    }

private:
    node_ptr node_;
    create_queue* queue_;
};

}  // namespace registry::containers
