// The store port: durable, revisioned key/value batches.
//
// The registry keeps its working state in memory and writes every change
// through this port before acknowledging it. The shape is chosen so that it
// maps onto etcd as well as onto the embedded file store:
//  - a batch is applied atomically (etcd: one txn) and carries the registry's
//    global revision (etcd: stored under a meta key), which never decreases;
//  - lease deadlines live inside the values as absolute times, so expiry is
//    driven by the registry's clock, not by the store;
//  - load(prefix, each) hands over the entries under a key prefix at the
//    last durable revision (etcd: one range), which is all a restart needs:
//    each owner of a prefix reads only its own records, and decodes them
//    where the store keeps them instead of from a copy.
#pragma once

#include <registry/task.hpp>

#include <cstdint>
#include <functional>
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>
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

// Thrown by a store that could not reach its backend (etcd unreachable, no
// answer within its timeout, no leader), with the batch handed back. The
// batch was not applied, or was applied whole: re-sending it as it is
// converges either way, since a batch only writes whole values and erases
// keys. The store stays usable, and the registry sends the batch again, in
// order, until it is durable (registry_options::store_retry_interval).
class store_unreachable : public store_error {
public:
    store_unreachable(const std::string& what, store_batch unsent) : store_error(what), batch(std::move(unsent)) {}
    store_batch batch;
};

// Receives the entries load() finds, one call each; the views are valid
// during the call only, and it must not call into the store.
using store_visitor = std::function<void(std::string_view key, std::string_view value)>;

class store {
public:
    virtual ~store() = default;

    // Calls `each` with every entry whose key starts with `prefix`, in key
    // order, and returns the store's revision.
    virtual task<std::uint64_t> load(std::string prefix, store_visitor each) = 0;

    // Completes once the batch is durable. Contract the registry relies on:
    // the batch is queued before the task's first suspension, and batches
    // complete in the order they were started. Fails with store_unreachable
    // (retryable, the batch handed back) or store_error (the store is lost).
    virtual task<void> commit(store_batch batch) = 0;
};

// The entries under `prefix`, copied: for owners of a handful of records.
inline task<store_state> load_copy(store& st, std::string prefix) {
    store_state state;
    state.revision = co_await st.load(std::move(prefix), [&state](std::string_view key, std::string_view value) {
        state.entries.emplace_back(key, value);
    });
    co_return state;
}

}  // namespace registry
