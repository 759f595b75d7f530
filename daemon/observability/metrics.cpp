#include "observability/metrics.hpp"

#include "observability/process_stats.hpp"
#include "websocket/memory_budget.hpp"

#include <algorithm>
#include <cinttypes>
#include <cstdio>

namespace registryd {

namespace {

// Label values come from the library's fixed vocabulary of actions and error
// codes; this bound only guards the scrape size against a library bug.
constexpr std::size_t max_label_sets = 512;

void append_u64(std::string& out, std::uint64_t v) {
    char buf[32];
    const int n = std::snprintf(buf, sizeof buf, "%" PRIu64, v);
    out.append(buf, static_cast<std::size_t>(n));
}

void append_double(std::string& out, double v, int digits = 9) {
    char buf[40];
    const int n = std::snprintf(buf, sizeof buf, "%.*g", digits, v);
    out.append(buf, static_cast<std::size_t>(n));
}

// Deploy (operation, outcome) pairs come from the deployer's fixed vocabulary;
// this bound only guards the scrape size against a library bug.
constexpr std::size_t max_deploy_label_sets = 32;

// What compiled registryd, e.g. "gcc 12.2.0" or "clang 16.0.6".
std::string compiler_name() {
#if defined(__clang__)
    return "clang " + std::to_string(__clang_major__) + "." + std::to_string(__clang_minor__) + "." +
           std::to_string(__clang_patchlevel__);
#elif defined(__GNUC__)
    return "gcc " + std::to_string(__GNUC__) + "." + std::to_string(__GNUC_MINOR__) + "." +
           std::to_string(__GNUC_PATCHLEVEL__);
#else
    return "unknown";
#endif
}

void header(std::string& out, std::string_view name, std::string_view type, std::string_view help) {
    out += "# HELP ";
    out += name;
    out += ' ';
    out += help;
    out += "\n# TYPE ";
    out += name;
    out += ' ';
    out += type;
    out += '\n';
}

void sample(std::string& out, std::string_view name, std::uint64_t v) {
    out += name;
    out += ' ';
    append_u64(out, v);
    out += '\n';
}

// 15 digits: a time since the epoch keeps its fraction of a second.
void sample(std::string& out, std::string_view name, double v) {
    out += name;
    out += ' ';
    append_double(out, v, 15);
    out += '\n';
}

// One histogram's series: NAME_bucket (cumulative, then +Inf), NAME_sum and
// NAME_count, each with `labels` (`key="value",...`, escaped; may be empty).
template <typename Histogram, std::size_t N>
void render_histogram(std::string& out, std::string_view name, std::string_view labels,
                      const std::array<double, N>& bounds, const Histogram& h, int sum_digits = 9) {
    auto series = [&](std::string_view suffix, std::string_view le) {
        out += name;
        out += suffix;
        if (!labels.empty() || !le.empty()) {
            out += '{';
            out += labels;
            if (!le.empty()) {
                if (!labels.empty()) out += ',';
                out += "le=\"";
                out += le;
                out += '"';
            }
            out += '}';
        }
        out += ' ';
    };
    std::uint64_t cumulative = 0;
    for (std::size_t i = 0; i < N; ++i) {
        cumulative += h.buckets[i];
        std::string le;
        append_double(le, bounds[i]);
        series("_bucket", le);
        append_u64(out, cumulative);
        out += '\n';
    }
    series("_bucket", "+Inf");
    append_u64(out, h.count);
    out += '\n';
    series("_sum", "");
    append_double(out, h.sum, sum_digits);
    out += '\n';
    series("_count", "");
    append_u64(out, h.count);
    out += '\n';
}

// name{label="value"} v
void labelled(std::string& out, std::string_view name, std::string_view label, std::string_view value,
              std::uint64_t v) {
    out += name;
    out += '{';
    out += label;
    out += "=\"";
    out += escape_label_value(value);
    out += "\"} ";
    append_u64(out, v);
    out += '\n';
}

void render_process(std::string& out) {
    const auto p = read_process_stats();
    if (!p) return;
    header(out, "process_cpu_seconds_total", "counter", "Total user and system CPU time spent in seconds.");
    sample(out, "process_cpu_seconds_total", p->cpu_seconds);
    header(out, "process_resident_memory_bytes", "gauge", "Resident memory size in bytes.");
    sample(out, "process_resident_memory_bytes", p->resident_bytes);
    header(out, "process_virtual_memory_bytes", "gauge", "Virtual memory size in bytes.");
    sample(out, "process_virtual_memory_bytes", p->virtual_bytes);
    header(out, "process_start_time_seconds", "gauge", "Start time of the process since unix epoch in seconds.");
    sample(out, "process_start_time_seconds", p->start_time_seconds);
    header(out, "process_open_fds", "gauge", "Number of open file descriptors.");
    sample(out, "process_open_fds", p->open_fds);
    header(out, "process_max_fds", "gauge", "Maximum number of open file descriptors.");
    sample(out, "process_max_fds", p->max_fds);
}

}  // namespace

std::string escape_label_value(std::string_view v) {
    std::string out;
    out.reserve(v.size());
    for (char c : v) {
        switch (c) {
            case '\\': out += "\\\\"; break;
            case '"': out += "\\\""; break;
            case '\n': out += "\\n"; break;
            default: out += c;
        }
    }
    return out;
}

void metrics::refusal(std::string_view reason) noexcept {
    for (std::size_t i = 0; i < refusal_reasons.size(); ++i) {
        if (refusal_reasons[i] == reason) ++refusals_total_[i];
    }
}

void metrics::request(std::string_view action, std::string_view code, double seconds) {
    if (code == "forbidden" || code == "rate_limited") refusal(code);
    if (action.empty()) action = "none";
    if (code.empty()) code = "none";

    auto it = actions_.find(action);
    code_count* counter = nullptr;
    if (it != actions_.end()) {
        for (auto& c : it->second.codes) {
            if (c.code == code) {
                counter = &c;
                break;
            }
        }
    }
    if (!counter) {
        if (label_sets_ >= max_label_sets) {
            action = "other";
            code = "other";
            it = actions_.find(action);
        }
        if (it == actions_.end()) it = actions_.try_emplace(std::string(action)).first;
        auto& codes = it->second.codes;
        auto c = std::find_if(codes.begin(), codes.end(), [&](const code_count& cc) { return cc.code == code; });
        if (c == codes.end()) {
            ++label_sets_;
            c = codes.insert(codes.end(), code_count{std::string(code), 0});
        }
        counter = &*c;
    }
    ++counter->n;

    auto& hist = it->second.duration;
    ++hist.count;
    hist.sum += seconds;
    for (std::size_t i = 0; i < duration_buckets.size(); ++i) {
        if (seconds <= duration_buckets[i]) {
            ++hist.buckets[i];
            break;
        }
    }
}

void metrics::repl_finished(std::string_view outcome, double seconds) {
    std::size_t i = 0;
    while (i + 1 < repl_outcomes.size() && repl_outcomes[i] != outcome) ++i;  // unknown: the last, "failed"
    ++repl_total_[i];
    repl_duration_.observe(repl_buckets, seconds);
}

void metrics::deploy_finished(std::string_view operation, std::string_view outcome) {
    if (outcome == "rolled_back") ++rollbacks_total_;
    std::pair<std::string, std::string> key{operation, outcome};
    if (!deploys_total_.contains(key) && deploys_total_.size() >= max_deploy_label_sets) key = {"other", "other"};
    ++deploys_total_[key];
}

void metrics::message_rejected(std::string_view reason) {
    auto it = rejected_total_.find(reason);
    if (it == rejected_total_.end()) it = rejected_total_.try_emplace(std::string(reason), 0).first;
    ++it->second;
}

void metrics::refused(std::string_view reason) {
    auto it = refused_total_.find(reason);
    if (it == refused_total_.end()) it = refused_total_.try_emplace(std::string(reason), 0).first;
    ++it->second;
}

std::string metrics::render(const gauges& g) const {
    std::string out;
    out.reserve(8192 + label_sets_ * 96 + actions_.size() * 1200);

    render_process(out);

    header(out, "registryd_build_info", "gauge", "Always 1; the labels say which registryd this is.");
    out += "registryd_build_info{version=\"";
    out += escape_label_value(REGISTRYD_VERSION);
    out += "\",compiler=\"";
    out += escape_label_value(compiler_name());
    out += "\"} 1\n";

    header(out, "registryd_connections", "gauge", "Open WebSocket connections.");
    sample(out, "registryd_connections", connections_);

    header(out, "registryd_connections_total", "counter", "WebSocket connections accepted since start.");
    sample(out, "registryd_connections_total", connections_total_);

    header(out, "registryd_connections_refused_total", "counter",
           "WebSocket upgrades refused with 503 because limits.max_connections was reached.");
    sample(out, "registryd_connections_refused_total", connections_refused_total_);

    // Sorted by action, then code, as Prometheus clients list them.
    std::vector<const std::pair<const std::string, action_stats>*> by_action;
    by_action.reserve(actions_.size());
    for (const auto& entry : actions_) by_action.push_back(&entry);
    std::sort(by_action.begin(), by_action.end(), [](const auto* a, const auto* b) { return a->first < b->first; });

    header(out, "registryd_requests_total", "counter", "Requests handled, by action and result code.");
    for (const auto* entry : by_action) {
        std::vector<const code_count*> codes;
        codes.reserve(entry->second.codes.size());
        for (const auto& c : entry->second.codes) codes.push_back(&c);
        std::sort(codes.begin(), codes.end(), [](const auto* a, const auto* b) { return a->code < b->code; });
        const std::string a = escape_label_value(entry->first);
        for (const auto* c : codes) {
            out += "registryd_requests_total{action=\"";
            out += a;
            out += "\",code=\"";
            out += escape_label_value(c->code);
            out += "\"} ";
            append_u64(out, c->n);
            out += '\n';
        }
    }

    header(out, "registryd_request_duration_seconds", "histogram",
           "Time from a request frame's arrival to its handler's completion, by action.");
    for (const auto* entry : by_action) {
        const std::string a = escape_label_value(entry->first);
        const histogram& h = entry->second.duration;
        render_histogram(out, "registryd_request_duration_seconds", "action=\"" + a + "\"", duration_buckets, h);
    }

    header(out, "registryd_events_sent_total", "counter", "Event frames written to WebSocket clients.");
    sample(out, "registryd_events_sent_total", events_sent_total_);

    header(out, "registryd_slow_consumer_disconnects_total", "counter",
           "Connections closed (1008) because their outbound queue was full.");
    sample(out, "registryd_slow_consumer_disconnects_total", slow_consumer_disconnects_total_);

    header(out, "registryd_messages_rejected_total", "counter",
           "Inbound messages refused before parsing, by reason (too_large, binary, shutting_down).");
    for (const auto& [reason, n] : rejected_total_) {
        out += "registryd_messages_rejected_total{reason=\"";
        out += escape_label_value(reason);
        out += "\"} ";
        append_u64(out, n);
        out += '\n';
    }

    header(out, "registryd_transport_refusals_total", "counter",
           "Connections refused or closed by a transport limit, by reason (memory_budget, max_connections, "
           "handshake_limit, source_quota, descriptors, slow_consumer).");
    for (const auto& [reason, n] : refused_total_) {
        out += "registryd_transport_refusals_total{reason=\"";
        out += escape_label_value(reason);
        out += "\"} ";
        append_u64(out, n);
        out += '\n';
    }

    header(out, "registryd_refusals_total", "counter",
           "Refused by access control or a rate limit, by reason (unauthorized: 401 at the upgrade; forbidden, "
           "rate_limited: a request's error code).");
    for (std::size_t i = 0; i < refusal_reasons.size(); ++i)
        labelled(out, "registryd_refusals_total", "reason", refusal_reasons[i], refusals_total_[i]);

    if (budget_) {
        header(out, "registryd_memory_budget_bytes", "gauge", "limits.memory_budget_bytes.");
        sample(out, "registryd_memory_budget_bytes", budget_->limit());
        header(out, "registryd_memory_budget_used_bytes", "gauge",
               "Bytes of connection buffers charged to the memory budget now.");
        sample(out, "registryd_memory_budget_used_bytes", budget_->used());
        header(out, "registryd_memory_budget_peak_bytes", "gauge", "The most charged to the memory budget since start.");
        sample(out, "registryd_memory_budget_peak_bytes", budget_->peak());
    }

    header(out, "registryd_store_fsyncs_total", "counter", "fsync calls made by the durable store.");
    sample(out, "registryd_store_fsyncs_total", g.store_fsyncs);

    header(out, "registryd_services", "gauge", "Registered service instances.");
    sample(out, "registryd_services", g.services);

    header(out, "registryd_revision", "gauge", "The registry's last published revision.");
    sample(out, "registryd_revision", g.revision);

    header(out, "registryd_store_available", "gauge",
           "1 while the store accepts writes, 0 while it is unreachable or after it failed.");
    sample(out, "registryd_store_available", std::uint64_t{g.available ? 1u : 0u});

    header(out, "registryd_store_info", "gauge", "Always 1; the labels say which store, in what state, and whether this registryd writes it.");
    out += "registryd_store_info{kind=\"";
    out += escape_label_value(g.store_kind);
    out += "\",state=\"";
    out += escape_label_value(g.store_state);
    out += "\",role=\"";
    out += escape_label_value(g.role);
    out += "\"} 1\n";

    if (g.containers) {
        header(out, "registryd_containers", "gauge", "Managed containers, by state.");
        for (const auto& [state, n] : *g.containers) labelled(out, "registryd_containers", "state", state, n);
        header(out, "registryd_container_reaps_total", "counter",
               "Containers the reaper removed because their lease ran out.");
        sample(out, "registryd_container_reaps_total", reaps_total_);
        header(out, "registryd_container_reap_failures_total", "counter",
               "Sweeps on which the reaper gave up on a container (retried on a later sweep).");
        sample(out, "registryd_container_reap_failures_total", reap_failures_total_);
        header(out, "registryd_container_create_queue_depth", "gauge",
               "container_create requests waiting for a free slot (queue: true).");
        sample(out, "registryd_container_create_queue_depth", g.containers_queued);
    }

    if (g.repl) {
        header(out, "registryd_repl_executions_total", "counter",
               "REPL executions finished, by outcome (ok: exit code 0; error: another exit code or a signal; "
               "timed_out; truncated: the output cap; cancelled; failed: could not be carried out).");
        for (std::size_t i = 0; i < repl_outcomes.size(); ++i)
            labelled(out, "registryd_repl_executions_total", "outcome", repl_outcomes[i], repl_total_[i]);
        header(out, "registryd_repl_queue_depth", "gauge", "REPL executions waiting for an engine.");
        sample(out, "registryd_repl_queue_depth", g.repl->queued);
        header(out, "registryd_repl_running", "gauge",
               "REPL executions holding an engine: running, or their container being removed.");
        sample(out, "registryd_repl_running", g.repl->running);
        header(out, "registryd_repl_execution_duration_seconds", "histogram",
               "Run time of finished REPL executions, from start to exit (compile step included).");
        render_histogram(out, "registryd_repl_execution_duration_seconds", "", repl_buckets, repl_duration_, 15);
    }

    header(out, "registryd_deploys_total", "counter",
           "Deploy and undeploy operations finished, by operation and outcome (succeeded, failed, rolled_back).");
    for (const auto& [key, n] : deploys_total_) {
        out += "registryd_deploys_total{operation=\"";
        out += escape_label_value(key.first);
        out += "\",outcome=\"";
        out += escape_label_value(key.second);
        out += "\"} ";
        append_u64(out, n);
        out += '\n';
    }
    header(out, "registryd_deploy_rollbacks_total", "counter",
           "Deploys whose new version failed and whose previous version was put back.");
    sample(out, "registryd_deploy_rollbacks_total", rollbacks_total_);

    if (!g.webhooks.empty()) {
        header(out, "registryd_notifications_total", "counter",
               "Webhook POSTs by webhook and result (delivered: answered 2xx; retried: failed, to be tried again; "
               "dropped: events given up, into the dead letters).");
        for (const auto& w : g.webhooks) {
            const std::string labels = "webhook=\"" + escape_label_value(w.name) + "\",result=\"";
            for (const auto& [result, n] : {std::pair<std::string_view, std::uint64_t>{"delivered", w.delivered},
                                            {"retried", w.retried},
                                            {"dropped", w.dropped}}) {
                out += "registryd_notifications_total{";
                out += labels;
                out += result;
                out += "\"} ";
                append_u64(out, n);
                out += '\n';
            }
        }
        header(out, "registryd_notification_outbox", "gauge", "Events waiting in a webhook's outbox.");
        for (const auto& w : g.webhooks) labelled(out, "registryd_notification_outbox", "webhook", w.name, w.outbox);
        header(out, "registryd_notification_dead_letters", "gauge", "A webhook's dead letters.");
        for (const auto& w : g.webhooks)
            labelled(out, "registryd_notification_dead_letters", "webhook", w.name, w.dead_letters);
    }

    return out;
}

}  // namespace registryd
