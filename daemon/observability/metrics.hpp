// registryd's metrics: plain counters, touched only on the io thread (no
// atomics), rendered in the Prometheus text exposition format (0.0.4).
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>
#include <utility>
#include <vector>

namespace registryd {

class memory_budget;

class metrics {
public:
    // Upper bounds of registryd_request_duration_seconds, 50us .. 1s (+Inf implied).
    static constexpr std::array<double, 14> duration_buckets{0.00005, 0.0001, 0.00025, 0.0005, 0.001,
                                                             0.0025,  0.005,  0.01,    0.025,  0.05,
                                                             0.1,     0.25,   0.5,     1.0};

    // Values read at scrape time from elsewhere (registry, store, container
    // manager, REPL executor).
    struct gauges {
        std::uint64_t services = 0;
        std::uint64_t revision = 0;
        std::uint64_t store_fsyncs = 0;
        bool available = true;
        std::string_view store_kind = "file";   // registryd_store_info's labels
        std::string_view store_state = "ok";    // ok, unreachable, failed
        std::string_view role = "writer";       // or "standby" (several registryd on one etcd)
        // With a container manager: its managed containers by state (every
        // state listed, 0 included).
        std::optional<std::map<std::string, std::uint64_t, std::less<>>> containers;
        std::uint64_t containers_queued = 0;  // creates waiting in the container manager's queue
        // With REPL execution enabled.
        struct repl_figures {
            std::uint64_t queued = 0;
            std::uint64_t running = 0;
        };
        std::optional<repl_figures> repl;
        // The webhooks' (registry::notifier::stats), configured ones first.
        struct webhook_figures {
            std::string name;
            std::uint64_t delivered = 0, retried = 0, dropped = 0, outbox = 0, dead_letters = 0;
        };
        std::vector<webhook_figures> webhooks;
    };

    void connection_opened() noexcept {
        ++connections_;
        ++connections_total_;
    }
    void connection_closed() noexcept { --connections_; }
    void connection_refused() noexcept { ++connections_refused_total_; }
    std::uint64_t connections() const noexcept { return connections_; }

    // One handled request. `action` and `code` come from the library's
    // protocol::outcome; an empty action is recorded as "none".
    void request(std::string_view action, std::string_view code, double seconds);

    void events_sent(std::uint64_t n = 1) noexcept { events_sent_total_ += n; }
    void slow_consumer_disconnect() noexcept { ++slow_consumer_disconnects_total_; }

    // A message refused by the transport before the library parsed it:
    // "too_large", "binary", "shutting_down".
    void message_rejected(std::string_view reason);

    // A connection refused or closed by a transport limit (docs/protocol.md,
    // "Limits"): "memory_budget", "max_connections", "handshake_limit",
    // "source_quota", "descriptors", "slow_consumer".
    void refused(std::string_view reason);

    // Requests and upgrades refused by access control or rate limits, by
    // reason: a request's forbidden and rate_limited are counted by
    // request(); the upgrade's 401 ("unauthorized") by whoever answers it.
    static constexpr std::array<std::string_view, 3> refusal_reasons{"unauthorized", "forbidden", "rate_limited"};
    void refusal(std::string_view reason) noexcept;

    // The container reaper removed a container whose lease ran out, or gave
    // up on it for this sweep.
    void container_reaped(bool removed) noexcept { ++(removed ? reaps_total_ : reap_failures_total_); }

    // A REPL execution finished: `outcome` is one of repl_outcomes; `seconds`
    // is its run time (start to exit; 0 if it never ran).
    static constexpr std::array<std::string_view, 6> repl_outcomes{"ok",        "error",        "timed_out",
                                                                   "truncated", "cancelled",    "failed"};
    void repl_finished(std::string_view outcome, double seconds);

    // A deploy or undeploy finished: `operation` "deploy" / "undeploy",
    // `outcome` "succeeded" / "failed" / "rolled_back" (the deployer's
    // operation_record).
    void deploy_finished(std::string_view operation, std::string_view outcome);

    // The memory budget's figures, read at scrape time.
    void watch(const memory_budget& b) noexcept { budget_ = &b; }

    // Upper bounds of registryd_repl_execution_duration_seconds, 10ms .. 5min.
    static constexpr std::array<double, 12> repl_buckets{0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300};

    std::string render(const gauges& g) const;

private:
    template <std::size_t N>
    struct basic_histogram {
        std::array<std::uint64_t, N> buckets{};  // non-cumulative
        std::uint64_t count = 0;
        double sum = 0;

        void observe(const std::array<double, N>& bounds, double v) noexcept {
            ++count;
            sum += v;
            for (std::size_t i = 0; i < N; ++i) {
                if (v <= bounds[i]) {
                    ++buckets[i];
                    break;
                }
            }
        }
    };
    using histogram = basic_histogram<duration_buckets.size()>;

    std::uint64_t connections_ = 0;
    std::uint64_t connections_total_ = 0;
    std::uint64_t connections_refused_total_ = 0;
    std::uint64_t events_sent_total_ = 0;
    std::uint64_t slow_consumer_disconnects_total_ = 0;
    struct code_count {
        std::string code;
        std::uint64_t n = 0;
    };
    struct action_stats {
        histogram duration;
        std::vector<code_count> codes;  // "ok" and a few error codes: searched in order
    };
    struct label_hash {
        using is_transparent = void;
        std::size_t operator()(std::string_view s) const noexcept { return std::hash<std::string_view>{}(s); }
    };

    // Counted per request: found by the action's name as given, without
    // building a key string (render() sorts them).
    std::unordered_map<std::string, action_stats, label_hash, std::equal_to<>> actions_;
    std::size_t label_sets_ = 0;  // (action, code) pairs counted in actions_
    std::map<std::string, std::uint64_t, std::less<>> rejected_total_;
    std::map<std::string, std::uint64_t, std::less<>> refused_total_;
    std::array<std::uint64_t, refusal_reasons.size()> refusals_total_{};
    const memory_budget* budget_ = nullptr;

    std::uint64_t reaps_total_ = 0;
    std::uint64_t reap_failures_total_ = 0;
    std::array<std::uint64_t, repl_outcomes.size()> repl_total_{};
    basic_histogram<repl_buckets.size()> repl_duration_;
    // (operation, outcome) -> count: a fixed vocabulary, a handful of pairs.
    std::map<std::pair<std::string, std::string>, std::uint64_t> deploys_total_;
    std::uint64_t rollbacks_total_ = 0;
};

// Escapes a Prometheus label value (backslash, double quote, newline).
std::string escape_label_value(std::string_view v);

}  // namespace registryd
