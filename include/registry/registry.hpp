// The registry: registration with TTL leases, discovery, the state machine,
// and the revisioned event stream. Pure coroutines over two ports (clock,
// store); it never spawns a thread and owns no event loop.
//
// Toolchain note: GCC 12 miscompiles `co_await` inside an if/while condition
// (PR 106188) and destroys non-trivial temporary awaiters twice; bind awaited
// results and awaiters to named locals.
//
// Threading: a registry and everything obtained from it are used from one
// thread (the embedder's event loop). Handlers may suspend on the store;
// the in-memory state is updated before the suspension and the change is
// acknowledged (and its events published) only once it is durable, in
// revision order.
//
// An unreachable store (store_unreachable) is survived: the changes whose
// write failed are answered `unavailable` but kept, and run() writes them
// again, in order, every store_retry_interval; meanwhile new writes are
// refused, expiry waits, and reads are served from memory. Once they are
// durable their events go out, and a lease whose deadline passed meanwhile
// gets its TTL again from then, so that its holder (refused too) can renew.
// A store_error that is not store_unreachable is final.
#pragma once

#include <registry/async_generator.hpp>
#include <registry/event.hpp>
#include <registry/identity.hpp>
#include <registry/ports/clock.hpp>
#include <registry/ports/store.hpp>
#include <registry/result.hpp>
#include <registry/service.hpp>
#include <registry/task.hpp>

#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <set>
#include <stop_token>
#include <string>
#include <string_view>
#include <vector>

namespace registry {

struct registry_options {
    seconds default_ttl{30};
    seconds min_ttl{1};
    seconds max_ttl{86400};
    milliseconds session_grace{10000};  // session-bound leases outlive a dropped connection by this
    std::size_t history_limit = 10000;  // events kept for resume-from-revision
    milliseconds bookmark_interval{10000};
    std::size_t watch_queue_limit = 65536;  // a watcher further behind than this gets resync_required
    std::size_t max_services = 1000000;
    // Quotas on new registrations, so that a few clients cannot fill
    // max_services for everyone (0: no quota). Per origin (the embedder's
    // name for where a registration comes from: registryd gives the source
    // address) and per session (the connection that registered). Counted
    // while the instance lives, whether its connection is open or not;
    // instances loaded by open() count toward neither.
    std::size_t max_services_per_origin = 0;
    std::size_t max_services_per_session = 0;
    // While the store is unreachable (store_unreachable), how often the
    // registry sends what it could not write again.
    milliseconds store_retry_interval{1000};
    // Keep each revision's events in the store too (keyspace "log/", the
    // last history_limit revisions, written with the change itself): open()
    // replays them into the history, so that a watcher resumes from its
    // revision across a restart or on another process that opens the store,
    // and a replica (become_replica) publishes the writer's events.
    bool event_log = false;
};

// The store as the registry sees it (registry::store_condition).
struct store_condition {
    enum class state { ok, unreachable, failed };
    state current = state::ok;
    std::string problem;          // the last failure's message; empty when ok
    time_point since{};           // when it turned unreachable or failed
    std::size_t unwritten = 0;    // batches waiting to be written again
};

// Encodes an event as a transport sends it (registry::set_event_encoder).
using event_encoder = std::shared_ptr<const std::string> (*)(const event&);

// An opaque connection identity for session-bound leases; 0 means none.
using session_id = std::uint64_t;

struct registration {
    // name, version, execution, where, endpoints, depends_on, metadata are
    // taken from here; instance_id may be empty (one is generated); state,
    // health, lease and revisions are ignored.
    service_instance service;
    std::optional<seconds> ttl;            // default_ttl when absent
    bool session_bound = false;
    std::optional<std::uint64_t> lease_id;  // re-register: must match the instance's lease
    std::string origin;                     // for max_services_per_origin; empty: not counted
    // Who holds a new instance's lease; empty: the identity registering. A
    // re-registration keeps the holder it had.
    std::string holder;    // The deployer's own registrations only: a deployed package's health
    // script is a check of kind script, which no one else may register.
    bool script_checks = false;
};

struct lease_grant {
    std::uint64_t lease_id = 0;
    std::string instance_id;
    seconds ttl{0};
    time_point expires_at{};
    std::uint64_t revision = 0;
    bool created = true;  // false when an existing instance was re-registered
};

struct deregistration {
    service_ptr service;  // as it was
    std::uint64_t revision = 0;
};

// A check's new result (record_check): from the health monitor, or the
// instance's own report (report_health).
struct check_report {
    std::string check;  // its name; empty in a report: the instance's only ttl check
    health_status status = health_status::unknown;
    std::string output;  // cut to max_check_output
    std::uint32_t count = 1;  // the consecutive results behind it
    // A report: the caller's lease, which must hold the instance; only ttl
    // checks take reports, and an instance without checks takes one as its health.
    std::optional<std::uint64_t> lease_id;
};

struct service_filter {
    std::optional<std::string> name;
    std::optional<std::string> version;
    std::optional<service_state> state;
    std::optional<std::string> host;  // "local" or a remote host name
    std::map<std::string, std::string> metadata;  // every pair must match
    std::optional<health_filter> health;

    bool matches(const service_instance&) const;
};

struct endpoint_filter {
    std::optional<std::string> service;   // service name
    std::optional<std::string> endpoint;  // endpoint name
    std::optional<std::string> protocol;
    std::optional<health_filter> health;
};

struct endpoint_view {
    service_ptr service;
    const endpoint* ep = nullptr;  // points into *service
};

struct watch_options {
    std::set<event_type> types;      // empty: every type (bookmark/resync/registry_loaded always pass)
    std::set<std::string> services;  // empty: every service name
    // Resume: deliver every event after this revision (replayed from history),
    // or resync_required + a fresh snapshot when history no longer reaches back.
    std::optional<std::uint64_t> from_revision;
    bool snapshot = true;  // without from_revision: start with registry_loaded
    // Ends the stream: once requested, the generator completes (inline).
    std::stop_token stop;
    // The watcher sends what it gets (a protocol subscription): every event
    // it takes is encoded (event::wire) as it is published, once for every
    // such watcher. Other watchers read the events and cost no encoding.
    bool wire = false;
};

// A rule a companion adds to what a registration must satisfy (beyond the
// built-in ones), e.g. registered_engines: a container engine's declaration.
// An error is the registration's answer; nullopt lets it through.
using registration_rule = std::function<std::optional<error>(const registration&)>;

class registry {
public:
    registry(clock& clk, store& st, registry_options options = {});
    ~registry();
    registry(const registry&) = delete;
    registry& operator=(const registry&) = delete;

    // Loads the durable state. Session-bound leases found there belong to
    // sessions that no longer exist: they get the grace period.
    task<result<void>> open();

    // Lease expiry and bookmarks, until `stop` is requested.
    task<void> run(std::stop_token stop);

    // A bookmark to every watcher now (run() sends them periodically). The
    // embedder sends one before it shuts down: a filtered watcher then
    // resumes from the last revision, which a restarted registry can replay.
    void bookmark();

    // `by`: who asks. It must have the service's name in its scope, and for
    // anything but a new registration hold the instance's lease (or be an
    // admin); else forbidden. The default, anonymous, is an admin.
    task<result<lease_grant>> register_service(registration reg, session_id owner = 0,
                                               const identity& by = identity::anonymous());
    task<result<lease_grant>> keepalive(std::uint64_t lease_id, session_id owner = 0,
                                        const identity& by = identity::anonymous());
    task<result<deregistration>> deregister(std::string_view instance_id, std::string reason = "deregistered",
                                            const identity& by = identity::anonymous());
    task<result<service_ptr>> set_state(std::string_view instance_id, service_state to, std::string reason = {},
                                        const identity& by = identity::anonymous());
    task<result<service_ptr>> record_health(std::string_view instance_id, health_result health);
    // A check's result (record_check.cpp): a change of its status is a
    // health_check_result event, the instance's health is the worst of its
    // checks, and running turns failed while that is critical (and back).
    // The same status again changes nothing, but for a report, whose time
    // and output are kept (a ttl check waits for reports).
    task<result<service_ptr>> record_check(std::string_view instance_id, check_report report);

    service_ptr find(std::string_view instance_id) const;
    std::vector<service_ptr> list(const service_filter& filter = {}) const;
    std::vector<endpoint_view> endpoints(const endpoint_filter& filter = {}) const;

    // The event stream. The generator's first items are the snapshot or the
    // replay; then live events in revision order. Destroying it unsubscribes.
    async_generator<event_ptr> watch(watch_options options);

    // The connection behind `owner` is gone: its session-bound leases expire
    // after the grace period unless renewed (keepalive/re-register) first.
    void release_session(session_id owner);

    // The encoder of the published events' `wire` bytes (protocol::server
    // installs the protocol's). Called on the registry's thread, as an event
    // is published, once if a watcher with watch_options::wire takes it.
    void set_event_encoder(event_encoder encode) noexcept;

    // Checked on every register (new or re-register), after the built-in
    // rules, in the order added. Not applied to what open() loads.
    void add_registration_rule(registration_rule rule);

    // For companions that share the registry's revisions, event stream and
    // store (container_manager): writes `mutations` and, when `events` is not
    // empty, publishes them under one new revision once durable; without
    // events the batch keeps the current revision (like a renewal). Yields
    // the revision. Their keys must not start with "svc/".
    task<result<std::uint64_t>> record(std::vector<std::shared_ptr<event>> events,
                                       std::vector<store_mutation> mutations, std::string_view what);

    // ---- Replicas: several processes on one store (registryd on etcd), one
    // of which writes. After open(), become_replica() makes this registry
    // serve reads and watches of what the writer writes: its writes fail with
    // not_writer (naming `writer`; called again when the writer changes), run()
    // expires nothing, and apply() takes in each of the writer's
    // transactions as the store delivers them, in order: its service records,
    // and the events it logged (event_log, which the writer must keep),
    // published under the writer's revisions. A replica is not promoted: the
    // process that takes over opens a registry of its own.
    void become_replica(std::string writer);
    bool is_replica() const noexcept;
    // Fails, and the replica must be opened anew, on a record or log entry
    // that does not decode or a revision that does not follow the last one.
    result<void> apply(const std::vector<store_mutation>& txn);

    // A replica's reads wait for this first: the embedder's barrier completes
    // once every write the writer acknowledged before the call is applied
    // (read-your-writes across processes), or fails (unavailable). Without
    // one, read_barrier() completes at once.
    using read_barrier_fn = std::function<task<result<void>>()>;
    void set_read_barrier(read_barrier_fn barrier);
    bool has_read_barrier() const noexcept;
    task<result<void>> read_barrier();

    // The last revision assigned to a change; its events go out once it is
    // durable (a change in flight is already what find() and list() show).
    std::uint64_t revision() const noexcept;
    std::size_t size() const noexcept;
    // False while the store is unreachable (writes get unavailable; the
    // changes in flight when it went are written again once it is back) and
    // for good once it has failed.
    bool available() const noexcept;
    store_condition store_status() const;
    const registry_options& options() const noexcept;
    class clock& clk() const noexcept;  // the clock port it was made with

private:
    struct impl;
    std::unique_ptr<impl> impl_;
};

}  // namespace registry
