// The WebSocket protocol, transport-free: a connection takes request frames
// as text and puts responses and events into an outbox. The envelope:
// {id, type:"request", action, params} in,
// {id, type:"response", data|error} and {type:"event", event, data, ...} out.
// docs/protocol.md is the reference for every action, event and error code.
//
// A server answers the services actions; the embedder registers the
// subsystems it has (protocol/containers.hpp, deploy.hpp, repl.hpp), whose
// actions otherwise answer `unavailable`.
#pragma once

#include <registry/async_scope.hpp>
#include <registry/error.hpp>
#include <registry/protocol/frame.hpp>
#include <registry/protocol/permission.hpp>
#include <registry/protocol/rate_limits.hpp>
#include <registry/protocol/relay.hpp>
#include <registry/protocol/loop_context.hpp>
#include <registry/registry.hpp>
#include <registry/task.hpp>

#include <cstddef>
#include <memory>
#include <optional>
#include <string>
#include <string_view>

namespace registry::protocol {

// docs/protocol.md, "Limits". 0 means no limit where a comment says so.
struct limits {
    std::size_t max_message_bytes = 1 << 20;
    std::size_t max_subscriptions = 64;                // per connection
    std::size_t max_subscriptions_per_source = 1024;   // per source address, over its connections; 0: none
    std::size_t max_page_items = 1000;                 // a listing's page, whatever the request's limit
    std::size_t max_open_listings = 64;                // listings continued over pages, held in all
    std::size_t max_open_listings_per_connection = 4;
    rate_limits rates{};  // none by default (registryd sets its own)
    // During a store outage (registry::store_status() unreachable): serve
    // get_service / list_services / list_endpoints from memory, marked with
    // stale_since_ms, or refuse them with unavailable.
    bool serve_stale_reads = true;
};

// What happened to one request, for the embedder's metrics, logs and audit.
struct outcome {
    std::string_view action;  // empty when the frame had no valid action
    std::string_view code;    // "ok" or an error code (see error.hpp)
    // Who asked: the connection's identity (valid while the connection lives);
    // empty for a frame refused before parsing.
    std::string_view identity{};
    std::string request_id{};  // empty when the frame had no readable id
    // What the request acted on, as its handler named it ("payments-1",
    // "podman/3f2a...", "web@1.2.0", "python"); empty if none was named.
    std::string target{};
};

// State shared by every connection of one server: the registry, the limits,
// the dispatch table and the subsystems' modules. What only the connections
// of one event loop may share (the request parser) is a loop_context.
class server {
public:
    server(registry& reg, limits lim = {});
    ~server();
    server(const server&) = delete;
    server& operator=(const server&) = delete;

    registry& reg() noexcept;
    const limits& lims() const noexcept;
    // For a replica's server (registry::become_replica): every action but
    // the discover family's goes to the writer through the connection's relay
    // (connection::relay_through); a connection without one answers
    // not_writer, the subsystems it does not run (containers, deployments,
    // REPL) included.
    void serve_replica();
    // The permission family of a known action (for the embedder's audit).
    std::optional<permission_family> family_of(std::string_view action) const noexcept;

    struct impl;
    impl& internals() noexcept;

private:
    std::unique_ptr<impl> impl_;
};

class connection {
public:
    // `id` identifies the session for session-bound leases; unique per server.
    // `source` names where the connection comes from (registryd: the peer's
    // IP address) for the per-source quotas; empty: counted toward none.
    // `loop`: the context of the event loop the connection runs on.
    // `caller`: who the client is and what it may do (null: anonymous, every
    // permission, as with access control off).
    connection(server& srv, loop_context& loop, outbox& out, session_id id, std::string source = {},
               std::shared_ptr<const principal> caller = nullptr);
    ~connection();  // calls close()
    connection(const connection&) = delete;
    connection& operator=(const connection&) = delete;

    // Handles one text frame. The response (and any events it starts, after
    // the response) goes to the outbox. Several handle() calls may be in
    // flight at once (pipelining); responses carry the request id.
    task<outcome> handle(std::string_view text);

    // For frames the transport refuses before parsing (oversize, binary):
    // sends {id:null, type:"response", error:{code, message}}.
    outcome reject(errc code, std::string message);

    // Ends every subscription (synchronously) and releases the session's
    // session-bound leases to their grace period. Idempotent.
    void close();

    std::size_t subscription_count() const noexcept;

    // On a replica's server: where the requests only the writer serves go.
    // `r` must outlive the connection's requests (the embedder owns both).
    void relay_through(relay& r) noexcept;

    struct impl;

private:
    std::unique_ptr<impl> impl_;
};

}  // namespace registry::protocol
