#include "observability/metrics.hpp"

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

void append_double(std::string& out, double v) {
    char buf[40];
    const int n = std::snprintf(buf, sizeof buf, "%.9g", v);
    out.append(buf, static_cast<std::size_t>(n));
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

void metrics::request(std::string_view action, std::string_view code, double seconds) {
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
    out.reserve(4096 + label_sets_ * 96 + actions_.size() * 1200);

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
        std::uint64_t cumulative = 0;
        for (std::size_t i = 0; i < duration_buckets.size(); ++i) {
            cumulative += h.buckets[i];
            out += "registryd_request_duration_seconds_bucket{action=\"";
            out += a;
            out += "\",le=\"";
            append_double(out, duration_buckets[i]);
            out += "\"} ";
            append_u64(out, cumulative);
            out += '\n';
        }
        out += "registryd_request_duration_seconds_bucket{action=\"";
        out += a;
        out += "\",le=\"+Inf\"} ";
        append_u64(out, h.count);
        out += "\nregistryd_request_duration_seconds_sum{action=\"";
        out += a;
        out += "\"} ";
        append_double(out, h.sum);
        out += "\nregistryd_request_duration_seconds_count{action=\"";
        out += a;
        out += "\"} ";
        append_u64(out, h.count);
        out += '\n';
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

    header(out, "registryd_store_available", "gauge", "1 while the store accepts writes, 0 after it failed.");
    sample(out, "registryd_store_available", g.available ? 1 : 0);

    return out;
}

}  // namespace registryd
