// What the clients of a fault test saw, and the checks that it is a correct
// history of one registry: the load clients record what registryd
// acknowledged (registrations with their lease deadlines, renewals,
// deregistrations), the subscribers record every frame of their event
// streams, and the checks afterwards say precisely what went wrong (which
// instance, which revisions, which subscriber, how many milliseconds).
//
// Only what was acknowledged counts: a request that got an error, or no
// answer (connection closed, timeout), may or may not have taken effect,
// and the checker is told so (uncertain) instead of guessing.
//
// Times are wall-clock (system_clock): the server reports lease deadlines
// as `expires_at_ms`, milliseconds since the epoch on this machine's clock.
// Thread-safe: the load runs on several threads.
#pragma once

#include "harness.hpp"

#include <chrono>
#include <cstdint>
#include <map>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

namespace it {

using wall = std::chrono::system_clock;

class history_checker {
public:
    // ---------------------------------------------------- acknowledged writes

    // A register answered with data: the response's `revision`, `lease_id`,
    // `expires_at_ms`, `ttl_seconds`. `renewed`: the client keeps it alive.
    void registered(const std::string& client, const json::value& data, bool renewed);
    // A keepalive answered with data (its `expires_at_ms`).
    void renewed(const std::string& instance, const json::value& data);
    // A deregister answered with data (its `revision`).
    void deregistered(const std::string& instance, const json::value& data);
    // A keepalive or deregister of `instance` that got no answer or an
    // error other than lease_not_found/not_found: the server may have done
    // it or not, so its deadline and presence are no longer known exactly.
    void uncertain(const std::string& instance, const std::string& why);
    // A keepalive answered lease_not_found at `at`: the lease is gone.
    void lease_lost(const std::string& instance, wall::time_point at);
    // A write answered `unavailable` (the store is unreachable or the
    // writer changing), and a write acknowledged: the outages clients saw.
    void write_refused(wall::time_point at, const std::string& code);
    void write_acknowledged(wall::time_point at);

    // A span of time when registryd could not expire leases on time: a
    // writer failover (a lease due meanwhile expires when the new writer has
    // loaded) or a store outage (`ttl_again`: a lease due meanwhile gets its
    // TTL again from when the store is back).
    void fault(const std::string& what, wall::time_point from, wall::time_point to, bool ttl_again);

    // ------------------------------------------------------------ subscribers

    // A subscriber; its index for the calls below.
    std::size_t add_subscriber(const std::string& name);
    // A subscribe answered: on `registryd`, from `from_revision` (none: a
    // first subscription with a snapshot), at the response's `revision`.
    void subscribed(std::size_t sub, const std::string& registryd, std::optional<std::uint64_t> from_revision,
                    std::uint64_t response_revision);
    // An event frame as received (at `at`).
    void event(std::size_t sub, const json::value& frame, wall::time_point at);
    // The subscriber's connection ended (`why`).
    void disconnected(std::size_t sub, const std::string& why);
    // The last revision the subscriber saw (change events, snapshots): where it resumes.
    std::optional<std::uint64_t> last_revision(std::size_t sub) const;

    // ------------------------------------------------------------------ checks
    // Each returns the problems found (empty: none), one line each.

    // (b) Every subscriber's stream: revisions strictly increasing and
    // consecutive within a line (the events of one change share its
    // revision: lease_expired then service_deregistered of one instance), a
    // line restarted only by resync_required + registry_loaded; bookmarks
    // not ahead of the events; a resume at exactly the last revision seen.
    // Across subscribers and acknowledgements: one revision, one change.
    // Every snapshot (registry_loaded at revision S, received at T) holds
    // every acknowledged registration of revision <= S not deregistered by
    // S whose last acknowledged deadline is after T, and no instance whose
    // deregistration at or before S was acknowledged.
    std::vector<std::string> check_streams() const;
    // (a) A listing of every instance (list_services, all pages), taken
    // from `listed_at` on: every acknowledged registration that was neither
    // deregistered nor uncertain and whose last acknowledged deadline is
    // after `listed_at` is there with its lease; every acknowledged
    // deregistration is not; and no lease left to expire is still there
    // past its latest allowed expiry (see check_expiries).
    std::vector<std::string> check_listing(const json::array& services, wall::time_point listed_at,
                                           ms allowance) const;
    // (c) Nothing expires early: no lease_expired (nor lease_not_found) for
    // an instance before its last acknowledged deadline. Nothing late: a
    // lease nobody renewed after its registration is seen expired (by a
    // subscriber receiving live events) no later than its deadline + 1 s +
    // `allowance`, or, when its deadline falls in a fault (or an outage the
    // clients saw), than the fault's end (+ the TTL for a store outage) +
    // 1 s + `allowance`.
    std::vector<std::string> check_expiries(ms allowance) const;

    // Counts for the test's log: acknowledged writes, events, resyncs, ...
    std::string summary() const;

private:
    struct lease_record {
        std::string client;
        std::string instance;
        std::int64_t lease_id = 0;
        std::uint64_t revision = 0;
        int ttl_seconds = 0;
        wall::time_point registered_at;
        wall::time_point deadline;  // the last acknowledged one
        bool renewed_by_client = false;
        bool renewals = false;  // some keepalive was acknowledged
        std::optional<std::uint64_t> deregistered_revision;
        std::optional<std::string> uncertain;
        std::optional<wall::time_point> lost_at;
    };
    struct stream_entry {
        enum class kind { subscribed, event, disconnected } what = kind::event;
        std::string type;  // the event's type
        std::uint64_t revision = 0;
        std::string instance;
        bool replay = false;  // at or below the subscribe response's revision
        wall::time_point at;
        std::string note;  // subscribed: registryd and from_revision; disconnected: why
        std::optional<std::uint64_t> from_revision;
        std::vector<std::string> services;  // registry_loaded: the instances in the snapshot
    };
    struct subscriber {
        std::string name;
        std::vector<stream_entry> entries;
        std::uint64_t replay_up_to = 0;
        std::optional<std::uint64_t> last;
    };
    struct outage {
        std::string what;
        wall::time_point from, to;
        bool ttl_again = false;
    };

    void check_snapshot(const std::string& sub, const stream_entry& e, std::vector<std::string>& problems) const;
    // The latest a lease left to expire may be seen expired.
    wall::time_point latest_expiry(const lease_record& l, ms allowance) const;
    std::vector<outage> outages() const;  // the faults and the outages the clients saw

    mutable std::mutex mutex_;
    std::map<std::string, lease_record> leases_;  // by instance id
    std::vector<subscriber> subscribers_;
    std::vector<outage> faults_;
    std::vector<std::pair<wall::time_point, bool>> writes_;  // refused (false) / acknowledged (true), as seen
    std::map<std::string, std::size_t> refusals_;            // by code
    std::size_t renewals_ = 0;
};

std::string format_time(wall::time_point t);

}  // namespace it
