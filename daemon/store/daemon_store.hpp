// What registryd needs of its store besides the registry's port: to stop it
// at shutdown (everything queued is durable or failed) and a count of the
// durable writes it made (registryd_store_fsyncs_total: the file store's
// fdatasyncs, etcd's committed transactions).
#pragma once

#include "store/store_health.hpp"

#include <registry/ports/store.hpp>
#include <registry/task.hpp>

#include <cstdint>

namespace registryd {

class daemon_store : public registry::store {
public:
    virtual void stop() = 0;
    // After stop(): gives up what this registryd holds in the store for
    // others to take over at once (etcd: the writer lease). Bounded by the
    // store's request timeout; a failure is logged, the lease then lapses.
    virtual registry::task<void> resign() { co_return; }
    virtual std::uint64_t fsyncs() const noexcept = 0;
    // Its kind and whether it can be reached now (GET /healthz).
    virtual store_health health() const = 0;
};

}  // namespace registryd
