#include <registry/health_monitor.hpp>

#include <registry/async_scope.hpp>
#include <registry/registry.hpp>

#include <algorithm>
#include <deque>
#include <set>
#include <unordered_map>
#include <utility>
#include <vector>

namespace registry {

std::string critical_deregistration_reason(std::string_view check, milliseconds after) {
    return "health check '" + std::string(check) + "' critical for more than " + std::to_string(after.count()) + " ms";
}

milliseconds check_spread(std::string_view instance_id, std::string_view check, milliseconds interval) noexcept {
    std::uint64_t h = 14695981039346656037ULL;
    auto mix = [&](std::string_view s) {
        for (unsigned char c : s) {
            h ^= c;
            h *= 1099511628211ULL;
        }
    };
    mix(instance_id);
    mix("/");
    mix(check);
    if (interval.count() <= 0) return milliseconds{0};
    return milliseconds{static_cast<std::int64_t>(h % static_cast<std::uint64_t>(interval.count()))};
}

namespace {

// One check of one instance, as scheduled.
struct entry {
    std::string instance_id;
    health_check check;  // the definition; its result as the monitor last knew it
    time_point due{};
    std::uint32_t successes = 0;  // consecutive
    std::uint32_t failures = 0;   // consecutive (warning or critical)
    bool in_flight = false;
    bool deregistering = false;
};

}  // namespace

struct health_monitor::impl {
    impl(class registry& r, clock& c, health_prober& p, health_monitor_options o)
        : reg(r), clk(c), prober(p), opt(o) {}

    class registry& reg;
    clock& clk;
    health_prober& prober;
    health_monitor_options opt;

    std::uint64_t next_id = 1;  // a re-added check gets a new id: in-flight work for the old one sees it gone
    std::unordered_map<std::uint64_t, entry> entries;
    std::unordered_map<std::string, std::vector<std::uint64_t>> by_instance;
    std::set<std::pair<time_point, std::uint64_t>> queue;  // due checks, earliest first
    std::deque<std::uint64_t> waiting;                      // due, waiting for a free probe
    std::size_t running = 0;
    std::uint64_t started = 0;
    milliseconds lag{0};

    std::stop_token stop;
    std::shared_ptr<std::stop_source> wake;  // ends the loop's current sleep
    time_point sleeping_until = time_point::max();
    async_scope work;

    // ---- the schedule --------------------------------------------------------

    void schedule(std::uint64_t id, entry& e, time_point due) {
        e.due = due;
        queue.emplace(due, id);
    }

    void wake_if_sooner() {
        if (queue.empty() || queue.begin()->first >= sleeping_until || !wake) return;
        auto w = wake;  // kept alive while request_stop resumes the loop (inline with a fake clock)
        w->request_stop();
    }

    void remove(std::uint64_t id) {
        auto it = entries.find(id);
        if (it == entries.end()) return;
        queue.erase({it->second.due, id});
        entries.erase(it);  // `waiting` and in-flight work skip ids that are gone
    }

    void remove_instance(const std::string& instance_id) {
        auto it = by_instance.find(instance_id);
        if (it == by_instance.end()) return;
        for (auto id : it->second) remove(id);
        by_instance.erase(it);
    }

    // The instance's checks as registered now: unchanged ones keep their
    // schedule and counters, new ones are added, the others dropped.
    void reconcile(const service_instance& s) {
        auto& ids = by_instance[s.instance_id];
        std::vector<std::uint64_t> kept;
        std::vector<bool> covered(s.checks.size(), false);
        for (auto id : ids) {
            auto it = entries.find(id);
            if (it == entries.end()) continue;
            bool keep = false;
            for (std::size_t i = 0; i < s.checks.size(); ++i) {
                if (!covered[i] && s.checks[i].name == it->second.check.name &&
                    s.checks[i].same_definition(it->second.check)) {
                    covered[i] = keep = true;
                    break;
                }
            }
            if (keep) {
                kept.push_back(id);
            } else {
                remove(id);
            }
        }
        const time_point now = clk.now();
        for (std::size_t i = 0; i < s.checks.size(); ++i) {
            const health_check& c = s.checks[i];
            if (covered[i] || c.kind == check_kind::script) continue;
            const std::uint64_t id = next_id++;
            entry& e = entries.emplace(id, entry{s.instance_id, c}).first->second;
            time_point due = now + c.initial_delay + check_spread(s.instance_id, c.name, c.interval);
            if (c.kind == check_kind::ttl) due = std::max(now, c.result.checked_at + c.interval) + c.initial_delay;
            schedule(id, e, due);
            kept.push_back(id);
        }
        if (kept.empty()) {
            by_instance.erase(s.instance_id);
        } else {
            ids = std::move(kept);
        }
    }

    // ---- running checks ---------------------------------------------------------

    void run_due() {
        const time_point now = clk.now();
        while (!queue.empty() && queue.begin()->first <= now) {
            const auto [due, id] = *queue.begin();
            queue.erase(queue.begin());
            auto it = entries.find(id);
            if (it == entries.end()) continue;
            if (it->second.check.kind == check_kind::ttl) {
                work.spawn(check_ttl(id));
            } else if (running < opt.max_concurrent_probes) {
                work.spawn(probe_one(id, due));
            } else {
                waiting.push_back(id);
            }
        }
    }

    void start_waiting() {
        if (stop.stop_requested()) waiting.clear();  // stopping: nothing new starts
        while (running < opt.max_concurrent_probes && !waiting.empty()) {
            const auto id = waiting.front();
            waiting.pop_front();
            auto it = entries.find(id);
            if (it == entries.end()) continue;
            work.spawn(probe_one(id, it->second.due));
        }
    }

    // The next run on the check's phase after now.
    static time_point next_on_phase(time_point due, milliseconds interval, time_point now) {
        if (due > now) return due;
        const auto behind = (now - due) / interval + 1;
        return due + behind * interval;
    }

    // Where to probe: the url, the address, or the instance's endpoint.
    std::optional<probe_request> request_for(const entry& e, std::string& why) const {
        const health_check& c = e.check;
        probe_request r;
        r.kind = c.kind;
        r.timeout = c.timeout;
        r.method = c.method;
        r.status_min = c.status_min;
        r.status_max = c.status_max;
        r.tls_verify = c.tls_verify;
        r.target = c.path;
        std::string hostport;
        if (!c.url.empty()) {
            std::string_view u = c.url;
            r.tls = u.starts_with("https://");
            u.remove_prefix(r.tls ? 8 : 7);
            const auto slash = u.find('/');
            hostport = std::string(u.substr(0, slash));
            r.target = slash == std::string_view::npos ? "/" : std::string(u.substr(slash));
            if (hostport.find(':') == std::string::npos ||
                (hostport.front() == '[' && hostport.back() == ']')) {
                hostport += r.tls ? ":443" : ":80";
            }
        } else if (!c.address.empty()) {
            hostport = c.address;
        } else {
            auto s = reg.find(e.instance_id);
            const endpoint* ep = nullptr;
            if (s) {
                for (const auto& x : s->endpoints) {
                    if (x.name == c.endpoint) ep = &x;
                }
            }
            if (!ep) {
                why = "endpoint '" + c.endpoint + "' is not registered";
                return std::nullopt;
            }
            r.host = ep->address;
            r.port = ep->port;
            return r;
        }
        const auto colon = hostport.rfind(':');
        std::string host = hostport.substr(0, colon);
        if (host.size() >= 2 && host.front() == '[' && host.back() == ']') host = host.substr(1, host.size() - 2);
        unsigned port = 0;
        for (char ch : hostport.substr(colon + 1)) {
            if (ch < '0' || ch > '9' || port > 65535) {
                port = 0;
                break;
            }
            port = port * 10 + static_cast<unsigned>(ch - '0');
        }
        if (host.empty() || port == 0 || port > 65535) {
            why = "not host:port: " + hostport;
            return std::nullopt;
        }
        r.host = std::move(host);
        r.port = static_cast<std::uint16_t>(port);
        return r;
    }

    task<void> probe_one(std::uint64_t id, time_point due) {
        auto it = entries.find(id);
        if (it == entries.end()) co_return;
        it->second.in_flight = true;
        ++running;
        ++started;
        lag = std::max(lag, std::chrono::duration_cast<milliseconds>(clk.now() - due));
        std::string why;
        auto request = request_for(it->second, why);
        probe_result r{health_status::critical, why};
        if (request) {
            try {
                r = co_await prober.probe(std::move(*request), stop);
            } catch (const std::exception& ex) {
                r = probe_result{health_status::critical, ex.what()};
            }
        }
        --running;
        start_waiting();
        it = entries.find(id);
        if (it == entries.end()) co_return;  // removed meanwhile
        entry& e = it->second;
        e.in_flight = false;
        if (stop.stop_requested()) co_return;
        const time_point now = clk.now();
        schedule(id, e, next_on_phase(e.due + e.check.interval, e.check.interval, now));
        wake_if_sooner();  // the loop may sleep past it (it had nothing sooner when this probe started)
        co_await apply(id, r.status, std::move(r.output));
    }

    // The thresholds: a status changes after so many consecutive results
    // that say so (docs/protocol.md, "Health checks").
    task<void> apply(std::uint64_t id, health_status status, std::string output) {
        auto it = entries.find(id);
        if (it == entries.end()) co_return;
        entry& e = it->second;
        std::uint32_t count = 0;
        if (status == health_status::healthy) {
            ++e.successes;
            e.failures = 0;
            if (e.check.result.status != status && e.successes >= e.check.successes_before_passing) count = e.successes;
        } else {
            ++e.failures;
            e.successes = 0;
            if (e.check.result.status != status && e.failures >= e.check.failures_before_critical) count = e.failures;
        }
        const time_point now = clk.now();
        if (count > 0) {
            e.check.result = check_result{status, output, now, now};
            const std::string instance = e.instance_id;
            check_report report{e.check.name, status, std::move(output), count, std::nullopt};
            auto recorded = co_await reg.record_check(instance, std::move(report));
            (void)recorded;  // the instance may be gone; its entries go with the event
        }
        co_await deregister_if_critical_too_long(id);
    }

    task<void> deregister_if_critical_too_long(std::uint64_t id) {
        auto it = entries.find(id);
        if (it == entries.end()) co_return;
        entry& e = it->second;
        const auto& c = e.check;
        if (e.deregistering || c.result.status != health_status::critical || !c.deregister_critical_after) co_return;
        if (clk.now() - c.result.since < *c.deregister_critical_after) co_return;
        e.deregistering = true;
        const std::string instance = e.instance_id;
        std::string reason = critical_deregistration_reason(c.name, *c.deregister_critical_after);
        auto gone = co_await reg.deregister(instance, std::move(reason));
        (void)gone;
    }

    // A ttl check: critical once no report came within the interval; its
    // result (reports included) is the registry's.
    task<void> check_ttl(std::uint64_t id) {
        auto it = entries.find(id);
        if (it == entries.end()) co_return;
        auto s = reg.find(it->second.instance_id);
        const health_check* current = nullptr;
        if (s) {
            for (const auto& c : s->checks) {
                if (c.name == it->second.check.name) current = &c;
            }
        }
        if (!current) co_return;  // going: the event removes it
        entry& e = it->second;
        e.check.result = current->result;
        const time_point now = clk.now();
        const time_point expires = current->result.checked_at + e.check.interval;
        if (e.check.result.status != health_status::critical && now >= expires) {
            const std::string text = "no report within " + std::to_string(e.check.interval.count()) + " ms";
            e.check.result = check_result{health_status::critical, text, now, now};
            const std::string instance = e.instance_id;
            const std::string name = e.check.name;
            check_report report{name, health_status::critical, text, 1, {}};  // named: GCC 12 (registry.hpp)
            auto recorded = co_await reg.record_check(instance, std::move(report));
            (void)recorded;
            it = entries.find(id);
            if (it == entries.end()) co_return;
        }
        entry& again = it->second;
        const auto& r = again.check.result;
        time_point next = r.checked_at + again.check.interval;
        if (r.status == health_status::critical) {
            // Until a report: only deregister_critical_after is left to watch for.
            next = again.check.deregister_critical_after ? r.since + *again.check.deregister_critical_after
                                                         : now + again.check.interval;
        }
        schedule(id, again, std::max(next, now + milliseconds(1)));
        wake_if_sooner();
        co_await deregister_if_critical_too_long(id);
    }

    // ---- following the registry ---------------------------------------------------

    task<void> follow() {
        watch_options w;
        w.types = {event_type::service_registered, event_type::service_deregistered, event_type::endpoint_updated};
        w.stop = stop;
        auto events = reg.watch(std::move(w));
        for (auto it = co_await events.begin(); it != events.end(); co_await ++it) {
            const event& e = **it;
            if (e.type == event_type::registry_loaded) {
                std::set<std::string> present;
                for (const auto& s : e.snapshot) {
                    present.insert(s->instance_id);
                    if (auto now = reg.find(s->instance_id)) reconcile(*now);
                }
                std::vector<std::string> gone;
                for (const auto& [instance, ids] : by_instance) {
                    if (!present.contains(instance)) gone.push_back(instance);
                }
                for (const auto& g : gone) remove_instance(g);
            } else if (e.service) {
                auto now = reg.find(e.service->instance_id);
                if (now && e.type != event_type::service_deregistered) {
                    reconcile(*now);
                } else {
                    remove_instance(e.service->instance_id);
                }
            }
            wake_if_sooner();
        }
    }

    task<void> loop() {
        for (;;) {
            if (stop.stop_requested()) break;
            auto w = std::make_shared<std::stop_source>();
            wake = w;
            std::stop_callback on_stop(stop, [w] { w->request_stop(); });
            sleeping_until = queue.empty() ? clk.now() + std::chrono::hours(1) : queue.begin()->first;
            const bool slept = co_await clk.sleep_until(sleeping_until, w->get_token());
            (void)slept;
            sleeping_until = time_point::max();
            wake.reset();
            if (stop.stop_requested()) break;
            run_due();
        }
    }
};

health_monitor::health_monitor(class registry& reg, clock& clk, health_prober& prober, health_monitor_options options)
    : impl_(std::make_unique<impl>(reg, clk, prober, options)) {}

health_monitor::~health_monitor() = default;

task<void> health_monitor::run(std::stop_token stop) {
    auto& m = *impl_;
    m.stop = stop;
    m.work.spawn(m.follow());
    co_await m.loop();
    co_await m.work.join();
    m.waiting.clear();
}

std::size_t health_monitor::checks() const noexcept { return impl_->entries.size(); }
std::size_t health_monitor::in_flight() const noexcept { return impl_->running; }
std::uint64_t health_monitor::probes() const noexcept { return impl_->started; }
milliseconds health_monitor::worst_lag() const noexcept { return impl_->lag; }

}  // namespace registry
