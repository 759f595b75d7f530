// What registryd needs of its store besides the registry's port: to stop it
// at shutdown (everything queued is durable or failed) and a count of the
// durable writes it made (registryd_store_fsyncs_total: the file store's
// fdatasyncs, etcd's committed transactions).
#pragma once

#include "store/store_health.hpp"

#include <registry/ports/store.hpp>

#include <cstdint>

namespace registryd {

class daemon_store : public registry::store {
public:
    virtual void stop() = 0;
    virtual std::uint64_t fsyncs() const noexcept = 0;
    // Its kind and whether it can be reached now (GET /healthz).
    virtual store_health health() const = 0;
};

}  // namespace registryd
