// What registry::client sends and receives: its options, and the protocol's
// objects as values (docs/protocol.md). A service is the library's own
// registry::service_instance: registering sends its descriptive fields
// (name, instance_id, version, execution, location, endpoints, depends_on,
// metadata); discovery and events fill all of it.
#pragma once

#include <registry/service.hpp>

#include <chrono>
#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <vector>

namespace registry::client {

struct error;
enum class errc;

struct options {
    // ws://HOST:PORT/PATH or wss://HOST:PORT/PATH (the port defaults to 80 / 443).
    std::string url{};
    // Instead of url: several registryd sharing one registry (docs/protocol.md,
    // "Several registryd"), tried round robin; writes end up on the writer.
    // Exactly one of url and urls is given.
    std::vector<std::string> urls{};
    // Sent as "Authorization: Bearer TOKEN" with the upgrade; empty: none.
    std::string bearer_token{};
    // wss: the CA certificates (PEM) to verify registryd's certificate with;
    // empty: the system's default paths. The host name is verified too.
    std::string ca_file{};
    // A request waits this long for a connection and then for its response.
    std::chrono::milliseconds request_timeout{10000};
    // Reconnect delays: doubled per failed attempt from min up to max, with jitter.
    std::chrono::milliseconds reconnect_min{100};
    std::chrono::milliseconds reconnect_max{5000};
    // The largest message accepted from registryd (a bigger one closes the connection).
    std::size_t max_message_bytes = 64u << 20;
    // Events a watch holds that its reader has not taken yet; beyond, the watch
    // ends with slow_consumer.
    std::size_t max_buffered_events = 100000;
    // Failures of background work (keepalives, re-registrations, resubscriptions,
    // connection attempts) are reported here; called on the client's executor.
    std::function<void(const error&)> on_background_error{};
    // Called when a connection opens on another URL than the previous
    // connection's: `reason` is errc::not_writer (the client left a standby
    // for a write) or errc::connection_lost (the previous connection dropped:
    // a registryd stopped, or a standby closed its connections to take over).
    // Called on the client's executor.
    std::function<void(const std::string& from, const std::string& to, errc reason)> on_moved{};
};

struct register_options {
    std::chrono::seconds ttl{30};
    // Ties the lease to the connection too (docs/protocol.md, "register").
    bool session_bound = false;
    // How often the lease is renewed; zero: a third of the TTL.
    std::chrono::milliseconds keepalive_interval{0};
};

// The answer to register / keepalive.
struct lease_info {
    std::uint64_t lease_id = 0;
    std::string instance_id{};
    std::chrono::seconds ttl{0};
    std::int64_t expires_at_ms = 0;
    std::uint64_t revision = 0;  // register only: the change's revision
    bool created = false;        // register only
};

struct endpoint_info {
    std::string service{};
    std::string instance_id{};
    service_state state = service_state::registered;
    std::string name{};
    std::string address{};
    std::uint16_t port = 0;
    std::string protocol{};
};

// list_endpoints' filters (empty: any). health: only instances whose
// health passes (docs/protocol.md, "Health checks"); none: any health.
struct endpoint_filter {
    std::string service{};
    std::string endpoint{};
    std::string protocol{};
    std::optional<health_filter> health{};
};

// A listing, every page of it (the client follows `continue`): the registry
// as of `revision`.
template <typename T>
struct listing {
    std::uint64_t revision = 0;
    std::vector<T> items{};
};

struct watch_options {
    std::vector<std::string> services{};  // service names; empty: all
    std::vector<std::string> events{};    // event types; empty: all
    // Resume: replay every matching event after this revision first.
    std::optional<std::uint64_t> from_revision{};
    // Without from_revision: start with a registry_loaded snapshot.
    bool snapshot = true;
};

// One event of a watch (docs/protocol.md, "Events").
struct event {
    std::string type{};  // "service_registered", "lease_expired", "registry_loaded", "resync_required", ...
    std::uint64_t revision = 0;
    // The service the event is about, for the events that carry one
    // (service_*, endpoint_updated, health_check_result).
    std::optional<service_instance> service{};
    // registry_loaded: the snapshot (after resync_required too: the state to
    // rebuild from).
    std::vector<service_instance> services{};
    // The event's `data` object as JSON text, for every other field.
    std::string data{};
};

}  // namespace registry::client
