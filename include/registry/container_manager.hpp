// Containers under leases, on several engines (nodes).
//
// The manager runs containers on the engines it is given (one
// container_engine port each), under leases: every managed container has a
// lease id and an absolute expiry, written into its labels at create and kept
// durably in the store (the expiry changes when the lease is extended, and
// labels cannot change). A reaper driven by the clock stops and removes the
// containers whose lease has expired. Each engine is a node with a capacity;
// a heartbeat pings it, a node that does not answer for heartbeat_timeout
// goes offline and its containers are lost (their leases dropped; only each
// one's deadline is kept, in the store until it passes, since the labels
// have the deadline at create and not the extensions). A node coming online
// (at start, or back after a loss) is reconciled first: the containers
// carrying this registry's instance label are adopted, and nothing without
// that label is ever touched.
//
// Besides its own, the manager holds containers that another component (the
// REPL executor) creates and removes itself: it only keeps their lease, so
// that the reaper removes them if that component never does (registryd
// killed mid-way). See hold().
//
// Changes go through the registry (registry::record): they share its
// revisions, its event stream (container_state_changed, lease_expired,
// container_reap_failed) and its store. Log follows and image pulls are
// per-request streams of events that are not changes.
//
// Threading: like the registry, used from one thread; pure coroutines over
// the ports, no thread, no event loop.
//
// Implemented in lib/containers/ (manager_impl.hpp lists the parts).
#pragma once

#include <registry/async_generator.hpp>
#include <registry/container.hpp>
#include <registry/container_policy.hpp>
#include <registry/container_events.hpp>
#include <registry/event.hpp>
#include <registry/identity.hpp>
#include <registry/managed_container.hpp>
#include <registry/ports/clock.hpp>
#include <registry/ports/container_engine.hpp>
#include <registry/ports/store.hpp>
#include <registry/result.hpp>
#include <registry/task.hpp>

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <stop_token>
#include <string>
#include <string_view>
#include <vector>

namespace registry {

class registry;

// The labels every managed container carries.
namespace container_labels {
inline constexpr std::string_view instance = "io.registry.instance";    // the registry instance id
inline constexpr std::string_view lease = "io.registry.lease";          // the lease id
inline constexpr std::string_view expires = "io.registry.expires_at_ms";  // the expiry at create (ms since epoch)
inline constexpr std::string_view reserved_prefix = "io.registry.";       // users may not set these
inline constexpr std::string_view holder = "io.registry.holder";  // held containers only (no lease label): who holds it
}  // namespace container_labels

struct container_node {
    std::string name;
    std::string endpoint;  // informational (list_nodes)
    container_engine* engine = nullptr;
    std::size_t capacity = 8;  // containers created or running at once
};

// What the reaper did with a container whose lease ran out (a managed one,
// or a held one: lease_id 0): removed it, or gave up on this sweep after
// every attempt failed (`error` then says why; it is retried). The
// embedder's record of it, beside the events (registryd: a log line).
struct reap_report {
    std::string engine;
    std::string container_id;
    std::uint64_t lease_id = 0;
    bool removed = false;
    time_point at{};
    std::string error;  // when not removed
};

// A node came online (it answered and was reconciled) or went offline (it
// stopped answering for heartbeat_timeout, or was removed): the embedder's
// record of it (registryd: a log line).
struct node_change {
    std::string engine;
    bool online = false;
    std::string reason;  // offline: why
};

// A named image with its command and limits (config: containers.presets),
// what container_request::preset refers to.
struct container_preset {
    std::string image;
    std::vector<std::string> command;  // empty: the image's default
    container_limits limits;
};

// A create request waiting in the queue (container_request::queue).
struct queued_create {
    std::string queue_id;  // "q" and a number: what cancel_queued() names
    std::string owner;
    std::string image;                  // after its preset
    std::optional<std::string> engine;  // the node it asked for, if any
    time_point queued_at{};
};

// The requester of a queued create: told its position, able to give up.
struct queue_listener {
    // Its position (1: next) when queued and whenever it changes. Inline; must not throw.
    std::function<void(const queued_create&, std::size_t position)> on_position;
    // Requested while queued: the request leaves the queue (create fails,
    // unavailable). E.g. its connection closing.
    std::stop_token cancel;
};

struct container_manager_options {
    std::string instance_id = "registry";  // the instance label's value: which containers are ours
    seconds default_ttl{300};
    seconds min_ttl{1};
    seconds max_ttl{86400};
    milliseconds heartbeat_interval{2000};
    milliseconds heartbeat_timeout{6000};  // no successful ping for this long: offline
    unsigned reap_attempts = 3;
    milliseconds reap_backoff{500};        // before the second attempt; doubles after each failure
    milliseconds sweep_interval{5000};     // a lease whose reaping failed is retried this much later
    seconds stop_grace{5};                 // the reaper's stop: SIGKILL after this
    std::function<void(const reap_report&)> on_reap;  // optional; called inline, must not throw
    std::function<void(const node_change&)> on_node_change;  // optional; called inline, must not throw
    std::map<std::string, container_preset, std::less<>> presets;
    // The create queue (lib/containers/create_queue.hpp): requests with `queue` waiting for
    // capacity, at most this many at once, and at most max_queued_per_identity
    // of one owner (0: only max_queued); beyond them, limit_exceeded.
    std::size_t max_queued = 64;
    std::size_t max_queued_per_identity = 16;
    // A request queued before a restart (each queued create is stored while
    // it waits): its requester, whom only the create's answer would tell the
    // container, is gone with its connection, so open() drops it, as a
    // closing connection does, and reports it here (registryd: a log line).
    // Optional; inline, must not throw.
    std::function<void(const queued_create&)> on_queue_dropped;
    // What create() allows (images, limit ceilings) and the hardening every
    // managed container gets (container_policy.hpp).
    container_policy policy;
};

struct container_request {
    // With `preset`, what the request leaves unset is the preset's: the image
    // when empty, the command when empty, each limit when absent.
    container_spec spec;                // labels must not use container_labels::reserved_prefix
    std::optional<std::string> preset;  // a name in container_manager_options::presets
    std::optional<seconds> ttl;         // default_ttl when absent
    std::optional<std::string> engine;  // a node's name; absent: the least loaded online node
    std::string owner = "anonymous";    // the identity creating it (managed_container::owner)
    // Every eligible node at capacity: wait in the create queue for a free
    // slot instead of failing with limit_exceeded.
    bool queue = false;
};

// A container held under a lease for the component that created it
// (container_manager::hold).
struct held_container {
    std::string engine;
    std::string container_id;
    time_point expires_at{};
};

class container_manager {
public:
    container_manager(registry& reg, clock& clk, store& st, std::vector<container_node> nodes,
                      container_manager_options options = {});
    ~container_manager();
    container_manager(const container_manager&) = delete;
    container_manager& operator=(const container_manager&) = delete;

    // Loads the leases from the store (after registry::open()).
    task<result<void>> open();

    // Heartbeats (reconciling each node as it comes online), the reaper, and
    // every waiter and stream the manager started, until `stop`; returns once
    // all of them have finished.
    task<void> run(std::stop_token stop);

    // Creates and starts a container under a new lease, its preset (if it
    // names one) filling in what the request leaves out.
    // The container policy holds (options().policy): an image it does not
    // allow or a limit above its ceiling is refused, naming the field.
    // Errors: invalid_request with the fields at fault (ttl_seconds,
    // labels.NAME, preset, image, limits.memory_bytes, limits.cpus,
    // limits.pids: error::fields), not_found (no such engine, no such image: pull it
    // first), unavailable (no online engine, the engine failed), limit_exceeded
    // (every eligible node is at capacity; with request.queue: the create
    // queue is full), and the engine's errors.
    // With request.queue, a request that finds every eligible node at capacity
    // waits in a FIFO queue, its position told to `listener`, and is created
    // when a slot frees (a container exits, is removed, reaped or lost; a node
    // comes online or grows): the task completes then. It fails if it is
    // cancelled (cancel_queued, listener.cancel: unavailable), the manager
    // stops (unavailable), or the node it names is removed (not_found).
    task<result<container_ptr>> create(container_request request, queue_listener listener = {});

    // The queued creates, first (next to be created) first.
    std::vector<queued_create> queued() const;
    // Takes a queued create out of the queue; its create() fails with
    // unavailable. not_found: no such queued create (created or gone
    // already); forbidden: `by` is neither its owner nor an admin.
    result<void> cancel_queued(std::string_view queue_id, const identity& by = identity::anonymous());

    // The managed container with this engine id; nullptr for anything else.
    container_ptr find(std::string_view container_id) const;
    // `c` with its usage brought up to date by a stats sample of its engine
    // when it runs on an online node (container_get); else `c` itself.
    task<container_ptr> with_usage(container_ptr c);
    std::vector<container_ptr> list() const;  // by lease id
    std::vector<node_status> nodes() const;   // the configured ones, then the added ones as added

    // Nodes that come and go while it runs (registered_engines.hpp). A node
    // added is pinged at once and reconciled when it answers, like a
    // configured one; `engine` stays alive until nothing uses it any more.
    // conflict: a node of that name exists.
    result<void> add_node(container_node node, std::shared_ptr<container_engine> engine);
    // Its containers are lost, as when it goes offline (container_state_changed
    // to lost with `reason`, leases dropped), but left untouched on the engine:
    // a node that comes back is reconciled (valid leases adopted, expired ones
    // reaped). Its heartbeat, exit waiters and log follows end. not_found: no
    // such node.
    task<result<void>> remove_node(std::string name, std::string reason);
    // not_found: no such node; invalid_request: zero.
    result<void> set_capacity(std::string_view name, std::size_t capacity);

    // `by`: who asks; forbidden unless it owns the container or is an admin
    // (the default, anonymous, is one).
    task<result<container_ptr>> stop(std::string_view container_id, seconds grace,
                                     const identity& by = identity::anonymous());
    task<result<container_ptr>> remove(std::string_view container_id, bool force,
                                       const identity& by = identity::anonymous());
    // Renews the lease to now + ttl (durably; no event: like a keepalive).
    task<result<container_ptr>> extend(std::string_view container_id, std::optional<seconds> ttl,
                                       const identity& by = identity::anonymous());

    // The container's output so far (its last `tail` lines).
    task<result<std::vector<output_chunk>>> logs(std::string_view container_id, std::optional<std::size_t> tail);

    // container_log events (the last `tail` lines, then what it writes) until
    // the container stops, ending with one whose `end` is set; or until
    // `stop`, which ends the stream inline. The container must be managed
    // (check find() first).
    async_generator<event_ptr> follow_logs(std::string container_id, std::optional<std::size_t> tail,
                                           std::stop_token stop);

    // image_pull_progress events of pulling `reference` on the named node, or
    // on every online node one after the other; each node's pull ends with an
    // event whose `end` is set (and `failure` if it failed). `stop` ends the
    // stream inline.
    async_generator<event_ptr> pull_image(std::string reference, std::optional<std::string> engine,
                                          std::stop_token stop);

    // Held containers: created and removed by another component, which
    // holds them here under a lease so that the reaper removes them at its
    // deadline if the component never does. They are not managed: find(),
    // list(), the events and a node's load leave them out; their lease is
    // in their labels only (never extended), and a node coming online adopts
    // the ones there, like its own, so a restart reaps what a killed
    // registryd left.

    // The labels a held container must be created with (labels cannot change).
    std::map<std::string, std::string> hold_labels(std::string_view holder, time_point deadline) const;
    // Holds a container created with hold_labels until release(). Errors:
    // not_found (no such engine), unavailable (the engine is offline).
    result<void> hold(std::string_view engine, std::string_view container_id, time_point deadline);
    // Its holder has removed it (or is about to): the lease ends.
    void release(std::string_view engine, std::string_view container_id);
    std::vector<held_container> held() const;  // by engine, then container id

    // A configured engine that answers its heartbeat.
    bool online(std::string_view engine) const;

    const container_manager_options& options() const noexcept;

    struct impl;

private:
    // Fills in what `request` leaves to its preset; field errors: no such
    // preset, no image at all.
    result<void> apply_preset(container_request& request) const;

    std::unique_ptr<impl> impl_;
};

}  // namespace registry
