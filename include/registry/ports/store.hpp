// The store port: durable, revisioned key/value batches.
//
// The registry keeps its working state in memory and writes every change
// through this port before acknowledging it. The shape is chosen so that it
// maps onto etcd as well as onto the embedded file store:
//  - a batch is applied atomically (etcd: one txn) and carries the registry's
//    global revision (etcd: stored under a meta key), which never decreases;
//  - lease deadlines live inside the values as absolute times, so expiry is
//    driven by the registry's clock, not by the store;
//  - load(prefix) returns the entries under a key prefix at the last durable
//    revision (etcd: one range), which is all a restart needs: each owner of
//    a prefix reads only its own records.
#pragma once

#include <registry/task.hpp>

#include <cstdint>
#include <optional>
#include <stdexcept>
#include <string>
#include <utility>
#include <vector>

namespace registry {

struct store_mutation {
    std::string key;
    std::optional<std::string> value;  // nullopt erases the key
};

struct store_batch {
    std::uint64_t revision = 0;  // >= every earlier batch's revision
    std::vector<store_mutation> mutations;
};

struct store_state {
    std::uint64_t revision = 0;
    std::vector<std::pair<std::string, std::string>> entries;  // sorted by key
};

// Thrown by a store whose write failed. After that the store is poisoned:
// what reached the disk is unknown, so every later commit fails too.
class store_error : public std::runtime_error {
public:
    using std::runtime_error::runtime_error;
};

class store {
public:
    virtual ~store() = default;

    // The entries whose keys start with `prefix`, sorted by key, and the
    // store's revision.
    virtual task<store_state> load(std::string prefix) = 0;

    // Completes once the batch is durable. Contract the registry relies on:
    // the batch is queued before the task's first suspension, and batches
    // complete in the order they were started.
    virtual task<void> commit(store_batch batch) = 0;
};

}  // namespace registry
