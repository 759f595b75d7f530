// The network side of registryd: one TCP listener serving plain HTTP
// (GET /healthz, GET /metrics, GET /v1/services[/NAME], 404 otherwise) and
// WebSocket upgrades (any path) on the same port. Beast serves the HTTP side
// only (http/, and server.cpp through http/http_session.hpp; besides
// engine/engine_http.cpp, the Docker Engine API client); the WebSocket side
// is registryd's own (websocket/: a state machine free of Asio under a thin
// Asio driver, no Beast). This header is light on purpose.
//
// Everything runs on the one io_context thread, which is also the registry's
// thread: no strands, no locks.
#pragma once

#include "config/config.hpp"
#include "observability/metrics.hpp"
#include "store/store_health.hpp"

#include <cstddef>
#include <functional>
#include <memory>
#include <string>

namespace boost::asio {
class io_context;
}

namespace registry {
class registry;
namespace protocol {
class server;
}
}  // namespace registry

namespace registryd {

class audit_log;
struct engine_offer;
class target_offer;
struct relay_target;
namespace access {
class gate;
}

class server {
public:
    // Descriptors never used for connections (the store, engines, deploys,
    // the listener): accepting stops short of RLIMIT_NOFILE by this many.
    static constexpr std::size_t descriptor_reserve = 64;

    // `gauges` is called on every /metrics scrape for the values that live
    // elsewhere (registry size and revision, store fsyncs). The protocol
    // answers the services actions; the embedder registers the subsystems it
    // has into protocol() (registry/protocol/containers.hpp, deploy.hpp,
    // repl.hpp) before listen().
    // `gate` (access/gate.hpp) admits connections; it outlives the server.
    server(boost::asio::io_context& ioc, const config& cfg, registry::registry& reg, metrics& m,
           std::function<metrics::gauges()> gauges, access::gate& gate);
    ~server();
    server(const server&) = delete;
    server& operator=(const server&) = delete;

    // Resolves, binds and starts accepting on cfg.listen. Returns the bound
    // address (the real port when 0 was asked for). Throws std::runtime_error
    // with a readable message when it cannot.
    listen_address listen();

    // Graceful shutdown: stop accepting; plain HTTP connections are closed
    // once their current response is written; each WebSocket session stops
    // reading, lets its in-flight requests complete, flushes its queue and
    // closes with 1001 (going away). `on_drained` is posted to the io_context
    // once no connection is left (at once if there is none).
    void shutdown(std::function<void()> on_drained);

    // Closes every remaining socket now (the shutdown deadline has passed).
    // Sessions still wait for their in-flight requests before they go away.
    void force_close();

    // SIGHUP: the TLS certificate, key and client CAs are read again (config
    // `tls`); new connections get them, open ones keep theirs. False with
    // `why` when a file is bad: the previous ones stay in use.
    bool reload_tls(std::string& why);

    // Open TCP connections of any kind (HTTP and WebSocket).
    std::size_t connections() const noexcept;

    // The protocol state every connection shares (to register subsystems).
    registry::protocol::server& protocol() noexcept;

    // Where audited requests and refusals go (observability/audit_log.hpp);
    // null: nowhere. The log must outlive the server.
    void audit_to(audit_log* log) noexcept;
    // What GET /healthz says of the store (daemon_store::health); without
    // it, the store is a file.
    void report_store(std::function<store_health()> health);
    // A standby's server (protocol().serve_replica()): each WebSocket
    // connection relays what only the writer serves to `target`'s writer
    // (cluster/session_relay.hpp), with its client's bearer token; with
    // access control on, a client without one is answered not_writer. The
    // target must outlive the server.
    void relay_writes(const relay_target& target) noexcept;
    // A member's server: the writer reaches `offer`'s engines through it
    // (cluster/engine_offer.hpp). The offer must outlive the server.
    void offer_engines(const engine_offer& offer) noexcept;
    // A member's server: the writer deploys to `offer`'s targets through it
    // (cluster/target_offer.hpp).
    void offer_targets(std::shared_ptr<target_offer> offer) noexcept;

    struct state;

private:
    std::shared_ptr<state> state_;
};

}  // namespace registryd
