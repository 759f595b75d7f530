// Every key the library writes to the store (ports/store.hpp). Each part
// loads its records by one prefix: no part's prefix may be a prefix of
// another part's keys.
#pragma once

#include <string_view>

namespace registry::detail::keyspace {

// The registry: svc/{instance_id} → a service record (codec/service_record.hpp).
inline constexpr std::string_view services = "svc/";

// The registry's event log (registry_options::event_log): log/{revision,
// 20 digits, so that keys sort by revision} → the revision's events
// (codec/event_record.hpp).
inline constexpr std::string_view event_log = "log/";

// The container manager, loaded together by their common prefix "ctr".
inline constexpr std::string_view containers_all = "ctr";
inline constexpr std::string_view containers = "ctr/";  // ctr/{lease_id} → a container record (codec/container_record.hpp)
inline constexpr std::string_view next_container_lease = "ctr-next-lease";  // → the next lease id, decimal
inline constexpr std::string_view lost_containers = "ctr-lost/";  // ctr-lost/{lease_id} → when it is forgotten, ms, decimal
inline constexpr std::string_view container_queue = "ctr-queue/";  // ctr-queue/{queue_id} → a queued create (containers/create_queue.cpp)

// The deployer: dep/{instance_id} → a deployment record (codec/deployment_record.hpp).
inline constexpr std::string_view deployments = "dep/";

// The REPL's kept results: repl/{execution_id} → an outcome record (repl/outcome_json.hpp).
inline constexpr std::string_view repl_results = "repl/";

}  // namespace registry::detail::keyspace
